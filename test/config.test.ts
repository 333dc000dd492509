import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_COMMAND_BYTES, encodeCommand } from '../src/broker/commands.js';
import { MAX_APPEND_BYTES, loadConfig, parseConfig, parseDelayLevels } from '../src/config/config.js';
import type { AppendRequest } from '../src/raft/messages.js';
import { ENTRY_OVERHEAD_BYTES, type Entry, EntryType } from '../src/raft/types.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame } from '../src/transport/framing.js';
import { LmqError } from '../src/util/errors.js';
import { initCerts } from '../src/security/cert-authority.js';
import { readNodeTls } from '../src/security/tls.js';

const valid = {
  clusterId: 'local',
  nodes: [
    { id: 'n1', host: '127.0.0.1', raftPort: 7101, clientPort: 7201, dataDir: 'data/n1' },
    { id: 'n2', host: '127.0.0.1', raftPort: 7102, clientPort: 7202, dataDir: 'data/n2' },
  ],
  flush: { mode: 'sync', intervalMs: 100 },
  quorum: 'majority',
};

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-config-'));
  dirs.push(dir);
  return dir;
}

/** Writes `raw` as a config file and loads it (dataDirs resolved, placement checked). */
function loadConfigOf(raw: unknown): ReturnType<typeof loadConfig> {
  const path = join(tempDir(), 'c.json');
  writeFileSync(path, JSON.stringify(raw));
  return loadConfig(path);
}

function messageOf(raw: unknown, load = false): string {
  try {
    if (load) loadConfigOf(raw);
    else parseConfig(raw, 'test.json');
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    expect((error as LmqError).code).toBe('LMQ_BAD_CONFIG');
    expect((error as LmqError).exitCode).toBe(2);
    return (error as LmqError).message;
  }
  throw new Error('config was accepted');
}

describe('config – validation', () => {
  it('accepts the contract example and fills named defaults', () => {
    const config = parseConfig(valid, 'test.json');
    expect(config.raft.electionTimeoutTicks).toBe(6);
    expect(config.log.segmentBytes).toBe(64 * 1024 * 1024);
  });

  it('names an unknown key', () => {
    expect(messageOf({ ...valid, flsh: {} })).toMatch(/unknown key "flsh"/);
    expect(messageOf({ ...valid, flush: { mode: 'sync', every: 1 } })).toMatch(/unknown key "flush.every"/);
  });

  it('names a bad enum value and the allowed values', () => {
    expect(messageOf({ ...valid, quorum: 'most' })).toMatch(/quorum is "most"; allowed values: majority, all, leader/);
    expect(messageOf({ ...valid, flush: { mode: 'fast' } })).toMatch(/flush.mode is "fast"; allowed values: sync, async/);
  });

  it('names a wrong type', () => {
    expect(messageOf({ ...valid, nodes: [{ ...valid.nodes[0], raftPort: '7101' }] })).toMatch(/nodes.0.raftPort must be number, not string/);
  });

  it('rejects duplicate node ids and an unknown preferred leader', () => {
    expect(messageOf({ ...valid, nodes: [valid.nodes[0], valid.nodes[0]] })).toMatch(/duplicate node id "n1"/);
    expect(messageOf({ ...valid, raft: { preferredLeader: 'n9' } })).toMatch(/raft.preferredLeader/);
  });

  it('reports unreadable and ill-formed files in one line', () => {
    const dir = tempDir();
    expect(() => loadConfig(join(dir, 'missing.json'))).toThrow(/cannot read config .*ENOENT/);
    writeFileSync(join(dir, 'bad.json'), '{ "clusterId": ');
    expect(() => loadConfig(join(dir, 'bad.json'))).toThrow(/is not valid JSON/);
  });

  it('resolves relative data dirs against the config file', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'c.json'), JSON.stringify(valid));
    expect(loadConfig(join(dir, 'c.json')).nodes[0]?.dataDir).toBe(join(dir, 'data/n1'));
  });
});

/** The widest append message the core may send: 32-character ids, every number at its widest. */
function widestAppend(entries: Entry[]): AppendRequest {
  const id = 'n'.repeat(32);
  const max = Number.MAX_SAFE_INTEGER;
  return { type: 'append', from: id, to: id, term: max, prevIndex: max, prevTerm: max, entries, commit: max, leaderLastIndex: max };
}

