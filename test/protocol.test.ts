// The client-port protocol (src/protocol): one table of limits behind the request check, the
// client's pre-check and the commit-log codec. Properties: whatever the request check accepts
// encodes through the codec (so it can be stored), and the client's per-message pre-check
// agrees with the request check. Also: the client never imports the broker (the log format
// and the wire format change independently), and the package's exports name the client API.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand } from '../src/broker/commands.js';
import { parseRequest } from '../src/broker/requests.js';
import { LIMITS, produceMessageProblem, type ProduceMessageWire, type Request } from '../src/protocol/index.js';
import { isLmqError } from '../src/util/errors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function accepted(body: unknown): Request | undefined {
  try {
    return parseRequest(body);
  } catch (error) {
    expect(isLmqError(error, 'LMQ_BAD_INPUT')).toBe(true);
    return undefined;
  }
}

const plain = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/);
/** Strings at and around a bound, and with the characters the rules care about. */
const edges = (maxLength: number) =>
  fc.oneof(fc.string({ minLength: 0, maxLength: 8 }), fc.constantFrom('', 'x'.repeat(maxLength), 'x'.repeat(maxLength + 1), 'a\u0000b', 'tab\there', 'del\u007f', 'a.b', 'a b', '%RETRY%g', 'é', '__proto__'));
const edgeText = (maxLength: number) => fc.oneof({ arbitrary: plain, weight: 3 }, { arbitrary: edges(maxLength), weight: 1 });
// Shared buffers: bodies at the bounds without allocating megabytes per run.
const bodies = [0, 1, 64, LIMITS.maxProduceBodyBytes / 2, LIMITS.maxProduceBodyBytes / 2 + 1, LIMITS.maxProduceBodyBytes, LIMITS.maxProduceBodyBytes + 1].map((n) => new Uint8Array(n));
const queueId = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom(LIMITS.maxQueuesPerTopic - 1, LIMITS.maxQueuesPerTopic, 65_535, -1, 0.5));
const properties = fc.oneof(
  fc.dictionary(edges(LIMITS.maxPropertyNameLength), edges(LIMITS.maxPropertyValueLength), { minKeys: 1, maxKeys: 3 }),
  fc.constant(Object.fromEntries(Array.from({ length: LIMITS.maxPropertiesPerMessage }, (_, i) => [`p${i}`, 'v']))),
  fc.constant(Object.fromEntries(Array.from({ length: LIMITS.maxPropertiesPerMessage + 1 }, (_, i) => [`p${i}`, 'v']))),
  fc.constant({ long: 'v'.repeat(LIMITS.maxPropertyValueLength + 1) }),
  fc.constant(JSON.parse('{"__proto__":"x"}') as Record<string, string>),
);
const validMessage = fc.record(
  { msgId: plain, topic: plain, queueId: fc.integer({ min: 0, max: 3 }), body: fc.constant(bodies[1]!), tag: plain, keys: fc.array(plain, { maxLength: 3 }), properties: fc.dictionary(plain, plain, { maxKeys: 3 }) },
  { requiredKeys: ['msgId', 'topic', 'queueId', 'body'] },
);
/** One field of a valid message replaced by a value at or past a rule. */
const brokenField = fc.oneof(
  fc.record({ msgId: edges(LIMITS.maxIdLength) }),
  fc.record({ topic: edges(LIMITS.maxNameLength) }),
  fc.record({ queueId }),
  fc.record({ body: fc.constantFrom(...bodies) }),
  fc.record({ tag: edges(LIMITS.maxTagLength) }),
  fc.record({ keys: fc.oneof(fc.array(edges(LIMITS.maxKeyLength), { minLength: 1, maxLength: 2 }), fc.constant(Array.from({ length: LIMITS.maxKeysPerMessage + 1 }, (_, i) => `k${i}`))) }),
  fc.record({ properties }),
);
const message = fc.oneof(validMessage, fc.tuple(validMessage, brokenField).map(([valid, broken]) => ({ ...valid, ...broken })));
const produce = fc.record({
  op: fc.constant('produce'),
  producerId: edgeText(LIMITS.maxIdLength),
  seq: fc.oneof(fc.nat(), fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 60)),
  messages: fc.array(message, { minLength: 1, maxLength: 3 }),
});
const position = fc.record({ topic: edgeText(LIMITS.maxNameLength), queueId, offset: fc.oneof(fc.nat(), fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 60)) });
const offsets = fc.record({
  op: fc.constantFrom('commitOffsets', 'resetOffsets'),
  group: edgeText(LIMITS.maxNameLength),
  offsets: fc.array(position, { minLength: 1, maxLength: 3 }),
});
const createTopic = fc.record({ op: fc.constant('createTopic'), topic: edgeText(LIMITS.maxNameLength), queues: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constantFrom(LIMITS.maxQueuesPerTopic, LIMITS.maxQueuesPerTopic + 1)) });

