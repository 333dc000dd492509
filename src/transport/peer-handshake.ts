// The peer-port handshake: the dialing node's hello, and the listener's welcome or refusal.
// Owns the message shapes and the checks on bytes received from the other side (untrusted:
// every field is verified, a mismatch yields a reason string to log, never an exception).
// The check is mutual: the listener verifies the dialer's cluster and id, and the dialer
// verifies it reached the node its address map says (catches swapped ports in a config).
// It is a guard against misconfiguration, not authentication: nothing here is secret.

export const PEER_PROTOCOL_VERSION = 1;
/** Bound on a handshake frame (both directions); peers may only send big frames once accepted. */
export const MAX_HANDSHAKE_FRAME_BYTES = 4 * 1024;

export interface PeerHello {
  kind: 'lmq-peer-hello';
  protocolVersion: number;
  clusterId: string;
  /** The dialing node. */
  nodeId: string;
  /** The node the dialer believes it is connecting to. */
  targetId: string;
}

export interface PeerWelcome {
  kind: 'lmq-peer-welcome';
  protocolVersion: number;
  clusterId: string;
  nodeId: string;
}

export interface PeerRefusal {
  kind: 'lmq-peer-refused';
  reason: string;
}

export type HelloVerdict = { accepted: true; peerId: string } | { accepted: false; reason: string };

function fieldOf(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  return (value as Record<string, unknown>)[key];
}

/** Reasons are for logs on both sides; they quote untrusted strings only through JSON.stringify, truncated. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

export function checkHello(
  value: unknown,
  expected: { clusterId: string; selfId: string; knownPeerIds: ReadonlySet<string> },
): HelloVerdict {
  if (fieldOf(value, 'kind') !== 'lmq-peer-hello') return { accepted: false, reason: 'first frame is not a peer hello' };
  const version = fieldOf(value, 'protocolVersion');
  if (version !== PEER_PROTOCOL_VERSION) {
    return { accepted: false, reason: `protocol version ${quote(version)} is not ${PEER_PROTOCOL_VERSION}` };
  }
  const clusterId = fieldOf(value, 'clusterId');
  if (clusterId !== expected.clusterId) {
    return { accepted: false, reason: `cluster id ${quote(clusterId)} does not match this node's ${quote(expected.clusterId)}` };
  }
  const nodeId = fieldOf(value, 'nodeId');
  if (typeof nodeId !== 'string' || !expected.knownPeerIds.has(nodeId)) {
    return { accepted: false, reason: `node id ${quote(nodeId)} is not a peer in this node's config` };
  }
  const targetId = fieldOf(value, 'targetId');
  if (targetId !== expected.selfId) {
    return { accepted: false, reason: `dialer expected node ${quote(targetId)} but this is ${quote(expected.selfId)}; check host/port in the config` };
  }
  return { accepted: true, peerId: nodeId };
}

export type ReplyVerdict = { accepted: true } | { accepted: false; reason: string };

export function checkReply(value: unknown, expected: { clusterId: string; peerId: string }): ReplyVerdict {
  const kind = fieldOf(value, 'kind');
  if (kind === 'lmq-peer-refused') return { accepted: false, reason: `refused by peer: ${quote(fieldOf(value, 'reason'))}` };
  if (kind !== 'lmq-peer-welcome') return { accepted: false, reason: 'reply is not a peer welcome' };
  const version = fieldOf(value, 'protocolVersion');
  if (version !== PEER_PROTOCOL_VERSION) {
    return { accepted: false, reason: `peer protocol version ${quote(version)} is not ${PEER_PROTOCOL_VERSION}` };
  }
  const clusterId = fieldOf(value, 'clusterId');
  if (clusterId !== expected.clusterId) {
    return { accepted: false, reason: `peer cluster id ${quote(clusterId)} does not match ${quote(expected.clusterId)}` };
  }
  const nodeId = fieldOf(value, 'nodeId');
  if (nodeId !== expected.peerId) {
    return { accepted: false, reason: `reached node ${quote(nodeId)} instead of ${quote(expected.peerId)}; check host/port in the config` };
  }
  return { accepted: true };
}
