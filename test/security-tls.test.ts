// TLS on the client port and the peer port, in process, with real TLS on 127.0.0.1 and
// certificates made by `certs init`'s code: requests over TLS, a plaintext client on a TLS port
// and a TLS client on a plaintext port each fail at once with one clear LMQ_BAD_CONFIG, an
// untrusted server certificate too, handshakes that never finish are dropped (and bounded in
// number) while a real client is served, and on the peer port only a node whose certificate the
// cluster's CA signed gets a link — with or without a cluster secret.
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initCerts } from '../src/security/cert-authority.js';
import { type NodeTlsFiles, readNodeTls } from '../src/security/tls.js';
import { PeerTransport } from '../src/transport/peer-transport.js';
import { PLAIN_SOCKETS } from '../src/transport/socket-layer.js';
import { TlsSockets } from '../src/transport/tls-sockets.js';
import { isLmqError } from '../src/util/errors.js';
import { capturingLogger, Cleanup, connectRpc, freePorts, LOOPBACK, rawSocket, startRpcServer, waitUntil, type LogRecord } from './transport-helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

let dir: string;
/** Node certificates of the cluster's CA, and of a CA nobody in the cluster trusts. */
let ours: Record<string, NodeTlsFiles>;
let strangers: Record<string, NodeTlsFiles>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lmq-tls-test-'));
  const nodes = ['n1', 'n2', 'n3'].map((id) => ({ id, host: LOOPBACK }));
  const make = (name: string): Record<string, NodeTlsFiles> => {
    initCerts({ dir: join(dir, name), clusterId: name, nodes, days: 1, force: false });
    const paths = { cert: join(dir, name, '{id}.pem'), key: join(dir, name, '{id}.key'), ca: join(dir, name, 'ca.pem') };
    return Object.fromEntries(nodes.map(({ id }) => [id, readNodeTls(paths, id)]));
  };
  ours = make('ours');
  strangers = make('strangers');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const echo = async (body: unknown): Promise<unknown> => ({ echo: body });

function serverSockets(files: NodeTlsFiles, options: { handshakeTimeoutMs?: number; maxPendingHandshakes?: number } = {}): TlsSockets {
  return new TlsSockets({ cert: files.cert, key: files.key, requireClientCert: false, ...options });
}

function clientSockets(ca: Buffer | undefined): TlsSockets {
  return new TlsSockets({ ...(ca === undefined ? {} : { ca }), requireClientCert: false });
}

async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isLmqError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('tls – client port', () => {
  it('serves requests over TLS to a client that trusts the CA', async () => {
    const files = ours.n1!;
    const { port } = await startRpcServer(cleanup, echo, { sockets: serverSockets(files) });
    const connection = await connectRpc(cleanup, port, { sockets: clientSockets(files.ca) });
    expect(await connection.request({ op: 'hi' }, 5_000)).toEqual({ echo: { op: 'hi' } });
  });

  it('answers a plaintext client with one LMQ_BAD_CONFIG saying the port serves TLS', async () => {
    const { port, logs } = await startRpcServer(cleanup, echo, { sockets: serverSockets(ours.n1!) });
    const connection = await connectRpc(cleanup, port, { sockets: PLAIN_SOCKETS });
    const { code, message } = await refusal(connection.request({ op: 'hi' }, 5_000));
    expect(code).toBe('LMQ_BAD_CONFIG');
    expect(message).toBe(`the client port ${LOOPBACK}:${port} serves TLS (security.tls): connect with --tls-ca FILE (or LMQ_TLS_CA) naming the cluster's CA certificate, or --tls if its certificate chains to a system root`);
    await waitUntil(() => connection.closed, 'the refused connection closes');
    expect(logs.filter((r) => r.msg.startsWith('request handler'))).toEqual([]);
  });

  it('makes a TLS client of a plaintext port fail at once with LMQ_BAD_CONFIG, not a reset it would retry', async () => {
    const { port, logs } = await startRpcServer(cleanup, echo);
    const { code, message } = await refusal(connectRpc(cleanup, port, { sockets: clientSockets(ours.n1!.ca) }));
    expect(code).toBe('LMQ_BAD_CONFIG');
    expect(message).toMatch(new RegExp(`^${LOOPBACK}:${port} does not serve TLS \\(it answered the TLS handshake in plaintext\\): its node has no security.tls`));
    await waitUntil(() => logs.some((r) => r.msg.includes('a TLS handshake on the plaintext client port')), 'the node logs the mismatch');
  });

  it('refuses a server certificate from a CA the client does not trust, with LMQ_BAD_CONFIG naming --tls-ca', async () => {
    const { port } = await startRpcServer(cleanup, echo, { sockets: serverSockets(strangers.n1!) });
    const { code, message } = await refusal(connectRpc(cleanup, port, { sockets: clientSockets(ours.n1!.ca) }));
    expect(code).toBe('LMQ_BAD_CONFIG');
    expect(message).toMatch(/^the TLS certificate of 127\.0\.0\.1:\d+ is not trusted \([A-Z_]+: .*\); pass the cluster's CA certificate with --tls-ca FILE \(or LMQ_TLS_CA\)$/);
    // With the system roots only (no CA given) a private CA is not trusted either.
    expect((await refusal(connectRpc(cleanup, port, { sockets: clientSockets(undefined) }))).code).toBe('LMQ_BAD_CONFIG');
  });

  it('drops handshakes that never finish — silent, or a ClientHello cut short — while a real client is served', async () => {
    const files = ours.n1!;
    const { server, port, logs } = await startRpcServer(cleanup, echo, { sockets: serverSockets(files, { handshakeTimeoutMs: 300 }) });
    const silent = await rawSocket(port);
    const partial = await rawSocket(port);
    partial.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])); // a ClientHello record header and one byte of 512
    cleanup.add(() => silent.socket.destroy());
    cleanup.add(() => partial.socket.destroy());
    const connection = await connectRpc(cleanup, port, { sockets: clientSockets(files.ca) });
    await silent.closed;
    await partial.closed;
    expect(logs.some((r) => r.msg === 'closing client connection: TLS handshake not completed' && String(r.reason) === 'no TLS handshake within 300 ms')).toBe(true);
    expect(await connection.request('still served', 5_000)).toEqual({ echo: 'still served' });
    expect(server.connectionCount).toBe(1); // only the served client: no stranger got past its handshake
  });

  it('bounds the handshakes waiting at once: the oldest give way to new connections', async () => {
    const files = ours.n1!;
    // A timeout far beyond the test: every close below is an eviction.
    const { port } = await startRpcServer(cleanup, echo, { sockets: serverSockets(files, { handshakeTimeoutMs: 600_000, maxPendingHandshakes: 4 }) });
    const flood: Array<{ socket: net.Socket; closed: Promise<void>; isClosed: boolean }> = [];
    for (let i = 0; i < 10; i += 1) {
      const stranger = await rawSocket(port);
      cleanup.add(() => stranger.socket.destroy());
      flood.push({ ...stranger, isClosed: false });
      void stranger.closed.then(() => (flood[i]!.isClosed = true));
    }
    await waitUntil(() => flood.filter((s) => s.isClosed).length === 6, 'six strangers are evicted');
    expect(flood.map((s) => s.isClosed)).toEqual([true, true, true, true, true, true, false, false, false, false]);
    const connection = await connectRpc(cleanup, port, { sockets: clientSockets(files.ca) });
    expect(await connection.request('served', 5_000)).toEqual({ echo: 'served' });
    await waitUntil(() => flood[6]!.isClosed, 'the oldest waiting stranger gave way to the client');
    expect(flood.slice(7).map((s) => s.isClosed)).toEqual([false, false, false]);
  });
});

