// `ledgermq leader transfer --to ID` and `ledgermq leader preferred ID|none`: moving leadership
// (src/broker/leadership.ts). A transfer answers once ID leads, or exits 1 saying why not
// (LMQ_TRANSFER_FAILED); the preferred leader is replicated, and the leader hands leadership to
// it whenever it is up and caught up. An id not in the config is exit 2 before connecting.
import type { Command } from 'commander';
import { type ClientConfig, loadClientConfig } from '../config/client-config.js';
import { LmqError } from '../util/errors.js';
import { withClient } from './connect.js';
import { type ConnectOptions, parseIntOption, withClusterOptions } from './options.js';
import { LIMITS } from '../protocol/limits.js';

interface TransferOptions extends ConnectOptions {
  to: string;
  json?: boolean;
  timeout: number;
}

interface PreferredOptions extends ConnectOptions {
  json?: boolean;
  timeout: number;
}

/** Beyond the transfer's own wait: reaching the leader (a redirect, a reconnect). */
const CALL_MARGIN_MS = 5_000;
const NONE = 'none';

export function registerLeader(program: Command): void {
  const leader = program.command('leader').description('move leadership: hand it to a node now, or name a preferred leader');
  withClusterOptions(leader.command('transfer'))
    .description('hand leadership to a node now: answers once it leads, or exits 1 saying why not (down, lagging, another node won, timeout)')
    .requiredOption('--to <id>', 'the node to lead (an id of the config)')
    .option('--json', 'print {"leader","term","moved"} (moved: false when it led already)')
    .option('--timeout <ms>', 'give up (and cancel the transfer) after this long', parseIntOption('--timeout', 1, LIMITS.maxLeaderTransferWaitMs), 10_000)
    .action((options: TransferOptions) => runTransfer(options));
  withClusterOptions(leader.command('preferred'))
    .description('set the preferred leader (replicated): the leader hands leadership to it whenever it is up and caught up; "none" clears it')
    .argument('<id>', 'a node id of the config, or none')
    .option('--json', 'print {"preferredLeader"} (null: none)')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action((id: string, options: PreferredOptions) => runPreferred(id, options));
}

function checkNodeId(config: ClientConfig, id: string, flag: string): void {
  if (!config.nodes.some((n) => n.id === id)) {
    throw new LmqError('LMQ_BAD_INPUT', `${flag} "${id}" is not a node of ${config.clusterId} (its nodes: ${config.nodes.map((n) => n.id).join(', ')})`);
  }
}

async function runTransfer(options: TransferOptions): Promise<void> {
  checkNodeId(await loadClientConfig(options.config), options.to, '--to');
  const callMs = options.timeout + CALL_MARGIN_MS;
  const moved = await withClient(options, callMs, (client) => client.call({ op: 'transferLeader', to: options.to, waitMs: options.timeout }, callMs, callMs));
  if (options.json) process.stdout.write(`${JSON.stringify(moved)}\n`);
  else process.stdout.write(moved.moved ? `leadership moved to ${moved.leader} (term ${moved.term})\n` : `${moved.leader} leads already (term ${moved.term})\n`);
}

async function runPreferred(id: string, options: PreferredOptions): Promise<void> {
  if (id !== NONE) checkNodeId(await loadClientConfig(options.config), id, 'leader preferred');
  const { preferredLeader } = await withClient(options, options.timeout, (client) => client.call({ op: 'setPreferredLeader', node: id === NONE ? null : id }));
  if (options.json) process.stdout.write(`${JSON.stringify({ preferredLeader })}\n`);
  else process.stdout.write(preferredLeader === null ? 'no preferred leader: leadership stays where elections put it\n' : `preferred leader: ${preferredLeader} (it takes leadership whenever it is up and caught up)\n`);
}
