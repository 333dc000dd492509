// Cluster configuration (CONTRACT.md): loading, validation with named defaults, and the
// one-line error a user gets for a bad file. Every command loads its config through here.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { LmqError } from '../util/errors.js';

const nodeId = z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'letters, digits, "_" or "-", 1 to 32 characters');
const port = z.number().int().min(1).max(65535);

const nodeSchema = z
  .object({
    id: nodeId,
    host: z.string().min(1),
    raftPort: port,
    clientPort: port,
    dataDir: z.string().min(1),
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
    /** Payload bytes in flight to one follower. */
    maxInflightBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
    /** Payload bytes in one append message to a follower. */
    maxAppendBytes: z.number().int().min(1024).default(1024 * 1024),
    /** Entries the leader accepts that are not yet committed; more proposals are refused. */
    maxUncommittedEntries: z.number().int().min(1).default(100_000),
    /**
     * Payload bytes of proposals the leader holds that are not yet applied; more proposals are
     * refused (one is always accepted when none is pending). Entries hold whole producer batches.
     */
    maxUncommittedBytes: z.number().int().min(1024).default(256 * 1024 * 1024),
    /** Node that leadership moves back to whenever it is healthy and caught up. */
    preferredLeader: nodeId.optional(),
  })
  .strict();

const logSchema = z
  .object({
    segmentBytes: z.number().int().min(64 * 1024).max(2 ** 31 - 1).default(64 * 1024 * 1024),
  })
  .strict();

export const configSchema = z
  .object({
    clusterId: z.string().min(1).max(64),
    nodes: z.array(nodeSchema).min(1).max(7),
    flush: z
      .object({
        mode: z.enum(['sync', 'async']),
        intervalMs: z.number().int().min(1).max(60_000).default(100),
      })
      .strict(),
    quorum: z.enum(['majority', 'all', 'leader']),
    raft: raftSchema.default({}),
    log: logSchema.default({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.nodes.forEach((node, i) => {
      if (seen.has(node.id)) ctx.addIssue({ code: 'custom', path: ['nodes', i, 'id'], message: `duplicate node id "${node.id}"` });
      seen.add(node.id);
    });
    const preferred = config.raft.preferredLeader;
    if (preferred !== undefined && !seen.has(preferred)) {
      ctx.addIssue({ code: 'custom', path: ['raft', 'preferredLeader'], message: `"${preferred}" is not one of the node ids` });
    }
  });

export type ClusterConfig = z.infer<typeof configSchema>;
export type NodeConfig = ClusterConfig['nodes'][number];
export type FlushMode = ClusterConfig['flush']['mode'];
export type QuorumMode = ClusterConfig['quorum'];
export const FLUSH_MODES: readonly FlushMode[] = configSchema.innerType().shape.flush.shape.mode.options;
export const QUORUM_MODES: readonly QuorumMode[] = configSchema.innerType().shape.quorum.options;

function describeIssue(issue: z.ZodIssue): string {
  const key = issue.path.length === 0 ? '(top level)' : issue.path.join('.');
  switch (issue.code) {
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

/** Validates a parsed config object; throws LmqError(LMQ_BAD_CONFIG) naming the first bad key. */
export function parseConfig(raw: unknown, source: string): ClusterConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const first = result.error.issues[0];
    const detail = first === undefined ? 'invalid' : describeIssue(first);
    throw new LmqError('LMQ_BAD_CONFIG', `bad config ${source}: ${detail}`);
  }
  return Object.freeze(result.data);
}

/**
 * Reads and validates a config file. Relative dataDirs are resolved against the file's
 * folder, so the same file works from any working directory.
 */
export function loadConfig(path: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new LmqError('LMQ_BAD_CONFIG', `cannot read config ${path} (${reason}); pass --config FILE`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new LmqError('LMQ_BAD_CONFIG', `config ${path} is not valid JSON: ${(error as Error).message}`);
  }
  const config = parseConfig(raw, path);
  const base = dirname(resolve(path));
  return Object.freeze({
    ...config,
    nodes: config.nodes.map((node) => ({ ...node, dataDir: isAbsolute(node.dataDir) ? node.dataDir : resolve(base, node.dataDir) })),
  });
}

export function findNode(config: ClusterConfig, id: string): NodeConfig {
  const node = config.nodes.find((n) => n.id === id);
  if (node === undefined) {
    throw new LmqError('LMQ_BAD_INPUT', `unknown node id "${id}"; the config has: ${config.nodes.map((n) => n.id).join(', ')}`);
  }
  return node;
}
