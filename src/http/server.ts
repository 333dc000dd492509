// src/http — the web console and /metrics of one node, on its httpPort (fastify). It sits beside
// src/broker: it reads this process's node for /metrics (src/http/metrics.ts) and does every
// console read and action through the client (src/client), the operations and checks the CLI
// uses, so a follower forwards to the leader what must go there. The page is static (plain HTML
// and a small script polling /api/overview); the API names the peers' consoles so the page can
// go on through any node that is up. Write actions need http.allowWrites: true (else HTTP 403).
import { readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { type Connector, DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../client/client.js';
import { tcpConnector, tlsConnector } from '../client/tcp-connector.js';
import type { BrokerNode } from '../broker/server.js';
import type { ClusterConfig } from '../config/config.js';
import { consoleUrl } from './console-url.js';
import { readTlsCa } from '../security/tls.js';
import { assert } from '../util/assert.js';
import { LmqError, NOT_SENT } from '../util/errors.js';
import { ClusterView } from './cluster-view.js';
import { registerActions } from './actions.js';
import { nodeMetrics } from './metrics.js';

/** The page and its script, read once: from src/http/static whether this runs from src/ or dist/src/. */
const STATIC_DIR = import.meta.dirname.includes(`${sep}dist${sep}`) ? join(import.meta.dirname, '../../../src/http/static') : join(import.meta.dirname, 'static');
const STATIC_FILES: Readonly<Record<string, string>> = Object.freeze({ '/': 'index.html', '/console.js': 'console.js', '/console.css': 'console.css' });
const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({ html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' });
/** Request bodies are small JSON objects (a topic name, a group, a time). */
const MAX_BODY_BYTES = 16 * 1024;

export interface Console {
  readonly url: string;
  close(): Promise<void>;
}

export async function startConsole(config: ClusterConfig, selfId: string, broker: BrokerNode, logger: Logger): Promise<Console> {
  const self = config.nodes.find((n) => n.id === selfId);
  assert(self !== undefined && self.httpPort !== undefined, 'the console runs on a node with an httpPort');
  const client = consoleClient(config);
  const view = new ClusterView(client, selfId, config.nodes.map((n) => n.id), () => broker.node.observer.leaderChanges());
  const metrics = nodeMetrics(broker);
  view.start();
  const peers = config.nodes.flatMap((n) => {
    const url = consoleUrl(n);
    return url === null ? [] : [{ id: n.id, url }];
  });
  const app = Fastify({ logger: false, bodyLimit: MAX_BODY_BYTES });
  allowPeerOrigins(app, new Set(peers.map((p) => p.url.slice(0, -1))));
  for (const [route, file] of Object.entries(STATIC_FILES)) {
    const body = readFileSync(join(STATIC_DIR, file), 'utf8');
    const type = CONTENT_TYPES[file.split('.').pop()!]!;
    app.get(route, (_request, reply) => reply.type(type).header('cache-control', 'no-store').send(body));
  }
  app.get('/api/overview', async () => ({ ...(await view.overview()), consoles: peers, allowWrites: config.http.allowWrites }));
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  registerActions(app, client, config.http.allowWrites);
  try {
    await app.listen({ host: self.host, port: self.httpPort });
  } catch (error) {
    // As the peer and client ports report a busy port (transport/server-lifecycle.ts).
    await app.close();
    client.close();
    view.stop();
    metrics.close();
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new LmqError('LMQ_UNAVAILABLE', `cannot listen on ${self.host}:${self.httpPort} for the console: ${code}; free the port or change httpPort in the config`, { ...NOT_SENT }, { cause: error });
  }
  const url = consoleUrl(self)!;
  logger.info({ httpPort: self.httpPort, url, allowWrites: config.http.allowWrites }, 'console and /metrics up');
  return {
    url,
    async close() {
      view.stop();
      metrics.close();
      await app.close();
      client.close();
    },
  };
}

/**
 * The page goes on through another node's console when its own node dies, so the consoles
 * answer each other's origins (CORS) — only theirs: another site open in the browser cannot
 * read the cluster or send the write actions through it.
 */
function allowPeerOrigins(app: FastifyInstance, origins: ReadonlySet<string>): void {
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const origin = request.headers.origin;
    if (origin === undefined || !origins.has(origin)) return;
    reply.header('access-control-allow-origin', origin).header('vary', 'origin');
    // A preflight (a POST of JSON from a peer's page) is answered here; other origins get none (404).
    if (request.method === 'OPTIONS') return reply.header('access-control-allow-methods', 'GET, POST').header('access-control-allow-headers', 'content-type').code(204).send();
  });
}

/** The console's client: the config's nodes, TLS against its CA when it has one, signed as LMQ_ACCESS_KEY/LMQ_SECRET_KEY when set. */
function consoleClient(config: ClusterConfig): LedgerClient {
  const ca = config.security?.tls?.ca;
  const connector: Connector = ca === undefined ? tcpConnector : tlsConnector({ ca: readTlsCa(ca) });
  const { LMQ_ACCESS_KEY: accessKey, LMQ_SECRET_KEY: secretKey } = process.env;
  const credentials = accessKey !== undefined && secretKey !== undefined ? { credentials: { accessKey, secretKey } } : {};
  return new LedgerClient({ ...DEFAULT_CLIENT_OPTIONS, nodes: config.nodes, timeoutMs: 5_000, requestTimeoutMs: 2_000, ...credentials }, connector);
}