/** `count` entries of `dataBytes` each, with the widest index and term. */
function widestEntries(count: number, dataBytes: number): Entry[] {
  const data = new Uint8Array(dataBytes);
  return Array.from({ length: count }, () => ({ index: Number.MAX_SAFE_INTEGER, term: Number.MAX_SAFE_INTEGER, type: EntryType.Normal, data }));
}

describe('config – relations between keys', () => {
  const raft = (keys: Record<string, number>): unknown => ({ ...valid, raft: keys });

  it('requires the election timeout to exceed the heartbeat interval', () => {
    expect(messageOf(raft({ electionTimeoutTicks: 3, heartbeatIntervalTicks: 3 }))).toMatch(
      /raft\.electionTimeoutTicks 3 must be greater than raft\.heartbeatIntervalTicks 3 .*; raise raft\.electionTimeoutTicks or lower raft\.heartbeatIntervalTicks$/,
    );
    expect(parseConfig(raft({ electionTimeoutTicks: 4, heartbeatIntervalTicks: 3 }), 'test.json').raft.electionTimeoutTicks).toBe(4);
  });

  it('bounds raft.maxAppendBytes by what one peer transport frame carries', () => {
    expect(MAX_APPEND_BYTES).toBeLessThan(DEFAULT_MAX_FRAME_BYTES);
    const message = messageOf(raft({ maxAppendBytes: MAX_APPEND_BYTES + 1, maxInflightBytes: 2 * MAX_APPEND_BYTES }));
    expect(message).toMatch(new RegExp(`raft\\.maxAppendBytes is ${MAX_APPEND_BYTES + 1}: .*peer transport frame of ${DEFAULT_MAX_FRAME_BYTES} bytes; set at most ${MAX_APPEND_BYTES}$`));
    // The largest append needs a window that holds it (the default window is 4 MiB).
    expect(parseConfig(raft({ maxAppendBytes: MAX_APPEND_BYTES, maxInflightBytes: MAX_APPEND_BYTES }), 'test.json').raft.maxAppendBytes).toBe(MAX_APPEND_BYTES);
    expect(messageOf(raft({ maxAppendBytes: MAX_APPEND_BYTES }))).toMatch(/raft\.maxInflightBytes 4194304 is less than raft\.maxAppendBytes/);
  });

  it('a batch within MAX_APPEND_BYTES encodes within one peer frame, for the smallest and largest entries', () => {
    // Entries with no data cost the most framing per counted byte; bin32 entries the most per entry.
    const tiny = widestEntries(Math.floor(MAX_APPEND_BYTES / ENTRY_OVERHEAD_BYTES), 0);
    const largeBytes = 65_536;
    const large = widestEntries(Math.floor(MAX_APPEND_BYTES / (largeBytes + ENTRY_OVERHEAD_BYTES)), largeBytes);
    for (const entries of [tiny, large]) {
      expect(encodeFrame(widestAppend(entries)).length).toBeLessThanOrEqual(DEFAULT_MAX_FRAME_BYTES + 4);
    }
  });

  it('one entry of the largest command fits an append frame; a larger command is refused', () => {
    expect(encodeFrame(widestAppend(widestEntries(1, MAX_COMMAND_BYTES))).length).toBeLessThanOrEqual(DEFAULT_MAX_FRAME_BYTES + 4);
    // Every bound of a produce command holds, yet its properties make it too big for one entry.
    const properties = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`p${i}`, 'x'.repeat(4096)]));
    const messages = Array.from({ length: 70 }, (_, i) => ({ msgId: `m${i}`, topic: 't', queueId: 0, body: new Uint8Array(0), properties }));
    expect(() => encodeCommand({ kind: 'produce', producerId: 'p', seq: 1, timestampMs: 0, messages })).toThrow(
      new RegExp(`"produce" command of \\d+ bytes is more than one Raft entry carries \\(${MAX_COMMAND_BYTES}\\)`),
    );
  });

  it('requires one append to fit the in-flight window', () => {
    expect(messageOf(raft({ maxAppendBytes: 8192, maxInflightBytes: 4096 }))).toMatch(
      /raft\.maxInflightBytes 4096 is less than raft\.maxAppendBytes 8192 .*; raise raft\.maxInflightBytes or lower raft\.maxAppendBytes$/,
    );
  });

  it('defaults the catch-up bandwidth to 32 MiB/s and refuses one below 64 KiB/s', () => {
    expect(parseConfig(valid, 'test.json').raft.maxCatchUpBytesPerSec).toBe(32 * 1024 * 1024);
    expect(messageOf(raft({ maxCatchUpBytesPerSec: 65535 }))).toMatch(/raft\.maxCatchUpBytesPerSec is 65535: Number must be greater than or equal to 65536$/);
  });

  it('puts an upper bound on every raft window', () => {
    const bounds: [string, number][] = [
      ['maxInflightMsgs', 4096],
      ['maxInflightBytes', 1024 ** 3],
      ['maxCatchUpBytesPerSec', 1024 ** 3],
      ['maxUncommittedEntries', 1_000_000],
      ['maxUncommittedBytes', 2 * 1024 ** 3],
    ];
    for (const [key, max] of bounds) {
      expect(messageOf(raft({ [key]: max + 1 }))).toMatch(new RegExp(`raft\\.${key} is ${max + 1}: Number must be less than or equal to ${max}$`));
      expect(parseConfig(raft({ [key]: max }), 'test.json').raft).toHaveProperty(key, max);
    }
  });

  it('rejects two nodes on one host:port, and a node whose two ports are equal', () => {
    const [n1, n2] = valid.nodes as [(typeof valid.nodes)[0], (typeof valid.nodes)[0]];
    expect(messageOf({ ...valid, nodes: [n1, { ...n2, raftPort: n1.raftPort }] }, true)).toMatch(
      /nodes\.1\.raftPort 7101 on host 127\.0\.0\.1 is already nodes\.0\.raftPort of node n1; give every port on one host to one use$/,
    );
    expect(messageOf({ ...valid, nodes: [n1, { ...n2, clientPort: n1.raftPort }] }, true)).toMatch(/nodes\.1\.clientPort 7101 .* is already nodes\.0\.raftPort of node n1/);
    expect(messageOf({ ...valid, nodes: [{ ...n1, clientPort: n1.raftPort }, n2] }, true)).toMatch(/nodes\.0\.clientPort 7101 .* is already nodes\.0\.raftPort of node n1/);
    const apart = loadConfigOf({ ...valid, nodes: [n1, { ...n2, host: '127.0.0.2', raftPort: n1.raftPort, clientPort: n1.clientPort }] });
    expect(apart.nodes[1]?.raftPort).toBe(n1.raftPort);
  });

  it('httpPort (the console) is optional, a port like the others, and shares no host:port; http.allowWrites defaults to false', () => {
    const [n1, n2] = valid.nodes as [(typeof valid.nodes)[0], (typeof valid.nodes)[0]];
    const config = loadConfigOf({ ...valid, nodes: [{ ...n1, httpPort: 7801 }, n2] });
    expect(config.nodes.map((n) => n.httpPort)).toEqual([7801, undefined]);
    expect(config.http.allowWrites).toBe(false);
    expect(parseConfig({ ...valid, http: { allowWrites: true } }, 'test.json').http.allowWrites).toBe(true);
    expect(messageOf({ ...valid, nodes: [{ ...n1, httpPort: 0 }, n2] })).toMatch(/^bad config test\.json: nodes\.0\.httpPort is 0: Number must be greater than or equal to 1$/);
    expect(messageOf({ ...valid, nodes: [n1, { ...n2, httpPort: n1.clientPort }] }, true)).toMatch(/nodes\.1\.httpPort 7201 on host 127\.0\.0\.1 is already nodes\.0\.clientPort of node n1/);
    expect(messageOf({ ...valid, http: { allowWrites: 'yes' } })).toMatch(/http\.allowWrites must be boolean, not string$/);
    expect(messageOf({ ...valid, http: { allowWrite: true } })).toMatch(/unknown key "http\.allowWrite"; remove it$/);
  });

  it('rejects two nodes in one data directory, however the path is written', () => {
    const [n1, n2] = valid.nodes as [(typeof valid.nodes)[0], (typeof valid.nodes)[0]];
    expect(messageOf({ ...valid, nodes: [n1, { ...n2, dataDir: './data/../data/n1/' }] }, true)).toMatch(
      /nodes\.1\.dataDir \S+data\/n1 is already the dataDir of node n1; give every node its own data directory$/,
    );
  });
});

