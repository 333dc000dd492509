// Loopback benchmark of the transport layer: PeerTransport one-way throughput and ping-pong
// round trip (without a cluster secret, and with one: every frame MAC'd — one message per
// frame here, the worst case for the MAC), RpcServer/RpcConnection round trip and pipelined
// throughput, for 128 B and 4 KiB binary payloads. Numbers depend on the machine; the point is to see regressions.
// Run: npx tsc -p tsconfig.json && node dist/bench/transport-bench.js

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { ClusterSecret } from '../src/transport/peer-handshake.js';
import { PeerTransport } from '../src/transport/peer-transport.js';
import { RpcConnection } from '../src/transport/rpc-connection.js';
import { RpcServer } from '../src/transport/rpc-server.js';

const HOST = '127.0.0.1';
const PAYLOAD_SIZES_BYTES = [128, 4096];
const THROUGHPUT_MESSAGES = 200_000;
const ROUND_TRIPS = 5_000;
/** Messages the sender may be ahead of the receiver, so the bounded queue never drops. */
const SEND_WINDOW_MESSAGES = 2_000;
const RPC_PIPELINE_DEPTH = 64;

interface BenchMessage {
  kind: 'data' | 'ping' | 'pong';
  seq: number;
  sentAtNs?: bigint;
  payload: Uint8Array;
}

function percentile(sortedMs: number[], fraction: number): number {
  const index = Math.min(sortedMs.length - 1, Math.floor(sortedMs.length * fraction));
  return sortedMs[index] ?? Number.NaN;
}

function latencySummary(samplesMs: number[]): string {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return `p50 ${percentile(sorted, 0.5).toFixed(3)} ms, p99 ${percentile(sorted, 0.99).toFixed(3)} ms`;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: HOST, port: 0 }, resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function startPeerPair(clusterSecret: ClusterSecret, onA: (m: BenchMessage) => void, onB: (m: BenchMessage, b: PeerTransport) => void): Promise<[PeerTransport, PeerTransport]> {
  const [portA, portB] = [await freePort(), await freePort()];
  const common = { clusterId: 'bench', listenHost: HOST, maxQueuedBytesPerPeer: 64 * 1024 * 1024, clusterSecret };
  const a = new PeerTransport({ ...common, selfId: 'a', listenPort: portA, peers: [{ id: 'b', host: HOST, port: portB }] }, (_, m) => onA(m as BenchMessage));
  const b: PeerTransport = new PeerTransport({ ...common, selfId: 'b', listenPort: portB, peers: [{ id: 'a', host: HOST, port: portA }] }, (_, m) => onB(m as BenchMessage, b));
  await Promise.all([a.start(), b.start()]);
  while (!(a.stats()['b']?.connected && b.stats()['a']?.connected)) await new Promise((resolve) => setTimeout(resolve, 10));
  return [a, b];
}

async function benchPeer(payloadBytes: number, clusterSecret: ClusterSecret): Promise<void> {
  const payload = new Uint8Array(payloadBytes).fill(7);
  const label = `peer ${payloadBytes} B${clusterSecret === null ? '' : ' secret'}`;
  let received = 0;
  let pongResolve: (() => void) | null = null;
  const [a, b] = await startPeerPair(
    clusterSecret,
    (m) => {
      if (m.kind === 'pong') pongResolve?.();
    },
    (m, self) => {
      if (m.kind === 'data') received += 1;
      else if (m.kind === 'ping') self.send('a', { kind: 'pong', seq: m.seq, payload: m.payload });
    },
  );
  const started = process.hrtime.bigint();
  for (let seq = 0; seq < THROUGHPUT_MESSAGES; seq++) {
    while (seq - received >= SEND_WINDOW_MESSAGES) await tick();
    a.send('b', { kind: 'data', seq, payload });
  }
  while (received < THROUGHPUT_MESSAGES) await tick();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const dropped = a.stats()['b']?.droppedMessages ?? 0;
  const rate = Math.round(THROUGHPUT_MESSAGES / seconds);
  console.log(`${label}: ${rate} msg/s one way (${((rate * payloadBytes) / 1e6).toFixed(1)} MB/s payload), dropped ${dropped}`);
  const samplesMs: number[] = [];
  for (let seq = 0; seq < ROUND_TRIPS; seq++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      pongResolve = resolve;
      a.send('b', { kind: 'ping', seq, payload });
    });
    samplesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  console.log(`${label}: ping-pong round trip ${latencySummary(samplesMs)}`);
  await Promise.all([a.close(), b.close()]);
}

async function benchRpc(payloadBytes: number): Promise<void> {
  const payload = new Uint8Array(payloadBytes).fill(9);
  const server = new RpcServer({ host: HOST, port: 0 }, async (body) => body);
  const port = await server.start();
  const connection = await RpcConnection.connect(HOST, port);
  const samplesMs: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const t0 = process.hrtime.bigint();
    await connection.request(payload, 5_000);
    samplesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  console.log(`rpc ${payloadBytes} B: sequential round trip ${latencySummary(samplesMs)}`);
  const total = 100_000;
  let issued = 0;
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (issued < total) {
      issued += 1;
      await connection.request(payload, 5_000);
    }
  };
  await Promise.all(Array.from({ length: RPC_PIPELINE_DEPTH }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`rpc ${payloadBytes} B: ${Math.round(total / seconds)} req/s with ${RPC_PIPELINE_DEPTH} in flight on one connection`);
  connection.close();
  await server.close();
}

async function main(): Promise<void> {
  console.log(`transport bench: node ${process.version}, loopback, one process`);
  for (const size of PAYLOAD_SIZES_BYTES) {
    await benchPeer(size, null);
    await benchPeer(size, randomBytes(32));
  }
  for (const size of PAYLOAD_SIZES_BYTES) await benchRpc(size);
}

await main();
