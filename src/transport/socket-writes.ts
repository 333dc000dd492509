// Coalescing small frame writes: every frame written to a socket in one synchronous run
// (e.g. a burst of pipelined requests or responses) goes out in one writev instead of one
// syscall and one TCP segment each.

import type net from 'node:net';

/** Writes one frame, corking the socket until the current synchronous run ends. Returns socket.write's result. */
export function writeCoalesced(socket: net.Socket, frame: Buffer): boolean {
  if (socket.writableCorked === 0) {
    socket.cork();
    process.nextTick(() => socket.uncork());
  }
  return socket.write(frame);
}