describe('config – snapshot and retention keys', () => {
  it('fills their defaults: a snapshot every 10000 entries, 72 h of log, no byte limit, a check every 10 s', () => {
    const config = parseConfig(valid, 'test.json');
    expect(config.snapshot.everyEntries).toBe(10_000);
    expect(config.retention).toEqual({ maxAgeMs: 259_200_000, maxBytes: null, checkIntervalMs: 10_000 });
    expect(parseConfig({ ...valid, retention: { maxBytes: null } }, 'test.json').retention.maxBytes).toBeNull();
  });

  it('names the key and the bound a value broke', () => {
    const cases: [unknown, RegExp][] = [
      [{ snapshot: { everyEntries: 0 } }, /snapshot\.everyEntries is 0: Number must be greater than or equal to 1$/],
      [{ snapshot: { everyEntries: 100_000_001 } }, /snapshot\.everyEntries is 100000001: Number must be less than or equal to 100000000$/],
      [{ snapshot: { everyEntries: 1.5 } }, /snapshot\.everyEntries must be integer, not float$/],
      [{ retention: { maxAgeMs: 999 } }, /retention\.maxAgeMs is 999: Number must be greater than or equal to 1000$/],
      [{ retention: { maxAgeMs: 365 * 86_400_000 + 1 } }, /retention\.maxAgeMs is 31536000001: Number must be less than or equal to 31536000000$/],
      [{ retention: { maxBytes: 0 } }, /retention\.maxBytes is 0: Number must be greater than or equal to 1$/],
      [{ retention: { maxBytes: '8MiB' } }, /retention\.maxBytes must be number, not string$/],
      [{ retention: { checkIntervalMs: 99 } }, /retention\.checkIntervalMs is 99: Number must be greater than or equal to 100$/],
      [{ retention: { checkIntervalMs: 3_600_001 } }, /retention\.checkIntervalMs is 3600001: Number must be less than or equal to 3600000$/],
      [{ retention: { maxAge: 1000 } }, /unknown key "retention\.maxAge"; remove it$/],
      [{ snapshot: { every: 5 } }, /unknown key "snapshot\.every"; remove it$/],
    ];
    for (const [keys, message] of cases) expect(messageOf({ ...valid, ...(keys as object) })).toMatch(message);
    const bounds = { snapshot: { everyEntries: 1 }, retention: { maxAgeMs: 1000, checkIntervalMs: 100 } };
    expect(parseConfig({ ...valid, ...bounds }, 'test.json')).toMatchObject(bounds);
  });

  it('requires retention.maxBytes to hold at least two log segments', () => {
    const log = { segmentBytes: 1024 * 1024 };
    expect(messageOf({ ...valid, log, retention: { maxBytes: 2 * 1024 * 1024 - 1 } })).toMatch(
      /retention\.maxBytes 2097151 is less than 2 × log\.segmentBytes 1048576 .*; raise retention\.maxBytes or lower log\.segmentBytes$/,
    );
    expect(parseConfig({ ...valid, log, retention: { maxBytes: 2 * 1024 * 1024 } }, 'test.json').retention.maxBytes).toBe(2 * 1024 * 1024);
    // Against the default segment size of 64 MiB, 8 MiB is too small.
    expect(messageOf({ ...valid, retention: { maxBytes: 8 * 1024 * 1024 } })).toMatch(/retention\.maxBytes 8388608 is less than 2 × log\.segmentBytes 67108864/);
  });
});

