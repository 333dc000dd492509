import { BaseClient } from 'rocketmq-client-nodejs';

// A defect of the official client (rocketmq-client-nodejs 1.0.8), not of the broker: when its
// telemetry stream ends or fails, TelemetrySession.release() ends the stream and removes every
// listener from it, and opens a new one a second later. If the connection under the old stream
// then resets (a node was SIGKILLed), grpc-js emits the call's UNAVAILABLE status as an 'error'
// on a stream nobody listens to any more, which Node throws as an uncaught exception — one that
// fails the whole test run though every test passed. This keeps one quiet 'error' listener on
// every telemetry stream the client opens, through removeAllListeners(), so that late error is
// dropped; the client's own handling of errors on a live stream is unchanged.

type Stream = ReturnType<BaseClient['createTelemetryStream']>;

const ignoreLateError = (): void => undefined;
const createTelemetryStream = BaseClient.prototype.createTelemetryStream;

BaseClient.prototype.createTelemetryStream = function (this: BaseClient, ...args: Parameters<BaseClient['createTelemetryStream']>): Stream {
  const stream = createTelemetryStream.apply(this, args);
  const removeAllListeners = stream.removeAllListeners.bind(stream);
  stream.removeAllListeners = (...events: Parameters<Stream['removeAllListeners']>) => {
    removeAllListeners(...events);
    if (events.length === 0 || events[0] === 'error') stream.on('error', ignoreLateError);
    return stream;
  };
  stream.on('error', ignoreLateError);
  return stream;
};
