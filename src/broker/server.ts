// One broker node process, assembled: the log store and hard state on disk, the broker state
// machine over the log, the Raft node, the peer transport and the client port. Start order
// makes each piece ready before anything can call it; stop order lets in-flight work finish
// and leaves the log flushed.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type ClusterConfig, findNode } from '../config/config.js';
import { readClusterSecret } from '../security/cluster-secret.js';
import { fileIoFor, type StorageMode } from '../log/file-io.js';
import { HardStateStore } from '../log/hard-state-store.js';
import { LogStore } from '../log/log-store.js';
import { SnapshotStore } from '../log/snapshot-store.js';
import { ProcessSnapshots } from '../node/process-snapshots.js';
import { RaftNode } from '../node/raft-node.js';
import { PeerTransport } from '../transport/peer-transport.js';
import { RpcServer } from '../transport/rpc-server.js';
import { PLAIN_SOCKETS, type SocketLayer } from '../transport/socket-layer.js';
import { TlsSockets } from '../transport/tls-sockets.js';
import { readNodeTls } from '../security/tls.js';
import { AclSource } from '../security/acl-source.js';
import { RequestAuthenticator } from '../security/authenticator.js';
import { BrokerAccess } from './access.js';
import { BrokerLifecycle } from './lifecycle.js';
import { DeliveryScheduler } from './scheduler.js';
import { TxCheckBoard } from './tx-check-board.js';
import { TransactionChecker } from './tx-checker.js';
import { BrokerService, DEFAULT_SERVICE_OPTIONS } from './service.js';
import { Leadership } from './leadership.js';
import { type GrpcEndpoint, startGrpcEndpoint } from '../grpc/server.js';
import { type ApplyResult, BrokerStateMachine } from './state-machine.js';

/** Below the client's per-attempt timeout (DEFAULT_CLIENT_OPTIONS.requestTimeoutMs, 3 s). */
const MAX_LEADER_WAIT_MS = 2_000;


export interface BrokerNode {
  readonly node: RaftNode<ApplyResult>;
  /** Read by the console and /metrics (src/http) in the same process. */
  readonly service: BrokerService;
  readonly state: BrokerStateMachine;
  readonly lifecycle: BrokerLifecycle;
  stop(): Promise<void>;
}

/**
 * `onNode` sees the Raft node as soon as it exists (before it starts), e.g. to tag log lines.
 * `storage` 'lazy' holds unsynced log and hard-state bytes in memory so that a SIGKILL loses
 * them as a power cut would (src/log/file-io.ts) — for power-loss chaos runs only.
 */
export async function startBrokerNode(
  config: ClusterConfig,
  id: string,
  logger: Logger,
  onNode: (node: RaftNode<ApplyResult>) => void = () => undefined,
  storage: StorageMode = 'os',
): Promise<BrokerNode> {
  const self = findNode(config, id);
  // First, before anything is opened: a missing or invalid ACL or secret file stops the node
  // (exit 2) with one line and leaves nothing behind.
  const acls = openAcl(config, id, logger);
  const sockets = socketsOf(config, id, logger);
  const clusterSecret = clusterSecretOf(config, logger);
  mkdirSync(self.dataDir, { recursive: true });
  if (storage === 'lazy') {
    logger.warn(
      { storage },
      'UNSAFE STORAGE MODE lazy: written log and hard-state bytes are held in memory until fdatasync, so a crash loses them as a power cut would. For chaos runs only — never in production',
    );
  }
  const log = LogStore.open({
    dir: join(self.dataDir, 'log'),
    segmentBytes: config.log.segmentBytes,
    flushMode: config.flush.mode,
    flushIntervalMs: config.flush.intervalMs,
    logger,
    io: fileIoFor(storage),
  });
  const hardState = HardStateStore.open(join(self.dataDir, 'meta'), storage);
  const state = await openStateMachine(join(self.dataDir, 'state'), log, logger);
  const snapshotStore = await SnapshotStore.open({ dir: join(self.dataDir, 'snapshots'), logger });
  const snapshots = await ProcessSnapshots.open({ store: snapshotStore, log, stateMachine: state, logger });
  await snapshots.restoreOnStart();

  let node: RaftNode<ApplyResult> | null = null;
  const transport = new PeerTransport(
    {
      clusterId: config.clusterId,
      selfId: id,
      listenHost: self.host,
      listenPort: self.raftPort,
      peers: config.nodes.filter((n) => n.id !== id).map((n) => ({ id: n.id, host: n.host, port: n.raftPort })),
      clusterSecret,
      sockets: sockets.peer,
      logger,
    },
    (from, message) => node?.receive(from, message),
    (peer) => node?.peerDisconnected(peer),
  );
  node = new RaftNode({ config, id, log, hardState, stateMachine: state, peers: transport, snapshots, logger });
  onNode(node);
  const lifecycle = new BrokerLifecycle(node, state, log, snapshots, {
    snapshotEveryEntries: config.snapshot.everyEntries,
    retentionMaxAgeMs: config.retention.maxAgeMs,
    retentionMaxBytes: config.retention.maxBytes ?? null,
    retentionCheckIntervalMs: config.retention.checkIntervalMs,
  }, logger);
  const scheduler = new DeliveryScheduler(node, state, { scanIntervalMs: config.delay.scanIntervalMs }, logger);
  // The longest randomized election timeout, twice (one election, and a retry of a split
  // vote) — but never as long as a client's attempt, which would give up first.
  const leaderWaitMs = Math.min(2 * (2 * config.raft.electionTimeoutTicks * config.raft.tickMs), MAX_LEADER_WAIT_MS);
  const retry = { delayLevelsMs: config.delay.levels, maxReconsumeTimes: config.consumer.maxReconsumeTimes };
  const txBoard = new TxCheckBoard();
  const txChecker = new TransactionChecker(node, state, txBoard, config.transaction, logger);
  const transaction = { checkAfterMs: config.transaction.checkAfterMs, checkIntervalMs: config.transaction.checkIntervalMs, board: txBoard };
  const { tickMs, heartbeatIntervalTicks, electionTimeoutTicks, preferredLeader } = config.raft;
  const leadership = new Leadership(node, state, { configPreferredLeader: preferredLeader, checkIntervalMs: tickMs * heartbeatIntervalTicks, electionTimeoutMs: tickMs * electionTimeoutTicks });
  const service = new BrokerService(
    node, state, { ...DEFAULT_SERVICE_OPTIONS, quorum: config.quorum, leaderWaitMs, retry, transaction, maxReorderWaitMs: config.topic.maxReorderWaitMs, leadership }, acls?.access ?? null,
  );
  const rpc = new RpcServer({ host: self.host, port: self.clientPort, sockets: sockets.client, logger }, (body, context) => service.handle(body, context));

  await transport.start();
  await rpc.start();
  node.start();
  lifecycle.start();
  scheduler.start();
  txChecker.start();
  leadership.start();
  // Last: a RocketMQ client's first call goes to this node's own client port.
  const grpc: GrpcEndpoint | null = self.grpcPort === undefined ? null : await startGrpcEndpoint(config, id, logger, acls?.source);
  logger.info({ raftPort: self.raftPort, clientPort: self.clientPort, dataDir: self.dataDir, lastIndex: log.lastIndex(), appliedIndex: state.appliedIndex() }, 'node up');

  const raftNode = node;
  return {
    node: raftNode,
    service,
    state,
    lifecycle,
    async stop() {
      await grpc?.stop();
      service.close(); // long polls answer now instead of outliving the state machine
      await rpc.close();
      acls?.source.close();
      scheduler.stop();
      txChecker.stop();
      leadership.stop();
      await lifecycle.stop();
      await raftNode.stop();
      await transport.close();
      await state.close();
      await snapshotStore.close();
      await hardState.close();
    },
  };
}

