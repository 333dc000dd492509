// Client authentication and ACLs on a real three-node cluster (security.aclFile): for every
// operation an unsigned request is LMQ_UNAUTHENTICATED, a user without the permission is
// LMQ_FORBIDDEN naming the user, the resource and the permission, and a user with it is
// served; a follower refuses before it redirects; a replayed frame is refused; the ACL file is
// reloaded on change; and the CLI signs with --access-key/--secret-key or LMQ_ACCESS_KEY/…
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import { Producer } from '../src/client/producer.js';
import { ACL_FILE, LocalCluster } from '../src/cluster/local-cluster.js';
import type { Request } from '../src/protocol/index.js';
import { ACL_RELOAD_INTERVAL_MS } from '../src/security/acl-source.js';
import { type Credentials, payloadDigest, sign } from '../src/security/signature.js';
import { drainFrames, encodeFrame, encodeValue, FrameDecoder } from '../src/transport/framing.js';
import { isLmqError, type LmqError } from '../src/util/errors.js';
import { until } from '../src/util/until.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../bin/ledgermq');

const ADMIN: Credentials = { accessKey: 'admin', secretKey: 'admin-secret' };
const SHOP: Credentials = { accessKey: 'shop', secretKey: 'shop-secret' };
const READER: Credentials = { accessKey: 'reader', secretKey: 'reader-secret' };
const NOBODY: Credentials = { accessKey: 'nobody', secretKey: 'nobody-secret' };
const LATE: Credentials = { accessKey: 'late', secretKey: 'late-secret' };

const USERS = [
  { ...ADMIN, admin: true },
  { ...SHOP, topicPerms: { orders: 'PUB|SUB' }, groupPerms: { billing: 'SUB|RESET' } },
  { ...READER, topicPerms: { orders: 'SUB' }, groupPerms: { billing: 'SUB' } },
  { ...NOBODY },
];

let cluster: LocalCluster;
let msgId: string;
const clients = new Map<string, LedgerClient>();

function clientAs(credentials: Credentials | undefined): LedgerClient {
  const name = credentials === undefined ? '(unsigned)' : `${credentials.accessKey}:${credentials.secretKey}`;
  let client = clients.get(name);
  if (client === undefined) {
    client = cluster.client(10_000, credentials ?? null);
    clients.set(name, client);
  }
  return client;
}

async function refusal(credentials: Credentials | undefined, request: Request): Promise<LmqError> {
  try {
    await clientAs(credentials).call(request as Request & { op: 'status' });
  } catch (error) {
    if (isLmqError(error)) return error;
    throw error;
  }
  throw new Error(`${request.op} as ${credentials?.accessKey ?? '(unsigned)'} was served, not refused`);
}

beforeAll(async () => {
  cluster = await LocalCluster.create({}, { acl: { users: USERS }, credentials: ADMIN });
  cluster.startAll();
  await cluster.leader();
  await cluster.client().call({ op: 'createTopic', topic: 'orders', queues: 2 });
  const producer = new Producer(cluster.client(), 10_000);
  msgId = (await producer.send('orders', { body: Buffer.from('first'), key: 'k1' })).msgId;
}, 60_000);

afterAll(async () => {
  await cluster?.dispose();
});

const position = { topic: 'orders', queueId: 0, offset: 0 };

/** Each operation: the request, a user who lacks what it needs (with the message naming it), and one who has it. */
const OPERATIONS: { request: Request; denied?: [Credentials, RegExp]; allowed: Credentials }[] = [
  { request: { op: 'status' }, allowed: NOBODY },
  { request: { op: 'topics' }, allowed: NOBODY },
  { request: { op: 'route', topic: 'orders' }, allowed: NOBODY },
  { request: { op: 'groups' }, allowed: NOBODY },
  { request: { op: 'createTopic', topic: 'made-by-admin', queues: 1 }, denied: [SHOP, /user "shop" may not createTopic: it needs admin/], allowed: ADMIN },
  {
    request: { op: 'produce', producerId: `p-${randomUUID()}`, seq: 0, messages: [{ msgId: `m-${randomUUID()}`, topic: 'orders', queueId: 1, body: Buffer.from('x') }] },
    denied: [READER, /user "reader" may not produce: it lacks PUB on topic "orders"/],
    allowed: SHOP,
  },
  { request: { op: 'pull', topic: 'orders', queueId: 0, offset: 0, maxMessages: 10, maxBytes: 65_536, waitMs: 0 }, denied: [NOBODY, /user "nobody" may not pull: it lacks SUB on topic "orders"/], allowed: READER },
  { request: { op: 'heartbeat', group: 'billing', topic: 'orders', consumerId: 'c1' }, denied: [NOBODY, /user "nobody" may not heartbeat: it lacks SUB on group "billing"/], allowed: READER },
  { request: { op: 'leaveGroup', group: 'billing', topic: 'orders', consumerId: 'c1' }, denied: [NOBODY, /lacks SUB on group "billing"/], allowed: READER },
  { request: { op: 'commitOffsets', group: 'billing', offsets: [position] }, denied: [NOBODY, /user "nobody" may not commitOffsets: it lacks SUB on group "billing"/], allowed: READER },
  { request: { op: 'queryOffsets', group: 'billing', queues: [{ topic: 'orders', queueId: 0 }] }, denied: [NOBODY, /lacks SUB or RESET on group "billing"/], allowed: READER },
  { request: { op: 'resetOffsets', group: 'billing', offsets: [position] }, denied: [READER, /user "reader" may not resetOffsets: it lacks RESET on group "billing"/], allowed: SHOP },
  { request: { op: 'lookupByKey', topic: 'orders', key: 'k1', max: 5 }, denied: [NOBODY, /user "nobody" may not lookupByKey: it lacks SUB on topic "orders"/], allowed: READER },
];

