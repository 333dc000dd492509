// `ledgermq chaos` (CONTRACT.md): a fresh local cluster under a produce/consume workload and
// seeded faults; prints the seed first and the verdict last; exit 1 unless the history is valid.
// SIGINT/SIGTERM stop the run and every process it started.
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { FLUSH_MODES, type FlushMode, QUORUM_MODES, type QuorumMode } from '../config/config.js';
import { DEFAULT_NEMESES, NEMESES, type NemesisKind } from '../chaos/nemesis.js';
import { formatLossWindow } from '../chaos/power-loss.js';
import { CHAOS_WORKLOADS, type ChaosWorkloadKind, chaosDurationMaxS, chaosMessageBytesMax, chaosRetentionMaxBytesMin, runChaos } from '../chaos/runner.js';
import { PLANT_KINDS, PLANTS, type PlantKind } from '../chaos/plants.js';
import { CHAOS_CLIENTS, type ChaosClientKind, RMQ_WORKLOADS } from '../chaos/rmq-workload.js';
import { LmqError } from '../util/errors.js';
import { parseIntOption, withConfig } from './options.js';

interface ChaosCommandOptions {
  duration: number;
  nemesis: NemesisKind[];
  seed?: number;
  flush: FlushMode;
  quorum: QuorumMode;
  out?: string;
  retentionMaxBytes?: number;
  messageBytes?: number;
  workload?: ChaosWorkloadKind;
  plant?: PlantKind;
  client: ChaosClientKind;
  json?: boolean;
}

function parseNemeses(value: string): NemesisKind[] {
  const kinds = value.split(',').map((k) => k.trim()).filter((k) => k.length > 0);
  const unknown = kinds.filter((k) => !(NEMESES as readonly string[]).includes(k));
  if (kinds.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(`--nemesis takes a comma-separated list of ${NEMESES.join(', ')}, not "${value}"`);
  }
  return [...new Set(kinds)] as NemesisKind[];
}

export function registerChaos(program: Command): void {
  withConfig(
    program
      .command('chaos')
      .description('run a fresh 3-node cluster under a produce/consume workload and seeded faults, then check the history')
      .requiredOption('--duration <seconds>', 'seconds of faults', parseIntOption('--duration', 1, chaosDurationMaxS))
      .option('--nemesis <list>', `faults to pick from each round: ${NEMESES.join(',')} (power: cuts of all nodes or a majority, in storage mode lazy)`, parseNemeses, [...DEFAULT_NEMESES])
      .option('--seed <s>', 'seed of the fault schedule and workload (default: random, printed)', parseIntOption('--seed', 0, 2 ** 31 - 1))
      .addOption(new Option('--flush <mode>', 'flush mode of the cluster').choices(FLUSH_MODES).default('sync'))
      .addOption(new Option('--quorum <mode>', 'quorum mode of the cluster').choices(QUORUM_MODES).default('majority'))
      .option(
        '--retention-max-bytes <bytes>',
        'bound every node\'s log to this many bytes (segments of a quarter of it), so retention deletes messages and InstallSnapshot catches up nodes during the run',
        parseIntOption('--retention-max-bytes', chaosRetentionMaxBytesMin, 2 ** 50),
      )
      .addOption(
        new Option('--workload <kind>', 'queue: keyed sends, per-queue consumers; delay: every send delayed up to 5 s (early/late delivery); retry: push consumers failing 30% of deliveries, killed mid-listener (lost retries, retries past the limit, early dead letters); orderly: orderly consumers suspending 10%, killed mid-listener (two consumers on one queue); simple: simple consumers (receive, ack) leaving 20% unacked, killed mid-batch (acked messages received again); tx: transactional producers committing, rolling back or dying before the end, with a check-back responder (lost commits, visible rollbacks, partial or early transactions); filter: sends tagged a, b or c, consumers subscribed to "a || b" (matching messages skipped, excluded ones delivered)')
          .choices(CHAOS_WORKLOADS),
      )
      .addOption(
        new Option('--plant <bug>', "the checker's self-test: the workload's clients misbehave in this named way (implies its workload); the run must come out invalid with that anomaly")
          .choices(PLANT_KINDS),
      )
      .addOption(
        new Option('--client <kind>', `native: ledgermq's own clients; rocketmq: producers and simple consumers speak RocketMQ 5 gRPC to the nodes' endpoints (workload ${RMQ_WORKLOADS.join(', ')}, the default then), on a one-queue topic`)
          .choices(CHAOS_CLIENTS)
          .default('native'),
      )
      .option('--message-bytes <bytes>', 'pad every message body to this many bytes (default: a short unique name)', parseIntOption('--message-bytes', 1, chaosMessageBytesMax))
      .option('--out <dir>', 'where to write history.jsonl, report.json, report.txt, timeline.svg (default: ./chaos-out/<time>-seed<S>)')
      .option('--json', 'print {"valid":…,"acked":N,"faults":N,"anomalies":{…},"history":"…"} on stdout'),
  ).action((options: ChaosCommandOptions) => runChaosCommand(options));
}