interface TlsPeer {
  transport: PeerTransport;
  received: Array<{ from: string; message: unknown }>;
  logs: LogRecord[];
}

async function startPeer(id: string, ports: Record<string, number>, files: NodeTlsFiles, clusterSecret: Buffer | null): Promise<TlsPeer> {
  const { logger, records } = capturingLogger();
  const received: TlsPeer['received'] = [];
  const transport = new PeerTransport(
    {
      clusterId: 'tls-test',
      selfId: id,
      listenHost: LOOPBACK,
      listenPort: ports[id]!,
      peers: Object.entries(ports).filter(([peer]) => peer !== id).map(([peer, port]) => ({ id: peer, host: LOOPBACK, port })),
      clusterSecret,
      sockets: new TlsSockets({ ...files, requireClientCert: true }),
      reconnectBackoffMinMs: 10,
      reconnectBackoffMaxMs: 100,
      logger,
    },
    (from, message) => received.push({ from, message }),
  );
  cleanup.add(() => transport.close());
  await transport.start();
  return { transport, received, logs: records };
}

describe('tls – peer port (mutual)', () => {
  for (const secret of [null, Buffer.alloc(32, 7)]) {
    it(`links nodes whose certificates the CA signed and refuses one from another CA (${secret === null ? 'no cluster secret' : 'with a cluster secret'})`, async () => {
      const [p1, p2, p3] = await freePorts(3);
      const ports = { n1: p1!, n2: p2!, n3: p3! };
      const n1 = await startPeer('n1', ports, ours.n1!, secret);
      const n2 = await startPeer('n2', ports, ours.n2!, secret);
      // n3 presents a certificate of another CA (it trusts ours, so its own check passes): same ids, same secret.
      const n3 = await startPeer('n3', ports, { ...strangers.n3!, ca: ours.n3!.ca }, secret);
      await waitUntil(() => n1.transport.stats().n2!.connected && n2.transport.stats().n1!.connected, 'n1 and n2 link over TLS');
      n1.transport.send('n2', { hello: 'over tls' });
      n3.transport.send('n1', { forged: true });
      n3.transport.send('n2', { forged: true });
      await waitUntil(() => n2.received.length === 1, 'n2 receives n1\'s message');
      expect(n2.received).toEqual([{ from: 'n1', message: { hello: 'over tls' } }]);
      await waitUntil(() => n1.logs.some((r) => r.msg === 'refusing peer connection' && String(r.reason).startsWith('TLS handshake failed: client certificate refused')), 'n1 refuses n3\'s certificate');
      await waitUntil(() => n2.logs.some((r) => r.msg === 'refusing peer connection' && String(r.reason).startsWith('TLS handshake failed: client certificate refused')), 'n2 refuses n3\'s certificate');
      expect(n3.transport.stats().n1!.connected).toBe(false);
      expect(n3.transport.stats().n2!.connected).toBe(false);
      expect(n1.transport.inboundStats().authenticatedConnections).toBe(1); // n2 only
      expect(n1.received).toEqual([]);
      expect(n2.received).toHaveLength(1);
    });
  }

  it('refuses a plaintext dialer on the TLS peer port and says why', async () => {
    const [p1] = await freePorts(1);
    const n1 = await startPeer('n1', { n1: p1!, n2: 1 }, ours.n1!, null);
    const { socket, closed } = await rawSocket(p1!);
    socket.write(Buffer.from([0, 0, 0, 1, 0xc0]));
    await closed;
    await waitUntil(() => n1.logs.some((r) => String(r.reason).startsWith('plaintext on the TLS peer port')), 'n1 logs the plaintext dialer');
    expect(n1.transport.inboundStats().rejectedConnections).toBeGreaterThanOrEqual(1);
  });
});
