import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_COMMAND_BYTES, encodeCommand } from '../src/broker/commands.js';
import { loadConfig, parseConfig } from '../src/config/config.js';
import type { AppendRequest } from '../src/raft/messages.js';
import { type Entry, EntryType } from '../src/raft/types.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame } from '../src/transport/framing.js';
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

/** The widest append message the core may send: 32-character ids, every number at its widest. */
function widestAppend(entries: Entry[]): AppendRequest {
  const id = 'n'.repeat(32);
  const max = Number.MAX_SAFE_INTEGER;
  return { type: 'append', from: id, to: id, term: max, prevIndex: max, prevTerm: max, entries, commit: max };
}

/** `count` entries of `dataBytes` each, with the widest index and term. */
function widestEntries(count: number, dataBytes: number): Entry[] {
  const data = new Uint8Array(dataBytes);
  return Array.from({ length: count }, () => ({ index: Number.MAX_SAFE_INTEGER, term: Number.MAX_SAFE_INTEGER, type: EntryType.Normal, data }));
}

describe('config – the largest entry', () => {
  it('one entry of the largest command fits an append frame; a larger command is refused', () => {
    expect(encodeFrame(widestAppend(widestEntries(1, MAX_COMMAND_BYTES))).length).toBeLessThanOrEqual(DEFAULT_MAX_FRAME_BYTES + 4);
    // Every bound of a produce command holds, yet its properties make it too big for one entry.
    const properties = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`p${i}`, 'x'.repeat(4096)]));
    const messages = Array.from({ length: 70 }, (_, i) => ({ msgId: `m${i}`, topic: 't', queueId: 0, body: new Uint8Array(0), properties }));
    expect(() => encodeCommand({ kind: 'produce', producerId: 'p', seq: 1, timestampMs: 0, messages })).toThrow(
      new RegExp(`"produce" command of \\d+ bytes is more than one Raft entry carries \\(${MAX_COMMAND_BYTES}\\)`),
    );
  });
});
