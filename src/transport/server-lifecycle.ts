// Listening and closing a net.Server as promises, with errors a user can act on. Shared by
// the peer (Raft) port and the client port so both report a busy port the same way.

import net from 'node:net';
import { assert } from '../util/assert.js';
import { LmqError, NOT_SENT } from '../util/errors.js';

/** Listens on host:port (port 0 = any free port) and resolves with the bound port. */
export function listenOn(server: net.Server, host: string, port: number, purpose: string): Promise<number> {
  assert(Number.isInteger(port), () => `${purpose} port must be an integer, got ${port}`);
  assert(port >= 0 && port <= 65_535, () => `${purpose} port must be 0..65535, got ${port}`);
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(
        new LmqError(
          'LMQ_UNAVAILABLE',
          `cannot listen on ${host}:${port} for ${purpose}: ${error.code ?? error.message}; free the port or change it in the config`,
          { host, port, ...NOT_SENT },
          { cause: error },
        ),
      );
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      const address = server.address();
      assert(address !== null && typeof address === 'object', 'a TCP server has an object address');
      assert(port === 0 || address.port === port, 'bound the requested port');
      resolve(address.port);
    });
  });
}

/** Stops accepting and resolves once every connection the server accepted has closed. */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    // ERR_SERVER_NOT_RUNNING is the only error close() reports, and listening was checked.
    server.close(() => resolve());
  });
}
