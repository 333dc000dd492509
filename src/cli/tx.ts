// `ledgermq txcheck` and `ledgermq tx list`: the operator's side of transactional messages.
// txcheck is a long-running responder for a producer group: it holds the group's check-back
// poll and answers every check with one fixed answer — for every open transaction of the
// group, those of producers that exited included (a check goes to any live producer of the
// group). tx list shows the open transactions with their check counts.
import { type Command, Option } from 'commander';
import { clientFor, accessFrom, formatTable, withClient } from './connect.js';
import { type ConnectOptions, parseIntOption, withClusterOptions } from './options.js';
import { loadClientConfig } from '../config/client-config.js';
import { TransactionProducer, type TransactionState } from '../client/transaction.js';
import { DEFAULT_CLIENT_OPTIONS } from '../client/client.js';
import type { TxCheck, TxOutcome } from '../protocol/index.js';

const ANSWERS = ['commit', 'rollback', 'unknown'] as const;
const STATE_OF: Readonly<Record<(typeof ANSWERS)[number], TransactionState>> = { commit: 'COMMIT', rollback: 'ROLLBACK', unknown: 'UNKNOWN' };
/** The same failure is reported at most this often (a cluster that is down fails every poll). */
const ERROR_REPEAT_MS = 10_000;

interface TxCheckOptions extends ConnectOptions {
  producerGroup: string;
  answer: (typeof ANSWERS)[number];
  timeout?: number;
  json?: boolean;
}

interface ListOptions extends ConnectOptions {
  json?: boolean;
  timeout: number;
}

export function registerTx(program: Command): void {
  withClusterOptions(program.command('txcheck'))
    .description("answer a producer group's transaction check-backs (every open transaction of the group) until --timeout or SIGINT")
    .requiredOption('--producer-group <group>', 'the producer group whose check-backs to answer')
    .addOption(new Option('--answer <answer>', 'what every check-back is answered').choices(ANSWERS).makeOptionMandatory())
    .option('--timeout <ms>', 'stop (exit 0) after this long; default: until SIGINT or SIGTERM', parseIntOption('--timeout', 1, 2_147_483_647))
    .option('--json', 'one line per answered check-back: {"txId","producerGroup","checks","messages","answer","outcome"}')
    .action((options: TxCheckOptions) => runTxCheck(options));
  const tx = program.command('tx').description('transactional messages');
  withClusterOptions(tx.command('list'))
    .description('the open transactions (half messages not yet committed or rolled back), oldest first')
    .option('--json', 'one line per transaction: {"txId","producerGroup","producerId","topics","messages","storedAtMs","checks","nextCheckAtMs"}')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action((options: ListOptions) => runList(options));
}

async function runTxCheck(options: TxCheckOptions): Promise<void> {
  const config = await loadClientConfig(options.config);
  const client = clientFor(config, DEFAULT_CLIENT_OPTIONS.timeoutMs, accessFrom(options, config));
  const answer = STATE_OF[options.answer];
  let lastError = { text: '', atMs: -Infinity };
  const producer = new TransactionProducer(client, {
    producerGroup: options.producerGroup,
    transactionChecker: () => answer,
    onCheck: (check, _state, outcome) => printAnswer(check, options, outcome),
    onError: (error) => {
      const text = error instanceof Error ? error.message : String(error);
      if (text === lastError.text && performance.now() - lastError.atMs < ERROR_REPEAT_MS) return;
      lastError = { text, atMs: performance.now() };
      process.stderr.write(`ledgermq: txcheck: ${text} (retrying)\n`);
    },
  });
  producer.start();
  process.stderr.write(`ledgermq: answering check-backs of producer group ${options.producerGroup} with ${options.answer}\n`);
  await new Promise<void>((resolve) => {
    if (options.timeout !== undefined) setTimeout(resolve, options.timeout).unref();
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const stopped = producer.stop();
  client.close(); // ends the poll held at the leader now
  await stopped;
}

function printAnswer(check: TxCheck, options: TxCheckOptions, outcome: TxOutcome | null): void {
  if (options.json) {
    const line = { txId: check.txId, producerGroup: check.producerGroup, checks: check.checks, messages: check.messages, answer: options.answer, outcome };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return;
  }
  const ended = outcome === null ? 'left open' : outcome === 'commit' ? 'committed' : 'rolled back';
  process.stdout.write(`${check.txId}: check ${check.checks}, ${check.messages} messages, answered ${options.answer}: ${ended}\n`);
}

async function runList(options: ListOptions): Promise<void> {
  const { transactions } = await withClient(options, options.timeout, (client) => client.call({ op: 'txList' }));
  if (options.json) {
    for (const tx of transactions) {
      const line = { txId: tx.txId, producerGroup: tx.producerGroup, producerId: tx.producerId, topics: tx.topics, messages: tx.messages, storedAtMs: tx.storedAtMs, checks: tx.checks, nextCheckAtMs: tx.nextCheckAtMs };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
    return;
  }
  if (transactions.length === 0) return;
  const rows = transactions.map((tx) => [tx.txId, tx.producerGroup, tx.topics.join(','), String(tx.messages), new Date(tx.storedAtMs).toISOString(), String(tx.checks), new Date(tx.nextCheckAtMs).toISOString()]);
  process.stdout.write(formatTable(['txId', 'producer group', 'topics', 'messages', 'stored', 'checks', 'next check'], rows));
}
