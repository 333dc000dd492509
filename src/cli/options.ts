// Option helpers every command shares (CONTRACT.md: --config FILE on every command).
import { type Command, InvalidArgumentError, Option } from 'commander';

export const DEFAULT_CONFIG_PATH = './cluster.config.json';

export function withConfig(command: Command): Command {
  return command.addOption(new Option('--config <file>', 'cluster config file').default(DEFAULT_CONFIG_PATH));
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
