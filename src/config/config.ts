// Cluster configuration (CONTRACT.md): loading, validation with named defaults, and the
// one-line error a user gets for a bad file. A node's start loads its config through here; a
// client command through client-config.ts, which hands a config it refuses to this check.
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { APPEND_ENTRY_WIRE_BYTES, APPEND_ENVELOPE_WIRE_BYTES } from '../raft/messages.js';
import { ENTRY_OVERHEAD_BYTES } from '../raft/types.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../transport/framing.js';
import { LIMITS, NAME_PATTERN, NAME_RULE } from '../protocol/limits.js';
import { LmqError } from '../util/errors.js';
import { readConfigJson } from './client-config.js';
import { MAX_CLUSTER_ID_LENGTH, MAX_HOST_LENGTH, MAX_NODES, MAX_PATH_LENGTH, MAX_PORT, MIN_PORT, NODE_ID_PATTERN, NODE_ID_RULE } from './bounds.js';

/**
 * The largest raft.maxAppendBytes whose append messages always fit one peer transport frame.
 * The core batches entries while their entryBytes (data + ENTRY_OVERHEAD_BYTES) stay within
 * maxAppendBytes, and msgpack spends up to APPEND_ENTRY_WIRE_BYTES per entry besides its
 * data, so a batch encodes to at most
 *   APPEND_ENVELOPE_WIRE_BYTES + maxAppendBytes × APPEND_ENTRY_WIRE_BYTES / ENTRY_OVERHEAD_BYTES
 * (worst case: entries with no data). A batch larger than maxAppendBytes is one entry alone,
 * bounded by MAX_COMMAND_BYTES (broker/commands.ts). Log frames hold one entry each, so they
 * bound entries, not append batches.
 */
export const MAX_APPEND_BYTES = Math.floor(
  ((DEFAULT_MAX_FRAME_BYTES - APPEND_ENVELOPE_WIRE_BYTES) * ENTRY_OVERHEAD_BYTES) / APPEND_ENTRY_WIRE_BYTES,
);
/** Upper bounds of the raft windows: past these a setting only buys memory a node cannot spare. */
const MAX_INFLIGHT_BYTES = 1024 * 1024 * 1024;
const MAX_UNCOMMITTED_ENTRIES = 1_000_000;
const MAX_UNCOMMITTED_BYTES = 2 * 1024 * 1024 * 1024;
/** A snapshot at most every 10^8 entries: past that retention would wait on one for too long. */
const MAX_SNAPSHOT_EVERY_ENTRIES = 100_000_000;
/** 365 days: an age a log is kept for that is longer is a typo, not a plan. */
const MAX_RETENTION_AGE_MS = 365 * 24 * 60 * 60 * 1000;
/** 1 PiB: far above any disk a node has, and still a safe integer. */
const MAX_RETENTION_BYTES = 2 ** 50;

const nodeId = z.string().regex(NODE_ID_PATTERN, NODE_ID_RULE);
const port = z.number().int().min(MIN_PORT).max(MAX_PORT);

const nodeSchema = z
  .object({
    id: nodeId,
    host: z.string().min(1).max(MAX_HOST_LENGTH),
    raftPort: port,
    clientPort: port,
    /** The web console and /metrics (src/http); omitted: the node serves neither. */
    httpPort: port.optional(),
    dataDir: z.string().min(1).max(MAX_PATH_LENGTH),
    /** RocketMQ 5 gRPC MessagingService (plaintext), src/grpc; absent: the node serves none. */
    grpcPort: port.optional(),
  })
  .strict();

const httpSchema = z
  .object({
    /** The console's write actions (create or grow a topic, reset offsets, resend dead letters); off: HTTP 403. */
    allowWrites: z.boolean().default(false),
  })
  .strict();

