// Builds a client for the nodes of a config, over the transport's RPC connections.
import { DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../client/client.js';
import type { ClusterConfig } from '../config/config.js';
import { RpcConnection } from '../transport/rpc-connection.js';

export function clientFor(config: ClusterConfig, timeoutMs: number = DEFAULT_CLIENT_OPTIONS.timeoutMs): LedgerClient {
  return new LedgerClient(
    { ...DEFAULT_CLIENT_OPTIONS, nodes: config.nodes, timeoutMs, requestTimeoutMs: Math.min(DEFAULT_CLIENT_OPTIONS.requestTimeoutMs, timeoutMs) },
    (host, port, connectTimeoutMs) => RpcConnection.connect(host, port, { connectTimeoutMs }),
  );
}
