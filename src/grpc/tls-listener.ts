// The gRPC port under security.tls: TLS with the node's own certificate and key (as the client
// port serves), and a plaintext client refused at once with a status that says why. grpc-js
// alone would answer a plaintext HTTP/2 preface by dropping the connection, which a client
// reports as a vague UNAVAILABLE and retries; so the port is our own TCP listener that peeks at
// each connection's first bytes (as the client port does, src/transport/tls-sockets.ts): a TLS
// ClientHello goes to the MessagingService server through a TLS connection injector, anything
// else to a second, plaintext gRPC server whose every method fails with FAILED_PRECONDITION.
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { looksLikeTlsHandshake } from '../transport/socket-layer.js';

/** From accept to its first bytes; a connection that sends nothing is dropped after this. */
const FIRST_BYTES_TIMEOUT_MS = 5_000;

export interface TlsListener {
  readonly port: number;
  /** Stops accepting and ends the connections of both servers after graceMs. */
  close(graceMs: number): void;
}

export function plaintextRefusal(port: number): string {
  return `this RocketMQ gRPC port (${port}) serves TLS (the cluster has security.tls): set sslEnabled: true in the client and trust the cluster's CA (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=<ca.pem>, README "Use it from RocketMQ clients")`;
}

/** Every method of `definition` answering `status` with `message`. */
function refusingHandlers(definition: grpc.ServiceDefinition, message: () => string): grpc.UntypedServiceImplementation {
  const error = () => Object.assign(new Error(message()), { code: grpc.status.FAILED_PRECONDITION, details: message() });
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    if (!method.requestStream && !method.responseStream) handlers[name] = (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(error());
    else handlers[name] = (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', error());
  }
  return handlers;
}

/** Listens on host:port, serving `server` over TLS with cert and key (PEM). */
export async function listenTls(server: grpc.Server, definition: grpc.ServiceDefinition, host: string, port: number, cert: Buffer, key: Buffer): Promise<TlsListener> {
  const secure = server.createConnectionInjector(grpc.ServerCredentials.createSsl(null, [{ private_key: key, cert_chain: cert }], false));
  const refusal = new grpc.Server();
  let boundPort = port;
  refusal.addService(definition, refusingHandlers(definition, () => plaintextRefusal(boundPort)));
  const plaintext = refusal.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const sockets = new Set<net.Socket>();
  const listener = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // a reset before the first bytes: 'close' cleans up
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(), FIRST_BYTES_TIMEOUT_MS);
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      socket.unshift(chunk); // read again by the server that takes the socket
      (looksLikeTlsHandshake(chunk) ? secure : plaintext).injectConnection(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, host, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  boundPort = (listener.address() as net.AddressInfo).port;
  return {
    port: boundPort,
    close(graceMs) {
      listener.close();
      secure.drain(graceMs);
      plaintext.destroy();
      refusal.forceShutdown();
      const timer = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      timer.unref();
    },
  };
}
