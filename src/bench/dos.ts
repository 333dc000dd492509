// The client-port denial-of-service attacks of issue 14, as a hostile client on the same
// address would run them, and what a legitimate client sees meanwhile. Shared by the test
// (test/client-port-dos.test.ts) and the benchmark (bench/dos.ts), so both run the same attack:
//   idle      — open `count` connections and send nothing (held forever before the fix);
//   slowloris — open `count` connections and send one byte of a frame header each;
//   pulls     — one connection pipelines `count` pulls of maxBytes and never reads a reply.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LedgerClient } from '../client/client.js';
import { Producer } from '../client/producer.js';
import { encodeFrame } from '../transport/framing.js';
import { assert } from '../util/assert.js';
import { isLmqError } from '../util/errors.js';
import { latencyHistogram, recordLatencyMs, rss, summarize, type LatencySummary } from './measure.js';

export interface Attack {
  readonly opened: number;
  /** Attack connections the server has closed so far. */
  closedByServer(): number;
  /** Closes every attack connection still open. */
  stop(): void;
}

/** Connections opened at once while flooding: enough to be quick, few enough for the accept queue. */
const CONNECT_BATCH = 200;

function openSocket(host: string, port: number, onClosedByServer: () => void): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let stopping = false;
    socket.on('error', () => undefined); // resets are the server defending itself
    socket.once('connect', () => resolve(socket));
    socket.once('close', () => {
      if (!stopping) onClosedByServer();
      resolve(null);
    });
    socket.on('end', () => socket.destroy());
    (socket as net.Socket & { stopAttack?: () => void }).stopAttack = () => {
      stopping = true;
      socket.destroy();
    };
  });
}

/** Opens `count` connections (in batches), each sending `firstBytes` once connected and then nothing. */
async function flood(host: string, port: number, count: number, firstBytes: Buffer | null): Promise<Attack> {
  assert(Number.isInteger(count) && count >= 1, 'at least one connection');
  let closed = 0;
  const sockets: net.Socket[] = [];
  for (let start = 0; start < count; start += CONNECT_BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(CONNECT_BATCH, count - start) }, () => openSocket(host, port, () => (closed += 1))));
    for (const socket of batch) {
      if (socket === null) continue;
      if (firstBytes !== null && !socket.destroyed) socket.write(firstBytes);
      sockets.push(socket);
    }
  }
  return {
    opened: count,
    closedByServer: () => closed,
    stop: () => {
      for (const socket of sockets) (socket as net.Socket & { stopAttack: () => void }).stopAttack();
    },
  };
}

export function idleConnections(host: string, port: number, count: number): Promise<Attack> {
  return flood(host, port, count, null);
}

/** One byte of a four-byte frame header per connection: a frame begun and never finished. */
export function partialHeaderConnections(host: string, port: number, count: number): Promise<Attack> {
  return flood(host, port, count, Buffer.from([0]));
}

export interface PullSpec {
  readonly topic: string;
  readonly queueId: number;
  readonly maxBytes: number;
}

/** One connection that pipelines `count` pulls of `pull.maxBytes` from offset 0 and never reads a reply. */
export async function unreadPulls(host: string, port: number, pull: PullSpec, count: number): Promise<Attack> {
  let closed = 0;
  const socket = await openSocket(host, port, () => (closed += 1));
  assert(socket !== null, 'the pull attacker connects');
  socket.pause(); // never reads: replies pile up on the server's side of the connection
  const frames = Array.from({ length: count }, (_, id) => encodeFrame({ id: id + 1, body: { op: 'pull', topic: pull.topic, queueId: pull.queueId, offset: 0, maxMessages: 1024, maxBytes: pull.maxBytes, waitMs: 0 } }));
  socket.write(Buffer.concat(frames));
  return { opened: 1, closedByServer: () => closed, stop: () => (socket as net.Socket & { stopAttack: () => void }).stopAttack() };
}

/** Stores `messages` bodies of `bodyBytes` in a one-queue topic, four per request (the 4 MiB produce bound), so pulls have bytes to read. */
export async function fillQueue(client: LedgerClient, topic: string, messages: number, bodyBytes: number): Promise<void> {
  const producer = new Producer(client, 30_000);
  const body = Buffer.alloc(bodyBytes, 0x61);
  for (let sent = 0; sent < messages; sent += 4) {
    const batch = Array.from({ length: Math.min(4, messages - sent) }, () => ({ body }));
    await producer.sendBatch(topic, batch);
  }
}

export interface ServedWhileAttacked {
  readonly produced: number;
  readonly failed: number;
  readonly firstError: string | null;
  readonly latency: LatencySummary;
  /** Largest RSS of the watched process while the attack ran, in MB. */
  readonly maxRssMb: number | null;
}

/**
 * A legitimate client's view: one small produce after another (every `everyMs`) for
 * `durationMs`, each timed, while the watched process's RSS is sampled every 100 ms.
 */
export async function produceWhile(client: LedgerClient, topic: string, durationMs: number, everyMs: number, watchPid: number | null): Promise<ServedWhileAttacked> {
  const producer = new Producer(client, 10_000);
  const histogram = latencyHistogram();
  let failed = 0;
  let produced = 0;
  let firstError: string | null = null;
  let maxRssBytes = 0;
  const sampler = setInterval(() => {
    const sample = watchPid === null ? null : rss(watchPid);
    if (sample !== null) maxRssBytes = Math.max(maxRssBytes, sample.totalBytes);
  }, 100);
  const startedMs = performance.now();
  try {
    while (performance.now() - startedMs < durationMs) {
      const sentMs = performance.now();
      try {
        await producer.send(topic, { body: Buffer.from(`legit-${produced + failed}`) });
        produced += 1;
        recordLatencyMs(histogram, performance.now() - sentMs);
      } catch (error) {
        failed += 1;
        firstError ??= isLmqError(error) ? `${error.code}: ${error.message}` : String(error);
      }
      await sleep(Math.max(0, everyMs - (performance.now() - sentMs)));
    }
  } finally {
    clearInterval(sampler);
  }
  return { produced, failed, firstError, latency: summarize(histogram), maxRssMb: watchPid === null ? null : Math.round(maxRssBytes / 1e6) };
}