const raftSchema = z
  .object({
    /** One Raft tick of the core, in milliseconds of wall time. */
    tickMs: z.number().int().min(1).max(1000).default(50),
    /** A follower starts a (pre-)election after a random timeout in [n, 2n) ticks. */
    electionTimeoutTicks: z.number().int().min(2).max(1000).default(6),
    heartbeatIntervalTicks: z.number().int().min(1).max(1000).default(1),
    /** Append messages in flight to one follower before the leader waits for acks. */
    maxInflightMsgs: z.number().int().min(1).max(4096).default(256),
    /** Payload bytes in flight to one follower; at least maxAppendBytes (one append must fit). */
    maxInflightBytes: z.number().int().min(1024).max(MAX_INFLIGHT_BYTES).default(4 * 1024 * 1024),
    /**
     * Bytes per second of appends read from the log store (a follower being caught up) that
     * the leader sends one follower, granted per tick: the catch-up's share of the event loop,
     * so heartbeats and the other followers never wait behind it.
     */
    maxCatchUpBytesPerSec: z.number().int().min(64 * 1024).max(MAX_INFLIGHT_BYTES).default(32 * 1024 * 1024),
    /** Payload bytes in one append message to a follower. */
    maxAppendBytes: z
      .number()
      .int()
      .min(1024)
      .max(MAX_APPEND_BYTES, `more than one append message can carry in one peer transport frame of ${DEFAULT_MAX_FRAME_BYTES} bytes; set at most ${MAX_APPEND_BYTES}`)
      .default(1024 * 1024),
    /** Entries the leader accepts that are not yet committed; more proposals are refused. */
    maxUncommittedEntries: z.number().int().min(1).max(MAX_UNCOMMITTED_ENTRIES).default(100_000),
    /**
     * Payload bytes of proposals the leader holds that are not yet applied; more proposals are
     * refused (one is always accepted when none is pending). Entries hold whole producer batches.
     */
    maxUncommittedBytes: z.number().int().min(1024).max(MAX_UNCOMMITTED_BYTES).default(256 * 1024 * 1024),
    /** Node that leadership moves back to whenever it is healthy and caught up. */
    preferredLeader: nodeId.optional(),
  })
  .strict();

const logSchema = z
  .object({
    segmentBytes: z.number().int().min(64 * 1024).max(2 ** 31 - 1).default(64 * 1024 * 1024),
  })
  .strict();

const snapshotSchema = z
  .object({
    /** The state machine writes a snapshot once this many entries were applied since the last one. */
    everyEntries: z.number().int().min(1).max(MAX_SNAPSHOT_EVERY_ENTRIES).default(10_000),
  })
  .strict();

const retentionSchema = z
  .object({
    /** Whole log segments whose newest entry is older than this are deleted (72 h, as RocketMQ). */
    maxAgeMs: z.number().int().min(1000).max(MAX_RETENTION_AGE_MS).default(72 * 60 * 60 * 1000),
    /** Oldest segments are deleted while <dataDir>/log holds more; null: no limit. At least 2 segments. */
    maxBytes: z.number().int().min(1).max(MAX_RETENTION_BYTES).nullable().default(null),
    /** How often a node looks for segments to delete. */
    checkIntervalMs: z.number().int().min(100).max(60 * 60 * 1000).default(10_000),
  })
  .strict();

/** RocketMQ's messageDelayLevel: retry n waits level n + 2. */
export const DEFAULT_DELAY_LEVELS = '1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h';
const DURATION_UNIT_MS: Readonly<Record<string, number>> = Object.freeze({ ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 });

/**
 * Space-separated durations ("1s 5s 100ms 2h"), each a whole number > 0 and a unit of ms, s,
 * m, h or d, at most maxDelayMs: 1 to maxDelayLevels levels, numbered from 1. Returns the
 * levels in ms, or the problem.
 */
export function parseDelayLevels(text: string): number[] | string {
  const words = text.trim().split(/\s+/).filter((word) => word !== '');
  if (words.length < 1 || words.length > LIMITS.maxDelayLevels) return `holds ${words.length} levels; give 1 to ${LIMITS.maxDelayLevels} durations separated by spaces, e.g. "${DEFAULT_DELAY_LEVELS}"`;
  const levels: number[] = [];
  for (const word of words) {
    const match = /^(\d{1,15})(ms|s|m|h|d)$/.exec(word);
    const ms = match === null ? NaN : Number(match[1]) * DURATION_UNIT_MS[match[2]!]!;
    if (match === null || ms < 1 || ms > LIMITS.maxDelayMs) return `level "${word.slice(0, 40)}" is not a duration from 1ms to 40d: a whole number followed by ms, s, m, h or d`;
    levels.push(ms);
  }
  return levels;
}

