// Builds a client for the nodes of a config, over the transport's RPC connections, and
// formats tables for the commands that print them.
import { DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../client/client.js';
import { type ClusterConfig, loadConfig } from '../config/config.js';
import { tcpConnector } from '../client/tcp-connector.js';

export function clientFor(config: ClusterConfig, timeoutMs: number = DEFAULT_CLIENT_OPTIONS.timeoutMs): LedgerClient {
  return new LedgerClient(
    { ...DEFAULT_CLIENT_OPTIONS, nodes: config.nodes, timeoutMs, requestTimeoutMs: Math.min(DEFAULT_CLIENT_OPTIONS.requestTimeoutMs, timeoutMs) },
    tcpConnector,
  );
}

/** Runs `use` with a client for the config at `configPath`, closing it whatever happens. */
export async function withClient<T>(configPath: string, timeoutMs: number, use: (client: LedgerClient) => Promise<T>): Promise<T> {
  const client = clientFor(loadConfig(configPath), timeoutMs);
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
