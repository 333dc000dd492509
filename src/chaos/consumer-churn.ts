// Consumers of one group that come and go during a chaos run (the retry and orderly
// workloads): started together, one killed and replaced every few seconds while the faults
// last, then left running until the group is quiet, then stopped. A kill is a crash seen from
// the broker: the listener calls in progress never return (each is recorded `info` at the
// kill), nothing more is committed, sent back or renewed, and the consumer's client is closed;
// its queues move on when its membership (and, orderly, its lock lease) runs out.
//
// Every listener call is one `consume` operation under a process of its own (calls of one
// consumer overlap in concurrent mode).
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConsumeResult, ConsumeValue } from '../checker/index.js';
import type { LedgerClient } from '../client/client.js';
import type { Rng } from '../sim/rng.js';
import { assert } from '../util/assert.js';
import type { WorkloadContext } from './workload.js';

export interface ChurnSettings {
  readonly consumers: number;
  /** Time between one consumer kill and the next, drawn uniformly. */
  readonly killMinMs: number;
  readonly killMaxMs: number;
  /** How long a listener works on a message, drawn uniformly up to this. */
  readonly handleMaxMs: number;
  /** After the faults: the group is quiet when no delivery began for this long. */
  readonly quietMs: number;
  /** Longest wait for a quiet group before going on anyway. */
  readonly quiesceMaxMs: number;
}

/** What a workload's consumer is, to the churn: something that starts and stops. */
export interface ChurnedConsumer {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * One listener call as the workload sees it: `work` resolves when the listener's work is
 * done, or with 'aborted' when the consumer says it may no longer process (its lock lease).
 */
export interface ListenerCall {
  readonly value: ConsumeValue;
  /** Resolves when the call should stop early (orderly: the lease view ran out); undefined: never. */
  readonly aborted?: Promise<void>;
  /** The result, drawn when the work is done. */
  readonly result: () => ConsumeResult;
}

/** Builds one consumer; `call` runs a listener call (records it, honours kills) and returns its result. */
export type ConsumerFactory = (client: LedgerClient, consumerId: string, call: (listenerCall: ListenerCall) => Promise<ConsumeResult>) => ChurnedConsumer;

/** Waits, on the history clock, until `quiet` holds (true) or quiesceMaxMs ran out (false). */
export async function untilQuiet(context: WorkloadContext, quiesceMaxMs: number, quiet: () => boolean): Promise<boolean> {
  const deadline = context.recorder.now() + quiesceMaxMs;
  while (context.recorder.now() < deadline) {
    if (quiet()) return true;
    await sleep(200);
  }
  return false;
}

/** A consumer's graceful stop at the end; past it the consumer is left as if killed. */
const stopTimeoutMs = 15_000;

class ConsumerIncarnation {
  readonly consumer: ChurnedConsumer;
  private dead = false;
  private stopping: Promise<void> | null = null;
  private endAfterlife: () => void = () => undefined;
  private readonly afterlife = new Promise<void>((resolve) => (this.endAfterlife = resolve));
  /** Listener calls of this consumer in progress. */
  callsInFlight = 0;
  private readonly killSignal: Promise<void>;
  private fireKill: () => void = () => undefined;

  constructor(
    private readonly client: LedgerClient,
    context: WorkloadContext,
    settings: ChurnSettings,
    rng: Rng,
    lane: string,
    readonly id: string,
    factory: ConsumerFactory,
    private readonly activity: { inFlight: number; lastStartMs: number },
  ) {
    this.killSignal = new Promise((resolve) => (this.fireKill = resolve));
    const { recorder } = context;
    const call = async ({ value, aborted, result }: ListenerCall): Promise<ConsumeResult> => {
      if (this.dead) return this.afterDeath();
      const process = recorder.newProcess(lane);
      recorder.invokeConsume(process, value);
      this.activity.inFlight += 1;
      this.callsInFlight += 1;
      this.activity.lastStartMs = recorder.now();
      try {
        const ending: Promise<'done' | 'killed' | 'aborted'>[] = [sleep(rng.int(settings.handleMaxMs + 1)).then(() => 'done' as const), this.killSignal.then(() => 'killed' as const)];
        if (aborted !== undefined) ending.push(aborted.then(() => 'aborted' as const));
        const how = await Promise.race(ending);
        if (how === 'killed') {
          recorder.consumeEnded(process, value, 'info');
          return this.afterDeath();
        }
        if (how === 'aborted') {
          // It stopped working on the message now; what it returns no longer matters.
          recorder.consumeEnded(process, value, 'info');
          return 'SUSPEND';
        }
        const outcome = result();
        recorder.consumeEnded(process, value, outcome);
        return outcome;
      } finally {
        this.activity.inFlight -= 1;
        this.callsInFlight -= 1;
      }
    };
    this.consumer = factory(client, id, call);
  }

