import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../src/transport/framing.js';
import { helloFor, newNonce } from '../src/transport/peer-handshake.js';
import { PeerTransport, type PeerTransportOptions } from '../src/transport/peer-transport.js';
import { InvariantViolation } from '../src/util/assert.js';
import { isLmqError } from '../src/util/errors.js';
import { capturingLogger, Cleanup, freePorts, LOOPBACK, macFrame, rawHandshake, rawPeer, rawSocket, waitUntil, type LogRecord } from './transport-helpers.js';

interface Received {
  from: string;
  message: { from: string; to: string; seq?: number; data?: Uint8Array; tag?: string };
}

interface TestNode {
  id: string;
  port: number;
  transport: PeerTransport;
  received: Received[];
  /** Peers whose connection to this node closed (onPeerDisconnected), in order. */
  disconnected: string[];
  logs: LogRecord[];
}

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** The cluster secret of every test node unless a test says otherwise. */
const SECRET = randomBytes(32);
const FAST: Partial<PeerTransportOptions> = { reconnectBackoffMinMs: 10, reconnectBackoffMaxMs: 100, handshakeTimeoutMs: 2_000 };

async function startNode(
  id: string,
  port: number,
  peers: Array<{ id: string; port: number }>,
  overrides: Partial<PeerTransportOptions> = {},
): Promise<TestNode> {
  const { logger, records } = capturingLogger();
  const received: Received[] = [];
  const disconnected: string[] = [];
  const transport = new PeerTransport(
    {
      clusterId: 'test-cluster',
      selfId: id,
      listenHost: LOOPBACK,
      listenPort: port,
      peers: peers.map((peer) => ({ id: peer.id, host: LOOPBACK, port: peer.port })),
      clusterSecret: SECRET,
      logger,
      ...FAST,
      ...overrides,
    },
    (from, message) => received.push({ from, message: message as Received['message'] }),
    (peer) => disconnected.push(peer),
  );
  cleanup.add(() => transport.close());
  await transport.start();
  return { id, port, transport, received, disconnected, logs: records };
}

/** Starts a full mesh of nodes with the given ids on fresh ports and waits until every link is up. */
async function startCluster(ids: string[], overrides: Partial<PeerTransportOptions> = {}): Promise<TestNode[]> {
  const ports = await freePorts(ids.length);
  const all = ids.map((id, index) => ({ id, port: ports[index] as number }));
  const nodes = await Promise.all(all.map((self) => startNode(self.id, self.port, all.filter((peer) => peer.id !== self.id), overrides)));
  await waitUntil(() => nodes.every((node) => Object.values(node.transport.stats()).every((link) => link.connected)), 'all links connected');
  return nodes;
}

function node(nodes: TestNode[], index: number): TestNode {
  const found = nodes[index];
  if (found === undefined) throw new Error(`no node ${index}`);
  return found;
}

