// The client-port protocol over the shared framing: request and response frame shapes, their
// checks (every frame is untrusted), and the mapping between LmqError and error responses.
// Request ids are chosen by the client and only echoed by the server; many requests may be in
// flight on one connection and responses may come back in any order.
// A request is `{id, body}`, or, signed (security.aclFile), `{id, auth, payload}`: the body's
// msgpack bytes travel as they were signed, so the node verifies exactly the bytes it runs.

import { randomUUID } from 'node:crypto';
import {
  type Credentials,
  MAX_ACCESS_KEY_LENGTH,
  MAX_NONCE_LENGTH,
  payloadDigest,
  type PresentedCredentials,
  type RequestAuth,
  sign,
  SIGNATURE_BYTES,
  signedOp,
} from '../security/signature.js';
import { ERROR_TRAITS, LmqError, type ErrorCode } from '../util/errors.js';
import { decodeValue, encodeValue } from './framing.js';

export interface RpcRequestFrame {
  id: number;
  body: unknown;
  /** What the frame carried besides the body: signed bytes, a malformed envelope, or nothing. */
  credentials: PresentedCredentials;
}

export interface RpcErrorPayload {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export type RpcResponseFrame = { id: number; ok: true; body: unknown } | { id: number; ok: false; error: RpcErrorPayload };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function isRequestId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * A request frame's value: `{id, body}`, or signed as `credentials` for node `audience`
 * `{id, auth, payload}` with the body's bytes as they were signed. The client calls it per
 * attempt, so a retry is signed afresh (a new nonce and timestamp).
 */
export function requestFrameValue(id: number, body: unknown, signer: { credentials: Credentials; audience: string } | undefined): unknown {
  if (signer === undefined) return { id, body };
  const { credentials, audience } = signer;
  const payload = encodeValue(body);
  const timestampMs = Date.now();
  const nonce = randomUUID();
  const signature = sign(credentials.secretKey, credentials.accessKey, signedOp(body), timestampMs, nonce, payloadDigest(payload), audience);
  return { id, auth: { accessKey: credentials.accessKey, timestampMs, nonce, signature }, payload };
}

/**
 * The frame as a request, or a reason it is not one (a protocol violation: close the
 * connection). A signed frame with a malformed envelope is still a request — answered with
 * LMQ_UNAUTHENTICATED saying what is wrong, rather than a closed connection.
 */
export function parseRequest(value: unknown): RpcRequestFrame | string {
  if (!isRecord(value)) return 'request frame is not a map';
  const id = value['id'];
  if (!isRequestId(id)) return 'request id is not a non-negative safe integer';
  if (value['auth'] === undefined) return { id, body: value['body'], credentials: undefined };
  const auth = parseAuth(value['auth']);
  if (typeof auth === 'string') return { id, body: undefined, credentials: { malformed: auth } };
  const payload = value['payload'];
  if (!(payload instanceof Uint8Array)) return { id, body: undefined, credentials: { malformed: 'a signed request carries its body as payload bytes' } };
  let body: unknown;
  try {
    body = decodeValue(payload);
  } catch (error) {
    return { id, body: undefined, credentials: { malformed: (error as Error).message } };
  }
  return { id, body, credentials: { ...auth, payload } };
}

function isBoundedString(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= maxLength;
}

/** The envelope's auth map, or what is wrong with it. */
function parseAuth(value: unknown): RequestAuth | string {
  if (!isRecord(value)) return 'auth is not a map';
  const { accessKey, timestampMs, nonce, signature } = value;
  if (!isBoundedString(accessKey, MAX_ACCESS_KEY_LENGTH)) return `auth.accessKey is not a string of 1 to ${MAX_ACCESS_KEY_LENGTH} characters`;
  if (!isRequestId(timestampMs)) return 'auth.timestampMs is not a non-negative safe integer';
  if (!isBoundedString(nonce, MAX_NONCE_LENGTH)) return `auth.nonce is not a string of 1 to ${MAX_NONCE_LENGTH} characters`;
  if (!(signature instanceof Uint8Array) || signature.byteLength !== SIGNATURE_BYTES) return `auth.signature is not ${SIGNATURE_BYTES} bytes`;
  return { accessKey, timestampMs, nonce, signature };
}

export function parseResponse(value: unknown): RpcResponseFrame | string {
  if (!isRecord(value)) return 'response frame is not a map';
  const id = value['id'];
  if (!isRequestId(id)) return 'response id is not a non-negative safe integer';
  if (value['ok'] === true) return { id, ok: true, body: value['body'] };
  if (value['ok'] !== false) return 'response ok flag is not a boolean';
  const error = value['error'];
  if (!isRecord(error)) return 'error response carries no error map';
  if (typeof error['code'] !== 'string' || typeof error['message'] !== 'string') return 'error response lacks code or message';
  const details = error['details'];
  if (details !== undefined && !isRecord(details)) return 'error response details is not a map';
  return { id, ok: false, error: { code: error['code'], message: error['message'], ...(details === undefined ? {} : { details }) } };
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_TRAITS, code);
}

export function errorResponse(id: number, error: LmqError): RpcResponseFrame {
  return { id, ok: false, error: { code: error.code, message: error.message, details: { ...error.details } } };
}

/** The server's error as the LmqError the caller catches; an unknown code (newer server) is named, not guessed. */
export function errorFromResponse(payload: RpcErrorPayload): LmqError {
  const details = payload.details ?? {};
  if (isErrorCode(payload.code)) return new LmqError(payload.code, payload.message, details);
  return new LmqError('LMQ_UNAVAILABLE', `server replied with unknown error code ${payload.code}: ${payload.message}`, {
    ...details,
    serverCode: payload.code,
  });
}
