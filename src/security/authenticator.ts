// Who sent a request: checks the credentials a client-port request presents against the ACL in
// force — a known access key, a matching signature over the request's bytes, an allowed
// address, a fresh timestamp and an unused nonce — and answers with the user, or refuses with
// LMQ_UNAUTHENTICATED saying which check failed. What the user may then do is decided by the
// caller (the broker's access rules), per operation.
import { LmqError } from '../util/errors.js';
import { type AclUser, addressAllowed } from './acl.js';
import type { AclSource } from './acl-source.js';
import { payloadDigest, type PresentedCredentials, ReplayGuard, signatureMatches } from './signature.js';

const HOW_TO_SIGN = 'pass --access-key and --secret-key (or set LMQ_ACCESS_KEY and LMQ_SECRET_KEY) of a user in the ACL file';

function refuse(message: string, accessKey?: string): never {
  throw new LmqError('LMQ_UNAUTHENTICATED', message, accessKey === undefined ? {} : { accessKey });
}

export class RequestAuthenticator {
  constructor(
    private readonly acls: Pick<AclSource, 'current'>,
    /** This node's id: a request signed for another node is refused. */
    private readonly selfId: string,
    private readonly guard = new ReplayGuard(),
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** The user who signed the request for `op`; throws LMQ_UNAUTHENTICATED. */
  authenticate(presented: PresentedCredentials, op: string, remoteAddress: string): AclUser {
    if (presented === undefined) refuse(`request not signed: this cluster has an ACL (security.aclFile); ${HOW_TO_SIGN}`);
    if ('malformed' in presented) refuse(`request refused: malformed credentials (${presented.malformed})`);
    const { accessKey } = presented;
    const user = this.acls.current().user(accessKey);
    if (user === undefined) refuse(`access key "${accessKey}" is not a user of the node's ACL; ${HOW_TO_SIGN}`, accessKey);
    if (!signatureMatches(user.secretKey, presented, op, payloadDigest(presented.payload), this.selfId)) {
      refuse(`the signature of access key "${accessKey}" does not match: wrong secret key, the request was altered, or it was signed for another node than ${this.selfId}`, accessKey);
    }
    if (!addressAllowed(user, remoteAddress)) refuse(`user "${accessKey}" may not connect from ${remoteAddress} (allowedAddresses in the ACL file)`, accessKey);
    const replay = this.guard.admit(accessKey, presented.timestampMs, presented.nonce, this.nowMs());
    if (replay !== null) refuse(`request of access key "${accessKey}" refused: ${replay}`, accessKey);
    return user;
  }

  /** After an ACL reload: forget the nonces of users that are gone. */
  retainUsers(accessKeys: ReadonlySet<string>): void {
    this.guard.retainOnly(accessKeys);
  }
}
