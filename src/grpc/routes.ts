// Which nodes a RocketMQ client is routed to, and the queues it is shown. The 1.0.8 client uses
// only queues with id 0 (one per broker) and dials each broker's endpoints as one DNS name, so
// every node with a grpcPort is one "broker" with one READ_WRITE queue 0 and one address; which
// ledgermq queue a message goes to, or is received from, the gateway decides. A node that does
// not answer its status is left out (liveness is looked at every LIVENESS_INTERVAL_MS), so
// clients stop sending to it; the node itself is always in its own routes. A refusal is an
// answer: under an ACL the endpoint's own client is unsigned, and a live node refuses its status.
import { isIP } from 'node:net';
import type { LedgerClient } from '../client/client.js';
import { isLmqError } from '../util/errors.js';

const LIVENESS_INTERVAL_MS = 2_000;
const STATUS_TIMEOUT_MS = 500;
const ACCEPTED_TYPES = Object.freeze(['NORMAL', 'FIFO', 'DELAY', 'TRANSACTION']);

export interface GrpcNode {
  readonly id: string;
  readonly host: string;
  readonly grpcPort?: number | undefined;
}

export class RouteTable {
  private live: ReadonlySet<string>;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    private readonly client: LedgerClient,
    private readonly nodes: readonly GrpcNode[],
    private readonly selfId: string,
  ) {
    this.live = new Set(nodes.map((n) => n.id));
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), LIVENESS_INTERVAL_MS);
    this.timer.unref();
    void this.check();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One queue 0 per live node with a grpcPort, as QueryRoute and QueryAssignment answer them. */
  queues(topic: string, namespace: string): Record<string, unknown>[] {
    return this.nodes
      .filter((n) => n.grpcPort !== undefined && (n.id === this.selfId || this.live.has(n.id)))
      .map((n) => ({
        topic: { name: topic, resourceNamespace: namespace },
        id: 0,
        permission: 'READ_WRITE',
        broker: { name: n.id, id: 0, endpoints: { scheme: isIP(n.host) === 6 ? 'IPv6' : isIP(n.host) === 4 ? 'IPv4' : 'DOMAIN_NAME', addresses: [{ host: n.host, port: n.grpcPort }] } },
        acceptMessageTypes: ACCEPTED_TYPES,
      }));
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const answers = await Promise.all(this.nodes.map((n) => this.client.callNode(n.id, { op: 'status' }, STATUS_TIMEOUT_MS).then(() => n.id, (error: unknown) => (isLmqError(error, 'LMQ_UNAUTHENTICATED') ? n.id : null))));
      this.live = new Set(answers.filter((id): id is string => id !== null));
    } finally {
      this.checking = false;
    }
  }
}