/** The ACL the client port enforces, reloaded on change; null when security.aclFile is unset. */
function openAcl(config: ClusterConfig, selfId: string, logger: Logger): { source: AclSource; access: BrokerAccess } | null {
  const path = config.security?.aclFile;
  if (path === undefined) return null;
  const source = new AclSource(path, logger);
  const authenticator = new RequestAuthenticator(source, selfId);
  source.onReload((acl) => authenticator.retainUsers(acl.accessKeys));
  logger.info({ aclFile: path, users: source.current().accessKeys.size }, 'client port requires signed requests (ACL)');
  return { source, access: new BrokerAccess(authenticator) };
}

/**
 * The sockets of the peer port (mutual TLS: each side's certificate checked against the CA) and
 * of the client port (TLS with the node's certificate), or plain TCP without security.tls.
 */
function socketsOf(config: ClusterConfig, selfId: string, logger: Logger): { peer: SocketLayer; client: SocketLayer } {
  const tls = config.security?.tls;
  if (tls === undefined) return { peer: PLAIN_SOCKETS, client: PLAIN_SOCKETS };
  const files = readNodeTls(tls, selfId);
  logger.info({ ca: tls.ca, authenticatedBySecret: config.security?.clusterSecretFile !== undefined }, 'TLS on the peer port (mutual, certificates checked against the CA) and the client port');
  return {
    peer: new TlsSockets({ ...files, requireClientCert: true }),
    client: new TlsSockets({ cert: files.cert, key: files.key, requireClientCert: false }),
  };
}

/**
 * The secret this node's peers must prove. Without one, loadConfig has already made sure
 * every node address is loopback; the log says so once, as Redis's protected mode does.
 */
function clusterSecretOf(config: ClusterConfig, logger: Logger): Buffer | null {
  const path = config.security?.clusterSecretFile;
  if (path !== undefined) return readClusterSecret(path);
  // Mutual TLS has already authenticated the peer when the handshake (with an empty key) runs.
  if (config.security?.tls !== undefined) return null;
  logger.warn('peers are NOT authenticated (no security.clusterSecretFile): allowed only because every node address is loopback, so only users of this machine can reach the peer ports');
  return null;
}

/**
 * The state machine follows the log. If it is ahead of the log — possible only when an
 * async-flush node lost its unflushed tail in a crash (a power cut; in chaos runs, a SIGKILL in
 * storage mode lazy, which keeps the broker's lmdb state as the page cache would) — it is
 * rebuilt from the log rather than trusted: serving state the log no longer holds would invent
 * data. A state at or behind the log is a prefix of it: it applied only committed entries,
 * which the log never truncates, and what survived of the log is a prefix of what was written.
 */
async function openStateMachine(dir: string, log: LogStore, logger: Logger): Promise<BrokerStateMachine> {
  const state = BrokerStateMachine.open({ dir, log, logger });
  if (state.appliedIndex() <= log.lastIndex()) return state;
  // Rebuilt from the log, or — when the log no longer starts at 1 — from a snapshot (restoreOnStart).
  logger.warn({ appliedIndex: state.appliedIndex(), lastIndex: log.lastIndex() }, 'state is ahead of the log (unflushed tail lost); rebuilding it');
  await state.close();
  rmSync(dir, { recursive: true, force: true });
  return BrokerStateMachine.open({ dir, log, logger });
}