describe('peer transport – delivery', () => {
  it('delivers messages between 3 nodes both ways, in send order per peer', async () => {
    const nodes = await startCluster(['n1', 'n2', 'n3']);
    const perPair = 200;
    for (const sender of nodes) {
      for (const receiver of nodes) {
        if (sender === receiver) continue;
        for (let seq = 0; seq < perPair; seq++) sender.transport.send(receiver.id, { from: sender.id, to: receiver.id, seq });
      }
    }
    await waitUntil(() => nodes.every((n) => n.received.length === perPair * 2), 'every message delivered');
    for (const receiver of nodes) {
      for (const sender of nodes) {
        if (sender === receiver) continue;
        const fromSender = receiver.received.filter((r) => r.from === sender.id);
        expect(fromSender.map((r) => r.message.seq)).toEqual(Array.from({ length: perPair }, (_, seq) => seq));
        expect(fromSender.every((r) => r.message.to === receiver.id)).toBe(true);
      }
      expect(Object.values(receiver.transport.stats()).every((link) => link.droppedMessages === 0)).toBe(true);
    }
    expect(node(nodes, 0).transport.stats()['n2']?.sentMessages).toBe(perPair);
  });

  it('round-trips binary payloads as Uint8Array with the same bytes', async () => {
    const [a, b] = await startCluster(['a', 'b']);
    if (a === undefined || b === undefined) throw new Error('cluster of 2');
    const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256);
    a.transport.send('b', { from: 'a', to: 'b', data: bytes, nested: { entries: [Buffer.from('x'), new Uint8Array(0)] } });
    await waitUntil(() => b.received.length === 1, 'binary message delivered');
    const message = b.received[0]?.message as unknown as { data: Uint8Array; nested: { entries: Uint8Array[] } };
    expect(message.data).toBeInstanceOf(Uint8Array);
    expect(Buffer.compare(Buffer.from(message.data), Buffer.from(bytes))).toBe(0);
    expect(message.nested.entries.map((entry) => entry.length)).toEqual([1, 0]);
  });

  it('reconnects to a peer that went down and came back, and messages flow again', async () => {
    const [n1, n2] = await startCluster(['n1', 'n2']);
    if (n1 === undefined || n2 === undefined) throw new Error('cluster of 2');
    n1.transport.send('n2', { from: 'n1', to: 'n2', tag: 'before' });
    await waitUntil(() => n2.received.length === 1, 'first message delivered');
    await n2.transport.close();
    await waitUntil(() => n1.transport.stats()['n2']?.connected === false, 'n1 notices n2 is gone');
    const revived = await startNode('n2', n2.port, [{ id: 'n1', port: n1.port }]);
    await waitUntil(() => n1.transport.stats()['n2']?.connected === true, 'n1 reconnected to the revived n2');
    n1.transport.send('n2', { from: 'n1', to: 'n2', tag: 'after' });
    revived.transport.send('n1', { from: 'n2', to: 'n1', tag: 'back' });
    await waitUntil(() => revived.received.some((r) => r.message.tag === 'after'), 'message delivered after reconnect');
    await waitUntil(() => n1.received.some((r) => r.message.tag === 'back'), 'revived node can send too');
    expect(n1.logs.some((record) => record.msg.startsWith('lost connection to peer'))).toBe(true);
  });

  it('redials a peer at once when it connects to us, instead of waiting out the backoff', async () => {
    const [n1Port, n2Port] = (await freePorts(2)) as [number, number];
    // The first dial fails (n2 is down) and the next would wait 30–60 s.
    const patient = { reconnectBackoffMinMs: 60_000, reconnectBackoffMaxMs: 60_000 };
    const n1 = await startNode('n1', n1Port, [{ id: 'n2', port: n2Port }], patient);
    await waitUntil(() => n1.logs.some((r) => r.msg === 'peer link error'), 'the first dial to n2 failed');
    await startNode('n2', n2Port, [{ id: 'n1', port: n1Port }]);
    await waitUntil(() => n1.transport.stats()['n2']?.connected === true, 'n1 redials n2 once n2 authenticated to it');
  });

  it('keeps the send queue to a dead peer bounded, dropping and counting the excess', async () => {
    const [deadPort] = await freePorts(1);
    const maxQueuedBytesPerPeer = 64 * 1024;
    const self = await startNode('n1', 0, [{ id: 'n2', port: deadPort as number }], { maxQueuedBytesPerPeer, maxFrameBytes: 16 * 1024 });
    const payload = new Uint8Array(1024);
    const sendCount = 1_000;
    for (let seq = 0; seq < sendCount; seq++) expect(() => self.transport.send('n2', { from: 'n1', to: 'n2', seq, data: payload })).not.toThrow();
    const stats = self.transport.stats()['n2'];
    expect(stats?.connected).toBe(false);
    expect(stats?.queuedBytes).toBeLessThanOrEqual(maxQueuedBytesPerPeer);
    expect(stats?.queuedBytes).toBeGreaterThan(maxQueuedBytesPerPeer / 2);
    expect(stats?.droppedMessages).toBeGreaterThan(sendCount - maxQueuedBytesPerPeer / 1024);
    expect(stats?.sentMessages).toBe(0);
  });

  it('refuses an oversized message at send() and an unknown destination by assertion', async () => {
    const self = await startNode('n1', 0, [{ id: 'n2', port: 1 }], { maxFrameBytes: 1024, maxQueuedBytesPerPeer: 4096 });
    const error = (() => { try { self.transport.send('n2', { data: new Uint8Array(2048) }); } catch (caught) { return caught; } })();
    expect(isLmqError(error, 'LMQ_BAD_INPUT')).toBe(true);
    expect(() => self.transport.send('n7', {})).toThrow(InvariantViolation);
  });
});