describe('security – every operation under an ACL', () => {
  it.each(OPERATIONS.map((o) => [o.request.op, o] as const))('%s: unsigned is refused, the unauthorized are forbidden, the authorized served', async (_op, operation) => {
    const unsigned = await refusal(undefined, operation.request);
    expect(unsigned.code).toBe('LMQ_UNAUTHENTICATED');
    expect(unsigned.message).toMatch(/request not signed: this cluster has an ACL .*--access-key and --secret-key/);
    if (operation.denied !== undefined) {
      const [user, message] = operation.denied;
      const forbidden = await refusal(user, operation.request);
      expect(forbidden.code).toBe('LMQ_FORBIDDEN');
      expect(forbidden.message).toMatch(message);
      expect(forbidden.indeterminate).toBe(false);
    }
    await expect(clientAs(operation.allowed).call(operation.request as Request & { op: 'status' })).resolves.toBeDefined();
  });

  it('lookupByMsgId: a message on a topic the user may not read is answered as not found (ids do not leak)', async () => {
    expect((await refusal(undefined, { op: 'lookupByMsgId', msgId })).code).toBe('LMQ_UNAUTHENTICATED');
    expect((await clientAs(NOBODY).call({ op: 'lookupByMsgId', msgId })).messages).toEqual([]);
    expect((await clientAs(NOBODY).call({ op: 'lookupByMsgId', msgId: 'no-such-id' })).messages).toEqual([]);
    const { messages } = await clientAs(READER).call({ op: 'lookupByMsgId', msgId });
    expect(messages.map((m) => m.msgId)).toEqual([msgId]);
  });

  it('one user cannot make another user\'s sends vanish as duplicates by reusing its producerId', async () => {
    const producerId = `victim-${randomUUID()}`;
    const send = (as: Credentials, body: string) =>
      clientAs(as).call({ op: 'produce', producerId, seq: 1, messages: [{ msgId: `m-${randomUUID()}`, topic: 'orders', queueId: 0, body: Buffer.from(body) }] });
    // ADMIN may produce anywhere; it sends seq 1 of the victim's producerId first.
    await send(ADMIN, 'forged first');
    const victim = await send(SHOP, 'the real one');
    expect(victim.duplicate).toBe(false);
    const offset = victim.offsets[0]!;
    const [stored] = (await clientAs(READER).call({ op: 'pull', topic: 'orders', queueId: 0, offset, maxMessages: 1, maxBytes: 1 << 20, waitMs: 0 })).messages;
    expect(Buffer.from(stored!.body).toString()).toBe('the real one');
  });

  it('refuses an unknown access key and a wrong secret key, and nothing they sent is stored', async () => {
    const topics = () => clientAs(ADMIN).call({ op: 'topics' }).then((t) => t.topics.map((x) => x.topic));
    const unknown = await refusal({ accessKey: 'stranger', secretKey: 'whatever-secret' }, { op: 'createTopic', topic: 'by-stranger', queues: 1 });
    expect(unknown.code).toBe('LMQ_UNAUTHENTICATED');
    expect(unknown.message).toMatch(/access key "stranger" is not a user of the node's ACL/);
    const wrong = await refusal({ accessKey: 'admin', secretKey: 'not-the-secret' }, { op: 'createTopic', topic: 'by-impostor', queues: 1 });
    expect(wrong.code).toBe('LMQ_UNAUTHENTICATED');
    expect(wrong.message).toMatch(/signature of access key "admin" does not match/);
    expect(await topics()).not.toContain('by-stranger');
    expect(await topics()).not.toContain('by-impostor');
  });

  it('a follower authenticates before it redirects', async () => {
    const leader = await cluster.leader();
    const follower = cluster.config.nodes.find((n) => n.id !== leader.id)!.id;
    const request = { op: 'route', topic: 'orders' } as const;
    await expect(clientAs(undefined).callNode(follower, request)).rejects.toMatchObject({ code: 'LMQ_UNAUTHENTICATED' });
    await expect(clientAs(READER).callNode(follower, request)).rejects.toMatchObject({ code: 'LMQ_NOT_LEADER', details: { leader: leader.id } });
    // status is served by every node, to any user.
    expect((await clientAs(NOBODY).callNode(follower, { op: 'status' })).id).toBe(follower);
  });

  it('answers a replayed frame with LMQ_UNAUTHENTICATED, and a malformed envelope too', async () => {
    const leader = await cluster.leader();
    const port = cluster.config.nodes.find((n) => n.id === leader.id)!.clientPort;
    const payload = encodeValue({ op: 'status' });
    const timestampMs = Date.now();
    const nonce = randomUUID();
    const signature = sign(READER.secretKey, READER.accessKey, 'status', timestampMs, nonce, payloadDigest(payload), leader.id);
    const frame = (id: number) => encodeFrame({ id, auth: { accessKey: READER.accessKey, timestampMs, nonce, signature }, payload });
    const malformed = encodeFrame({ id: 3, auth: { accessKey: READER.accessKey, timestampMs, nonce: 7, signature }, payload });
    const responses = await exchange(port, [frame(1), frame(2), malformed], 3);
    expect(responses[0]).toMatchObject({ id: 1, ok: true });
    expect(responses[1]).toMatchObject({ id: 2, ok: false, error: { code: 'LMQ_UNAUTHENTICATED' } });
    expect((responses[1] as { error: { message: string } }).error.message).toMatch(/nonce was already used/);
    expect(responses[2]).toMatchObject({ id: 3, ok: false, error: { code: 'LMQ_UNAUTHENTICATED' } });
    expect((responses[2] as { error: { message: string } }).error.message).toMatch(/malformed credentials \(auth\.nonce/);
  });

  it('a user added to the ACL file gains access within the reload interval', async () => {
    const path = join(cluster.dir, ACL_FILE);
    expect((await refusal(LATE, { op: 'topics' })).code).toBe('LMQ_UNAUTHENTICATED');
    const acl = JSON.parse(readFileSync(path, 'utf8')) as { users: unknown[] };
    writeFileSync(path, JSON.stringify({ users: [...acl.users, { ...LATE, defaultTopicPerm: 'SUB' }] }));
    const startedMs = Date.now();
    // Every node reloads it: reach each one, not only the leader.
    for (const node of cluster.config.nodes) {
      const late = cluster.client(1_000, LATE);
      await until(`${node.id} to know "late"`, () => late.callNode(node.id, { op: 'status' }).then(() => true, () => null), 5_000 + ACL_RELOAD_INTERVAL_MS, 50);
      late.close();
    }
    expect(Date.now() - startedMs).toBeLessThan(5_000 + ACL_RELOAD_INTERVAL_MS);
    // A broken edit keeps the ACL in force: "late" is still served.
    writeFileSync(path, '{"users": [');
    await new Promise((r) => setTimeout(r, 3 * ACL_RELOAD_INTERVAL_MS));
    await expect(cluster.client(5_000, LATE).call({ op: 'topics' })).resolves.toBeDefined();
    await expect(cluster.client(5_000, null).call({ op: 'topics' })).rejects.toMatchObject({ code: 'LMQ_UNAUTHENTICATED' });
    writeFileSync(path, JSON.stringify({ users: USERS }));
  }, 30_000);
});

/** Writes frames on one connection and resolves with the first `count` responses. */
function exchange(port: number, frames: Buffer[], count: number): Promise<unknown[]> {
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const decoder = new FrameDecoder();
    const responses: unknown[] = [];
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed after ${responses.length} responses`)));
    socket.on('data', (chunk: Buffer) => {
      drainFrames(decoder, chunk, (value) => {
        responses.push(value);
        return true;
      });
      if (responses.length >= count) {
        socket.removeAllListeners('close');
        socket.destroy();
        resolvePromise(responses.sort((a, b) => (a as { id: number }).id - (b as { id: number }).id));
      }
    });
    // One after another: the replay must arrive after the original was admitted.
    socket.once('connect', async () => {
      for (const frame of frames) {
        socket.write(frame);
        await new Promise((r) => setTimeout(r, 50));
      }
    });
  });
}

describe('security – the CLI under an ACL', () => {
  async function cli(args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string; code: number }> {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    if (env.LMQ_ACCESS_KEY === undefined) delete childEnv.LMQ_ACCESS_KEY;
    if (env.LMQ_SECRET_KEY === undefined) delete childEnv.LMQ_SECRET_KEY;
    try {
      const { stdout, stderr } = await run(process.execPath, [BIN, ...args, '--config', cluster.configPath], { timeout: 60_000, env: childEnv });
      return { stdout, stderr, code: 0 };
    } catch (error) {
      const e = error as { stdout: string; stderr: string; code: number };
      return { stdout: e.stdout, stderr: e.stderr, code: e.code };
    }
  }

  it('produce without credentials exits 2 with one LMQ_UNAUTHENTICATED line; with them it is served', async () => {
    const refused = await cli(['produce', '--topic', 'orders', '--body', 'no-creds']);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/^ledgermq: LMQ_UNAUTHENTICATED: request not signed/);

    const byFlags = await cli(['produce', '--topic', 'orders', '--body', 'by-flags', '--json', '--access-key', SHOP.accessKey, '--secret-key', SHOP.secretKey]);
    expect(byFlags.code).toBe(0);
    expect(JSON.parse(byFlags.stdout)).toMatchObject({ queue: expect.any(Number), offset: expect.any(Number) });

    const byEnv = await cli(['produce', '--topic', 'orders', '--body', 'by-env', '--json'], { LMQ_ACCESS_KEY: SHOP.accessKey, LMQ_SECRET_KEY: SHOP.secretKey });
    expect(byEnv.code).toBe(0);
    const { msgId: sent } = JSON.parse(byEnv.stdout) as { msgId: string };
    const found = await cli(['message', '--msg-id', sent, '--json'], { LMQ_ACCESS_KEY: READER.accessKey, LMQ_SECRET_KEY: READER.secretKey });
    expect(found.code).toBe(0);
    expect(JSON.parse(found.stdout)).toMatchObject({ msgId: sent, body: 'by-env' });
  }, 60_000);

  it('a forbidden command exits 2 naming the resource; status and half-given credentials exit 2 too', async () => {
    const env = { LMQ_ACCESS_KEY: READER.accessKey, LMQ_SECRET_KEY: READER.secretKey };
    const forbidden = await cli(['group', 'reset', '--group', 'billing', '--topic', 'orders', '--to', 'first'], env);
    expect(forbidden.code).toBe(2);
    expect(forbidden.stderr.trim().split('\n')).toHaveLength(1);
    expect(forbidden.stderr).toMatch(/^ledgermq: LMQ_FORBIDDEN: user "reader" may not resetOffsets: it lacks RESET on group "billing"/);

    const status = await cli(['status']);
    expect(status.code).toBe(2);
    expect(status.stderr).toMatch(/^ledgermq: LMQ_UNAUTHENTICATED/);
    expect((await cli(['status', '--json'], env)).code).toBe(0);

    const half = await cli(['topic', 'list', '--access-key', 'reader']);
    expect(half.code).toBe(2);
    expect(half.stderr).toMatch(/--access-key needs --secret-key/);
  }, 60_000);

  it('node start exits 2 with one line naming a missing or invalid ACL file', async () => {
    const config = JSON.parse(readFileSync(cluster.configPath, 'utf8')) as Record<string, unknown>;
    const cases: [string, string | null, RegExp][] = [
      ['missing.json', null, /^ledgermq: cannot read ACL file .*missing\.json \(ENOENT\)/],
      ['invalid.json', JSON.stringify({ users: [{ accessKey: 'x1y', secretKey: 'long-enough', topicPerms: { t: 'READ' } }] }), /^ledgermq: bad ACL file .*invalid\.json: users\.0\.topicPerms\.t: "READ" must be DENY or PUB, SUB/],
    ];
    for (const [file, content, message] of cases) {
      if (content !== null) writeFileSync(join(cluster.dir, file), content);
      const configPath = join(cluster.dir, `with-${file}`);
      writeFileSync(configPath, JSON.stringify({ ...config, security: { aclFile: file } }));
      const started = await run(process.execPath, [BIN, 'node', 'start', '--id', 'n1', '--config', configPath], { timeout: 30_000 }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => error,
      );
      expect(started.code).toBe(2);
      expect(started.stderr.trim().split('\n')).toHaveLength(1);
      expect(started.stderr).toMatch(message);
    }
  }, 60_000);
});
