// `ledgermq status`: one row per node — role, term, indexes, pid — and each follower's lag as
// the leader sees it. Waits up to --timeout for a leader; exit 3 when none appears.
import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ClientConfig, loadClientConfig } from '../config/client-config.js';
import type { NodeStatus } from '../protocol/index.js';
import { isLmqError, LmqError, NOT_SENT } from '../util/errors.js';
import { type ConnectOptions, parseIntOption, withClusterOptions } from './options.js';
import { accessFrom, type ClientAccess, clientFor, formatTable } from './connect.js';

interface StatusOptions extends ConnectOptions {
  json?: boolean;
  timeout: number;
}

type Row = Omit<Partial<NodeStatus>, 'role'> & { id: string; role: NodeStatus['role'] | 'down' };

export function registerStatus(program: Command): void {
  withClusterOptions(program.command('status'))
    .description('show every node: role, term, last/commit/applied index, pid, event-loop delay, follower lag')
    .option('--json', 'machine-readable output')
    .option('--timeout <ms>', 'wait this long for a leader', parseIntOption('--timeout', 0, 3_600_000), 3000)
    .action(async (options: StatusOptions) => {
      const config = await loadClientConfig(options.config);
      const rows = await waitForLeader(config, options.timeout, accessFrom(options, config));
      const leader = rows.find((r) => r.role === 'leader');
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ leader: leader?.id ?? null, term: leader?.term ?? null, nodes: rows })}\n`);
      } else {
        process.stdout.write(formatStatus(rows));
      }
      if (leader === undefined) throw new LmqError('LMQ_UNAVAILABLE', `no leader within ${options.timeout} ms`, NOT_SENT);
    });
}

async function waitForLeader(config: ClientConfig, timeoutMs: number, access: ClientAccess): Promise<Row[]> {
  const deadline = performance.now() + timeoutMs; // monotonic: --timeout is a duration
  const client = clientFor(config, timeoutMs, access);
  try {
    for (;;) {
      const rows = await Promise.all(config.nodes.map((node) => statusOf(client, node.id)));
      if (rows.some((r) => r.role === 'leader') || performance.now() >= deadline) return rows;
      await sleep(100);
    }
  } finally {
    client.close();
  }
}

async function statusOf(client: ReturnType<typeof clientFor>, id: string): Promise<Row> {
  try {
    return { ...(await client.callNode(id, { op: 'status' }, 1000)) };
  } catch (error) {
    // A node that refuses the credentials, or speaks TLS to a plaintext client (or the reverse),
    // is up: say why (exit 2), rather than call it down.
    if (isLmqError(error, 'LMQ_UNAUTHENTICATED') || isLmqError(error, 'LMQ_FORBIDDEN') || isLmqError(error, 'LMQ_BAD_CONFIG')) throw error;
    return { id, role: 'down' };
  }
}

function formatStatus(rows: Row[]): string {
  return formatTable(['node', 'role', 'term', 'last', 'commit', 'applied', 'pid', 'loop p99 ms', 'follower lag'], rows.map((r) => [
    r.id, r.role, String(r.term ?? '-'), String(r.lastIndex ?? '-'), String(r.commitIndex ?? '-'), String(r.appliedIndex ?? '-'), String(r.pid ?? '-'),
    String(r.eventLoopDelayP99Ms ?? '-'), (r.followers ?? []).map((f) => `${f.id}:${f.lag}`).join(' '),
  ]));
}
