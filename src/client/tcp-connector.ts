// The client's connectors: the transport's RpcConnection behind the client's Connector port,
// over plain TCP or TLS, so the client's core (client.ts) never imports node:net or node:tls.
// node:tls is imported on the first TLS connection only: it is a tenth of a plain CLI
// command's start (bench/cli-start.ts).
import { RpcConnection } from '../transport/rpc-connection.js';
import { PLAIN_SOCKETS, type SocketLayer } from '../transport/socket-layer.js';
import type { Connector } from './client.js';

function connectorOver(sockets: SocketLayer): Connector {
  return (host, port, connectTimeoutMs, credentials, nodeId) =>
    RpcConnection.connect(host, port, { connectTimeoutMs, sockets, ...(credentials === undefined ? {} : { signer: { credentials, audience: nodeId } }) });
}

export const tcpConnector: Connector = connectorOver(PLAIN_SOCKETS);

/**
 * TLS to nodes whose config has security.tls: each node's certificate is verified against `ca`
 * (PEM bytes of the cluster's CA certificate, e.g. `ledgermq certs init`'s ca.pem), or against
 * the system roots when `ca` is omitted; the host name or IP dialed must be in the certificate.
 */
export function tlsConnector(options: { readonly ca?: Buffer | string } = {}): Connector {
  const ca = options.ca === undefined ? undefined : Buffer.from(options.ca);
  let connector: Promise<Connector> | null = null;
  return async (...args) => {
    connector ??= import('../transport/tls-sockets.js').then(({ TlsSockets }) => connectorOver(new TlsSockets({ ...(ca === undefined ? {} : { ca }), requireClientCert: false })));
    return (await connector)(...args);
  };
}
