// CPU cost of signed client-port requests (security.aclFile), without the network: per produce
// request of N messages × 128 B, the client's frame (plain, or signed: the body encoded, hashed
// and HMAC'ed) and the node's path (frame decoded, parsed; signed: the payload decoded, hashed,
// the HMAC verified, the nonce admitted). Single-threaded; compare the two columns.
// Run: npx tsc -p tsconfig.json && node dist/bench/request-auth-bench.js
import { Acl } from '../src/security/acl.js';
import { RequestAuthenticator } from '../src/security/authenticator.js';
import type { Credentials } from '../src/security/signature.js';
import { encodeFrame, FrameDecoder } from '../src/transport/framing.js';
import { parseRequest, requestFrameValue } from '../src/transport/rpc-protocol.js';
import { assert } from '../src/util/assert.js';

const CREDENTIALS: Credentials = { accessKey: 'bench', secretKey: 'bench-secret-key' };
const MESSAGES_PER_REQUEST = [1, 32, 256];
const BODY_BYTES = 128;
/** Messages per measured run, whatever their grouping into requests. */
const MESSAGES_PER_RUN = 200_000;

function produce(messages: number, seq: number): unknown {
  return {
    op: 'produce',
    producerId: 'bench-producer',
    seq,
    messages: Array.from({ length: messages }, (_, i) => ({ msgId: `m-${seq}-${i}`, topic: 'bench', queueId: i % 8, body: Buffer.alloc(BODY_BYTES, i) })),
  };
}

/** Microseconds per request of the client's encode and of the node's decode and check. */
function measure(messages: number, credentials: Credentials | undefined): { clientUs: number; serverUs: number } {
  const acl = Acl.parse({ users: [{ ...CREDENTIALS, admin: true }] }, 'bench');
  const authenticator = new RequestAuthenticator({ current: () => acl }, 'n1');
  const decoder = new FrameDecoder();
  const requests = Math.ceil(MESSAGES_PER_RUN / messages);
  let clientNs = 0n;
  let serverNs = 0n;
  for (let i = 0; i < requests; i++) {
    const body = produce(messages, i + 1);
    const encodeStarted = process.hrtime.bigint();
    const frame = encodeFrame(requestFrameValue(i, body, credentials === undefined ? undefined : { credentials, audience: 'n1' }));
    const decodeStarted = process.hrtime.bigint();
    decoder.push(frame);
    const request = parseRequest(decoder.next()!.value);
    assert(typeof request !== 'string', 'the bench frames are requests');
    if (credentials !== undefined) authenticator.authenticate(request.credentials, 'produce', '127.0.0.1');
    const done = process.hrtime.bigint();
    clientNs += decodeStarted - encodeStarted;
    serverNs += done - decodeStarted;
  }
  return { clientUs: Number(clientNs) / 1000 / requests, serverUs: Number(serverNs) / 1000 / requests };
}

for (const messages of MESSAGES_PER_REQUEST) {
  measure(messages, CREDENTIALS); // warm-up
  measure(messages, undefined);
  const plain = measure(messages, undefined);
  const signed = measure(messages, CREDENTIALS);
  const line = (what: string, a: number, b: number) => `${what} ${a.toFixed(1)} → ${b.toFixed(1)} µs (+${(b - a).toFixed(1)})`;
  process.stdout.write(`${messages} × ${BODY_BYTES} B per request: ${line('client', plain.clientUs, signed.clientUs)}; ${line('node', plain.serverUs, signed.serverUs)}\n`);
}