describe('config – a bad relation stops the CLI before it touches the disk', () => {
  it('node start and cluster start exit 2 with one stderr line and create no data directory', () => {
    const dir = tempDir();
    const path = join(dir, 'c.json');
    writeFileSync(path, JSON.stringify({ ...valid, raft: { electionTimeoutTicks: 3, heartbeatIntervalTicks: 3 } }));
    for (const args of [['node', 'start', '--id', 'n1'], ['cluster', 'start']]) {
      const result = spawnSync(process.execPath, ['bin/ledgermq', ...args, '--config', path], { encoding: 'utf8', timeout: 30_000 });
      expect(result.status).toBe(2);
      expect(result.stderr.trimEnd().split('\n')).toEqual([
        expect.stringMatching(/^ledgermq: bad config .*c\.json: raft\.electionTimeoutTicks 3 must be greater than raft\.heartbeatIntervalTicks 3/),
      ]);
      expect(existsSync(join(dir, 'data'))).toBe(false);
    }
  });

  it('a retention.maxBytes below two segments is exit 2 with one line from node start', () => {
    const dir = tempDir();
    const path = join(dir, 'c.json');
    writeFileSync(path, JSON.stringify({ ...valid, retention: { maxBytes: 1024 } }));
    const result = spawnSync(process.execPath, ['bin/ledgermq', 'node', 'start', '--id', 'n1', '--config', path], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(2);
    expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^ledgermq: bad config .*c\.json: retention\.maxBytes 1024 is less than 2 × log\.segmentBytes 67108864/)]);
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });
});

