// The client's connector over TCP: the transport's RpcConnection behind the client's
// Connector port, so the client's core (client.ts) never imports node:net.
import { RpcConnection } from '../transport/rpc-connection.js';
import type { Connector } from './client.js';

export const tcpConnector: Connector = (host, port, connectTimeoutMs, credentials, nodeId) =>
  RpcConnection.connect(host, port, { connectTimeoutMs, ...(credentials === undefined ? {} : { signer: { credentials, audience: nodeId } }) });