describe('protocol – what the request check accepts can be stored', () => {
  it('encodes every produce the request check accepts through the commit-log codec', () => {
    let acceptedCount = 0;
    fc.assert(
      fc.property(produce, (body) => {
        const request = accepted(body);
        if (request?.op !== 'produce') return;
        acceptedCount++;
        expect(() => encodeCommand({ kind: 'produce', producerId: request.producerId, seq: request.seq, timestampMs: Date.now(), messages: request.messages })).not.toThrow();
      }),
      { numRuns: 1000 },
    );
    expect(acceptedCount).toBeGreaterThan(20); // the generator reaches valid requests, not only refusals
  });

  it('encodes every offset commit, reset and topic creation the request check accepts', () => {
    fc.assert(
      fc.property(fc.oneof(offsets, createTopic), (body) => {
        const request = accepted(body);
        if (request === undefined) return;
        if (request.op === 'createTopic') expect(() => encodeCommand({ kind: 'createTopic', topic: request.topic, queues: request.queues })).not.toThrow();
        else if (request.op === 'commitOffsets' || request.op === 'resetOffsets') {
          expect(() => encodeCommand({ kind: request.op, group: request.group, offsets: request.offsets })).not.toThrow();
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses at the request check what the codec cannot hold: a 200-character tag, a 128-character topic, a dot', () => {
    const base = { msgId: 'm', topic: 't', queueId: 0, body: new Uint8Array(1) };
    const produceOf = (m: object) => ({ op: 'produce', producerId: 'p', seq: 1, messages: [{ ...base, ...m }] });
    expect(() => parseRequest(produceOf({ tag: 'x'.repeat(200) }))).toThrow(/messages\.0\.tag: must be 1 to 128 characters long/);
    expect(() => parseRequest(produceOf({ topic: 'x'.repeat(LIMITS.maxNameLength + 1) }))).toThrow(/must be 1 to 127 characters long/);
    expect(() => parseRequest(produceOf({ topic: 'a.b' }))).toThrow(/may only use letters/);
    expect(() => parseRequest({ op: 'route', topic: 'a.b' })).toThrow(/topic: may only use letters/);
    expect(parseRequest(produceOf({ tag: 'x'.repeat(LIMITS.maxTagLength) }))).toMatchObject({ op: 'produce' });
  });
});

describe('protocol – the client pre-check agrees with the request check', () => {
  it('finds a problem in a message exactly when a produce of it alone is refused', () => {
    fc.assert(
      fc.property(message, (m) => {
        const alone = accepted({ op: 'produce', producerId: 'p', seq: 1, messages: [m] });
        const problem = produceMessageProblem(m as ProduceMessageWire);
        expect(problem === undefined).toBe(alone !== undefined);
      }),
      { numRuns: 1000 },
    );
  });

  it('words the problem with the field and the bound', () => {
    const problem = produceMessageProblem({ msgId: 'm', topic: 't', queueId: 0, body: new Uint8Array(1), keys: ['k', 'x'.repeat(LIMITS.maxKeyLength + 1)] });
    expect(problem).toBe(`keys[1] must be 1 to ${LIMITS.maxKeyLength} characters long`);
  });
});

/** Relative imports of a TypeScript source file, resolved to repository paths (.js → .ts). */
function relativeImports(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const specifiers = [...source.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? m[2]!);
  return specifiers.filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

describe('protocol – layering', () => {
  it('keeps the client and everything it imports free of the broker (and so of the commit-log codec)', () => {
    const clientDir = join(ROOT, 'src', 'client');
    const pending = ['index.ts', 'client.ts', 'producer.ts', 'consumer.ts', 'send-queue.ts', 'tcp-connector.ts'].map((f) => join(clientDir, f));
    const seen = new Set<string>();
    while (pending.length > 0) {
      const file = pending.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      pending.push(...relativeImports(file));
    }
    const reached = [...seen].map((f) => relative(ROOT, f));
    expect(reached).toContain('src/protocol/limits.ts'); // the walk follows imports
    expect(reached.filter((f) => f.startsWith('src/broker/'))).toEqual([]);
  });
});

describe('protocol – the package exports the client API', () => {
  it('resolves ledgermq and ledgermq/client by name to one module, and keeps internals private', async () => {
    const script = `
      const root = await import('ledgermq');
      const client = await import('ledgermq/client');
      const internal = await import('ledgermq/dist/src/broker/commands.js').then(() => 'open', (e) => e.code);
      console.log(JSON.stringify({
        same: root.LedgerClient === client.LedgerClient,
        exports: ['LedgerClient', 'Producer', 'PullConsumer', 'tcpConnector', 'LmqError', 'isLmqError'].filter((n) => typeof root[n] === 'function'),
        maxNameLength: root.LIMITS.maxNameLength,
        traits: Object.keys(root.ERROR_TRAITS).length,
        internal,
      }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
    expect(JSON.parse(stdout)).toEqual({
      same: true,
      exports: ['LedgerClient', 'Producer', 'PullConsumer', 'tcpConnector', 'LmqError', 'isLmqError'],
      maxNameLength: LIMITS.maxNameLength,
      traits: expect.any(Number),
      internal: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
    });
  });
});