describe('config – security and the loopback-only rule', () => {
  const secured = { ...valid, security: { clusterSecretFile: 'secrets/cluster.secret' } };

  it('resolves security.clusterSecretFile against the config file and rejects unknown security keys', () => {
    const dir = tempDir();
    const path = join(dir, 'c.json');
    writeFileSync(path, JSON.stringify(secured));
    expect(loadConfig(path).security?.clusterSecretFile).toBe(join(dir, 'secrets/cluster.secret'));
    expect(loadConfig(join(dir, 'c.json')).nodes[0]?.dataDir).toBe(join(dir, 'data/n1'));
    expect(messageOf({ ...valid, security: { clusterSecret: 'abc' } })).toMatch(/unknown key "security\.clusterSecret"; remove it$/);
    expect(messageOf({ ...valid, security: { clusterSecretFile: '' } })).toMatch(/security\.clusterSecretFile/);
    expect(parseConfig(valid, 'test.json').security).toBeUndefined();
  });

  it('without a cluster secret, every node host must be loopback; with one, any host will do', () => {
    const [n1, n2] = valid.nodes as [(typeof valid.nodes)[0], (typeof valid.nodes)[0]];
    const withHost = (host: string, extra: Record<string, unknown> = {}) => ({ ...valid, ...extra, nodes: [n1, { ...n2, host }] });
    for (const host of ['127.0.0.1', '127.10.0.3', 'localhost', 'LocalHost', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      expect(parseConfig(withHost(host), 'test.json').nodes[1]?.host).toBe(host);
    }
    for (const host of ['10.0.0.2', '0.0.0.0', '::', 'node2.example.com', '128.0.0.1', '::ffff:10.0.0.2']) {
      expect(messageOf(withHost(host))).toBe(
        `bad config test.json: nodes.1.host "${host}" is not a loopback address and the config has no cluster secret, so anyone who reaches its peer port could join the cluster; set security.clusterSecretFile`,
      );
      expect(messageOf(withHost(host, { security: {} }))).toMatch(/set security\.clusterSecretFile$/);
      expect(parseConfig(withHost(host, { security: { clusterSecretFile: 's' } }), 'test.json').nodes[1]?.host).toBe(host);
    }
  });

  it('node start exits 2 with one line, and creates nothing, for a missing secret file or a public host without one', () => {
    const dir = tempDir();
    const cases: [unknown, RegExp][] = [
      [secured, /^ledgermq: cluster secret file \S+secrets\/cluster\.secret does not exist; `ledgermq cluster start` creates it, or copy the file the other nodes use \(mode 0600\)$/],
      [{ ...valid, nodes: [{ ...valid.nodes[0], host: '10.1.2.3' }] }, /^ledgermq: bad config .*: nodes\.0\.host "10\.1\.2\.3" is not a loopback address .*; set security\.clusterSecretFile$/],
    ];
    for (const [raw, line] of cases) {
      const path = join(dir, 'c.json');
      writeFileSync(path, JSON.stringify(raw));
      const result = spawnSync(process.execPath, ['bin/ledgermq', 'node', 'start', '--id', 'n1', '--config', path], { encoding: 'utf8', timeout: 30_000 });
      expect(result.status).toBe(2);
      expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(line)]);
      expect(existsSync(join(dir, 'data'))).toBe(false);
      expect(existsSync(join(dir, 'secrets'))).toBe(false);
    }
  });
});