const delaySchema = z
  .object({
    /** Delay levels for produce --delay-level and the retry back-off; parsed to milliseconds. */
    levels: z
      .string()
      .max(4096)
      .default(DEFAULT_DELAY_LEVELS)
      .transform((text, context) => {
        const levels = parseDelayLevels(text);
        if (typeof levels !== 'string') return levels;
        context.addIssue({ code: z.ZodIssueCode.custom, message: `"${text.slice(0, 80)}" ${levels}` });
        return z.NEVER;
      }),
    /** How often the leader looks for delayed messages that are due (their lateness is at most about this). */
    scanIntervalMs: z.number().int().min(10).max(1000).default(100),
  })
  .strict();

const consumerSchema = z
  .object({
    /** Retries of a concurrently consumed message before it goes to its group's DLQ (a request may override it). */
    maxReconsumeTimes: z.number().int().min(0).max(LIMITS.maxReconsumeTimes).default(16),
    /**
     * Suspended deliveries of an orderly consumer before a message goes to the DLQ; omitted:
     * retry without limit (RocketMQ's default). `consume --orderly` reads it from the config.
     */
    maxOrderlyReconsumeTimes: z.number().int().min(0).max(LIMITS.maxReconsumeTimes).optional(),
  })
  .strict();

/** Transactional messages' check-back (RocketMQ: transactionTimeOut 6 s, transactionCheckInterval 60 s, transactionCheckMax 15). */
const transactionSchema = z
  .object({
    /** A transaction not ended this long after its first half message was stored is checked back. */
    checkAfterMs: z.number().int().min(100).max(24 * 60 * 60 * 1000).default(6_000),
    /** Time between two check-backs of one transaction. */
    checkIntervalMs: z.number().int().min(100).max(24 * 60 * 60 * 1000).default(60_000),
    /** Check-backs before the leader rolls the transaction back (logged). */
    maxChecks: z.number().int().min(1).max(LIMITS.maxTransactionChecks).default(15),
  })
  .strict();

const topicSchema = z
  .object({
    /**
     * After `topic update --queues`, how long a keyed producer holds a key whose queue changed
     * for the groups to consume its old queue up to the change; past it, order may break (logged).
     */
    maxReorderWaitMs: z.number().int().min(0).max(LIMITS.maxReorderWaitMs).default(60_000),
  })
  .strict();

/** PEM files, relative to the config file; `{id}` in cert and key stands for the node's id. */
const tlsSchema = z
  .object({
    cert: z.string().min(1).max(MAX_PATH_LENGTH),
    key: z.string().min(1).max(MAX_PATH_LENGTH),
    ca: z.string().min(1).max(MAX_PATH_LENGTH),
  })
  .strict();

const securitySchema = z
  .object({
    /**
     * The shared secret peers prove to each other (src/security/cluster-secret.ts), resolved
     * against the config file's folder. Without it every node host must be loopback.
     */
    clusterSecretFile: z.string().min(1).max(MAX_PATH_LENGTH).optional(),
    /** Client users and permissions (JSON; README "Clients and ACLs"), relative to the config file. */
    aclFile: z.string().min(1).max(MAX_PATH_LENGTH).optional(),
    /** TLS on the peer port (mutual) and the client port: src/security/tls.ts reads and checks the files. */
    tls: tlsSchema.optional(),
  })
  .strict();

/** The RocketMQ 5 endpoints (src/grpc), on the nodes that have a grpcPort. */
const grpcSchema = z
  .object({
    /**
     * Consumer groups consumed in FIFO order (RocketMQ's orderly groups): a queue holds its
     * messages back while one of them is in flight for the group. Other groups consume concurrently.
     */
    fifoGroups: z.array(z.string().min(1).max(LIMITS.maxNameLength).regex(NAME_PATTERN, NAME_RULE)).max(1000).default([]),
  })
  .strict();

export const configSchema = z
  .object({
    clusterId: z.string().min(1).max(MAX_CLUSTER_ID_LENGTH),
    nodes: z.array(nodeSchema).min(1).max(MAX_NODES),
    flush: z
      .object({
        mode: z.enum(['sync', 'async']),
        intervalMs: z.number().int().min(1).max(60_000).default(100),
      })
      .strict(),
    quorum: z.enum(['majority', 'all', 'leader']),
    raft: raftSchema.default({}),
    log: logSchema.default({}),
    snapshot: snapshotSchema.default({}),
    retention: retentionSchema.default({}),
    delay: delaySchema.default({}),
    consumer: consumerSchema.default({}),
    transaction: transactionSchema.default({}),
    topic: topicSchema.default({}),
    grpc: grpcSchema.default({}),
    security: securitySchema.optional(),
    http: httpSchema.default({}),
  })
  .strict();

