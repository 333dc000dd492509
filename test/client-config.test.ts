// A client command checks only the config keys it reads, without zod (src/config/client-config.ts);
// a node's start checks the whole file (src/config/config.ts). On a table of good and bad
// configs the two must agree on those keys: the same values when both accept, the same one
// line when a key a client reads is bad, and only a key a node alone reads may be bad for the
// full check and still serve a client.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ZodArray, ZodDefault, ZodEffects, ZodObject, ZodOptional, type ZodTypeAny } from 'zod';
import { MAX_CLUSTER_ID_LENGTH, MAX_HOST_LENGTH, MAX_NODES, MAX_PATH_LENGTH, MAX_PORT } from '../src/config/bounds.js';
import { CONFIG_KEYS, FLUSH_MODE_NAMES, type KeyTree, loadClientConfig, QUORUM_MODE_NAMES } from '../src/config/client-config.js';
import { type ClusterConfig, configSchema, FLUSH_MODES, loadConfig, QUORUM_MODES } from '../src/config/config.js';
import { LIMITS } from '../src/protocol/limits.js';
import { LmqError } from '../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lmq-client-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function node(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id: `n${i}`, host: '127.0.0.1', raftPort: 7100 + i, clientPort: 7200 + i, dataDir: `data/n${i}`, ...extra };
}

const base = { clusterId: 'local', nodes: [node(1), node(2), node(3)], flush: { mode: 'sync' }, quorum: 'majority' };
type Raw = Record<string, unknown>;
const withNode0 = (extra: Record<string, unknown>): Raw => ({ ...base, nodes: [node(1, extra), node(2), node(3)] });
const tls = (ca: unknown): Raw => ({ ...base, security: { tls: { cert: 'certs/{id}.pem', key: 'certs/{id}.key', ca } } });

/** Configs both checks accept, at the bounds of each key a client reads. */
const good: Record<string, Raw> = {
  'the contract example': base,
  'port 1 and the largest port': { ...base, nodes: [node(1, { clientPort: 1 }), node(2, { clientPort: MAX_PORT })] },
  'a 32-character id with - and _': withNode0({ id: `a-_${'x'.repeat(29)}` }),
  'the longest host': { ...withNode0({ host: 'h'.repeat(MAX_HOST_LENGTH) }), security: { clusterSecretFile: 'secret' } },
  'the most nodes': { ...base, nodes: Array.from({ length: MAX_NODES }, (_, i) => node(i + 1)) },
  'one node': { ...base, nodes: [node(1)] },
  'the longest cluster id': { ...base, clusterId: 'c'.repeat(MAX_CLUSTER_ID_LENGTH) },
  'a TLS CA, relative': tls('certs/ca.pem'),
  'the longest TLS CA path': tls('c'.repeat(MAX_PATH_LENGTH)),
  'orderly retries 0': { ...base, consumer: { maxOrderlyReconsumeTimes: 0 } },
  'the most orderly retries': { ...base, consumer: { maxOrderlyReconsumeTimes: LIMITS.maxReconsumeTimes, maxReconsumeTimes: 3 } },
  'a security block without TLS': { ...base, security: { clusterSecretFile: 'secret' } },
};

/** Configs whose bad key is one a client reads: both refuse, with one line. */
const badForClients: Record<string, Raw | unknown> = {
  'not an object': [base],
  'null': null,
  'no cluster id': { ...base, clusterId: undefined },
  'an empty cluster id': { ...base, clusterId: '' },
  'a cluster id too long': { ...base, clusterId: 'c'.repeat(MAX_CLUSTER_ID_LENGTH + 1) },
  'a numeric cluster id': { ...base, clusterId: 7 },
  'nodes not an array': { ...base, nodes: { n1: node(1) } },
  'no nodes': { ...base, nodes: [] },
  'too many nodes': { ...base, nodes: Array.from({ length: MAX_NODES + 1 }, (_, i) => node(i + 1)) },
  'a node that is not an object': { ...base, nodes: [node(1), 'n2'] },
  'a node without id': withNode0({ id: undefined }),
  'an id with a dot': withNode0({ id: 'n.1' }),
  'an id too long': withNode0({ id: 'x'.repeat(33) }),
  'duplicate ids': { ...base, nodes: [node(1), node(2, { id: 'n1' })] },
  'an empty host': withNode0({ host: '' }),
  'a host too long': { ...withNode0({ host: 'h'.repeat(MAX_HOST_LENGTH + 1) }), security: { clusterSecretFile: 'secret' } },
  'a numeric host': withNode0({ host: 127 }),
  'no client port': withNode0({ clientPort: undefined }),
  'client port 0': withNode0({ clientPort: 0 }),
  'a client port too large': withNode0({ clientPort: MAX_PORT + 1 }),
  'a fractional client port': withNode0({ clientPort: 7201.5 }),
  'a client port as text': withNode0({ clientPort: '7201' }),
  'security not an object': { ...base, security: 'tls' },
  'tls not an object': { ...base, security: { tls: true } },
  'an empty TLS CA': tls(''),
  'a TLS CA path too long': tls('c'.repeat(MAX_PATH_LENGTH + 1)),
  'a TLS CA that is not text': tls(['ca.pem']),
  'consumer not an object': { ...base, consumer: 3 },
  'negative orderly retries': { ...base, consumer: { maxOrderlyReconsumeTimes: -1 } },
  'too many orderly retries': { ...base, consumer: { maxOrderlyReconsumeTimes: LIMITS.maxReconsumeTimes + 1 } },
  'fractional orderly retries': { ...base, consumer: { maxOrderlyReconsumeTimes: 1.5 } },
  'orderly retries as text': { ...base, consumer: { maxOrderlyReconsumeTimes: '3' } },
  // Every command refuses a key the schema does not know and a bad contract key (CONTRACT.md).
  'an unknown key': { ...base, colour: 'blue' },
  'an unknown node key': withNode0({ clientport: 7201 }),
  'an unknown nested key': { ...base, raft: { tickMS: 50 } },
  'an unknown TLS key': { ...base, security: { tls: { cert: 'c.pem', key: 'k.pem', ca: 'ca.pem', crl: 'x' } } },
  'no flush': { ...base, flush: undefined },
  'a bad flush mode': { ...base, flush: { mode: 'sometimes' } },
  'no quorum': { ...base, quorum: undefined },
  'a bad quorum': { ...base, quorum: 'most' },
  // A bad client key with a bad node key before it: the line is the full check's, whichever it names.
  'bad raft and a bad client port': { ...withNode0({ clientPort: 0 }), raft: { tickMs: 0 } },
};

