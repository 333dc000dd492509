// Fault-injecting TCP proxies for the peer links of a chaos run. A node sends Raft messages
// only on the connection it dials to each peer (transport/peer-transport.ts), so one proxy per
// DIRECTED link (from → to) carries exactly `from`'s messages to `to`: the chaos runner gives
// each node a config in which every other node's raftPort is the proxy of (self → other).
// Cutting a link destroys its live connections and refuses new ones until it is healed —
// to both nodes it looks like a peer that vanished, which is what a partition is.
// The proxies listen BEFORE the nodes' ports are picked (targets are set afterwards), so the
// OS cannot hand a node's just-picked free port to a proxy.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { assert } from '../util/assert.js';

/** Connections one link carries at once (a node keeps one per peer; extra are reconnect races). */
export const linkConnectionsMax = 16;

export class LinkProxy {
  /** Live forwarded connections: [from the dialer, towards the target]. */
  private readonly live = new Set<readonly [Socket, Socket]>();
  private cutNow = false;
  private closed = false;
  /** Connections refused or destroyed by a cut, for the report. */
  refusedConnections = 0;

  private target: { host: string; port: number } | null = null;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listens on a free port of 127.0.0.1; connections are refused until setTarget(). */
  static async start(): Promise<LinkProxy> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as { port: number }).port;
    assert(port > 0, 'the proxy listens on a real port');
    return new LinkProxy(server, port);
  }

  /** Where connections are forwarded from now on. */
  setTarget(host: string, port: number): void {
    assert(port > 0 && port < 65536, 'target port is a TCP port');
    this.target = { host, port };
  }

  get targetPort(): number | null {
    return this.target?.port ?? null;
  }

  get isCut(): boolean {
    return this.cutNow;
  }

  /** Connections being forwarded now. */
  get connections(): number {
    return this.live.size;
  }

  /** Destroys every live connection and refuses new ones until heal(). */
  cut(): void {
    this.cutNow = true;
    for (const [client, upstream] of this.live) {
      client.destroy();
      upstream.destroy();
    }
    this.live.clear();
  }

  heal(): void {
    this.cutNow = false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.cutNow || this.closed || this.target === null || this.live.size >= linkConnectionsMax) {
      this.refusedConnections++;
      client.destroy();
      return;
    }
    client.setNoDelay(true);
    const upstream = createConnection({ host: this.target.host, port: this.target.port, noDelay: true });
    const pair = [client, upstream] as const;
    this.live.add(pair);
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      this.live.delete(pair);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', teardown);
      socket.on('close', teardown);
    }
    // pipe() applies backpressure both ways; a cut destroys both ends, dropping what is in flight.
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

/** One LinkProxy per ordered pair of nodes: link(from, to) carries from's messages to `to`. */
export class LinkNetwork {
  private constructor(private readonly links: ReadonlyMap<string, LinkProxy>) {}

  /** One listening proxy per ordered pair of `nodeIds`; give them targets with setTargets. */
  static async start(nodeIds: readonly string[]): Promise<LinkNetwork> {
    const links = new Map<string, LinkProxy>();
    try {
      for (const from of nodeIds) {
        for (const to of nodeIds) {
          if (from !== to) links.set(linkKey(from, to), await LinkProxy.start());
        }
      }
    } catch (error) {
      await Promise.all([...links.values()].map((l) => l.close()));
      throw error;
    }
    return new LinkNetwork(links);
  }

  /** Points link (x → node) at node's real peer port, for every x. */
  setTargets(nodes: readonly { id: string; host: string; raftPort: number }[]): void {
    for (const [key, link] of this.links) {
      const to = nodes.find((n) => n.id === key.split(' ')[1]);
      assert(to !== undefined, () => `no address for the target of link ${key}`);
      link.setTarget(to.host, to.raftPort);
    }
  }

  link(from: string, to: string): LinkProxy {
    const link = this.links.get(linkKey(from, to));
    assert(link !== undefined, () => `no link ${from} -> ${to}`);
    return link;
  }

  /** The raftPort `self` must use for `other`: the proxy of link self → other. */
  peerPorts(self: string): Record<string, number> {
    const ports: Record<string, number> = {};
    for (const [key, link] of this.links) {
      const [from, to] = key.split(' ') as [string, string];
      if (from === self) ports[to] = link.port;
    }
    return ports;
  }

  /** Cuts every link between a node of `side` and a node of `other`; `oneWay` cuts only side → other. */
  cutBetween(side: readonly string[], other: readonly string[], oneWay = false): void {
    for (const a of side) {
      for (const b of other) {
        this.link(a, b).cut();
        if (!oneWay) this.link(b, a).cut();
      }
    }
  }

  /** Directed links currently cut, as "from->to". */
  cutLinks(): string[] {
    return [...this.links].filter(([, l]) => l.isCut).map(([key]) => key.replace(' ', '->'));
  }

  healAll(): void {
    for (const link of this.links.values()) link.heal();
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
  }
}

function linkKey(from: string, to: string): string {
  assert(!from.includes(' ') && !to.includes(' '), 'node ids have no spaces');
  return `${from} ${to}`;
}