export type ClusterConfig = z.infer<typeof configSchema>;
export type NodeConfig = ClusterConfig['nodes'][number];
export type FlushMode = ClusterConfig['flush']['mode'];
export type QuorumMode = ClusterConfig['quorum'];
export const FLUSH_MODES: readonly FlushMode[] = configSchema.shape.flush.shape.mode.options;
export const QUORUM_MODES: readonly QuorumMode[] = configSchema.shape.quorum.options;

/**
 * Relations between keys (etcd's Config.validate): each broken one would otherwise fail later,
 * in a running node, as an assertion or a refused frame. Returns the first problem, or null.
 */
function relationProblem(config: ClusterConfig): string | null {
  const ids = new Set<string>();
  for (const [i, node] of config.nodes.entries()) {
    if (ids.has(node.id)) return `nodes.${i}.id: duplicate node id "${node.id}"; give every node its own id`;
    ids.add(node.id);
  }
  const { preferredLeader, electionTimeoutTicks, heartbeatIntervalTicks, maxInflightBytes, maxAppendBytes } = config.raft;
  if (preferredLeader !== undefined && !ids.has(preferredLeader)) {
    return `raft.preferredLeader: "${preferredLeader}" is not one of the node ids`;
  }
  if (electionTimeoutTicks <= heartbeatIntervalTicks) {
    return `raft.electionTimeoutTicks ${electionTimeoutTicks} must be greater than raft.heartbeatIntervalTicks ${heartbeatIntervalTicks} (followers would time out between heartbeats); raise raft.electionTimeoutTicks or lower raft.heartbeatIntervalTicks`;
  }
  if (maxInflightBytes < maxAppendBytes) {
    return `raft.maxInflightBytes ${maxInflightBytes} is less than raft.maxAppendBytes ${maxAppendBytes} (one append must fit the in-flight window); raise raft.maxInflightBytes or lower raft.maxAppendBytes`;
  }
  const { maxBytes } = config.retention;
  const { segmentBytes } = config.log;
  if (maxBytes !== null && maxBytes < 2 * segmentBytes) {
    return `retention.maxBytes ${maxBytes} is less than 2 × log.segmentBytes ${segmentBytes} (retention deletes whole segments and the active one always stays); raise retention.maxBytes or lower log.segmentBytes`;
  }
  return exposureProblem(config);
}

/**
 * Without a cluster secret a peer port admits anyone who can reach it (Redis's protected
 * mode): allowed only when every node listens on loopback, where only local users can.
 */
function exposureProblem(config: ClusterConfig): string | null {
  // Mutual TLS with a private CA authenticates peers too: only a holder of a certificate the
  // CA signed completes the peer port's handshake (README, Security).
  if (hasClusterSecret(config) || config.security?.tls !== undefined) return null;
  const exposed = config.nodes.findIndex((node) => !isLoopbackHost(node.host));
  if (exposed === -1) return null;
  const host = config.nodes[exposed]?.host;
  return `nodes.${exposed}.host "${host}" is not a loopback address and the config has no cluster secret, so anyone who reaches its peer port could join the cluster; set security.clusterSecretFile`;
}

export function hasClusterSecret(config: ClusterConfig): boolean {
  return config.security?.clusterSecretFile !== undefined;
}

/** 127.0.0.0/8, ::1 (and ::ffff:127.x) or "localhost", as written: no name is resolved. */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === 'localhost') return true;
  const ipv4 = isIP(lower) === 4 ? lower : lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 ? lower.slice(7) : null;
  if (ipv4 !== null) return ipv4.split('.')[0] === '127';
  return isIP(lower) === 6 && /^(?:0{0,4}:){2,7}0{0,3}1$/.test(lower);
}

/**
 * Where the nodes run, once dataDirs are resolved: two nodes (or one node's two ports) on one
 * host:port would fail to listen, and two nodes in one data directory would write each
 * other's log. Hosts are compared as written, case aside (127.0.0.1 and localhost differ).
 */
