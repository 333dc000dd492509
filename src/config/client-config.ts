// The config as a client command reads it (status, produce, consume, ...): the cluster id, each
// node's id, host and client port, the TLS CA and the orderly consumer's retry bound. Checking
// it must not cost a client command the load of zod and the full schema (config.ts), which is
// about a fifth of Node's own start: a quick check of just these keys, against the bounds both
// checks share (bounds.ts), accepts a config. A config the quick check refuses is handed to the
// full schema (loaded then), so a bad one gets exactly the one line a node's start would give;
// keys only a node reads are checked when a node starts — but every config key must be one
// the schema knows (CONFIG_KEYS) and the contract's flush.mode and quorum must be valid, so a
// misspelt key or a wrong mode is refused by every command (CONTRACT.md). test/client-config
// .test.ts holds the two checks to the same verdict and CONFIG_KEYS equal to the schema's keys.
import { dirname, resolve } from 'node:path';
import { LIMITS } from '../protocol/limits.js';
import { readJsonFile } from '../util/json-file.js';
import { MAX_CLUSTER_ID_LENGTH, MAX_HOST_LENGTH, MAX_NODES, MAX_PATH_LENGTH, MAX_PORT, MIN_PORT, NODE_ID_PATTERN } from './bounds.js';

export interface ClientConfig {
  readonly clusterId: string;
  readonly nodes: readonly { readonly id: string; readonly host: string; readonly clientPort: number }[];
  /** `ca` resolved against the config file's folder. */
  readonly security?: { readonly tls?: { readonly ca: string } };
  readonly consumer: { readonly maxOrderlyReconsumeTimes?: number };
}

/** The file's JSON, or LMQ_BAD_CONFIG saying why it cannot be read or parsed. */
export function readConfigJson(path: string): unknown {
  return readJsonFile(path, 'config', 'pass --config FILE');
}

/**
 * Reads a config for a client command. Throws LmqError(LMQ_BAD_CONFIG) with the full schema's
 * one line when a key read here is bad (or the file is unreadable).
 */
export async function loadClientConfig(path: string): Promise<ClientConfig> {
  const raw = readConfigJson(path);
  const base = dirname(resolve(path));
  if (isClientUsable(raw)) return clientView(raw, base);
  // The full check names the first bad key as a node's start would (and accepts a config the
  // quick check is too strict for, so a client never refuses what a node takes).
  return clientView((await import('./config.js')).loadConfig(path), null);
}

/** Only the keys a client reads, security.tls.ca resolved against `base` (null: already resolved). */
function clientView(config: ClientShape, base: string | null): ClientConfig {
  const ca = config.security?.tls?.ca;
  const { maxOrderlyReconsumeTimes } = config.consumer ?? {};
  return Object.freeze({
    clusterId: config.clusterId,
    nodes: Object.freeze(config.nodes.map(({ id, host, clientPort }) => Object.freeze({ id, host, clientPort }))),
    ...(ca === undefined ? {} : { security: Object.freeze({ tls: Object.freeze({ ca: base === null ? ca : resolve(base, ca) }) }) }),
    consumer: Object.freeze(maxOrderlyReconsumeTimes === undefined ? {} : { maxOrderlyReconsumeTimes }),
  });
}

type ClientShape = Omit<ClientConfig, 'consumer'> & { readonly consumer?: ClientConfig['consumer'] };

/**
 * The keys a client reads are as the full schema (config.ts) would take them: each bound the
 * same, from bounds.ts or LIMITS, and node ids distinct.
 */
function isClientUsable(raw: unknown): raw is ClientShape {
  if (!isRecord(raw) || !isText(raw.clusterId, MAX_CLUSTER_ID_LENGTH)) return false;
  if (!hasOnlyKnownKeys(raw, CONFIG_KEYS)) return false;
  if (!isRecord(raw.flush) || !(FLUSH_MODE_NAMES as readonly unknown[]).includes(raw.flush.mode)) return false;
  if (!(QUORUM_MODE_NAMES as readonly unknown[]).includes(raw.quorum)) return false;
  const { nodes, security, consumer } = raw;
  if (!Array.isArray(nodes) || nodes.length < 1 || nodes.length > MAX_NODES) return false;
  const ids = new Set<unknown>();
  for (const node of nodes as unknown[]) {
    if (!isRecord(node) || typeof node.id !== 'string' || !NODE_ID_PATTERN.test(node.id) || ids.has(node.id)) return false;
    if (!isText(node.host, MAX_HOST_LENGTH) || !isInt(node.clientPort, MIN_PORT, MAX_PORT)) return false;
    ids.add(node.id);
  }
  if (security !== undefined) {
    if (!isRecord(security)) return false;
    if (security.tls !== undefined && !(isRecord(security.tls) && isText(security.tls.ca, MAX_PATH_LENGTH))) return false;
  }
  if (consumer !== undefined) {
    if (!isRecord(consumer)) return false;
    const { maxOrderlyReconsumeTimes } = consumer;
    if (maxOrderlyReconsumeTimes !== undefined && !isInt(maxOrderlyReconsumeTimes, 0, LIMITS.maxReconsumeTimes)) return false;
  }
  return true;
}

/** A tree of the config's keys: null for a leaf, the keys of an object, or of each item of an array of objects. */
export type KeyTree = { readonly [key: string]: KeyTree | null };

/** The flush modes and quorum modes of the schema (config.ts; the test holds them equal). */
export const FLUSH_MODE_NAMES = ['sync', 'async'] as const;
export const QUORUM_MODE_NAMES = ['majority', 'all', 'leader'] as const;

/** Every key the schema (config.ts) knows; the test holds this equal to the schema's own. */
export const CONFIG_KEYS: KeyTree = {
  clusterId: null,
  nodes: { id: null, host: null, raftPort: null, clientPort: null, httpPort: null, dataDir: null, grpcPort: null },
  flush: { mode: null, intervalMs: null },
  quorum: null,
  raft: { tickMs: null, electionTimeoutTicks: null, heartbeatIntervalTicks: null, maxInflightMsgs: null, maxInflightBytes: null, maxCatchUpBytesPerSec: null, maxAppendBytes: null, maxUncommittedEntries: null, maxUncommittedBytes: null, preferredLeader: null },
  log: { segmentBytes: null },
  snapshot: { everyEntries: null },
  retention: { maxAgeMs: null, maxBytes: null, checkIntervalMs: null },
  delay: { levels: null, scanIntervalMs: null },
  consumer: { maxReconsumeTimes: null, maxOrderlyReconsumeTimes: null },
  transaction: { checkAfterMs: null, checkIntervalMs: null, maxChecks: null },
  topic: { maxReorderWaitMs: null },
  grpc: { fifoGroups: null },
  security: {
    clusterSecretFile: null,
    aclFile: null,
    tls: { cert: null, key: null, ca: null },
  },
  http: { allowWrites: null },
};

/** Whether every key of `value` (objects and arrays of objects, down the tree) is in `keys`. */
function hasOnlyKnownKeys(value: unknown, keys: KeyTree): boolean {
  if (Array.isArray(value)) return value.every((item) => hasOnlyKnownKeys(item, keys));
  if (!isRecord(value)) return true; // a wrong type: the value checks decide
  for (const [key, child] of Object.entries(value)) {
    if (!Object.hasOwn(keys, key)) return false;
    const subtree = keys[key];
    if (subtree !== null && subtree !== undefined && !hasOnlyKnownKeys(child, subtree)) return false;
  }
  return true;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isText(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= maxLength;
}

function isInt(value: unknown, min: number, max: number): value is number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
}