describe('config – security.tls', () => {
  const tls = { cert: 'certs/{id}.pem', key: 'certs/{id}.key', ca: 'certs/ca.pem' };

  it('resolves the three files against the config file, keeps {id}, and rejects unknown or missing keys', () => {
    const dir = tempDir();
    const path = join(dir, 'c.json');
    writeFileSync(path, JSON.stringify({ ...valid, security: { tls } }));
    expect(loadConfig(path).security?.tls).toEqual({ cert: join(dir, 'certs/{id}.pem'), key: join(dir, 'certs/{id}.key'), ca: join(dir, 'certs/ca.pem') });
    expect(messageOf({ ...valid, security: { tls: { ...tls, password: 'x' } } })).toMatch(/unknown key "security\.tls\.password"; remove it$/);
    expect(messageOf({ ...valid, security: { tls: { cert: 'a', key: 'b' } } })).toMatch(/security\.tls\.ca is missing \(expected string\)$/);
    expect(messageOf({ ...valid, security: { tls: { ...tls, cert: 7 } } })).toMatch(/security\.tls\.cert must be string, not number$/);
  });

  it('allows a non-loopback host with TLS and no cluster secret: mutual TLS authenticates peers', () => {
    const nodes = valid.nodes.map((node, i) => ({ ...node, host: `10.0.0.${i + 1}` }));
    expect(parseConfig({ ...valid, nodes, security: { tls } }, 'test.json').nodes[1]?.host).toBe('10.0.0.2');
    expect(messageOf({ ...valid, nodes, security: { aclFile: 'acl.json' } })).toMatch(/set security\.clusterSecretFile$/);
  });

  it('a node reads and checks its files: missing, not PEM, a key of another certificate, a certificate of another CA', () => {
    const dir = tempDir();
    const nodes = [{ id: 'n1', host: '127.0.0.1' }, { id: 'n2', host: '127.0.0.1' }];
    initCerts({ dir: join(dir, 'a'), clusterId: 'a', nodes, days: 1, force: false });
    initCerts({ dir: join(dir, 'b'), clusterId: 'b', nodes, days: 1, force: false });
    const files = (over: Partial<typeof tls> = {}) => ({ cert: join(dir, 'a/{id}.pem'), key: join(dir, 'a/{id}.key'), ca: join(dir, 'a/ca.pem'), ...over });
    expect(readNodeTls(files(), 'n1').cert.toString()).toContain('-----BEGIN CERTIFICATE-----');
    const problem = (over: Partial<typeof tls>): string => {
      try {
        readNodeTls(files(over), 'n1');
      } catch (error) {
        expect(error).toBeInstanceOf(LmqError);
        expect((error as LmqError).code).toBe('LMQ_BAD_CONFIG');
        return (error as LmqError).message;
      }
      throw new Error('expected a refusal');
    };
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate\n');
    expect(problem({ cert: join(dir, 'missing/{id}.pem') })).toBe(`security.tls.cert file ${join(dir, 'missing/n1.pem')} does not exist; run \`ledgermq certs init\` to make a CA and node certificates, or point security.tls.cert at the PEM file`);
    expect(problem({ ca: join(dir, 'junk.pem') })).toBe(`security.tls.ca file ${join(dir, 'junk.pem')} is not a PEM certificate ("-----BEGIN CERTIFICATE-----"); run \`ledgermq certs init\` to make a CA and node certificates`);
    expect(problem({ key: join(dir, 'junk.pem') })).toMatch(/^security\.tls\.key file \S+junk\.pem is not an unencrypted PEM private key/);
    expect(problem({ key: join(dir, 'a/n2.key') })).toBe(`security.tls.key file ${join(dir, 'a/n2.key')} is not the key of the certificate ${join(dir, 'a/n1.pem')}; give each node the key its certificate was made with`);
    expect(problem({ cert: join(dir, 'b/{id}.pem'), key: join(dir, 'b/{id}.key') })).toMatch(/^security\.tls\.cert file \S+b\/n1\.pem was not issued by the CA \S+a\/ca\.pem, so no peer would accept it/);
  });

  it('node start exits 2 with one line naming the file, and creates nothing, for a key that is not its certificate\'s', () => {
    const dir = tempDir();
    initCerts({ dir: join(dir, 'certs'), clusterId: 'local', nodes: valid.nodes, days: 1, force: false });
    const path = join(dir, 'c.json');
    writeFileSync(path, JSON.stringify({ ...valid, security: { tls: { ...tls, key: 'certs/n2.key' } } }));
    const result = spawnSync(process.execPath, ['bin/ledgermq', 'node', 'start', '--id', 'n1', '--config', path], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(2);
    expect(result.stderr.trimEnd().split('\n')).toEqual([`ledgermq: security.tls.key file ${join(dir, 'certs/n2.key')} is not the key of the certificate ${join(dir, 'certs/n1.pem')}; give each node the key its certificate was made with`]);
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });
});

describe('config – delay levels and consumer retries', () => {
  it('parses delay.levels to milliseconds (units ms s m h d) and fills the defaults', () => {
    const config = parseConfig(valid, 'test.json');
    expect(config.delay.levels).toEqual([1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200].map((s) => s * 1000));
    expect(config.delay.scanIntervalMs).toBe(100);
    expect(config.consumer.maxReconsumeTimes).toBe(16);
    expect(config.consumer.maxOrderlyReconsumeTimes).toBeUndefined(); // omitted: orderly retries without limit
    expect(parseConfig({ ...valid, consumer: { maxOrderlyReconsumeTimes: 3 } }, 't').consumer.maxOrderlyReconsumeTimes).toBe(3);
    expect(parseConfig({ ...valid, delay: { levels: ' 100ms  2s 3m 1h 1d ' } }, 't').delay.levels).toEqual([100, 2000, 180_000, 3_600_000, 86_400_000]);
    expect(parseDelayLevels(Array(64).fill('1s').join(' '))).toHaveLength(64);
  });

  it('names a bad delay.levels value: a unit, zero, too many or too long a level', () => {
    expect(messageOf({ ...valid, delay: { levels: '1s 5x' } })).toMatch(/delay\.levels: "1s 5x" level "5x" is not a duration from 1ms to 40d/);
    expect(messageOf({ ...valid, delay: { levels: '0s' } })).toMatch(/level "0s" is not a duration/);
    expect(messageOf({ ...valid, delay: { levels: '41d' } })).toMatch(/level "41d" is not a duration from 1ms to 40d/);
    expect(messageOf({ ...valid, delay: { levels: '' } })).toMatch(/holds 0 levels; give 1 to 64 durations/);
    expect(messageOf({ ...valid, delay: { levels: Array(65).fill('1s').join(' ') } })).toMatch(/holds 65 levels/);
    expect(messageOf({ ...valid, consumer: { maxReconsumeTimes: -1 } })).toMatch(/consumer\.maxReconsumeTimes is -1/);
    expect(messageOf({ ...valid, consumer: { maxOrderlyReconsumeTimes: 1.5 } })).toMatch(/consumer\.maxOrderlyReconsumeTimes must be integer/);
    expect(messageOf({ ...valid, delay: { scanIntervalMs: 5000 } })).toMatch(/delay\.scanIntervalMs is 5000/);
  });

  it('a bad delay.levels is exit 2 with one line from node start', () => {
    const dir = tempDir();
    const path = join(dir, 'c.json');
    writeFileSync(path, JSON.stringify({ ...valid, delay: { levels: '1s fast' } }));
    const result = spawnSync(process.execPath, ['bin/ledgermq', 'node', 'start', '--id', 'n1', '--config', path], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(2);
    expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^ledgermq: bad config .*c\.json: delay\.levels: "1s fast" level "fast"/)]);
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });
});

