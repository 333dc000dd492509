// Side by side with NATS JetStream (`npm run bench:jetstream -- [ROUNDS] [DURATION_S]`, issue 17):
// the same workload on the same machine, rounds interleaved so both see the same host: 128 B
// messages, 256 in flight from one client, three servers on 127.0.0.1 with three replicas.
//   ledgermq sync:majority: `ledgermq bench --modes sync:majority` with --max-batch 256 (the
//     producer batches the sends waiting behind its requests) and --max-batch 1 (one send per
//     request, as the NATS client publishes);
//   JetStream: an R3 file-storage stream on three nats-server processes (a cluster of routes),
//     one js.publish per message awaiting its PubAck — the server's default (it does not fsync
//     per message: the page cache, synced every 2 minutes) and, on nats-server 2.10+,
//     `sync_interval: always` (an fsync per write, what ledgermq's sync flush does).
// Server CPU per message is the three servers' user + system CPU (/proc/<pid>/stat) over the
// measured window divided by the messages acknowledged in it, as `bench` reports
// serverCpuUsPerMsg. Neither NATS part is a dependency of ledgermq: nats-server comes from the
// machine when it is 2.10+, else Debian trixie's package is unpacked into
// ~/.cache/ledgermq-bench/nats-server (NATS_SERVER=path overrides both), and the `nats` client
// is installed on first use into ~/.cache/ledgermq-bench/nats. Writes
// bench/results/jetstream.json with the disk's fdatasync and the load beside the figures.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cpuSeconds, latencyHistogram, recordLatencyMs, summarize } from '../src/bench/measure.js';
import { formatTable } from '../src/bench/report.js';
import { describeMachine, machineContext } from './node-sampler.js';
import { countArgument, median } from './script.js';

const ROUNDS = countArgument(2, 'ROUNDS', 2);
const DURATION_S = countArgument(3, 'DURATION_S', 6);
const WARMUP_S = 2;
const BODY_BYTES = 128;
const IN_FLIGHT = 256;
const NATS_CLIENT_PORTS = [14222, 14223, 14224];
const NATS_ROUTE_PORTS = [16222, 16223, 16224];
const STREAM_READY_TIMEOUT_MS = 30_000;
const PUBLISH_RETRY_PAUSE_MS = 10;
const NATS_CLIENT_DIR = join(homedir(), '.cache', 'ledgermq-bench', 'nats');
const NATS_SERVER_DIR = join(homedir(), '.cache', 'ledgermq-bench', 'nats-server');
/** Debian's suite whose nats-server is 2.10+ (bookworm's is 2.9.10). */
const DEBIAN_NATS_SUITE = 'trixie';
const ROOT = join(import.meta.dirname, '..', '..');
const RESULT_PATH = join(ROOT, 'bench', 'results', 'jetstream.json');

interface Row {
  readonly system: string;
  readonly round: number;
  readonly msgsPerSec: number;
  readonly serverCpuUsPerMsg: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly errors: number;
}

/** The parts of the `nats` client (2.x) this script uses. */
interface NatsModule {
  connect(options: { servers: string[] }): Promise<NatsConnection>;
  StorageType: { File: string };
}
interface NatsConnection {
  jetstreamManager(): Promise<{ streams: { add(config: Record<string, unknown>): Promise<unknown> } }>;
  jetstream(): { publish(subject: string, data: Uint8Array): Promise<unknown> };
  close(): Promise<void>;
}

/**
 * nats-server's path and version, 2.10+ wherever it can be had: `NATS_SERVER` if set, else the
 * machine's, else one unpacked into NATS_SERVER_DIR. A missing or older machine binary (Debian
 * bookworm ships 2.9.10, which has no `sync_interval`) is replaced by Debian trixie's package,
 * fetched with apt-get into that directory (its own sources list and state, so no root and no
 * change to the machine) and unpacked with dpkg-deb; where that cannot run, an older machine
 * binary is used for JetStream's default alone.
 */
