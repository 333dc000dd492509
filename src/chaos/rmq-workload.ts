// The simple workload through the RocketMQ 5 endpoint (`chaos --client rocketmq`): producers
// SendMessage and simple consumers ReceiveMessage + AckMessage on the nodes' gRPC endpoints
// (rmq-client.ts), each one operation of the history as the native clients' are, so the same
// checker judges what a RocketMQ client saw. The final drains and the dead-letter read stay
// native (the endpoint serves no pull RPC); they read the log, not a client's view.
//
// Where a send went: SendMessage's answer names an offset but no queue, and the endpoint picks
// the queue of a NORMAL message itself, so the workload's topic has ONE queue — every ok send
// is then exactly at (queue 0, offset). Under leader quorum the endpoint answers offset 0 for an
// offset not yet assigned (the native reply says null), so the ok carries null there.
//
// What a receive recorded: each message's queue_id and queue_offset as the endpoint hands them
// out. For a redelivery (attempt > 1) these name the retry copy the broker re-stored, not the
// original's place; the checker judges receives and acks by body and attempt, not by offset.
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReceivedMessage } from '../checker/index.js';
import type { Rng } from '../sim/rng.js';
import type { ChaosWorkloadKind } from './runner.js';
import { RMQ_REQUEST_TIMEOUT_MS, RmqCallError, RmqClient, type RmqReceived, newMessageId } from './rmq-client.js';
import type { ReceiverFactory, SimpleSettings } from './simple-workload.js';
import { queueName, type WorkloadContext } from './workload.js';

/** `chaos --client`: the workload's clients speak ledgermq's protocol or RocketMQ 5's gRPC. */
export const CHAOS_CLIENTS = ['native', 'rocketmq'] as const;
export type ChaosClientKind = (typeof CHAOS_CLIENTS)[number];
/** The workloads `--client rocketmq` can drive: those whose clients' calls the endpoint serves. */
export const RMQ_WORKLOADS: readonly ChaosWorkloadKind[] = ['simple'];
/** The one queue of the workload's topic (see the header). */
export const rmqTopicQueues = 1;

/** The clients' view of the cluster: every node's endpoint, and how each client is named. */
export interface RmqSetup {
  readonly endpoints: readonly string[];
  /** False under leader quorum: the endpoint's offset of an ok send is not the stored one. */
  readonly offsetKnown: boolean;
}

let clientsMade = 0;

/** A new client process (x-mq-client-id host@pid@n@time), first dialling a drawn node's endpoint. */
function newRmqClient(setup: RmqSetup, rng: Rng): RmqClient {
  const clientId = `${hostname()}@${process.pid}@${clientsMade++}@${Date.now().toString(36)}`;
  return new RmqClient({ endpoints: setup.endpoints, firstEndpoint: rng.int(setup.endpoints.length), clientId });
}

/** Sends unique bodies `p<worker>-<n>` to queue 0 one at a time until stopped (one message id per send, kept by its retries). */
export async function runRmqProducer(context: WorkloadContext, setup: RmqSetup, worker: number, rng: Rng): Promise<void> {
  const { settings, recorder } = context;
  const lane = `producer ${worker}`;
  const client = newRmqClient(setup, rng);
  const queue = queueName(settings.topic, 0);
  let process = recorder.newProcess(lane);
  try {
    for (let n = 0; !context.stopped() && !recorder.full; n++) {
      const body = `p${worker}-${n}`.padEnd(settings.messageBytes, '.');
      recorder.invokeSend(process, queue, body);
      try {
        const offset = await client.send(settings.topic, Buffer.from(body), newMessageId(), settings.opTimeoutMs);
        recorder.sendOk(process, queue, body, setup.offsetKnown ? offset : null);
      } catch (error) {
        const outcome = outcomeOf(error);
        recorder.sendFailed(outcome, process, queue, body, messageOf(error));
        if (outcome === 'info') process = recorder.newProcess(lane);
      }
      if (settings.sendPauseMs > 0) await sleep(settings.sendPauseMs);
    }
  } finally {
    client.close();
  }
}

/** Simple consumers of the group on the endpoints: one RmqClient per consumer incarnation. */
export function rmqReceiver(context: WorkloadContext, settings: SimpleSettings, setup: RmqSetup, rng: Rng): ReceiverFactory<RmqReceived> {
  const { topic, pollWaitMs, opTimeoutMs } = context.settings;
  return () => {
    const client = newRmqClient(setup, rng);
    return {
      receive: (max, invisibleDurationMs) => client.receive(settings.group, topic, max, invisibleDurationMs, pollWaitMs),
      ack: (m) => client.ack(settings.group, m, Math.max(opTimeoutMs, RMQ_REQUEST_TIMEOUT_MS)),
      describe: (m): ReceivedMessage => ({ queue: queueName(topic, m.queueId), offset: m.queueOffset, body: m.body.toString('utf8'), attempt: m.deliveryAttempt }),
      outcomeOf,
      close: () => client.close(),
    };
  };
}

function outcomeOf(error: unknown): 'fail' | 'info' {
  return error instanceof RmqCallError ? error.outcome : 'info';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