describe('config – transaction check-back', () => {
  it('fills RocketMQ\'s defaults (6 s, 60 s, 15 checks) and takes short values', () => {
    expect(parseConfig(valid, 't').transaction).toEqual({ checkAfterMs: 6000, checkIntervalMs: 60_000, maxChecks: 15 });
    expect(parseConfig({ ...valid, transaction: { checkAfterMs: 100, checkIntervalMs: 250, maxChecks: 1 } }, 't').transaction).toEqual({ checkAfterMs: 100, checkIntervalMs: 250, maxChecks: 1 });
  });

  it('names a bad transaction key or value', () => {
    expect(messageOf({ ...valid, transaction: { maxChecks: 0 } })).toMatch(/transaction\.maxChecks is 0/);
    expect(messageOf({ ...valid, transaction: { maxChecks: 1001 } })).toMatch(/transaction\.maxChecks/);
    expect(messageOf({ ...valid, transaction: { checkAfterMs: 10 } })).toMatch(/transaction\.checkAfterMs is 10/);
    expect(messageOf({ ...valid, transaction: { checkIntervalMs: '1s' } })).toMatch(/transaction\.checkIntervalMs/);
    expect(messageOf({ ...valid, transaction: { checkEveryMs: 5 } })).toMatch(/transaction.*checkEveryMs/);
  });
});