async function runChaosCommand(options: ChaosCommandOptions): Promise<void> {
  const rocketmq = options.client === 'rocketmq';
  const workload = options.workload ?? (options.plant !== undefined ? PLANTS[options.plant].workload : rocketmq ? RMQ_WORKLOADS[0]! : 'queue');
  if (options.plant !== undefined && PLANTS[options.plant].workload !== workload) {
    throw new LmqError('LMQ_BAD_INPUT', `--plant ${options.plant} runs under --workload ${PLANTS[options.plant].workload}, not ${workload}; leave --workload out`);
  }
  if (rocketmq && !RMQ_WORKLOADS.includes(workload)) {
    throw new LmqError('LMQ_BAD_INPUT', `--client rocketmq runs --workload ${RMQ_WORKLOADS.join(', ')}, not ${workload} (the gRPC endpoint serves no pull consumer, so the other workloads' clients cannot speak it)`);
  }
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const outDir = resolve(options.out ?? join('chaos-out', `${new Date().toISOString().replace(/[:.]/g, '-')}-seed${seed}`));
  const say = (line: string) => process.stderr.write(`chaos: ${line}\n`);
  const extraFlags =
    (options.retentionMaxBytes === undefined ? '' : ` --retention-max-bytes ${options.retentionMaxBytes}`) +
    (options.messageBytes === undefined ? '' : ` --message-bytes ${options.messageBytes}`) +
    (workload === 'queue' ? '' : ` --workload ${workload}`) +
    (options.plant === undefined ? '' : ` --plant ${options.plant}`) +
    (rocketmq ? ' --client rocketmq' : '');
  say(`seed ${seed}; workload ${workload}${rocketmq ? ' through RocketMQ 5 gRPC clients' : ''}${options.plant === undefined ? '' : ` with the planted bug ${options.plant}`}; nemesis ${options.nemesis.join(',')}; flush ${options.flush}; quorum ${options.quorum}; ${options.duration} s; output ${outDir}`);
  say(`replay: ./bin/ledgermq chaos --duration ${options.duration} --nemesis ${options.nemesis.join(',')} --seed ${seed} --flush ${options.flush} --quorum ${options.quorum}${extraFlags}`);
  const abort = new AbortController();
  const interrupt = () => {
    say('interrupted; stopping the cluster');
    abort.abort();
  };
  // `on`, not `once`: a second Ctrl-C must not kill this process before it stopped its nodes.
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  try {
    const result = await runChaos({
      durationS: options.duration, workloadKind: workload, client: options.client, ...(options.plant === undefined ? {} : { plant: options.plant }), nemeses: options.nemesis, seed, flush: options.flush, quorum: options.quorum, outDir, log: say, signal: abort.signal,
      ...(options.retentionMaxBytes === undefined ? {} : { retentionMaxBytes: options.retentionMaxBytes }),
      ...(options.messageBytes === undefined ? {} : { workload: { messageBytes: options.messageBytes } }),
    });
    const { retainedAwaySends } = result.report;
    if (options.json === true) {
      const { seed: s, valid, verdict, acked, faults, anomalies, crashedNodes, powerLoss, lossExplained, historyPath, reportPath, timelinePath } = result;
      const power = powerLoss === null ? {} : { powerLoss, lossExplained };
      process.stdout.write(`${JSON.stringify({ valid, verdict, seed: s, acked, faults, anomalies, crashedNodes, ...power, retainedAwaySends, history: historyPath, report: reportPath, timeline: timelinePath })}\n`);
    } else {
      const found = Object.entries(result.anomalies).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
      const crashed = result.crashedNodes.length > 0 ? `, nodes that crashed by themselves: ${result.crashedNodes.join(', ')}` : '';
      process.stdout.write(`${result.verdict.toUpperCase()}: seed ${seed}, ${result.acked} acked, ${result.faults} faults${found.length > 0 ? `, anomalies: ${found.join(', ')}` : ''}${crashed}\n`);
      if (retainedAwaySends.count > 0) process.stdout.write(`retention deleted ${retainedAwaySends.count} acked messages before the drain (${retainedAwaySends.readBeforeRetention} of them read before)\n`);
      if (result.powerLoss !== null) process.stdout.write(`${formatLossWindow(result.powerLoss).join('\n')}\n`);
      if (result.lossExplained !== null) process.stdout.write(`${result.lossExplained}\n`);
      process.stdout.write(`history ${result.historyPath}\nreport ${join(outDir, 'report.txt')}\ntimeline ${result.timelinePath}\n`);
    }
    process.exitCode = result.valid ? 0 : 1;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}
