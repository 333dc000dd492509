// The simple workload (`chaos --workload simple`): simple consumers of one group (src/client's
// SimpleConsumer, RocketMQ 5 style) receive small batches with a short invisible duration, ack
// most messages and leave a seeded share unacked — it comes again one delivery attempt later,
// and after maxReconsumeTimes + 1 deliveries the broker dead-letters it — while consumers are
// killed mid-batch and replaced, under the run's faults. Every receive and every ack is one
// operation in the history (a killed consumer's operation in progress ends `info` at the
// kill). After the faults the consumers go on until nothing was received for quietMs, then the
// group's dead-letter queue is read whole. The checker's `ack-lost` finds a message received
// again after its ack was confirmed; `lost-retry` one never acked nor dead-lettered.
// A consumer talks to the cluster through a SimpleReceiver: ledgermq's own SimpleConsumer
// (nativeReceiver, below) or a RocketMQ 5 client of the gRPC endpoint (rmq-workload.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReceivedMessage } from '../checker/index.js';
import { type SimpleMessage, SimpleConsumer } from '../client/simple-consumer.js';
import type { Rng } from '../sim/rng.js';
import { untilQuiet } from './consumer-churn.js';
import type { PlantKind } from './plants.js';
import { describeError, failedOutcome, queueName, type WorkloadContext } from './workload.js';

/**
 * One simple consumer's connection to the cluster, as the workload needs it: M is a received
 * message as the client hands it out (what ack takes).
 */
export interface SimpleReceiver<M> {
  /** Up to max messages, each invisible to the group for invisibleDurationMs. */
  receive(max: number, invisibleDurationMs: number): Promise<readonly M[]>;
  /** Resolves when the cluster confirmed the ack. */
  ack(message: M): Promise<void>;
  /** A received message as the history records it (its attempt, queue and offset as the client saw them). */
  describe(message: M): ReceivedMessage;
  /** How a failed receive or ack is recorded: `fail` only when the error proves nothing happened. */
  outcomeOf(error: unknown): 'fail' | 'info';
  /** Drops the connection at once (a kill) or after the last call (a stop). */
  close(): void;
}

/** Builds the receiver of one consumer incarnation (its own connections). */
export type ReceiverFactory<M> = (consumerId: string) => SimpleReceiver<M>;

/** ledgermq's own SimpleConsumer on a fresh LedgerClient. */
export function nativeReceiver(context: WorkloadContext, settings: SimpleSettings): ReceiverFactory<SimpleMessage> {
  return (consumerId) => {
    const client = context.newClient();
    const consumer = new SimpleConsumer(client, { group: settings.group, clientId: consumerId, awaitDurationMs: context.settings.pollWaitMs }).subscribe(context.settings.topic);
    return {
      receive: (max, invisibleDurationMs) => consumer.receive(max, invisibleDurationMs),
      ack: (m) => consumer.ack(m),
      describe: (m) => ({ queue: queueName(m.topic, m.queueId), offset: m.offset, body: Buffer.from(m.body).toString('utf8'), attempt: m.deliveryAttempt }),
      outcomeOf: failedOutcome,
      close: () => client.close(),
    };
  };
}

export interface SimpleSettings {
  readonly group: string;
  readonly consumers: number;
  /** Messages per receive. */
  readonly receiveMax: number;
  /** Short, so that unacked messages come back within the run. */
  readonly invisibleDurationMs: number;
  /** Chance that a received message is left unacked (it expires and comes again). */
  readonly skipChance: number;
  /** The group's limit: the cluster's consumer.maxReconsumeTimes in this run (runner.ts). */
  readonly maxReconsumeTimes: number;
  /** How long a consumer works on one message, drawn uniformly up to this. */
  readonly handleMaxMs: number;
  /** Time between one consumer kill and the next, drawn uniformly. */
  readonly killMinMs: number;
  readonly killMaxMs: number;
  /** After the faults: the group is quiet when no receive returned a message, or failed, for this long. */
  readonly quietMs: number;
  /** Longest wait for a quiet group before going on anyway. */
  readonly quiesceMaxMs: number;
}

export const DEFAULT_SIMPLE_SETTINGS: SimpleSettings = Object.freeze({
  group: 'chaos-simple',
  consumers: 3,
  receiveMax: 8,
  invisibleDurationMs: 1_000,
  skipChance: 0.2,
  maxReconsumeTimes: 2,
  handleMaxMs: 10,
  killMinMs: 1_500,
  killMaxMs: 4_000,
  // Several invisible durations: a message a consumer skipped or a killed consumer held comes
  // back within one, so a group quiet this long has nothing left in flight.
  quietMs: 4_000,
  quiesceMaxMs: 60_000,
});

const killed = Symbol('killed');

/** One consumer process: receives, works, acks, until stopped or killed. */
class SimpleWorker<M> {
  private dead = false;
  private stopping = false;
  private fireKill: () => void = () => undefined;
  private readonly killSignal = new Promise<typeof killed>((resolve) => (this.fireKill = () => resolve(killed)));
  readonly done: Promise<void>;