function natsServer(): { path: string; version: string } {
  const pinned = process.env['NATS_SERVER'];
  if (pinned !== undefined) return { path: pinned, version: versionOf(pinned) };
  const machinePath = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((path) => existsSync(path)) ?? which('nats-server');
  const machine = machinePath === undefined ? undefined : { path: machinePath, version: versionOf(machinePath) };
  if (machine !== undefined && atLeast(machine.version, 2, 10)) return machine;
  const unpacked = join(NATS_SERVER_DIR, 'root', 'usr', 'sbin', 'nats-server');
  if (existsSync(unpacked)) return { path: unpacked, version: versionOf(unpacked) };
  const missing = 'nats-server 2.10+ is not installed: install it (https://github.com/nats-io/nats-server/releases, or `apt-get install nats-server` on Debian trixie or later: bookworm\'s is 2.9.10), or set NATS_SERVER to its path, and run again';
  try {
    if (which('apt-get') === undefined || which('dpkg-deb') === undefined) throw new Error('apt-get or dpkg-deb is missing');
    fetchDebianNatsServer();
    return { path: unpacked, version: versionOf(unpacked) };
  } catch (error) {
    if (machine === undefined) throw new Error(`${missing} (fetching Debian's package failed: ${(error as Error).message})`);
    console.log(`cannot fetch nats-server 2.10+ (${(error as Error).message}); running the machine's ${machine.version}`);
    return machine;
  }
}

/** Debian trixie's nats-server package (2.10.x), downloaded and unpacked under NATS_SERVER_DIR. */
function fetchDebianNatsServer(): void {
  console.log(`fetching nats-server 2.10+ (Debian ${DEBIAN_NATS_SUITE}'s package) into ${NATS_SERVER_DIR} …`);
  const lists = join(NATS_SERVER_DIR, 'lists');
  mkdirSync(join(lists, 'partial'), { recursive: true });
  mkdirSync(join(NATS_SERVER_DIR, 'cache', 'archives', 'partial'), { recursive: true });
  const sources = join(NATS_SERVER_DIR, 'sources.list');
  writeFileSync(sources, `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${DEBIAN_NATS_SUITE} main\n`);
  const apt = ['-o', `Dir::Etc::SourceList=${sources}`, '-o', 'Dir::Etc::SourceParts=/dev/null', '-o', `Dir::State::Lists=${lists}`, '-o', `Dir::Cache=${join(NATS_SERVER_DIR, 'cache')}`, '-o', 'Debug::NoLocking=1'];
  execFileSync('apt-get', [...apt, 'update'], { stdio: 'inherit' });
  execFileSync('apt-get', [...apt, 'download', `nats-server/${DEBIAN_NATS_SUITE}`], { stdio: 'inherit', cwd: NATS_SERVER_DIR });
  const deb = readdirSync(NATS_SERVER_DIR).find((name) => name.startsWith('nats-server_') && name.endsWith('.deb'));
  if (deb === undefined) throw new Error(`apt-get download left no nats-server package in ${NATS_SERVER_DIR}`);
  execFileSync('dpkg-deb', ['-x', join(NATS_SERVER_DIR, deb), join(NATS_SERVER_DIR, 'root')], { stdio: 'inherit' });
}

function versionOf(path: string): string {
  const version = /v?(\d+\.\d+\.\d+)/.exec(execFileSync(path, ['--version'], { encoding: 'utf8' }))?.[1];
  if (version === undefined) throw new Error(`cannot read the version of ${path}`);
  return version;
}