describe('peer transport – close', () => {
  it('leaves no timers behind, even with a reconnect and a handshake pending', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const timersBefore = timers();
    const [deadPort] = await freePorts(1);
    const self = await startNode('n1', 0, [{ id: 'n2', port: deadPort as number }], { handshakeTimeoutMs: 60_000 });
    const silent = await rawSocket(self.transport.boundPort);
    await waitUntil(() => self.transport.inboundStats().pendingConnections === 1, 'silent connection pending');
    await waitUntil(() => timers() >= timersBefore + 2, 'handshake and reconnect timers armed');
    self.transport.send('n2', { from: 'n1', to: 'n2' });
    await self.transport.close();
    await silent.closed;
    expect(timers()).toBe(timersBefore);
    expect(() => self.transport.send('n2', { from: 'n1', to: 'n2' })).not.toThrow();
    expect(self.transport.stats()['n2']?.droppedMessages).toBe(1);
  });
});

describe('peer transport – refusing bad peers', () => {
  it('refuses a peer from another cluster and an unknown node id; their messages are never delivered', async () => {
    const [n1, n2] = await startCluster(['n1', 'n2']);
    if (n1 === undefined || n2 === undefined) throw new Error('cluster of 2');
    const target = [{ id: 'n1', port: n1.port }];
    const otherCluster = await startNode('n2', 0, target, { clusterId: 'other-cluster' });
    const unknownNode = await startNode('n9', 0, target);
    for (let seq = 0; seq < 20; seq++) {
      otherCluster.transport.send('n1', { from: 'n2', to: 'n1', tag: 'rogue' });
      unknownNode.transport.send('n1', { from: 'n9', to: 'n1', tag: 'rogue' });
    }
    const refusals = (): string[] => n1.logs.filter((r) => r.msg === 'refusing peer connection').map((r) => String(r['reason']));
    await waitUntil(() => refusals().some((reason) => /cluster id "other-cluster"/.test(reason)), 'n1 refuses the other cluster');
    await waitUntil(() => refusals().some((reason) => /node id "n9" is not a peer/.test(reason)), 'n1 refuses the unknown id');
    // The dialers are told nothing, yet their own log says what to check.
    const failures = (of: TestNode): string[] => of.logs.filter((r) => r.msg === 'peer handshake failed; will retry').map((r) => String(r['reason']));
    await waitUntil(() => failures(otherCluster).some((reason) => /did not prove it is node "n1" of cluster "other-cluster".*clusterId/.test(reason)), 'the other cluster logs what to check');
    await waitUntil(() => failures(unknownNode).some((reason) => reason === 'refused by peer: "peer handshake refused"'), 'the unknown node hears a generic refusal');
    n2.transport.send('n1', { from: 'n2', to: 'n1', tag: 'good' });
    await waitUntil(() => n1.received.some((r) => r.message.tag === 'good'), 'good peer still delivers');
    expect(n1.received.filter((r) => r.message.tag === 'rogue')).toEqual([]);
    expect(otherCluster.transport.stats()['n1']?.connected).toBe(false);
    expect(unknownNode.transport.stats()['n1']?.sentMessages).toBe(0);
  });

  it('survives garbage, oversized headers, truncated frames and silent connections while good peers keep talking', async () => {
    const [n1, n2] = await startCluster(['n1', 'n2', 'n3'].slice(0, 2), { handshakeTimeoutMs: 300, maxFrameBytes: 64 * 1024 });
    if (n1 === undefined || n2 === undefined) throw new Error('cluster of 2');
    const rejectedBefore = n1.transport.inboundStats().rejectedConnections;

    const garbage = await rawSocket(n1.port);
    garbage.socket.write(Buffer.from([0x00, 0x00, 0x00, 0x05, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1])); // 0xc1: never used in msgpack
    const oversized = await rawSocket(n1.port);
    oversized.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    const truncated = await rawSocket(n1.port);
    truncated.socket.end(encodeFrame({ kind: 'lmq-peer-hello' }).subarray(0, 6));
    const silent = await rawSocket(n1.port);
    await Promise.all([garbage.closed, oversized.closed, truncated.closed, silent.closed]); // silent: by handshake timeout

    // A connection that authenticates as a known peer and then sends garbage is closed too.
    const insider = await rawPeer(n1.port);
    expect(await rawHandshake(insider, { clusterId: 'test-cluster', selfId: 'n2', peerId: 'n1' }, SECRET)).toHaveProperty('frameMac');
    insider.write(Buffer.from('not a frame at all, just text'));
    await insider.closed;
    // An old (protocol 1) hello is refused at once.
    const oldHello = await rawSocket(n1.port);
    oldHello.socket.write(encodeFrame({ kind: 'lmq-peer-hello', protocolVersion: 1, clusterId: 'test-cluster', nodeId: 'n2', targetId: 'n1' }));
    await oldHello.closed;

    for (let seq = 0; seq < 50; seq++) n2.transport.send('n1', { from: 'n2', to: 'n1', seq });
    await waitUntil(() => n1.received.filter((r) => r.message.seq !== undefined).length === 50, 'good peer delivers after the abuse');
    // garbage, oversized, silent and the old hello (the truncated one just hung up)
    expect(n1.transport.inboundStats().rejectedConnections).toBeGreaterThanOrEqual(rejectedBefore + 4);
    expect(n1.logs.some((r) => /no handshake within 300 ms/.test(String(r['reason'])))).toBe(true);
    expect(n1.logs.some((r) => r.msg === 'closing inbound peer connection: bad frame')).toBe(true);
    expect(n1.transport.inboundStats().pendingConnections).toBe(0);
  });

  it('bounds unauthenticated connections and serves again once they are gone', async () => {
    const [n1, n2] = await startCluster(['n1', 'n2'], { maxPendingConnections: 3, handshakeTimeoutMs: 300 });
    if (n1 === undefined || n2 === undefined) throw new Error('cluster of 2');
    const silent = await Promise.all(Array.from({ length: 6 }, () => rawSocket(n1.port)));
    await waitUntil(() => n1.transport.inboundStats().rejectedConnections >= 3, 'connections over the bound are refused');
    expect(n1.transport.inboundStats().pendingConnections).toBeLessThanOrEqual(3);
    await Promise.all(silent.map((s) => s.closed));
    await waitUntil(() => n1.transport.inboundStats().pendingConnections === 0, 'timed-out connections are released');
    n2.transport.send('n1', { from: 'n2', to: 'n1', tag: 'still-here' });
    await waitUntil(() => n1.received.some((r) => r.message.tag === 'still-here'), 'delivery continues');
  });
});

