// Shared by the tests that drive a real cluster from outside: the CLI as a user runs it, and a
// whole-queue read through the client.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { StoredMessage } from '../src/protocol/index.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../bin/ledgermq');

/**
 * Runs `ledgermq ARGS --config configPath` (killed after timeoutMs), with `input` on its stdin
 * when given; resolves with stdout, stderr and the exit code.
 */
export async function runCli(configPath: string, args: readonly string[], timeoutMs = 60_000, input?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return runLedgermq([...args, '--config', configPath], timeoutMs, input);
}

/**
 * Runs `ledgermq ARGS` as runCli does, without a config. Asynchronously: a test worker blocked
 * in spawnSync for tens of seconds misses vitest's own RPC deadline ("Timeout calling
 * onTaskUpdate") on a loaded machine, which fails the run though every test passed.
 */
export async function runLedgermq(args: readonly string[], timeoutMs = 60_000, input?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const child = run(process.execPath, [BIN, ...args], { timeout: timeoutMs });
  if (input !== undefined) child.child.stdin!.end(input);
  try {
    const { stdout, stderr } = await child;
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

/** Every message stored in topic/queueId now, from offset 0. */
export async function readWholeQueue(client: LedgerClient, topic: string, queueId = 0): Promise<StoredMessage[]> {
  const messages: StoredMessage[] = [];
  for (;;) {
    const reply = await client.call({ op: 'pull', topic, queueId, offset: messages.length, maxMessages: 100, maxBytes: 1 << 20, waitMs: 0 });
    messages.push(...reply.messages);
    if (reply.messages.length === 0) return messages;
  }
}

/**
 * A three-node cluster of child processes shared by the tests of one file: started (with a
 * leader) before them, disposed after. `cli` runs the CLI against it.
 */
export function clusterForFile(): { readonly cluster: () => LocalCluster; readonly cli: (args: readonly string[]) => ReturnType<typeof runCli> } {
  let cluster: LocalCluster | null = null;
  beforeAll(async () => {
    cluster = await LocalCluster.create();
    cluster.startAll();
    await cluster.leader();
  });
  afterAll(async () => {
    await cluster?.dispose();
  });
  const started = (): LocalCluster => {
    if (cluster === null) throw new Error('the cluster starts in beforeAll');
    return cluster;
  };
  return { cluster: started, cli: (args) => runCli(started().configPath, args) };
}