  get killed(): boolean {
    return this.dead;
  }

  kill(): void {
    this.dead = true;
    this.fireKill();
    // It cannot settle while a killed call hangs, so nothing is committed, sent back or released.
    this.stopping = this.consumer.stop().catch(() => undefined);
    this.client.close();
  }

  /**
   * After the run's consumption: the killed calls return at last (to a consumer whose client is
   * closed, so nothing reaches the cluster), its stop settles and its loops and timers end.
   */
  async bury(): Promise<boolean> {
    assert(this.dead, 'only a killed consumer is buried');
    this.endAfterlife();
    const stopping = this.stopping ?? Promise.resolve();
    return Promise.race([stopping.then(() => true), sleep(stopTimeoutMs).then(() => false)]);
  }

  /** A killed call's result: held back until the consumer is buried, never recorded. */
  private afterDeath(): Promise<ConsumeResult> {
    return this.afterlife.then(() => 'SUSPEND');
  }

  async stop(): Promise<boolean> {
    const stopped = await Promise.race([this.consumer.stop().then(() => true, () => false), sleep(stopTimeoutMs).then(() => false)]);
    this.client.close();
    return stopped;
  }
}

export class ConsumerChurn {
  private readonly live: ConsumerIncarnation[] = [];
  private readonly dead: ConsumerIncarnation[] = [];
  private started = 0;
  private killing = true;
  private readonly activity = { inFlight: 0, lastStartMs: 0 };
  private killLoop: Promise<void> | null = null;

  constructor(
    private readonly context: WorkloadContext,
    private readonly settings: ChurnSettings,
    private readonly factory: ConsumerFactory,
    private readonly rng: Rng,
    private readonly log: (line: string) => void,
  ) {}

  async start(): Promise<void> {
    for (let i = 0; i < this.settings.consumers; i++) await this.startOne();
    this.killLoop = this.killAndReplace();
  }

  /** Stops the kills, then waits until no delivery began for quietMs and none is in progress. */
  async quiesce(): Promise<void> {
    this.killing = false;
    await this.killLoop;
    const { recorder } = this.context;
    const quiet = () => this.activity.inFlight === 0 && recorder.now() - this.activity.lastStartMs >= this.settings.quietMs;
    if (!(await untilQuiet(this.context, this.settings.quiesceMaxMs, quiet))) this.log(`the consumer group was not quiet within ${this.settings.quiesceMaxMs} ms; going on anyway`);
  }

  /** Stops the live consumers, then buries the killed ones (their loops and timers end too). */
  async stop(): Promise<void> {
    const results = await Promise.all(this.live.map((c) => c.stop()));
    const stuck = results.filter((ok) => !ok).length;
    if (stuck > 0) this.log(`${stuck} consumer(s) did not stop within ${stopTimeoutMs} ms`);
    const unburied = (await Promise.all(this.dead.map((c) => c.bury()))).filter((ok) => !ok).length;
    if (unburied > 0) this.log(`${unburied} killed consumer(s) did not wind down within ${stopTimeoutMs} ms`);
  }

  private async startOne(): Promise<void> {
    const n = this.started++;
    const incarnation = new ConsumerIncarnation(this.context.newClient(), this.context, this.settings, this.rng.fork(), `consumer ${n}`, `chaos-consumer-${n}`, this.factory, this.activity);
    this.live.push(incarnation);
    // Until a leader answers, start fails: retry, as a restarted process would.
    while (!incarnation.killed) {
      try {
        await incarnation.consumer.start();
        return;
      } catch {
        await sleep(200);
      }
    }
  }

  private async killAndReplace(): Promise<void> {
    while (this.killing && !this.context.stopped()) {
      await sleep(this.settings.killMinMs + this.rng.int(this.settings.killMaxMs - this.settings.killMinMs + 1));
      if (!this.killing || this.context.stopped()) return;
      const victim = this.live.splice(this.rng.int(this.live.length), 1)[0];
      if (victim === undefined) continue;
      this.log(`killed consumer ${victim.id} (${victim.callsInFlight} listener call(s) in progress); starting another`);
      victim.kill();
      this.dead.push(victim);
      await this.startOne();
    }
  }
}