/** Frames the listener `n1` sent to a raw peer, as JSON text (to look for anything it gave away). */
function repliesText(replies: unknown[]): string {
  return JSON.stringify(replies, (_, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : value));
}

const AS_N2 = { clusterId: 'test-cluster', selfId: 'n2', peerId: 'n1' };

/**
 * n1 alone, its peer n2 down: for raw peers that authenticate as n2 (each would otherwise
 * race the real n2's reconnects for the one inbound slot n2 has).
 */
async function loneN1(): Promise<TestNode> {
  const [deadPort] = await freePorts(1);
  const n1 = await startNode('n1', 0, [{ id: 'n2', port: deadPort as number }]);
  return { ...n1, port: n1.transport.boundPort };
}

describe('peer transport – authentication with a cluster secret', () => {
  it('refuses a node with the wrong secret; a stranger learns no cluster id or node id', async () => {
    const [n1, n2] = await startCluster(['n1', 'n2']);
    if (n1 === undefined || n2 === undefined) throw new Error('cluster of 2');
    const wrongSecret = await startNode('n2', 0, [{ id: 'n1', port: n1.port }], { clusterSecret: randomBytes(32) });
    wrongSecret.transport.send('n1', { from: 'n2', to: 'n1', tag: 'rogue' });
    await waitUntil(() => wrongSecret.logs.some((r) => /with this cluster secret/.test(String(r['reason']))), 'the wrong-secret node cannot verify n1');

    // A stranger: a hello with a wrong cluster id, and one with the right one, get the same
    // kind of challenge; a guessed proof gets a generic refusal.
    for (const clusterId of ['guess', 'test-cluster']) {
      const stranger = await rawPeer(n1.port);
      expect(await rawHandshake(stranger, { ...AS_N2, clusterId }, randomBytes(32))).toHaveProperty('reason');
      const challenge = stranger.replies[0] as Record<string, unknown>;
      expect(Object.keys(challenge).sort()).toEqual(['authMode', 'kind', 'nonce', 'proof', 'protocolVersion']);
      stranger.write(encodeFrame({ kind: 'lmq-peer-proof', proof: randomBytes(32) }));
      await stranger.closed;
      expect(stranger.replies[1]).toEqual({ kind: 'lmq-peer-refused', reason: 'peer handshake refused' });
      expect(repliesText(stranger.replies)).not.toMatch(/test-cluster|n1|n2/);
    }
    const refusals = n1.logs.filter((r) => r.msg === 'refusing peer connection').map((r) => String(r['reason']));
    expect(refusals.some((reason) => /cluster id "guess" does not match/.test(reason))).toBe(true);
    expect(refusals.some((reason) => /dialer claiming node "n2" did not prove the cluster secret/.test(reason))).toBe(true);
    n2.transport.send('n1', { from: 'n2', to: 'n1', tag: 'good' });
    await waitUntil(() => n1.received.some((r) => r.message.tag === 'good'), 'the real n2 still delivers');
    expect(n1.received.filter((r) => r.message.tag === 'rogue')).toEqual([]);
    expect(wrongSecret.transport.stats()['n1']).toMatchObject({ connected: false, sentMessages: 0 });
  });

  it('refuses a replayed handshake and never delivers the replayed frames', async () => {
    const n1 = await loneN1();
    const honest = await rawPeer(n1.port);
    const outcome = await rawHandshake(honest, AS_N2, SECRET);
    if (!('frameMac' in outcome)) throw new Error(outcome.reason);
    honest.write(macFrame({ from: 'n2', to: 'n1', tag: 'recorded' }, outcome.frameMac));
    await waitUntil(() => n1.received.some((r) => r.message.tag === 'recorded'), 'the honest connection delivers');
    honest.socket.destroy();
    await honest.closed;

    // Every byte of that connection, sent again on a new one: the listener's nonce is new.
    const replay = await rawPeer(n1.port);
    for (const bytes of honest.written) replay.write(bytes);
    await replay.closed;
    expect(replay.replies[1]).toEqual({ kind: 'lmq-peer-refused', reason: 'peer handshake refused' });
    expect(n1.received.filter((r) => r.message.tag === 'recorded')).toHaveLength(1);
    expect(n1.logs.some((r) => /did not prove the cluster secret \(wrong secret, or a replayed or forged handshake\)/.test(String(r['reason'])))).toBe(true);
  });

  it('an impersonation of n2 is refused and the real n2 link keeps delivering, never replaced', async () => {
    const [n1, n2] = await startCluster(['n1', 'n2']);
    if (n1 === undefined || n2 === undefined) throw new Error('cluster of 2');
    const impostor = await startNode('n2', 0, [{ id: 'n1', port: n1.port }], { clusterSecret: randomBytes(32) });
    for (let attempt = 0; attempt < 5; attempt++) {
      const raw = await rawPeer(n1.port);
      expect(await rawHandshake(raw, AS_N2, randomBytes(32))).toHaveProperty('reason');
      raw.write(encodeFrame({ kind: 'lmq-peer-proof', proof: randomBytes(32) }));
      raw.write(encodeFrame({ from: 'n2', to: 'n1', tag: 'forged' }));
      await raw.closed;
    }
    await waitUntil(() => impostor.logs.filter((r) => r.msg === 'peer handshake failed; will retry').length >= 3, 'the impostor node keeps failing');
    for (let seq = 0; seq < 50; seq++) n2.transport.send('n1', { from: 'n2', to: 'n1', seq });
    await waitUntil(() => n1.received.filter((r) => r.message.seq !== undefined).length === 50, 'the real n2 delivers throughout');
    expect(n1.received.filter((r) => r.message.tag === 'forged')).toEqual([]);
    expect(n1.disconnected).toEqual([]);
    expect(n1.transport.inboundStats().authenticatedConnections).toBe(1);
    expect(n1.logs.filter((r) => r.msg === 'accepted peer connection')).toHaveLength(1);
  });

  it('closes a connection on a frame with a bad MAC and delivers nothing from it', async () => {
    const n1 = await loneN1();
    const cases: Array<[string, (frame: Buffer, tag: Buffer) => Buffer]> = [
      ['flipped tag bit', (frame, tag) => Buffer.concat([frame, Buffer.from(tag.map((byte, i) => (i === 0 ? byte ^ 1 : byte)))])],
      ['altered payload', (frame, tag) => Buffer.concat([Buffer.from(frame.map((byte, i) => (i === frame.length - 1 ? byte ^ 1 : byte))), tag])],
      ['no tag at all', (frame) => Buffer.concat([frame, encodeFrame({ padding: 'x'.repeat(20) })])],
    ];
    for (const [what, tamper] of cases) {
      const peer = await rawPeer(n1.port);
      const outcome = await rawHandshake(peer, AS_N2, SECRET);
      if (!('frameMac' in outcome) || outcome.frameMac === null) throw new Error('handshake with the secret');
      const good = encodeFrame({ from: 'n2', to: 'n1', tag: `good before ${what}` });
      peer.write(Buffer.concat([good, outcome.frameMac.next(good)]));
      const bad = encodeFrame({ from: 'n2', to: 'n1', tag: `tampered: ${what}` });
      peer.write(tamper(bad, outcome.frameMac.next(bad)));
      await peer.closed;
    }
    // A frame sent twice fails too: its position on the connection is part of the MAC.
    const peer = await rawPeer(n1.port);
    const outcome = await rawHandshake(peer, AS_N2, SECRET);
    if (!('frameMac' in outcome)) throw new Error(outcome.reason);
    const once = macFrame({ from: 'n2', to: 'n1', tag: 'once' }, outcome.frameMac);
    peer.write(once);
    peer.write(once);
    await peer.closed;

    const tags = n1.received.map((r) => r.message.tag);
    expect(tags.filter((tag) => tag?.startsWith('tampered'))).toEqual([]);
    expect(tags.filter((tag) => tag?.startsWith('good before'))).toHaveLength(cases.length);
    expect(tags.filter((tag) => tag === 'once')).toHaveLength(1);
    const badFrames = n1.logs.filter((r) => r.msg === 'closing inbound peer connection: bad frame');
    expect(badFrames.filter((r) => /frame authentication failed/.test(String(r['err'])))).toHaveLength(cases.length + 1);
  });

  it('an attacker holding more than maxPendingConnections idle connections does not lock a real peer out', async () => {
    const [n1Port, n2Port] = (await freePorts(2)) as [number, number];
    const slow = { handshakeTimeoutMs: 60_000 }; // the attacker's connections never time out here
    const n1 = await startNode('n1', n1Port, [{ id: 'n2', port: n2Port }], slow);
    const held = await Promise.all(Array.from({ length: 20 }, () => rawSocket(n1Port)));
    // All 20 accepted: 16 pending, the 4 oldest evicted to admit the last 4.
    await waitUntil(() => n1.transport.inboundStats().pendingConnections === 16 && n1.transport.inboundStats().rejectedConnections >= 4, 'the attacker fills the pending bound');
    const rejectedBefore = n1.transport.inboundStats().rejectedConnections;
    const n2 = await startNode('n2', n2Port, [{ id: 'n1', port: n1Port }], slow);
    n2.transport.send('n1', { from: 'n2', to: 'n1', tag: 'through' });
    await waitUntil(() => n1.received.some((r) => r.message.tag === 'through'), 'the real peer gets through');
    expect(n1.transport.inboundStats().pendingConnections).toBeLessThanOrEqual(16);
    expect(n1.transport.inboundStats().rejectedConnections).toBeGreaterThan(rejectedBefore);
    await waitUntil(() => held.filter((h) => h.socket.destroyed).length >= 5, 'the evicted attacker sockets see their close');
  });
});

