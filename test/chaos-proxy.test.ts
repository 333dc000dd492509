// The chaos runner's fault-injecting peer-link proxies, on real TCP sockets.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkNetwork, LinkProxy } from '../src/chaos/link-proxy.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function echoServer(): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return (server.address() as { port: number }).port;
}

/** Connects, writes `text`, and resolves with what came back before the socket closed or 2 s passed. */
function exchange(port: number, text: string, keepOpen = false): Promise<{ reply: string; closed: boolean; socket: Socket }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    cleanups.push(() => void socket.destroy());
    let reply = '';
    const done = (closed: boolean) => resolve({ reply, closed, socket });
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (keepOpen && reply === text) done(false);
    });
    socket.on('close', () => done(true));
    socket.write(text);
    setTimeout(() => done(false), 2_000);
  });
}

describe('chaos link proxy – cut and heal on real sockets', () => {
  it('forwards both ways; a cut closes live connections and refuses new ones; heal lets them through again', async () => {
    const proxy = await LinkProxy.start();
    cleanups.push(() => proxy.close());
    expect(await exchange(proxy.port, 'no target yet')).toMatchObject({ reply: '', closed: true });
    proxy.setTarget('127.0.0.1', await echoServer());
    const live = await exchange(proxy.port, 'hello', true);
    expect(live).toMatchObject({ reply: 'hello', closed: false });
    expect(proxy.connections).toBe(1);

    const closed = new Promise<void>((resolve) => live.socket.once('close', () => resolve()));
    proxy.cut();
    await closed; // the live connection is gone
    expect(proxy.isCut).toBe(true);
    expect(proxy.connections).toBe(0);
    const refused = await exchange(proxy.port, 'during the cut');
    expect(refused).toMatchObject({ reply: '', closed: true });
    expect(proxy.refusedConnections).toBe(2);

    proxy.heal();
    expect(await exchange(proxy.port, 'again', true)).toMatchObject({ reply: 'again', closed: false });
  });

  it('a network routes each node to its own proxies and cuts one direction or both', async () => {
    const nodes = await Promise.all(['a', 'b', 'c'].map(async (id) => ({ id, host: '127.0.0.1', raftPort: await echoServer() })));
    const network = await LinkNetwork.start(nodes.map((n) => n.id));
    cleanups.push(() => network.close());
    network.setTargets(nodes);
    const ports = network.peerPorts('a');
    expect(Object.keys(ports).sort()).toEqual(['b', 'c']);
    expect(ports['b']).toBe(network.link('a', 'b').port);
    expect(network.link('a', 'b').targetPort).toBe(nodes[1]!.raftPort);
    expect(new Set([...Object.values(ports), ...Object.values(network.peerPorts('b'))]).size).toBe(4);

    network.cutBetween(['a'], ['b', 'c'], true);
    expect(network.cutLinks().sort()).toEqual(['a->b', 'a->c']);
    expect((await exchange(network.link('a', 'b').port, 'x')).reply).toBe('');
    expect((await exchange(network.link('b', 'a').port, 'y', true)).reply).toBe('y');

    network.healAll();
    network.cutBetween(['c'], ['a', 'b']);
    expect(network.cutLinks().sort()).toEqual(['a->c', 'b->c', 'c->a', 'c->b']);
    network.healAll();
    expect(network.cutLinks()).toEqual([]);
    expect((await exchange(network.link('a', 'b').port, 'z', true)).reply).toBe('z');
  });
});
