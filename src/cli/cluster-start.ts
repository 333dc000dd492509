// `ledgermq cluster start`: every node of the config as a child process, their logs merged on
// stderr (pretty on a terminal, JSON otherwise), leader changes announced on stdout. Stays in
// the foreground; SIGINT/SIGTERM stop every node cleanly. A node that dies is reported, not
// restarted: killing nodes on purpose is how people test the cluster.
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { type ClusterConfig, loadConfig } from '../config/config.js';
import { createClusterSecretIfMissing } from '../security/cluster-secret.js';
import type { NodeStatus } from '../protocol/index.js';
import { loadAclFile } from '../security/acl-source.js';
import { readNodeTls } from '../security/tls.js';
import { isLmqError } from '../util/errors.js';
import { type ConnectOptions, withClusterOptions } from './options.js';
import { accessFrom, type ClientAccess, clientFor } from './connect.js';
import { LOG_FORMAT_ENV, prettyStream } from './logging.js';
import { applyModeOverrides, modeOptions, type ModeOverrides } from './mode-options.js';
import { withDataRoot } from './node-start.js';
import { consoleUrl } from '../http/console-url.js';

interface ClusterStartOptions extends ModeOverrides, ConnectOptions {
  data?: string;
}

/** A child that has not exited this long after SIGTERM is killed. */
const STOP_GRACE_MS = 10_000;
const STATUS_POLL_MS = 300;

export function registerClusterStart(program: Command): void {
  const cluster = program.command('cluster').description('run the whole local cluster');
  modeOptions(withClusterOptions(cluster.command('start')))
    .description('start every node of the config as a child process (Ctrl-C stops them all)')
    .option('--data <dir>', 'data root: node data in DIR/<id>')
    .action(async (options: ClusterStartOptions) => {
      const config = applyModeOverrides(withDataRoot(loadConfig(options.config), options.data), options);
      // A bad ACL file is one line and exit 2 here, not three nodes exiting one by one.
      if (config.security?.aclFile !== undefined) loadAclFile(config.security.aclFile);
      // Likewise every node's certificate, key and CA (a node checks its own again at start).
      const tls = config.security?.tls;
      if (tls !== undefined) for (const node of config.nodes) readNodeTls(tls, node.id);
      await runCluster(resolve(options.config), options, config);
    });
}

async function runCluster(configPath: string, options: ClusterStartOptions, config: ClusterConfig): Promise<void> {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const logSink = process.stderr.isTTY ? prettyStream() : process.stderr;
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const secretFile = config.security?.clusterSecretFile;
  // The one place a secret is created: `node start` never does (cluster-secret.ts says why).
  if (secretFile !== undefined && createClusterSecretIfMissing(secretFile)) {
    process.stdout.write(`created cluster secret ${secretFile} (mode 0600); every node of the cluster needs this file\n`);
  }
  for (const node of config.nodes) {
    const args = [main, 'node', 'start', '--id', node.id, '--config', configPath, '--flush', config.flush.mode, '--quorum', config.quorum];
    if (options.data !== undefined) args.push('--data', options.data);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, [LOG_FORMAT_ENV]: 'json' } });
    children.set(node.id, child);
    createInterface({ input: child.stderr! }).on('line', (line) => logSink.write(`${line}\n`));
    child.on('exit', (code, signal) => {
      children.delete(node.id);
      process.stdout.write(`node ${node.id} exited (${signal ?? `code ${code}`})\n`);
      if (children.size === 0 && !stopping) {
        // Every node is gone (busy ports, a bad data dir…): their logs above say why.
        process.stderr.write('ledgermq: every node of the cluster has exited; see their logs above\n');
        process.exit(1);
      }
    });
    const url = consoleUrl(node);
    process.stdout.write(`node ${node.id} started (pid ${child.pid}, raft ${node.host}:${node.raftPort}, client ${node.host}:${node.clientPort}${grpcEndpointText(node)}, data ${node.dataDir}${url === null ? '' : `, console ${url}`})\n`);
  }
  const stopped = new Promise<void>((done) => {
    const stop = () => {
      if (stopping) return;
      stopping = true;
      process.stdout.write('stopping the cluster…\n');
      void stopChildren(children).then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await Promise.race([announceLeaders(config, accessFrom(options, config), () => stopping || children.size === 0), stopped]);
  await stopped;
  process.stdout.write('cluster stopped\n');
}

async function announceLeaders(config: ClusterConfig, access: ClientAccess, done: () => boolean): Promise<void> {
  const client = clientFor(config, 1000, access);
  let announced = '';
  let refused = false;
  const statusOf = (id: string) => client.callNode(id, { op: 'status' }, 500).catch((error: unknown) => {
    if (isLmqError(error, 'LMQ_UNAUTHENTICATED') || isLmqError(error, 'LMQ_FORBIDDEN')) refused = true;
    return null;
  });
  try {
    while (!done()) {
      const statuses = await Promise.all(config.nodes.map((n) => statusOf(n.id)));
      if (refused) {
        // The nodes run; only watching them needs a user of their ACL.
        process.stdout.write('leader changes are not announced: the cluster has an ACL; pass --access-key/--secret-key (or LMQ_ACCESS_KEY/LMQ_SECRET_KEY) to see them\n');
        return;
      }
      const leader = statuses.find((s) => s?.role === 'leader');
      const line = leader ? `leader: ${leader.id} (term ${leader.term})` : 'no leader';
      if (line !== announced && (leader || announced !== '')) process.stdout.write(`${line}\n`);
      if (leader || announced !== '') announced = line;
      await sleep(STATUS_POLL_MS);
    }
  } finally {
    client.close();
  }
}

async function stopChildren(children: Map<string, ChildProcess>): Promise<void> {
  const exits = [...children.values()].map((child) => new Promise<void>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS).unref();
  }));
  await Promise.all(exits);
}

/** The RocketMQ 5 endpoint a node serves (src/grpc), as a client's `endpoints` option takes it. */
function grpcEndpointText(node: { host: string; grpcPort?: number | undefined }): string {
  return node.grpcPort === undefined ? '' : `, rocketmq grpc ${node.host}:${node.grpcPort}`;
}
