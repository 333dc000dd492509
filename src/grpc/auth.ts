// Who a RocketMQ 5 call comes from, under security.aclFile. The official clients sign every call
// with two headers: `x-mq-date-time` (UTC, yyyyMMdd'T'HHmmss'Z') and `authorization:
// MQv2-HMAC-SHA1 Credential=<accessKey>, SignedHeaders=x-mq-date-time, Signature=<hex
// HMAC-SHA1(secretKey, that date-time)>`. The endpoint checks it against the node's ACL — a
// known user, a signature that matches (constant time), a date within MAX_CLOCK_SKEW_MS of the
// node's clock, an allowed address — and then carries the call to the cluster as that user: a
// LedgerClient signed with the user's credentials (the native scheme, src/security), so the
// broker's access rules (src/broker/access.ts) decide what the user may do, exactly as for a
// native client, and answer LMQ_FORBIDDEN (40300) otherwise. A failed check is 40100.
// RocketMQ's scheme signs only the date, so a captured header can be replayed for any call
// within the skew window: only TLS on the gRPC port (security.tls) keeps it off the wire.
// Without an ACL every call is carried by the endpoint's own unsigned client, as before.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { type AclUser, addressAllowed } from '../security/acl.js';
import type { AclSource } from '../security/acl-source.js';
import { type Credentials, MAX_CLOCK_SKEW_MS } from '../security/signature.js';
import { Code, GrpcRequestError } from './codes.js';

const SCHEME = 'MQv2-HMAC-SHA1';
/** `Credential=ak, SignedHeaders=x-mq-date-time, Signature=HEX` (the client's spacing, any case of hex). */
const AUTHORIZATION = /^MQv2-HMAC-SHA1 Credential=([^,\s]+),\s*SignedHeaders=x-mq-date-time,\s*Signature=([0-9A-Fa-f]{40})$/;
const DATE_TIME = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const HOW_TO_SIGN = 'give the client sessionCredentials { accessKey, accessSecret } of a user in the cluster\'s ACL file (security.aclFile)';

/** The RocketMQ signature of `dateTime` under `secretKey`, as the clients compute it. */
export function rocketmqSignature(secretKey: string, dateTime: string): string {
  return createHmac('sha1', secretKey).update(dateTime).digest('hex').toUpperCase();
}

/** epoch ms of an x-mq-date-time value, or undefined when it is not one. */
export function dateTimeMs(value: string): number | undefined {
  const m = DATE_TIME.exec(value);
  if (m === null) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isNaN(ms) ? undefined : ms;
}

function header(metadata: grpc.Metadata, name: string): string | undefined {
  const [value] = metadata.get(name);
  return typeof value === 'string' ? value : undefined;
}

function refuse(message: string): never {
  throw new GrpcRequestError(Code.UNAUTHORIZED, message);
}

/** The address part of grpc-js's getPeer() ("127.0.0.1:5000", "[::1]:5000", "ipv4:…"). */
export function peerAddress(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, '');
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(bare);
  if (bracketed !== null) return bracketed[1]!;
  const colon = bare.lastIndexOf(':');
  return colon > 0 && bare.indexOf(':') === colon ? bare.slice(0, colon) : bare;
}

/** The ACL user who signed a call; throws GrpcRequestError 40100 saying which check failed. */
export function authenticateCall(acl: Pick<AclSource, 'current'>, metadata: grpc.Metadata, peer: string, nowMs: number): AclUser {
  const authorization = header(metadata, 'authorization');
  if (authorization === undefined) refuse(`call not signed: this cluster has an ACL; ${HOW_TO_SIGN}`);
  const parsed = AUTHORIZATION.exec(authorization);
  if (parsed === null) refuse(`malformed authorization header: expected "${SCHEME} Credential=<accessKey>, SignedHeaders=x-mq-date-time, Signature=<hex>"`);
  const [, accessKey, signature] = parsed as unknown as [string, string, string];
  const dateTime = header(metadata, 'x-mq-date-time') ?? '';
  const signedMs = dateTimeMs(dateTime);
  if (signedMs === undefined) refuse(`x-mq-date-time "${dateTime.slice(0, 40)}" is not yyyyMMdd'T'HHmmss'Z'`);
  const user = acl.current().user(accessKey);
  if (user === undefined) refuse(`access key "${accessKey.slice(0, 64)}" is not a user of the node's ACL; ${HOW_TO_SIGN}`);
  const expected = Buffer.from(rocketmqSignature(user.secretKey, dateTime), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) refuse(`the signature of access key "${accessKey}" does not match: wrong secret key`);
  const skewMs = signedMs - nowMs;
  // The date has whole seconds: a call signed in the current second may look up to 1 s early.
  if (skewMs > MAX_CLOCK_SKEW_MS + 1_000 || -skewMs > MAX_CLOCK_SKEW_MS) {
    refuse(`the call of access key "${accessKey}" is dated ${Math.round(skewMs / 1000)} s off the node's clock (at most ${MAX_CLOCK_SKEW_MS / 1000} s allowed); check the client's clock`);
  }
  const address = peerAddress(peer);
  if (!addressAllowed(user, address)) refuse(`user "${accessKey}" may not connect from ${address} (allowedAddresses in the ACL file)`);
  return user;
}

/**
 * What carries the calls of each user: made on a user's first call, made again when the ACL
 * gives the user another secret key, closed when the user leaves the ACL (or at close()).
 */
export class CallerPool<T extends { close(): void }> {
  private readonly byUser = new Map<string, { readonly secretKey: string; readonly value: T }>();

  constructor(
    private readonly acl: Pick<AclSource, 'current'>,
    private readonly make: (credentials: Credentials) => T,
  ) {}

  of(user: AclUser): T {
    const known = this.byUser.get(user.accessKey);
    if (known !== undefined && known.secretKey === user.secretKey) return known.value;
    known?.value.close();
    const value = this.make({ accessKey: user.accessKey, secretKey: user.secretKey });
    this.byUser.set(user.accessKey, { secretKey: user.secretKey, value });
    return value;
  }

  /** After an ACL reload: drops users that are gone. */
  prune(): void {
    const current = this.acl.current();
    for (const [accessKey, { value }] of [...this.byUser]) {
      if (current.user(accessKey) === undefined) {
        value.close();
        this.byUser.delete(accessKey);
      }
    }
  }

  close(): void {
    for (const { value } of this.byUser.values()) value.close();
    this.byUser.clear();
  }
}