  constructor(
    private readonly consumer: SimpleReceiver<M>,
    private readonly context: WorkloadContext,
    private readonly settings: SimpleSettings,
    private readonly rng: Rng,
    private readonly lane: string,
    readonly id: string,
    private readonly activity: { lastBusyMs: number },
    private readonly plant: PlantKind | undefined,
  ) {
    this.done = this.run();
  }

  /** A crash seen from the broker: nothing more is acked; what it holds expires. */
  kill(): void {
    this.dead = true;
    this.fireKill();
    this.consumer.close();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.done;
    this.consumer.close();
  }

  private untilKilled<T>(work: Promise<T>): Promise<T | typeof killed> {
    return Promise.race([work, this.killSignal]);
  }

  private async run(): Promise<void> {
    const { recorder } = this.context;
    const max = this.settings.maxReconsumeTimes;
    let process = recorder.newProcess(this.lane);
    while (!this.dead && !this.stopping) {
      recorder.invokeReceive(process, max);
      let messages: readonly M[] | typeof killed;
      try {
        messages = await this.untilKilled(this.consumer.receive(this.settings.receiveMax, this.settings.invisibleDurationMs));
      } catch (error) {
        if (this.dead) return recorder.receiveFailed('info', process, max, 'consumer killed');
        // A failed receive says nothing about what is left to receive: the group is not quiet.
        this.activity.lastBusyMs = recorder.now();
        const outcome = this.consumer.outcomeOf(error);
        recorder.receiveFailed(outcome, process, max, describeError(error));
        if (outcome === 'info') process = recorder.newProcess(this.lane);
        await sleep(100);
        continue;
      }
      if (messages === killed) return recorder.receiveFailed('info', process, max, 'consumer killed');
      const received = messages.map((m) => this.consumer.describe(m));
      recorder.receiveOk(process, max, received);
      if (messages.length > 0) this.activity.lastBusyMs = recorder.now();
      for (const [i, m] of messages.entries()) {
        if ((await this.untilKilled(sleep(this.rng.int(this.settings.handleMaxMs + 1)))) === killed) return;
        if (this.rng.next() < this.settings.skipChance) continue; // left to expire: it comes again
        const { queue, offset, body } = received[i]!;
        const value = { queue, offset, body };
        recorder.invokeAck(process, value);
        try {
          // The ack-lost plant: the ack is recorded as confirmed, never sent; the message expires and comes again.
          const acking = this.plant === 'ack-lost' ? Promise.resolve() : this.consumer.ack(m);
          if ((await this.untilKilled(acking)) === killed) return recorder.ackEnded('info', process, value, 'consumer killed');
          recorder.ackEnded('ok', process, value);
        } catch (error) {
          if (this.dead) return recorder.ackEnded('info', process, value, 'consumer killed');
          const outcome = this.consumer.outcomeOf(error);
          recorder.ackEnded(outcome, process, value, describeError(error));
          if (outcome === 'info') process = recorder.newProcess(this.lane);
        }
      }
    }
  }
}

/** The group's simple consumers: started together, killed and replaced while the faults last. */
export class SimpleConsumers<M> {
  private readonly live: SimpleWorker<M>[] = [];
  private started = 0;
  private killing = true;
  private killLoop: Promise<void> | null = null;
  private readonly activity = { lastBusyMs: 0 };

  constructor(
    private readonly context: WorkloadContext,
    private readonly settings: SimpleSettings,
    private readonly rng: Rng,
    private readonly log: (line: string) => void,
    private readonly newReceiver: ReceiverFactory<M>,
    private readonly plant?: PlantKind,
  ) {}

  async start(): Promise<void> {
    for (let i = 0; i < this.settings.consumers; i++) this.startOne();
    this.killLoop = this.killAndReplace();
  }

  /**
   * Stops the kills, then waits until no receive returned a message or failed for quietMs (a
   * run of failed receives, e.g. while the last fault's new leader is elected, is no quiet).
   */
  async quiesce(): Promise<void> {
    this.killing = false;
    await this.killLoop;
    const { recorder } = this.context;
    const quiet = () => recorder.now() - this.activity.lastBusyMs >= this.settings.quietMs;
    if (!(await untilQuiet(this.context, this.settings.quiesceMaxMs, quiet))) this.log(`the simple consumers were not quiet within ${this.settings.quiesceMaxMs} ms; going on anyway`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.live.map((w) => w.stop()));
  }

  private startOne(): void {
    const n = this.started++;
    const id = `chaos-consumer-${n}`;
    this.live.push(new SimpleWorker(this.newReceiver(id), this.context, this.settings, this.rng.fork(), `consumer ${n}`, id, this.activity, this.plant));
  }

  private async killAndReplace(): Promise<void> {
    while (this.killing && !this.context.stopped()) {
      await sleep(this.settings.killMinMs + this.rng.int(this.settings.killMaxMs - this.settings.killMinMs + 1));
      if (!this.killing || this.context.stopped()) return;
      const victim = this.live.splice(this.rng.int(this.live.length), 1)[0];
      if (victim === undefined) continue;
      this.log(`killed simple consumer ${victim.id}; starting another`);
      victim.kill();
      this.startOne();
    }
  }
}
