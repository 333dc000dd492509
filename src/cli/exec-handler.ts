// What `consume --exec` shares between its concurrent (consume-exec.ts) and orderly
// (consume-orderly.ts) forms: running CMD for one message, and running a consumer until the
// command's stop conditions hold.
//
// CMD runs through `sh -c` in a process group of its own (so a kill reaches whatever it
// started), with the body on stdin and the message in LMQ_MSG_ID, LMQ_RECONSUME_TIMES,
// LMQ_TOPIC, LMQ_QUEUE and LMQ_OFFSET; its stdout and stderr go to consume's stderr, so
// consume's stdout stays empty.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** The fields of a message the command sees. */
export interface HandledMessage {
  readonly msgId: string;
  readonly reconsumeTimes: number;
  readonly topic: string;
  readonly queueId: number;
  readonly offset: number;
  readonly body: Uint8Array;
}

/**
 * Runs the command for one message; resolves true when it exited 0. An abort of `signal`
 * SIGKILLs its process group (`abortReason` says why, in the failure line). A failure is
 * logged as one line ending with `then` (what the consumer does next).
 */
export function runHandler(command: string, message: HandledMessage, then: string, signal?: AbortSignal, abortReason = 'was aborted'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: {
        ...process.env,
        LMQ_MSG_ID: message.msgId,
        LMQ_RECONSUME_TIMES: String(message.reconsumeTimes),
        LMQ_TOPIC: message.topic,
        LMQ_QUEUE: String(message.queueId),
        LMQ_OFFSET: String(message.offset),
      },
    });
    const kill = () => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    };
    signal?.addEventListener('abort', kill, { once: true });
    // Written as it comes (stderr is synchronous for pipes and files), not piped: twenty
    // handlers piped into one stream would pile listeners on it.
    child.stdout.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    // A command that does not read its stdin closes it early: that is not a failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(message.body);
    child.once('error', (error) => {
      signal?.removeEventListener('abort', kill);
      reject(error);
    });
    child.once('close', (code, exitSignal) => {
      signal?.removeEventListener('abort', kill);
      if (code === 0) return resolve(true);
      const how = signal?.aborted === true ? abortReason : exitSignal === null ? `exited with ${code}` : `was killed by ${exitSignal}`;
      process.stderr.write(`consume: handler for ${message.msgId} (${message.topic}/${message.queueId}@${message.offset}) ${how}: ${then}\n`);
      resolve(false);
    });
  });
}

/** How often the stop conditions are looked at. */
const CHECK_INTERVAL_MS = 50;

/** What the stop conditions read of a running consumer. */
export interface ConsumerProgress {
  /** Handlers running now. */
  readonly running: number;
  /** Messages handed out or finished so far (any count that moves while work is done). */
  readonly progressed: number;
  /** --max reached and nothing running. */
  readonly done: boolean;
}

/**
 * Starts the consumer and runs it until --max was reached, or nothing progressed for
 * timeoutMs while no handler ran (monotonic: --timeout is a duration), or SIGINT/SIGTERM;
 * then stops it (handlers in progress finish, offsets are committed).
 */
export async function runUntilDone(consumer: { start(): Promise<void>; stop(): Promise<void> }, progress: () => ConsumerProgress, timeoutMs: number): Promise<void> {
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
  };
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
  try {
    await consumer.start();
    let lastActiveMs = performance.now();
    let progressed = 0;
    for (;;) {
      const now = progress();
      if (interrupted || now.done) break;
      if (now.running > 0 || now.progressed !== progressed) lastActiveMs = performance.now();
      progressed = now.progressed;
      if (performance.now() - lastActiveMs >= timeoutMs) break;
      await sleep(CHECK_INTERVAL_MS);
    }
    await consumer.stop();
  } finally {
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
  }
}