function which(command: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/** The `nats` client, installed into NATS_CLIENT_DIR on first use (never into this package). */
async function natsClient(): Promise<NatsModule> {
  const entry = join(NATS_CLIENT_DIR, 'node_modules', 'nats', 'index.js');
  if (!existsSync(entry)) {
    mkdirSync(NATS_CLIENT_DIR, { recursive: true });
    console.log(`installing the nats client into ${NATS_CLIENT_DIR} …`);
    execFileSync('npm', ['install', '--prefix', NATS_CLIENT_DIR, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', 'nats@2'], { stdio: 'inherit' });
  }
  return (await import(pathToFileURL(entry).href)) as NatsModule;
}

function atLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

/** The last characters each nats-server wrote to stderr: what a round that cannot start reports. */
const stderrTails = new WeakMap<ChildProcess, string>();
const MAX_STDERR_TAIL_CHARS = 2_000;

/** Three nats-server processes in one cluster, JetStream on, with the given extra jetstream settings. */
function startNatsCluster(server: string, dir: string, jetstreamExtra: string): ChildProcess[] {
  const routes = NATS_ROUTE_PORTS.map((port) => `"nats://127.0.0.1:${port}"`).join(', ');
  return NATS_CLIENT_PORTS.map((port, i) => {
    const name = `n${i + 1}`;
    const config = join(dir, `${name}.conf`);
    writeFileSync(config, [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${port}`,
      `jetstream { ${[`store_dir: "${join(dir, name)}"`, ...(jetstreamExtra === '' ? [] : [jetstreamExtra])].join(', ')} }`,
      `cluster { name: bench, listen: 127.0.0.1:${NATS_ROUTE_PORTS[i]}, routes: [${routes}] }`,
    ].join('\n'));
    const child = spawn(server, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderrTails.set(child, ((stderrTails.get(child) ?? '') + text).slice(-MAX_STDERR_TAIL_CHARS));
    });
    return child;
  });
}

async function stopAll(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(children.map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  })));
}

/** One JetStream round: the stream created (R3, file), warm-up, then DURATION_S measured. */
async function jetstreamRound(nats: NatsModule, server: string, label: string, jetstreamExtra: string, round: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-jetstream-'));
  const servers = startNatsCluster(server, dir, jetstreamExtra);
  let connection: NatsConnection | null = null;
  try {
    const deadline = Date.now() + STREAM_READY_TIMEOUT_MS;
    for (;;) {
      try {
        connection ??= await nats.connect({ servers: NATS_CLIENT_PORTS.map((port) => `127.0.0.1:${port}`) });
        const manager = await connection.jetstreamManager();
        await manager.streams.add({ name: 'BENCH', subjects: ['bench'], num_replicas: 3, storage: nats.StorageType.File });
        break;
      } catch (error) {
        const exited = servers.find((child) => child.exitCode !== null);
        if (exited !== undefined) throw new Error(`nats-server exited with code ${exited.exitCode}: ${stderrTails.get(exited)?.trim() ?? ''}`);
        if (Date.now() > deadline) throw new Error(`JetStream did not come up in ${STREAM_READY_TIMEOUT_MS} ms: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    const js = connection.jetstream();
    const body = new Uint8Array(BODY_BYTES).fill(0x6d);
    const latencies = latencyHistogram();
    let acked = 0;
    let errors = 0;
    let measuring = false;
    let stopping = false;
    const worker = async () => {
      while (!stopping) {
        const startedMs = performance.now();
        try {
          await js.publish('bench', body);
          if (measuring) {
            acked += 1;
            recordLatencyMs(latencies, performance.now() - startedMs);
          }
        } catch {
          if (measuring) errors += 1;
          await new Promise((resolve) => setTimeout(resolve, PUBLISH_RETRY_PAUSE_MS)); // not a busy loop while a server is down
        }
      }
    };
    const workers = Array.from({ length: IN_FLIGHT }, worker);
    await new Promise((resolve) => setTimeout(resolve, WARMUP_S * 1000));
    const pids = servers.map((child) => child.pid!);
    const cpuBefore = pids.map((pid) => cpuSeconds(pid) ?? Number.NaN);
    const startedMs = performance.now();
    measuring = true;
    await new Promise((resolve) => setTimeout(resolve, DURATION_S * 1000));
    measuring = false;
    const elapsedS = (performance.now() - startedMs) / 1000;
    const cpuUsedS = pids.reduce((sum, pid, i) => sum + (cpuSeconds(pid) ?? Number.NaN) - cpuBefore[i]!, 0);
    stopping = true;
    await Promise.all(workers);
    if (acked === 0) throw new Error(`${label}: no publish was acknowledged in ${DURATION_S} s (${errors} failed)`);
    const { p50Ms, p99Ms } = summarize(latencies);
    return { system: label, round, msgsPerSec: Math.round(acked / elapsedS), serverCpuUsPerMsg: Math.round((cpuUsedS * 1e6 / acked) * 10) / 10, p50Ms, p99Ms, errors };
  } finally {
    await connection?.close().catch(() => undefined);
    await stopAll(servers);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One ledgermq round: the real CLI's bench, a fresh cluster, its JSON read back. */
function ledgermqRound(maxBatch: number, round: number): Row {
  const out = mkdtempSync(join(tmpdir(), 'lmq-jetstream-side-'));
  try {
    const run = spawnSync(process.execPath, [join(ROOT, 'bin', 'ledgermq'), 'bench', '--modes', 'sync:majority', '--duration', String(DURATION_S), '--warmup', String(WARMUP_S), '--size', String(BODY_BYTES), '--concurrency', String(IN_FLIGHT), '--max-batch', String(maxBatch), '--json', '--out', out], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (run.status !== 0) throw new Error(`ledgermq bench failed (exit ${run.status}): ${run.stderr.trim().split('\n').at(-1) ?? ''}`);
    const [result] = (JSON.parse(run.stdout) as { results: { msgsPerSec: number; serverCpuUsPerMsg: number; p50Ms: number; p99Ms: number; errors: number }[] }).results;
    if (result === undefined) throw new Error('ledgermq bench printed no result');
    return { system: `ledgermq sync:majority --max-batch ${maxBatch}`, round, msgsPerSec: result.msgsPerSec, serverCpuUsPerMsg: result.serverCpuUsPerMsg, p50Ms: result.p50Ms, p99Ms: result.p99Ms, errors: result.errors };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const server = natsServer();
  const nats = await natsClient();
  const syncAlways = atLeast(server.version, 2, 10);
  const machine = machineContext();
  console.log(`nats-server ${server.version} (${server.path}); ${describeMachine(machine)}`);
  if (!syncAlways) console.log(`JetStream sync_interval: always needs nats-server 2.10+; ${server.version} runs JetStream's default only`);
  const rows: Row[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const step of [
      () => ledgermqRound(256, round),
      () => jetstreamRound(nats, server.path, 'JetStream R3 file (default: no fsync per message)', '', round),
      () => ledgermqRound(1, round),
      ...(syncAlways ? [() => jetstreamRound(nats, server.path, 'JetStream R3 file, sync_interval: always', 'sync_interval: always', round)] : []),
    ]) {
      const row = await step();
      rows.push(row);
      console.log(`round ${round}: ${row.system}: ${row.msgsPerSec} msgs/s, ${row.serverCpuUsPerMsg} µs server CPU/msg, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, errors ${row.errors}`);
    }
  }
  const systems = [...new Set(rows.map((row) => row.system))];
  const summary = systems.map((system) => {
    const of = rows.filter((row) => row.system === system);
    const tenth = (value: number) => Math.round(value * 10) / 10;
    return { system, msgsPerSec: tenth(median(of.map((row) => row.msgsPerSec))), serverCpuUsPerMsg: tenth(median(of.map((row) => row.serverCpuUsPerMsg))), rounds: of.length };
  });
  console.log(`\nmedians of ${ROUNDS} interleaved rounds, ${DURATION_S} s each, ${BODY_BYTES} B, ${IN_FLIGHT} in flight\n`);
  console.log(formatTable(['system', 'msgs/s', 'server µs/msg'], summary.map((s) => [s.system, s.msgsPerSec, s.serverCpuUsPerMsg])));
  writeFileSync(RESULT_PATH, `${JSON.stringify({ natsServer: server.version, durationS: DURATION_S, bodyBytes: BODY_BYTES, inFlight: IN_FLIGHT, machine, summary, rows }, null, 2)}\n`);
  console.log(`\nwritten to ${RESULT_PATH}`);
}

await main();
