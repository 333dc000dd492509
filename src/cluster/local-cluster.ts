// A local cluster of real `ledgermq node start` processes on free ports in a temp dir, for
// tests, chaos runs and benchmarks that kill (SIGKILL), pause (SIGSTOP) and restart nodes.
// Each node's log goes to <dir>/<id>.log; dispose() kills every child and removes the dir.
// Peers authenticate with a cluster secret (<dir>/cluster.secret) unless overrides say otherwise;
// `tls` adds security.tls with certificates made by `certs init`'s code (<dir>/certs).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { type Connector, LedgerClient, DEFAULT_CLIENT_OPTIONS } from '../client/client.js';
import { type ClusterConfig, loadConfig } from '../config/config.js';
import { createClusterSecretIfMissing } from '../security/cluster-secret.js';
import type { NodeStatus } from '../protocol/index.js';
import { tcpConnector, tlsConnector } from '../client/tcp-connector.js';
import { initCerts } from '../security/cert-authority.js';
import { readTlsCa } from '../security/tls.js';
import type { StorageMode } from '../log/file-io.js';
import type { Credentials } from '../security/signature.js';
import { freePorts } from './ports.js';
import { assert } from '../util/assert.js';
import { until } from '../util/until.js';

/** The CLI entry, found from this module (src/ or dist/src/). */
/** Where `LaunchOptions.acl` is written, relative to the cluster's config. */
export const ACL_FILE = 'acl.json';
/** Where `LaunchOptions.tls` puts the CA and node certificates, relative to the cluster's config. */
export const CERTS_DIR = 'certs';
/** security.tls of a cluster launched with `tls`. */
export const LOCAL_TLS = Object.freeze({ cert: `${CERTS_DIR}/{id}.pem`, key: `${CERTS_DIR}/{id}.key`, ca: `${CERTS_DIR}/ca.pem` });

const BIN = resolve(import.meta.dirname, import.meta.dirname.includes(`${sep}dist${sep}`) ? '../../../bin/ledgermq' : '../../bin/ledgermq');

export interface LaunchOptions {
  /** Options for the node (V8) runtime of each node process, before the script. */
  readonly nodeArgs?: readonly string[];
  /** 'lazy': every node loses its unsynced writes when killed, as in a power cut (chaos only). */
  readonly storage?: StorageMode;
  /** An ACL file's content: written as <dir>/acl.json and named by security.aclFile. */
  readonly acl?: unknown;
  /** The user client() and status() sign as (needed with `acl`). */
  readonly credentials?: Credentials;
  /** TLS on every port: a CA and node certificates in <dir>/certs, named by security.tls (LOCAL_TLS). */
  readonly tls?: boolean;
  /** A grpcPort on every node: the RocketMQ 5 endpoint (src/grpc). */
  readonly grpc?: boolean;
}

export class LocalCluster {
  readonly dir: string;
  readonly configPath: string;
  readonly config: ClusterConfig;
  private readonly children = new Map<string, ChildProcess>();
  /** Nodes started with their own config (peer raftPorts rerouted), see routePeers. */
  private readonly nodeConfigPaths = new Map<string, string>();
  private readonly clients: LedgerClient[] = [];
  /** TLS against the config's CA when it has security.tls, as the CLI's commands connect. */
  private readonly connector: Connector;
  /** Every node process started, in order (restarts included), for callers that audit cleanup. */
  readonly startedPids: number[] = [];

  private constructor(dir: string, configPath: string, private readonly launch: LaunchOptions) {
    this.dir = dir;
    this.configPath = configPath;
    this.config = loadConfig(configPath);
    const ca = this.config.security?.tls?.ca;
    this.connector = ca === undefined ? tcpConnector : tlsConnector({ ca: readTlsCa(ca) });
  }