function placementProblem(nodes: readonly NodeConfig[]): string | null {
  const endpoints = new Map<string, string>();
  const dataDirs = new Map<string, string>();
  for (const [i, node] of nodes.entries()) {
    for (const key of ['raftPort', 'clientPort', 'httpPort', 'grpcPort'] as const) {
      if (node[key] === undefined) continue;
      const endpoint = `${node.host.toLowerCase()}:${node[key]}`;
      const owner = endpoints.get(endpoint);
      if (owner !== undefined) {
        return `nodes.${i}.${key} ${node[key]} on host ${node.host} is already ${owner}; give every port on one host to one use`;
      }
      endpoints.set(endpoint, `nodes.${i}.${key} of node ${node.id}`);
    }
    const sharer = dataDirs.get(node.dataDir);
    if (sharer !== undefined) {
      return `nodes.${i}.dataDir ${node.dataDir} is already the dataDir of node ${sharer}; give every node its own data directory`;
    }
    dataDirs.set(node.dataDir, node.id);
  }
  return null;
}

/** The value at an issue's path in the raw input, shown beside a bound it broke. */
function valueAt(raw: unknown, path: readonly (string | number)[]): unknown {
  return path.reduce<unknown>((value, key) => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined), raw);
}

function describeIssue(issue: z.ZodIssue, raw: unknown): string {
  const key = issue.path.length === 0 ? '(top level)' : issue.path.join('.');
  switch (issue.code) {
    case 'too_big':
    case 'too_small':
      return issue.type === 'number' ? `${key} is ${String(valueAt(raw, issue.path))}: ${issue.message}` : `${key}: ${issue.message}`;
    case 'unrecognized_keys':
      return `unknown key ${issue.keys.map((k) => `"${[...issue.path, k].join('.')}"`).join(', ')}; remove it`;
    case 'invalid_enum_value':
      return `${key} is ${JSON.stringify(issue.received)}; allowed values: ${issue.options.join(', ')}`;
    case 'invalid_type':
      return issue.received === 'undefined'
        ? `${key} is missing (expected ${issue.expected})`
        : `${key} must be ${issue.expected}, not ${issue.received}`;
    default:
      return `${key}: ${issue.message}`;
  }
}

/**
 * Validates a parsed config object, its keys and the relations between them; throws
 * LmqError(LMQ_BAD_CONFIG) naming the first bad key. Placement (ports, data directories) is
 * checked by loadConfig, once the dataDirs are resolved.
 */
export function parseConfig(raw: unknown, source: string): ClusterConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const first = result.error.issues[0];
    const detail = first === undefined ? 'invalid' : describeIssue(first, raw);
    throw new LmqError('LMQ_BAD_CONFIG', `bad config ${source}: ${detail}`);
  }
  const problem = relationProblem(result.data);
  if (problem !== null) throw new LmqError('LMQ_BAD_CONFIG', `bad config ${source}: ${problem}`);
  return Object.freeze(result.data);
}

/**
 * Reads and validates a config file. Relative dataDirs and security files are resolved
 * against the file's folder, so the same file works from any working directory.
 */
export function loadConfig(path: string): ClusterConfig {
  const config = parseConfig(readConfigJson(path), path);
  const base = dirname(resolve(path));
  const nodes = config.nodes.map((node) => ({ ...node, dataDir: resolve(base, node.dataDir) }));
  const problem = placementProblem(nodes);
  if (problem !== null) throw new LmqError('LMQ_BAD_CONFIG', `bad config ${path}: ${problem}`);
  const { aclFile, clusterSecretFile, tls } = config.security ?? {};
  const security =
    config.security === undefined
      ? {}
      : {
          security: {
            ...config.security,
            ...(aclFile === undefined ? {} : { aclFile: resolve(base, aclFile) }),
            ...(clusterSecretFile === undefined ? {} : { clusterSecretFile: resolve(base, clusterSecretFile) }),
            ...(tls === undefined ? {} : { tls: { cert: resolve(base, tls.cert), key: resolve(base, tls.key), ca: resolve(base, tls.ca) } }),
          },
        };
  return Object.freeze({ ...config, nodes, ...security });
}

export function findNode(config: ClusterConfig, id: string): NodeConfig {
  const node = config.nodes.find((n) => n.id === id);
  if (node === undefined) {
    throw new LmqError('LMQ_BAD_INPUT', `unknown node id "${id}"; the config has: ${config.nodes.map((n) => n.id).join(', ')}`);
  }
  return node;
}
