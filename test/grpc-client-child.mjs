// A child process that drives the official RocketMQ client (rocketmq-client-nodejs 1.0.8) once:
// a producer sends one message, and a simple consumer receives (and acks) until that message
// comes. It is a process of its own because the way to trust a private CA,
// GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, is read when grpc-js loads. Argument: JSON
// {endpoints, ssl, credentials?, topic, group?, body}; prints one JSON line per step
// ({step, ok} or {step, code, message}) and ends after the first failure.
import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';

const STEP_MS = 20_000;
const args = JSON.parse(process.argv[2]);
const quiet = { info() {}, warn() {}, debug() {}, error() {} };
const common = {
  endpoints: args.endpoints,
  namespace: '',
  sslEnabled: args.ssl,
  logger: quiet,
  ...(args.credentials === undefined ? {} : { sessionCredentials: { accessKey: args.credentials.accessKey, accessSecret: args.credentials.secretKey } }),
};

function bounded(what, work) {
  let timer;
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${STEP_MS} ms`)), STEP_MS)));
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** The message of an error and of its causes (the client wraps a startup failure). */
function describe(error) {
  const parts = [];
  for (let e = error; e !== undefined && e !== null && parts.length < 5; e = e.cause) parts.push(e instanceof Error ? e.message : String(e));
  return parts.join(' <- ');
}

async function step(name, work) {
  try {
    const value = await bounded(name, work());
    console.log(JSON.stringify({ step: name, ok: true, ...(value ?? {}) }));
    return true;
  } catch (error) {
    console.log(JSON.stringify({ step: name, ok: false, code: error?.code ?? null, message: describe(error) }));
    return false;
  }
}

const producer = new Producer({ ...common, topics: [args.topic] });
let messageId;
const ok =
  (await step('producer startup', () => producer.startup())) &&
  (await step('send', async () => {
    ({ messageId } = await producer.send({ topic: args.topic, body: Buffer.from(args.body) }));
    return { messageId };
  })) &&
  args.group !== undefined &&
  (await step('consumer startup', async () => {
    const consumer = new SimpleConsumer({ ...common, consumerGroup: args.group, subscriptions: new Map([[args.topic, '*']]), awaitDuration: 2_000 });
    await consumer.startup();
    globalThis.consumer = consumer;
  })) &&
  (await step('receive', async () => {
    const consumer = globalThis.consumer;
    for (;;) {
      for (const message of await consumer.receive(16, 10_000)) {
        await consumer.ack(message);
        if (message.messageId === messageId) return { body: message.body.toString() };
      }
    }
  }));
await step('shutdown', async () => {
  await producer.shutdown().catch(() => undefined);
  await globalThis.consumer?.shutdown().catch(() => undefined);
});
process.exit(ok ? 0 : 1);
