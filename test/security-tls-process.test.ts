// TLS with real node processes and the CLI as a user runs it: a three-node cluster with
// security.tls and no cluster secret (mutual TLS alone authenticates the peers) elects, produces
// and consumes through `--tls-ca`; a plaintext client and one trusting only the system roots get
// one line and exit 2; a node holding a certificate of another CA is refused by the others while
// the cluster keeps working; `certs init` writes what it says (modes, refusal to overwrite,
// --force) and `cluster start` runs a cluster from the snippet it prints.
import { execFile, spawn } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_TLS, LocalCluster } from '../src/cluster/local-cluster.js';
import { freePorts } from '../src/cluster/ports.js';
import { initCerts } from '../src/security/cert-authority.js';
import { until } from '../src/util/until.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../bin/ledgermq');

let cluster: LocalCluster;
/** The cluster's config without its security key: what a client machine might hold. */
let plainConfig: string;
let caFile: string;
const dirs: string[] = [];

beforeAll(async () => {
  cluster = await LocalCluster.create({ security: { tls: LOCAL_TLS } }, { tls: true });
  const { security: _security, ...plain } = JSON.parse(readFileSync(cluster.configPath, 'utf8')) as Record<string, unknown>;
  plainConfig = join(cluster.dir, 'client.config.json');
  writeFileSync(plainConfig, JSON.stringify(plain));
  caFile = join(cluster.dir, 'certs', 'ca.pem');
  cluster.startAll();
  await cluster.leader();
});
afterAll(async () => {
  await cluster.dispose();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function cli(args: string[], input?: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  const child = run(process.execPath, [BIN, ...args], { timeout: 60_000, env: { ...process.env, ...env } });
  if (input !== undefined) child.child.stdin!.end(input);
  try {
    const { stdout, stderr } = await child;
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

function logLines(id: string): Array<{ msg: string; [key: string]: unknown }> {
  return readFileSync(join(cluster.dir, `${id}.log`), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { msg: string });
}

const jsonLines = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('tls – a cluster of real processes and the CLI', () => {
  it('elects with mutual TLS and no cluster secret, and produces and consumes through the CLI with --tls-ca', async () => {
    const withCa = ['--config', plainConfig, '--tls-ca', caFile];
    expect((await cli(['topic', 'create', 'orders', '--queues', '2', ...withCa])).code).toBe(0);
    const produced = await cli(['produce', '--topic', 'orders', '--json', ...withCa], 'a\nb\nc\n');
    expect(produced.code).toBe(0);
    expect(jsonLines(produced.stdout)).toHaveLength(3);
    const consumed = await cli(['consume', '--topic', 'orders', '--group', 'g', '--from', 'first', '--max', '3', '--timeout', '5000', '--json', ...withCa]);
    expect(consumed.code).toBe(0);
    expect(jsonLines(consumed.stdout).map((m) => m['body']).sort()).toEqual(['a', 'b', 'c']);
    // The cluster's own config names the CA: a command given it needs no flag; LMQ_TLS_CA works too.
    const status = await cli(['status', '--json', '--config', cluster.configPath]);
    expect(status.code).toBe(0);
    expect((JSON.parse(status.stdout) as { leader: string | null }).leader).not.toBeNull();
    const byEnv = await cli(['status', '--json', '--config', plainConfig], undefined, { LMQ_TLS_CA: caFile });
    expect(byEnv.code).toBe(0);
    for (const node of cluster.config.nodes) {
      const lines = logLines(node.id);
      expect(new Set(lines.filter((l) => l.msg === 'accepted peer connection').map((l) => l['peer'])).size).toBe(2);
      expect(lines.filter((l) => /NOT authenticated/.test(l.msg))).toEqual([]);
    }
  });

  it('a plaintext client, or one trusting only the system roots, gets one line and exit 2', async () => {
    const plaintext = await cli(['status', '--config', plainConfig, '--timeout', '20000']);
    expect(plaintext.code).toBe(2);
    expect(plaintext.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^ledgermq: the client port 127\.0\.0\.1:\d+ serves TLS \(security\.tls\): connect with --tls-ca FILE/)]);
    const produce = await cli(['produce', '--topic', 'orders', '--body', 'x', '--config', plainConfig, '--timeout', '20000']);
    expect(produce.code).toBe(2);
    expect(produce.stderr).toMatch(/serves TLS/);
    const systemRoots = await cli(['status', '--config', plainConfig, '--tls', '--timeout', '20000']);
    expect(systemRoots.code).toBe(2);
    expect(systemRoots.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^ledgermq: the TLS certificate of 127\.0\.0\.1:\d+ is not trusted \(.*\); pass the cluster's CA certificate with --tls-ca FILE \(or LMQ_TLS_CA\)$/)]);
  });

  it('a node presenting a certificate of another CA cannot join, and the cluster keeps working', async () => {
    const leader = await cluster.leader();
    const victim = cluster.config.nodes.find((n) => n.id !== leader.id)!.id;
    await cluster.kill(victim);
    const others = join(cluster.dir, 'other-ca');
    initCerts({ dir: others, clusterId: 'other', nodes: cluster.config.nodes, days: 1, force: false });
    cluster.routePeers(victim, {}); // its own config file, changed below
    const ownConfig = join(cluster.dir, `${victim}.config.json`);
    const raw = JSON.parse(readFileSync(ownConfig, 'utf8')) as { security: Record<string, unknown> };
    // Its certificate, key and CA are another CA's: all it lacks is a certificate our CA signed.
    // (A node given our CA beside another CA's certificate would not even start: readNodeTls.)
    raw.security = { tls: { cert: 'other-ca/{id}.pem', key: 'other-ca/{id}.key', ca: 'other-ca/ca.pem' } };
    writeFileSync(ownConfig, JSON.stringify(raw));
    const linesBefore = logLines(victim).length;
    cluster.start(victim);
    const produced = await cli(['produce', '--topic', 'orders', '--count', '20', '--size', '8', '--json', '--config', cluster.configPath]);
    expect(produced.code).toBe(0);
    expect(jsonLines(produced.stdout)).toHaveLength(20);
    const refusedBy = cluster.config.nodes.filter((n) => n.id !== victim).map((n) => n.id);
    // The others cannot verify its certificate when they dial it; it cannot verify theirs (its
    // TLS client gives up before theirs check its certificate, which the in-process test covers).
    await until('the others refuse it', async () => refusedBy.every((id) => logLines(id).some((l) => l.msg === 'TLS handshake with peer failed; will retry' && l['peer'] === victim)), 30_000, 100);
    expect(cluster.isRunning(victim)).toBe(true);
    const status = await cluster.leader();
    expect(status.followers.find((f) => f.id === victim)!.lag).toBeGreaterThanOrEqual(20);
    expect(logLines(victim).slice(linesBefore).filter((l) => l.msg === 'connected to peer')).toEqual([]);
  });
});

describe('tls – certs init and cluster start', () => {
  it('writes a CA and node certificates (keys 0600), refuses to overwrite without --force, and its snippet runs a cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lmq-certs-init-'));
    dirs.push(dir);
    const ports = await freePorts(6);
    const config = {
      clusterId: 'tls-start',
      nodes: ['n1', 'n2', 'n3'].map((id, i) => ({ id, host: '127.0.0.1', raftPort: ports[i], clientPort: ports[i + 3], dataDir: `data/${id}` })),
      flush: { mode: 'async', intervalMs: 100 },
      quorum: 'majority',
    };
    const configPath = join(dir, 'cluster.config.json');
    writeFileSync(configPath, JSON.stringify(config));
    const made = await cli(['certs', 'init', '--config', configPath, '--days', '2']);
    expect(made.code).toBe(0);
    const certs = join(dir, 'certs');
    expect(made.stdout.split('\n').slice(0, 4)).toEqual([
      `wrote the CA certificate ${join(certs, 'ca.pem')} and its key ${join(certs, 'ca.key')} (mode 0600; it signs certificates: keep it off the nodes)`,
      ...['n1', 'n2', 'n3'].map((id) => `wrote node ${id}'s certificate ${join(certs, `${id}.pem`)} and key ${join(certs, `${id}.key`)} (mode 0600)`),
    ]);
    for (const key of ['ca.key', 'n1.key', 'n2.key', 'n3.key']) expect(statSync(join(certs, key)).mode & 0o777).toBe(0o600);
    const snippetLine = made.stdout.split('\n').find((line) => line.startsWith('  "tls": '))!;
    const snippet = JSON.parse(snippetLine.slice('  "tls": '.length)) as Record<string, string>;
    expect(snippet).toEqual({ cert: 'certs/{id}.pem', key: 'certs/{id}.key', ca: 'certs/ca.pem' });

    const caBefore = readFileSync(join(certs, 'ca.pem'), 'utf8');
    const again = await cli(['certs', 'init', '--config', configPath]);
    expect(again.code).toBe(2);
    expect(again.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^ledgermq: certs init would overwrite \S+ca\.pem, .*; pass --force to replace them/)]);
    expect(readFileSync(join(certs, 'ca.pem'), 'utf8')).toBe(caBefore);
    const forced = await cli(['certs', 'init', '--config', configPath, '--force']);
    expect(forced.code).toBe(0);
    expect(readFileSync(join(certs, 'ca.pem'), 'utf8')).not.toBe(caBefore);
    expect(statSync(join(certs, 'n1.key')).mode & 0o777).toBe(0o600);

    writeFileSync(configPath, JSON.stringify({ ...config, security: { tls: snippet } }));
    const child = spawn(process.execPath, [BIN, 'cluster', 'start', '--config', configPath], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    const lines: string[] = [];
    try {
      // cluster start's own status polling must speak TLS to announce a leader.
      await new Promise<void>((done, fail) => {
        const timer = setTimeout(() => fail(new Error(`no leader announced; stdout: ${lines.join(' | ')}`)), 60_000);
        createInterface({ input: child.stdout! }).on('line', (line) => {
          lines.push(line);
          if (line.startsWith('leader: ')) {
            clearTimeout(timer);
            done();
          }
        });
      });
      const status = await cli(['status', '--json', '--config', configPath]);
      expect(status.code).toBe(0);
      expect((JSON.parse(status.stdout) as { nodes: { role: string }[] }).nodes.map((n) => n.role).sort()).toEqual(['follower', 'follower', 'leader']);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
