import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Producer } from 'rocketmq-client-nodejs';
import { messagingServiceDefinition } from '../src/grpc/proto.js';
import { rocketmqSignature } from '../src/grpc/auth.js';
import { CERTS_DIR, LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';

// The RocketMQ 5 gRPC endpoint of a cluster with security.tls and security.aclFile: the
// official client (rocketmq-client-nodejs 1.0.8) with sslEnabled, trusting the cluster's
// private CA through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (read when grpc-js loads, so that client
// runs as a child process, test/grpc-client-child.mjs) and signing with its sessionCredentials;
// a plaintext client refused at once, in words; the ACL's permissions applied to the signer.

const CHILD = resolve(import.meta.dirname, 'grpc-client-child.mjs');
const CHILD_MS = 60_000;

interface StepResult {
  readonly step: string;
  readonly ok: boolean;
  readonly code?: number | null;
  readonly message?: string;
  readonly body?: string;
}

/** Runs the official client in a child process; resolves with its steps whatever its exit code. */
function runClient(args: Record<string, unknown>, env: Record<string, string> = {}): Promise<StepResult[]> {
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [CHILD, JSON.stringify(args)], { env: { ...process.env, ...env }, timeout: CHILD_MS }, (error, stdout, stderr) => {
      const steps = stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as StepResult);
      if (steps.length === 0) reject(new Error(`client child printed nothing (${error?.message ?? ''}): ${stderr}`));
      else resolvePromise(steps);
    });
  });
}

const ADMIN = { accessKey: 'admin', secretKey: 'admin-secret-1' };
const ALICE = { accessKey: 'alice', secretKey: 'alice-secret-1' };
/** May receive from `secure`, not send to it. */
const BOB = { accessKey: 'bob', secretKey: 'bob-secret-1' };
const ACL = {
  users: [
    { ...ADMIN, admin: true },
    { ...ALICE, topicPerms: { secure: 'PUB|SUB' }, groupPerms: { 'g-secure': 'SUB' } },
    { ...BOB, topicPerms: { secure: 'SUB' }, groupPerms: { 'g-secure': 'SUB' } },
  ],
};

let cluster: LocalCluster;
let admin: LedgerClient;
let endpoints: string;
let caFile: string;

beforeAll(async () => {
  cluster = await LocalCluster.create({}, { grpc: true, tls: true, acl: ACL, credentials: ADMIN });
  cluster.startAll();
  await cluster.leader();
  admin = cluster.client();
  for (const topic of ['secure']) await admin.call({ op: 'createTopic', topic, queues: 2 });
  const node = cluster.config.nodes[0]!;
  endpoints = `${node.host}:${node.grpcPort}`;
  caFile = join(cluster.dir, CERTS_DIR, 'ca.pem');
}, 60_000);

afterAll(async () => {
  admin?.close();
  await cluster?.dispose();
});

describe('grpc – TLS on the gRPC port', () => {
  it('serves the official client with sslEnabled, trusting the cluster CA by GRPC_DEFAULT_SSL_ROOTS_FILE_PATH', async () => {
    const steps = await runClient({ endpoints, ssl: true, credentials: ALICE, topic: 'secure', group: 'g-secure', body: 'over-tls' }, { GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: caFile });
    expect(steps.filter((s) => !s.ok)).toEqual([]);
    expect(steps.find((s) => s.step === 'receive')?.body).toBe('over-tls');
  }, CHILD_MS);

  it('refuses a client that does not trust the CA (system roots only)', async () => {
    const steps = await runClient({ endpoints, ssl: true, credentials: ALICE, topic: 'secure', body: 'untrusted' });
    expect(steps[0]).toMatchObject({ step: 'producer startup', ok: false });
  }, CHILD_MS);

  it('answers a plaintext client at once with a status that says the port serves TLS', async () => {
    const startedMs = performance.now();
    const p = new Producer({ endpoints, namespace: '', topics: ['secure'], logger: { info() {}, warn() {}, debug() {}, error() {} } });
    const failure = await p.startup().then(() => null, (error: unknown) => error as Error & { cause?: Error & { cause?: Error } });
    expect(failure).not.toBeNull();
    expect(String(failure?.cause?.cause?.message ?? failure?.cause?.message)).toMatch(/serves TLS.*sslEnabled: true/);
    // Three route attempts, 1 s and 2 s apart: the refusal itself takes no time.
    expect(performance.now() - startedMs).toBeLessThan(10_000);
    await p.shutdown().catch(() => undefined);
  }, 30_000);
});

describe('grpc – ACL credentials (MQv2-HMAC-SHA1)', () => {
  const trusted = { GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: '' };
  beforeAll(() => {
    trusted.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH = caFile;
  });

  it('applies the signing user\'s permissions: a user without PUB on the topic is refused with 40300', async () => {
    const steps = await runClient({ endpoints, ssl: true, credentials: BOB, topic: 'secure', body: 'forbidden' }, trusted);
    expect(steps[0]).toMatchObject({ step: 'producer startup', ok: true });
    expect(steps[1]).toMatchObject({ step: 'send', ok: false, code: 40300 });
    expect(steps[1]?.message).toMatch(/bob/);
  }, CHILD_MS);

  it('refuses a wrong secret key and an unsigned client with 40100', async () => {
    const wrong = await runClient({ endpoints, ssl: true, credentials: { ...ALICE, secretKey: 'not-the-secret' }, topic: 'secure', body: 'x' }, trusted);
    expect(wrong[0]).toMatchObject({ step: 'producer startup', ok: false });
    expect(wrong[0]?.message).toMatch(/40100.*signature of access key "alice" does not match/);
    const unsigned = await runClient({ endpoints, ssl: true, topic: 'secure', body: 'x' }, trusted);
    expect(unsigned[0]?.message).toMatch(/40100.*not signed/);
  }, CHILD_MS);

  it('refuses a signature dated outside the clock-skew bound, and accepts the same call dated now', async () => {
    const Client = grpc.makeGenericClientConstructor(messagingServiceDefinition(), 'MessagingService');
    const raw = new Client(endpoints, grpc.credentials.createSsl(readFileSync(caFile))) as grpc.Client & Record<string, (r: unknown, m: grpc.Metadata, cb: (e: Error | null, r: { status: { code: string; message: string } }) => void) => void>;
    const queryRoute = (date: Date) =>
      new Promise<{ code: string; message: string }>((ok, fail) => {
        const dateTime = `${date.toISOString().split('.')[0]!.replace(/[-:]/g, '')}Z`;
        const metadata = new grpc.Metadata();
        metadata.set('x-mq-date-time', dateTime);
        metadata.set('authorization', `MQv2-HMAC-SHA1 Credential=${ALICE.accessKey}, SignedHeaders=x-mq-date-time, Signature=${rocketmqSignature(ALICE.secretKey, dateTime)}`);
        raw['QueryRoute']!({ topic: { name: 'secure' } }, metadata, (error, response) => (error === null ? ok(response.status) : fail(error)));
      });
    try {
      expect((await queryRoute(new Date())).code).toBe('OK');
      const stale = await queryRoute(new Date(Date.now() - 10 * 60_000));
      expect(stale.code).toBe('UNAUTHORIZED');
      expect(stale.message).toMatch(/off the node's clock/);
    } finally {
      raw.close();
    }
  });
});