describe('peer transport – eviction at the pending bound prefers strangers', () => {
  it('a flood of connections that sent no hello does not push out one whose hello named the right ids', async () => {
    const [n1Port] = (await freePorts(1)) as [number];
    const n1 = await startNode('n1', n1Port, [{ id: 'n2', port: 1 }], { handshakeTimeoutMs: 60_000 });
    const halfDone = await rawPeer(n1Port);
    halfDone.write(encodeFrame(helloFor({ clusterId: 'test-cluster', dialerId: 'n2', listenerId: 'n1', dialerNonce: newNonce() })));
    await waitUntil(() => halfDone.replies.length >= 1, 'the listener challenges the right hello');
    const flood = await Promise.all(Array.from({ length: 30 }, () => rawSocket(n1Port)));
    await waitUntil(() => n1.transport.inboundStats().rejectedConnections >= 15, 'the flood is evicted among itself');
    // The evicted sockets see their close a moment later than the listener counts it.
    await waitUntil(() => flood.filter((f) => f.socket.destroyed).length >= 15, 'the flood sees its connections closed');
    expect(halfDone.socket.destroyed).toBe(false);
  });
});

describe('peer transport – without a cluster secret (loopback-only mode)', () => {
  it('delivers with plain frames, and a node with a secret and one without never connect', async () => {
    const [a, b] = await startCluster(['a', 'b'], { clusterSecret: null });
    if (a === undefined || b === undefined) throw new Error('cluster of 2');
    a.transport.send('b', { from: 'a', to: 'b', tag: 'plain' });
    await waitUntil(() => b.received.some((r) => r.message.tag === 'plain'), 'delivered without a secret');
    // A raw peer's frames need no tag here.
    const raw = await rawPeer(a.port);
    expect(await rawHandshake(raw, { clusterId: 'test-cluster', selfId: 'b', peerId: 'a' }, null)).toEqual({ frameMac: null });
    raw.write(encodeFrame({ from: 'b', to: 'a', tag: 'raw plain' }));
    await waitUntil(() => a.received.some((r) => r.message.tag === 'raw plain'), 'a plain frame after the handshake is delivered');

    const withSecret = await startNode('b', 0, [{ id: 'a', port: a.port }]);
    await waitUntil(() => withSecret.logs.some((r) => /cluster secret mode is "none", this node's is "secret"/.test(String(r['reason']))), 'the mismatch is named');
    expect(withSecret.transport.stats()['a']?.connected).toBe(false);
  });
});