/** Configs a node refuses for a key only a node reads: a client command still runs with them. */
const badForNodesOnly: Record<string, Raw> = {
  'a bad raft tick': { ...base, raft: { tickMs: 0 } },
  'a missing data dir': withNode0({ dataDir: undefined }),
  'two nodes on one raft port': { ...base, nodes: [node(1), node(2, { raftPort: 7101 })] },
  'a public host without a cluster secret': withNode0({ host: '10.0.0.1' }),
  'a TLS block without a key': { ...base, security: { tls: { cert: 'c.pem', ca: 'ca.pem' } } },
  'a bad delay level': { ...base, delay: { levels: '1s fast' } },
};

/** The schema's keys as a KeyTree: objects' keys, arrays of objects as their items' keys. */
function keyTreeOf(schema: ZodTypeAny): KeyTree | null {
  let type = schema;
  for (;;) {
    if (type instanceof ZodDefault || type instanceof ZodOptional) type = type._def.innerType;
    else if (type instanceof ZodEffects) type = type._def.schema;
    else if (type instanceof ZodArray) type = type.element;
    else break;
  }
  if (!(type instanceof ZodObject)) return null;
  return Object.fromEntries(Object.entries(type.shape as Record<string, ZodTypeAny>).map(([key, child]) => [key, keyTreeOf(child)]));
}

let files = 0;
function fileOf(raw: unknown): string {
  const path = join(dir, `c${files++}.json`);
  writeFileSync(path, JSON.stringify(raw));
  return path;
}

/** What the full check gives, seen as a client: the keys a client reads, or the error's line. */
function fullVerdict(path: string): unknown {
  let config: ClusterConfig;
  try {
    config = loadConfig(path);
  } catch (error) {
    return lineOf(error);
  }
  const ca = config.security?.tls?.ca;
  const { maxOrderlyReconsumeTimes } = config.consumer;
  return {
    clusterId: config.clusterId,
    nodes: config.nodes.map(({ id, host, clientPort }) => ({ id, host, clientPort })),
    ...(ca === undefined ? {} : { security: { tls: { ca } } }),
    consumer: maxOrderlyReconsumeTimes === undefined ? {} : { maxOrderlyReconsumeTimes },
  };
}

async function clientVerdict(path: string): Promise<unknown> {
  try {
    return await loadClientConfig(path);
  } catch (error) {
    return lineOf(error);
  }
}

function lineOf(error: unknown): { line: string } {
  expect(error).toBeInstanceOf(LmqError);
  expect({ code: (error as LmqError).code, exitCode: (error as LmqError).exitCode }).toEqual({ code: 'LMQ_BAD_CONFIG', exitCode: 2 });
  expect((error as LmqError).message).not.toContain('\n');
  return { line: (error as LmqError).message };
}

describe('client config – the quick check agrees with the full schema on the keys a client reads', () => {
  it.each(Object.entries(good))('accepts, with the same values: %s', async (_name, raw) => {
    const path = fileOf(raw);
    const full = fullVerdict(path);
    expect(full).not.toHaveProperty('line');
    expect(await clientVerdict(path)).toEqual(full);
  });

  it.each(Object.entries(badForClients))('refuses with the full schema\'s line: %s', async (_name, raw) => {
    const path = fileOf(raw);
    const full = fullVerdict(path);
    expect(full).toHaveProperty('line', expect.stringMatching(/^bad config /));
    expect(await clientVerdict(path)).toEqual(full);
  });

  it.each(Object.entries(badForNodesOnly))('serves a client, though a node refuses it: %s', async (_name, raw) => {
    const path = fileOf(raw);
    expect(fullVerdict(path)).toHaveProperty('line', expect.stringMatching(/^bad config /));
    expect(await clientVerdict(path)).toEqual({ clusterId: base.clusterId, nodes: expect.any(Array), consumer: {}, ...('security' in raw ? { security: expect.anything() } : {}) });
  });

  it('knows exactly the keys and modes of the schema', () => {
    expect(CONFIG_KEYS).toEqual(keyTreeOf(configSchema));
    expect([...FLUSH_MODE_NAMES]).toEqual([...FLUSH_MODES]);
    expect([...QUORUM_MODE_NAMES]).toEqual([...QUORUM_MODES]);
  });

  it('says the same line for a missing file and for one that is not JSON', async () => {
    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, '{ "clusterId": ');
    for (const path of [join(dir, 'missing.json'), notJson]) expect(await clientVerdict(path)).toEqual(fullVerdict(path));
  });
});
