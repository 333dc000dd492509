// Option helpers every command shares (CONTRACT.md: --config FILE on every command, and
// --access-key/--secret-key or LMQ_ACCESS_KEY/LMQ_SECRET_KEY on every command that talks to
// the cluster).
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Credentials } from '../security/signature.js';

export const DEFAULT_CONFIG_PATH = './cluster.config.json';

export function withConfig(command: Command): Command {
  return command.addOption(new Option('--config <file>', 'cluster config file').default(DEFAULT_CONFIG_PATH));
}

/** What a command that talks to the cluster is given: its config, whom to sign as, how to reach the nodes. */
export interface ConnectOptions {
  config: string;
  accessKey?: string;
  secretKey?: string;
  /** The CA certificate (PEM) the nodes' TLS certificates are verified against. */
  tlsCa?: string;
  /** TLS, verified against the system roots when no CA is named. */
  tls?: boolean;
}

/** --config, the credentials and TLS: for every command that talks to the cluster. */
export function withClusterOptions(command: Command): Command {
  return withConfig(command)
    .addOption(new Option('--access-key <key>', 'sign requests as this ACL user (needed when the cluster has security.aclFile)').env('LMQ_ACCESS_KEY'))
    .addOption(new Option('--secret-key <key>', "the user's secret key (prefer the env var: arguments show in ps)").env('LMQ_SECRET_KEY'))
    .addOption(new Option('--tls-ca <file>', "connect with TLS, trusting this CA certificate (PEM; default: the config's security.tls.ca)").env('LMQ_TLS_CA'))
    .addOption(new Option('--tls', "connect with TLS, trusting the system's root CAs (when neither --tls-ca nor the config names a CA)"));
}

/** The credentials given, or undefined; one without the other is bad usage (exit 2). */
export function credentialsFrom(options: ConnectOptions): Credentials | undefined {
  const { accessKey, secretKey } = options;
  if (accessKey === undefined && secretKey === undefined) return undefined;
  if (accessKey === undefined || secretKey === undefined) {
    throw new InvalidArgumentError(`${accessKey === undefined ? '--secret-key' : '--access-key'} needs ${accessKey === undefined ? '--access-key (or LMQ_ACCESS_KEY)' : '--secret-key (or LMQ_SECRET_KEY)'} too`);
  }
  return { accessKey, secretKey };
}

export function parseIntOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}, not "${value}"`);
    }
    return n;
  };
}

/** A point in time given as an ISO date ("2026-11-23T12:00:00Z") or epoch milliseconds. */
export function parseTimeOption(name: string): (value: string) => number {
  return (value: string) => {
    const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
    if (!Number.isSafeInteger(ms) || ms < 0) throw new InvalidArgumentError(`${name} must be an ISO date (2026-11-23T12:00:00Z) or epoch milliseconds, not "${value}"`);
    return ms;
  };
}
