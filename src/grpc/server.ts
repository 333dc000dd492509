// The RocketMQ 5 endpoint of one node (gRPC MessagingService on the node's grpcPort: plaintext,
// or TLS with the node's certificate when the cluster has security.tls, tls-listener.ts). It is
// a client of the cluster like any other: a LedgerClient over every node's client port carries
// each RPC to the leader, so the endpoint works the same on a follower and keeps working across
// leader changes; the node process only hosts it.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../client/client.js';
import { tcpConnector, tlsConnector } from '../client/tcp-connector.js';
import { type ClusterConfig, findNode } from '../config/config.js';
import { readNodeTls, readTlsCa } from '../security/tls.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { messagingServiceDefinition } from './proto.js';
import { RouteTable } from './routes.js';
import { type CallerOf, MessagingGateway } from './service.js';
import { authenticateCall, CallerPool } from './auth.js';
import type { AclSource } from '../security/acl-source.js';
import type { Credentials } from '../security/signature.js';
import { TelemetrySessions } from './telemetry.js';
import { listenTls, type TlsListener } from './tls-listener.js';

/** Below the official clients' default requestTimeout (3 s), so a unary RPC answers its own status first. */
const UNARY_TIMEOUT_MS = 2_500;
/** Streams and calls still open at stop get this long before they are cut. */
const SHUTDOWN_GRACE_MS = 1_000;

export interface GrpcEndpoint {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Serves MessagingService on node selfId's grpcPort; the config must give it one. `acl`: the
 * node's ACL (security.aclFile), which every call must then be signed by a user of (auth.ts).
 */
export async function startGrpcEndpoint(config: ClusterConfig, selfId: string, logger: Logger, acl?: AclSource): Promise<GrpcEndpoint> {
  const self = findNode(config, selfId);
  assert(self.grpcPort !== undefined, 'startGrpcEndpoint needs a grpcPort');
  const ca = config.security?.tls?.ca;
  const connector = ca === undefined ? tcpConnector : tlsConnector({ ca: readTlsCa(ca) });
  const callerWith = (credentials: Credentials | undefined) => {
    const client = new LedgerClient(
      { ...DEFAULT_CLIENT_OPTIONS, nodes: config.nodes, timeoutMs: UNARY_TIMEOUT_MS, requestTimeoutMs: UNARY_TIMEOUT_MS, ...(credentials === undefined ? {} : { credentials }) },
      connector,
    );
    return { client, close: () => client.close() };
  };
  const anonymous = callerWith(undefined);
  const users = acl === undefined ? null : new CallerPool(acl, callerWith);
  acl?.onReload(() => users?.prune());
  const callerOf: CallerOf = acl === undefined || users === null ? () => anonymous : (metadata, peer) => users.of(authenticateCall(acl, metadata, peer, Date.now()));
  const routes = new RouteTable(anonymous.client, config.nodes, selfId);
  const fifoGroups: ReadonlySet<string> = new Set(config.grpc.fifoGroups);
  const telemetry = new TelemetrySessions({ maxReconsumeTimes: config.consumer.maxReconsumeTimes, fifoGroups }, selfId, logger);
  const gateway = new MessagingGateway(callerOf, routes, telemetry, { selfId, unaryTimeoutMs: UNARY_TIMEOUT_MS, fifoGroups }, logger);
  const server = new grpc.Server();
  server.addService(messagingServiceDefinition(), gateway.handlers());
  const tls = config.security?.tls;
  let tlsListener: TlsListener | undefined;
  const port = await (async () => {
    if (tls !== undefined) {
      const { cert, key } = readNodeTls(tls, selfId);
      tlsListener = await listenTls(server, messagingServiceDefinition(), self.host, self.grpcPort!, cert, key);
      return tlsListener.port;
    }
    return new Promise<number>((resolve, reject) =>
      server.bindAsync(`${self.host}:${self.grpcPort}`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))),
    );
  })().catch((error: unknown) => {
    if (error instanceof LmqError) throw error;
    throw new LmqError('LMQ_BAD_CONFIG', `cannot listen on grpcPort ${self.host}:${self.grpcPort}: ${error instanceof Error ? error.message : String(error)}`);
  });
  routes.start();
  logger.info({ grpcPort: port, tls: tls !== undefined, acl: acl !== undefined }, 'RocketMQ 5 gRPC endpoint up');
  return {
    port,
    async stop() {
      routes.stop();
      telemetry.close();
      tlsListener?.close(SHUTDOWN_GRACE_MS);
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, SHUTDOWN_GRACE_MS);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      anonymous.close();
      users?.close();
    },
  };
}
