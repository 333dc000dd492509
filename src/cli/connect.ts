// Builds a client for the nodes of a config, over the transport's RPC connections (TLS when the
// command or the config asks for it), signing as the command's credentials when given, and
// formats tables for the commands that print them.
import { resolve } from 'node:path';
import { type Connector, DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../client/client.js';
import { type ClientConfig, loadClientConfig } from '../config/client-config.js';
import { tcpConnector, tlsConnector } from '../client/tcp-connector.js';
import type { Credentials } from '../security/signature.js';
import { readTlsCa } from '../security/tls.js';
import { type ConnectOptions, credentialsFrom } from './options.js';

/** Whom a client signs as and how it reaches the nodes. */
export interface ClientAccess {
  readonly credentials?: Credentials;
  readonly connector?: Connector;
}

/**
 * TLS when asked: the CA of --tls-ca (or LMQ_TLS_CA), else the config's security.tls.ca, else
 * with --tls the system roots; plain TCP otherwise. A CA file that is missing or not PEM is
 * exit 2 naming it.
 */
export function connectorFrom(options: ConnectOptions, config: ClientConfig): Connector {
  if (options.tlsCa !== undefined) return tlsConnector({ ca: readTlsCa(resolve(options.tlsCa), '--tls-ca') });
  const configCa = config.security?.tls?.ca;
  if (configCa !== undefined) return tlsConnector({ ca: readTlsCa(configCa) });
  return options.tls === true ? tlsConnector() : tcpConnector;
}

export function accessFrom(options: ConnectOptions, config: ClientConfig): ClientAccess {
  const credentials = credentialsFrom(options);
  return { connector: connectorFrom(options, config), ...(credentials === undefined ? {} : { credentials }) };
}

export function clientFor(config: ClientConfig, timeoutMs: number = DEFAULT_CLIENT_OPTIONS.timeoutMs, access: ClientAccess = {}): LedgerClient {
  return new LedgerClient(
    {
      ...DEFAULT_CLIENT_OPTIONS,
      nodes: config.nodes,
      timeoutMs,
      requestTimeoutMs: Math.min(DEFAULT_CLIENT_OPTIONS.requestTimeoutMs, timeoutMs),
      ...(access.credentials === undefined ? {} : { credentials: access.credentials }),
    },
    access.connector ?? tcpConnector,
  );
}

/** Runs `use` with a client for the command's config, credentials and TLS, closing it whatever happens. */
export async function withClient<T>(options: ConnectOptions, timeoutMs: number, use: (client: LedgerClient) => Promise<T>): Promise<T> {
  const config = await loadClientConfig(options.config);
  const client = clientFor(config, timeoutMs, accessFrom(options, config));
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/** Left-aligned columns for a terminal. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}
