import { status } from '@grpc/grpc-js';
import { BaseClient } from 'rocketmq-client-nodejs';

// A defect of the official client (rocketmq-client-nodejs 1.0.8), not of the broker: when its
// telemetry stream ends or fails, TelemetrySession.release() ends the stream and removes every
// listener from it, and opens a new one a second later. If the connection under the old stream
// then resets (a node was SIGKILLed), grpc-js emits the call's UNAVAILABLE status as an 'error'
// on a stream nobody listens to any more, which Node throws as an uncaught exception — one that
// fails the whole test run though every test passed. This keeps one 'error' listener on every
// telemetry stream the client opens, through removeAllListeners(): it drops what a lost
// connection or a closed stream says (UNAVAILABLE, CANCELLED) and keeps any other error for
// the test to fail on (telemetryErrors), so a broker answering a stream wrongly still shows.

type Stream = ReturnType<BaseClient['createTelemetryStream']>;

/** gRPC status codes of a lost connection and of a stream closed by either side. */
const CONNECTION_LOST_CODES: ReadonlySet<number> = new Set([status.CANCELLED, status.UNAVAILABLE]);
const unexpected: Error[] = [];

/** Errors on the client's telemetry streams other than a lost connection; a test expects none. */
export function telemetryErrors(): readonly Error[] {
  return unexpected;
}

const noteError = (error: Error & { code?: unknown }): void => {
  if (typeof error.code === 'number' && CONNECTION_LOST_CODES.has(error.code)) return;
  unexpected.push(error);
};
const createTelemetryStream = BaseClient.prototype.createTelemetryStream;

BaseClient.prototype.createTelemetryStream = function (this: BaseClient, ...args: Parameters<BaseClient['createTelemetryStream']>): Stream {
  const stream = createTelemetryStream.apply(this, args);
  const removeAllListeners = stream.removeAllListeners.bind(stream);
  stream.removeAllListeners = (...events: Parameters<Stream['removeAllListeners']>) => {
    removeAllListeners(...events);
    if (events.length === 0 || events[0] === 'error') stream.on('error', noteError);
    return stream;
  };
  stream.on('error', noteError);
  return stream;
};
