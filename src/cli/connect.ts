// Builds a client for the nodes of a config, over the transport's RPC connections, signing as
// the command's credentials when given, and formats tables for the commands that print them.
import { DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../client/client.js';
import { type ClusterConfig, loadConfig } from '../config/config.js';
import { tcpConnector } from '../client/tcp-connector.js';
import type { Credentials } from '../security/signature.js';
import { type ConnectOptions, credentialsFrom } from './options.js';

export function clientFor(config: ClusterConfig, timeoutMs: number = DEFAULT_CLIENT_OPTIONS.timeoutMs, credentials?: Credentials): LedgerClient {
  return new LedgerClient(
    {
      ...DEFAULT_CLIENT_OPTIONS,
      nodes: config.nodes,
      timeoutMs,
      requestTimeoutMs: Math.min(DEFAULT_CLIENT_OPTIONS.requestTimeoutMs, timeoutMs),
      ...(credentials === undefined ? {} : { credentials }),
    },
    tcpConnector,
  );
}

/** Runs `use` with a client for the command's config and credentials, closing it whatever happens. */
export async function withClient<T>(options: ConnectOptions, timeoutMs: number, use: (client: LedgerClient) => Promise<T>): Promise<T> {
  const credentials = credentialsFrom(options);
  const client = clientFor(loadConfig(options.config), timeoutMs, credentials);
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
