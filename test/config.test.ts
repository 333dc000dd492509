import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../src/config/config.js';
import { LmqError } from '../src/util/errors.js';

const valid = {
  clusterId: 'local',
  nodes: [
    { id: 'n1', host: '127.0.0.1', raftPort: 7101, clientPort: 7201, dataDir: 'data/n1' },
    { id: 'n2', host: '127.0.0.1', raftPort: 7102, clientPort: 7202, dataDir: 'data/n2' },
  ],
  flush: { mode: 'sync', intervalMs: 100 },
  quorum: 'majority',
};

function messageOf(raw: unknown): string {
  try {
    parseConfig(raw, 'test.json');
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
    const dir = mkdtempSync(join(tmpdir(), 'lmq-config-'));
    expect(() => loadConfig(join(dir, 'missing.json'))).toThrow(/cannot read config .*ENOENT/);
    writeFileSync(join(dir, 'bad.json'), '{ "clusterId": ');
    expect(() => loadConfig(join(dir, 'bad.json'))).toThrow(/is not valid JSON/);
  });

  it('resolves relative data dirs against the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lmq-config-'));
    writeFileSync(join(dir, 'c.json'), JSON.stringify(valid));
    expect(loadConfig(join(dir, 'c.json')).nodes[0]?.dataDir).toBe(join(dir, 'data/n1'));
  });
});
