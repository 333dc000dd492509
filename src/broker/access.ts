// Who may do what on the client port (security.aclFile): every request is authenticated where
// it enters — on whichever node the client reached, before the leader check, so a follower
// neither redirects nor answers an unproven client — and then authorized per operation:
//   produce                              PUB on each topic written
//   pull, lookupByKey                    SUB on the topic
//   lookupByMsgId                        SUB on the found message's topic (checked on the answer)
//   heartbeat, leaveGroup, commitOffsets SUB on the group and SUB on each topic
//   queryOffsets                         SUB or RESET on the group (consumers and resets read them)
//   resetOffsets                         RESET on the group
//   sendBack                             SUB on the group and SUB on the topic
//   lockQueues, unlockQueues             SUB on the group and SUB on each topic
//   dlqList                              SUB or RESET on the group
//   dlqResend                            RESET on the group (it re-delivers to the group)
//   receive                              SUB on the group and SUB on the topic
//   ack, changeInvisibleDuration         SUB on the group and SUB on each receipt's topic but
//                                        the group's own %RETRY%<group> (receive reads it for the group)
//   txHalf                               PUB on each topic written
//   txEnd, txChecks, txList              PUB on each topic of the transaction (checked on the
//                                        stored transaction: the request names none)
//   createTopic, growTopic               admin
//   transferLeader, setPreferredLeader   admin
//   status, topics, route, groups,       any authenticated user
//   brokerStats
// Every refusal is LMQ_UNAUTHENTICATED or LMQ_FORBIDDEN naming the user, the resource and the
// missing permission; nothing is carried out.
import { parseReceipt, type Request } from '../protocol/index.js';
import { retryTopicOf } from './commands.js';
import { type AclUser, type Permission, permits, type ResourceKind } from '../security/acl.js';
import type { RequestAuthenticator } from '../security/authenticator.js';
import { type PresentedCredentials, signedOp } from '../security/signature.js';
import { LmqError } from '../util/errors.js';

type Requirement = { readonly kind: ResourceKind; readonly name: string; readonly anyOf: readonly Permission[] } | { readonly admin: true };

const sub = (kind: ResourceKind, name: string): Requirement => ({ kind, name, anyOf: ['SUB'] });
const subOnTopics = (topics: readonly { topic: string }[]): Requirement[] => [...new Set(topics.map((t) => t.topic))].map((t) => sub('topic', t));

/** The permissions `request` needs; [] for operations open to every authenticated user. */
export function requirementsOf(request: Request): readonly Requirement[] {
  switch (request.op) {
    case 'status':
    case 'topics':
    case 'route':
    case 'groups':
    case 'lookupByMsgId':
    case 'brokerStats':
      return [];
    case 'createTopic':
    case 'growTopic':
    case 'transferLeader':
    case 'setPreferredLeader':
      return [{ admin: true }];
    case 'produce':
      return [...new Set(request.messages.map((m) => m.topic))].map((topic) => ({ kind: 'topic', name: topic, anyOf: ['PUB'] }));
    case 'pull':
    case 'lookupByKey':
      return [sub('topic', request.topic)];
    case 'heartbeat':
    case 'leaveGroup':
      return [sub('group', request.group), sub('topic', request.topic)];
    case 'commitOffsets':
      return [sub('group', request.group), ...subOnTopics(request.offsets)];
    case 'sendBack':
      return [sub('group', request.group), sub('topic', request.topic)];
    case 'lockQueues':
    case 'unlockQueues':
      return [sub('group', request.group), ...subOnTopics(request.queues)];
    case 'queryOffsets':
    case 'dlqList':
      return [{ kind: 'group', name: request.group, anyOf: ['SUB', 'RESET'] }];
    case 'resetOffsets':
    case 'dlqResend':
      return [{ kind: 'group', name: request.group, anyOf: ['RESET'] }];
    case 'receive':
      return [sub('group', request.group), sub('topic', request.topic)];
    case 'ack':
    case 'changeInvisibleDuration':
      return [sub('group', request.group), ...subOnTopics(receiptTopics(request.group, request.op === 'ack' ? request.receipts : [request.receipt]))];
    case 'txHalf':
      return [...new Set(request.messages.map((m) => m.topic))].map((topic) => ({ kind: 'topic', name: topic, anyOf: ['PUB'] }));
    case 'txEnd':
    case 'txChecks':
    case 'txList':
      return [];
  }
}

/** The topics receipts name (parsed by the request check already), the group's retry topic left out. */
function receiptTopics(group: string, receipts: readonly string[]): { topic: string }[] {
  const topics = receipts.map((receipt) => parseReceipt(receipt)?.topic).filter((topic): topic is string => topic !== undefined);
  return topics.filter((topic) => topic !== retryTopicOf(group)).map((topic) => ({ topic }));
}

function forbidden(user: AclUser, op: string, requirement: Requirement): LmqError {
  if ('admin' in requirement) {
    return new LmqError('LMQ_FORBIDDEN', `user "${user.accessKey}" may not ${op}: it needs admin (set "admin": true in the ACL file)`, { accessKey: user.accessKey, op, permission: 'admin' });
  }
  const { kind, name, anyOf } = requirement;
  const permission = anyOf.join(' or ');
  const message = `user "${user.accessKey}" may not ${op}: it lacks ${permission} on ${kind} "${name}" (${kind}Perms or default${kind === 'topic' ? 'Topic' : 'Group'}Perm in the ACL file)`;
  return new LmqError('LMQ_FORBIDDEN', message, { accessKey: user.accessKey, op, [kind]: name, permission });
}

export class BrokerAccess {
  constructor(private readonly authenticator: RequestAuthenticator) {}

  /** The user who sent `body`; throws LMQ_UNAUTHENTICATED. Runs before the body is parsed. */
  authenticate(body: unknown, credentials: PresentedCredentials, remoteAddress: string): AclUser {
    return this.authenticator.authenticate(credentials, signedOp(body), remoteAddress);
  }

  /** Throws LMQ_FORBIDDEN naming the first permission `user` lacks for `request`. */
  authorize(user: AclUser, request: Request): void {
    for (const requirement of requirementsOf(request)) {
      const granted = 'admin' in requirement ? user.admin : requirement.anyOf.some((p) => permits(user, requirement.kind, requirement.name, p));
      if (!granted) throw forbidden(user, request.op, requirement);
    }
  }

  /**
   * For answers whose topic is known only once found (lookupByMsgId): SUB on it. A message the
   * user may not read is answered as not found, so a lookup does not tell which ids exist.
   */
  mayRead(user: AclUser, topic: string): boolean {
    return permits(user, 'topic', topic, 'SUB');
  }

  /** For transactions, whose topics are known only once found (txEnd, txChecks, txList): PUB on it. */
  mayPublish(user: AclUser, topic: string): boolean {
    return permits(user, 'topic', topic, 'PUB');
  }
}