  /**
   * `overrides` replace top-level config keys (flush, quorum, raft, security, …) of the
   * generated config (`security: undefined` runs without a secret, in loopback-only mode);
   * `launch` adds node options to every node process (e.g. --cpu-prof for profiling).
   */
  static async create(overrides: Record<string, unknown> = {}, launch: LaunchOptions = {}): Promise<LocalCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'lmq-cluster-'));
    const ports = await freePorts(launch.grpc === true ? 9 : 6);
    const config = {
      clusterId: 'test',
      nodes: ['n1', 'n2', 'n3'].map((id, i) => ({ id, host: '127.0.0.1', raftPort: ports[i], clientPort: ports[i + 3], ...(launch.grpc === true ? { grpcPort: ports[i + 6] } : {}), dataDir: id })),
      flush: { mode: 'sync', intervalMs: 100 },
      quorum: 'majority',
      security: { clusterSecretFile: 'cluster.secret', ...(launch.acl === undefined ? {} : { aclFile: ACL_FILE }), ...(launch.tls === true ? { tls: LOCAL_TLS } : {}) },
      ...overrides,
    };
    if (launch.tls === true) initCerts({ dir: join(dir, CERTS_DIR), clusterId: config.clusterId, nodes: config.nodes, days: 2, force: false });
    if (launch.acl !== undefined) writeFileSync(join(dir, ACL_FILE), JSON.stringify(launch.acl, null, 2));
    const configPath = join(dir, 'cluster.config.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const cluster = new LocalCluster(dir, configPath, launch);
    // As `cluster start` does: the nodes themselves never create one.
    const secretFile = cluster.config.security?.clusterSecretFile;
    if (secretFile !== undefined) createClusterSecretIfMissing(secretFile);
    return cluster;
  }

  /**
   * From its next start on, node `id` dials each peer at `peerPorts[peer]` instead of the
   * peer's raftPort (e.g. a fault-injecting proxy); it still listens on its own raftPort.
   * Written as `<dir>/<id>.config.json`; the peer handshake checks ids, not ports.
   */
  routePeers(id: string, peerPorts: Readonly<Record<string, number>>): void {
    const raw = JSON.parse(readFileSync(this.configPath, 'utf8')) as { nodes: { id: string; raftPort: number }[] };
    assert(raw.nodes.some((n) => n.id === id), () => `unknown node ${id}`);
    for (const node of raw.nodes) {
      const port = peerPorts[node.id];
      if (node.id !== id && port !== undefined) node.raftPort = port;
    }
    const path = join(this.dir, `${id}.config.json`);
    writeFileSync(path, JSON.stringify(raw, null, 2));
    this.nodeConfigPaths.set(id, path);
  }

  start(id: string): ChildProcess {
    const log = openSync(join(this.dir, `${id}.log`), 'a');
    const configPath = this.nodeConfigPaths.get(id) ?? this.configPath;
    const storage = this.launch.storage === 'lazy' ? ['--unsafe-storage', 'lazy'] : [];
    const child = spawn(process.execPath, [...(this.launch.nodeArgs ?? []), BIN, 'node', 'start', '--id', id, '--config', configPath, ...storage], {
      stdio: ['ignore', log, log],
      env: { ...process.env, LEDGERMQ_LOG_FORMAT: 'json' },
    });
    closeSync(log); // the child has its own copy; restarts must not leak descriptors here
    if (child.pid !== undefined) this.startedPids.push(child.pid);
    this.children.set(id, child);
    return child;
  }

  startAll(): void {
    for (const node of this.config.nodes) this.start(node.id);
  }

  /** Whether node `id` has a process that has not exited (paused counts as running). */
  isRunning(id: string): boolean {
    const child = this.children.get(id);
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  pid(id: string): number {
    return this.children.get(id)!.pid!;
  }

  signal(id: string, signal: NodeJS.Signals): void {
    this.children.get(id)!.kill(signal);
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(id: string): Promise<void> {
    await this.waitExit(id, 'SIGKILL');
  }

  /** SIGTERM (clean stop), and wait for the exit code. */
  async stop(id: string): Promise<number | null> {
    return this.waitExit(id, 'SIGTERM');
  }

  private waitExit(id: string, signal: NodeJS.Signals): Promise<number | null> {
    const child = this.children.get(id)!;
    this.children.delete(id);
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
    return new Promise((done) => {
      child.once('exit', (code) => done(code));
      child.kill(signal);
    });
  }

  /** A client signing as `credentials` (default: the launch options'; null: unsigned). */
  client(timeoutMs = 20_000, credentials: Credentials | null = this.launch.credentials ?? null): LedgerClient {
    const client = new LedgerClient(
      { ...DEFAULT_CLIENT_OPTIONS, nodes: this.config.nodes, timeoutMs, ...(credentials === null ? {} : { credentials }) },
      this.connector,
    );
    this.clients.push(client);
    return client;
  }

  async status(id: string): Promise<NodeStatus | null> {
    const client = this.client(1000);
    try {
      return await client.callNode(id, { op: 'status' }, 1000);
    } catch {
      return null;
    } finally {
      client.close();
    }
  }

  async leader(excluding: string[] = [], timeoutMs = 20_000): Promise<NodeStatus> {
    return until('a leader', async () => {
      for (const node of this.config.nodes) {
        if (excluding.includes(node.id)) continue;
        const s = await this.status(node.id);
        if (s?.role === 'leader') return s;
      }
      return null;
    }, timeoutMs, 50);
  }

  async dispose(): Promise<void> {
    for (const client of this.clients) client.close();
    for (const child of this.children.values()) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await Promise.all([...this.children.values()].map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
    this.children.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
