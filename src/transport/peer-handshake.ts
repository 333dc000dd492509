// The peer-port handshake: a mutual challenge–response over the cluster secret.
//   1. dialer → listener  hello      {clusterId, nodeId, targetId, nonce Nd}
//   2. listener → dialer  challenge  {nonce Nl, proof Pl = HMAC(secret, "listener" ‖ transcript)}
//   3. dialer → listener  proof      {proof Pd = HMAC(secret, "dialer" ‖ transcript)}
//   4. listener → dialer  accepted   (so the dialer sends nothing a listener would refuse)
// The transcript is (protocol version, auth mode, cluster id, dialer id, listener id, Nd, Nl),
// each side filling in what IT believes, so a proof verifies only when both sides agree on all
// of it and hold the same secret. Fresh nonces from both sides make a recorded handshake
// useless (each proof covers the other side's new nonce); the role label makes a reflected
// proof useless (a listener never computes a dialer's proof). After the proof the dialer's
// frames carry a MAC under a key derived from the secret and both nonces (frame-mac.ts).
//
// Without a secret (loopback-only mode, config.ts) the same exchange runs with an empty key:
// no security, but the same guard against misconfiguration (another cluster, swapped ports).
// The auth mode is in the transcript, so a node with a secret and one without never agree.
//
// A refused dialer learns nothing: the listener answers every well-formed hello with a
// challenge (whether or not its cluster id and ids match), and refuses after the proof with a
// generic reason. The detailed reason is only returned to the caller, for the local log.
// Everything received is untrusted: every field is checked, a mismatch yields a reason string,
// never an exception.

import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { FrameMac } from './frame-mac.js';

/** 2: the challenge–response handshake and MAC'd frames (1 had a plain hello/welcome). */
export const PEER_PROTOCOL_VERSION = 2;
/** Bound on a handshake frame (both directions); peers may only send big frames once accepted. */
export const MAX_HANDSHAKE_FRAME_BYTES = 4 * 1024;
export const NONCE_BYTES = 32;
const PROOF_BYTES = 32;
/** Bound on an id or cluster id in a hello: above the config's own bounds (32 and 64). */
const MAX_HELLO_STRING_CHARS = 128;
/** The only reason a refused dialer is told. */
export const REFUSED_REASON = 'peer handshake refused';

export type AuthMode = 'secret' | 'none';

export interface PeerHello {
  kind: 'lmq-peer-hello';
  protocolVersion: number;
  clusterId: string;
  /** The dialing node. */
  nodeId: string;
  /** The node the dialer believes it is connecting to. */
  targetId: string;
  nonce: Uint8Array;
}

export interface PeerChallenge {
  kind: 'lmq-peer-challenge';
  protocolVersion: number;
  /** Not secret; lets a misconfigured dialer say "one of us has no secret" instead of guessing. */
  authMode: AuthMode;
  nonce: Uint8Array;
  proof: Uint8Array;
}

export interface PeerProof {
  kind: 'lmq-peer-proof';
  proof: Uint8Array;
}

export interface PeerAccepted {
  kind: 'lmq-peer-accepted';
}

export interface PeerRefusal {
  kind: 'lmq-peer-refused';
  reason: string;
}

/** What both sides must agree on, each as it sees it. */
export interface Transcript {
  readonly authMode: AuthMode;
  readonly clusterId: string;
  readonly dialerId: string;
  readonly listenerId: string;
  readonly dialerNonce: Uint8Array;
  readonly listenerNonce: Uint8Array;
}

/** The node's view of the secret: null in loopback-only mode. */
export type ClusterSecret = Uint8Array | null;

const NO_KEY = Buffer.alloc(0);

export function authModeOf(secret: ClusterSecret): AuthMode {
  return secret === null ? 'none' : 'secret';
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

function fieldOf(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  return (value as Record<string, unknown>)[key];
}

/** Reasons are for the local log; they quote untrusted strings only through JSON.stringify, truncated. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

function bytesField(value: unknown, key: string, byteCount: number): Uint8Array | null {
  const field = fieldOf(value, key);
  return field instanceof Uint8Array && field.length === byteCount ? field : null;
}

function stringField(value: unknown, key: string): string | null {
  const field = fieldOf(value, key);
  return typeof field === 'string' && field.length >= 1 && field.length <= MAX_HELLO_STRING_CHARS ? field : null;
}

/** Length-prefixed fields, so no two different transcripts encode to the same bytes. */
function transcriptBytes(label: string, t: Transcript): Buffer {
  const fields: Uint8Array[] = [
    Buffer.from(label),
    Buffer.from(String(PEER_PROTOCOL_VERSION)),
    Buffer.from(t.authMode),
    Buffer.from(t.clusterId),
    Buffer.from(t.dialerId),
    Buffer.from(t.listenerId),
    t.dialerNonce,
    t.listenerNonce,
  ];
  const parts: Uint8Array[] = [];
  for (const field of fields) {
    const length = Buffer.allocUnsafe(2);
    length.writeUInt16BE(field.length, 0);
    parts.push(length, field);
  }
  return Buffer.concat(parts);
}

function proofOf(role: 'listener' | 'dialer', t: Transcript, secret: ClusterSecret): Buffer {
  return createHmac('sha256', secret ?? NO_KEY).update(transcriptBytes(`lmq-peer-proof ${role}`, t)).digest();
}

function proofMatches(received: Uint8Array, role: 'listener' | 'dialer', t: Transcript, secret: ClusterSecret): boolean {
  const expected = proofOf(role, t, secret);
  return received.length === expected.length && timingSafeEqual(received, expected);
}

/**
 * The MAC of the dialer's frames on this connection, or null without a secret (the stream is
 * then as in protocol 1). The key is new for every connection: both nonces are its salt.
 */
export function streamMacOf(t: Transcript, secret: ClusterSecret): FrameMac | null {
  if (secret === null) return null;
  const salt = Buffer.concat([t.dialerNonce, t.listenerNonce]);
  const key = hkdfSync('sha256', secret, salt, transcriptBytes('lmq-peer-stream dialer-to-listener', t), 32);
  return new FrameMac(Buffer.from(key));
}

// ---- the dialer's side -------------------------------------------------------------------

export function helloFor(t: Pick<Transcript, 'clusterId' | 'dialerId' | 'listenerId' | 'dialerNonce'>): PeerHello {
  return {
    kind: 'lmq-peer-hello',
    protocolVersion: PEER_PROTOCOL_VERSION,
    clusterId: t.clusterId,
    nodeId: t.dialerId,
    targetId: t.listenerId,
    nonce: t.dialerNonce,
  };
}

export type ChallengeVerdict = { accepted: true; transcript: Transcript; reply: PeerProof } | { accepted: false; reason: string };

/** Checks the listener's challenge against what this dialer expects; on success, the proof to send. */
export function answerChallenge(
  value: unknown,
  expected: { clusterId: string; selfId: string; peerId: string; dialerNonce: Uint8Array },
  secret: ClusterSecret,
): ChallengeVerdict {
  const kind = fieldOf(value, 'kind');
  if (kind === 'lmq-peer-refused') return { accepted: false, reason: `refused by peer: ${quote(fieldOf(value, 'reason'))}` };
  if (kind !== 'lmq-peer-challenge') return { accepted: false, reason: 'reply is not a peer challenge' };
  const version = fieldOf(value, 'protocolVersion');
  if (version !== PEER_PROTOCOL_VERSION) {
    return { accepted: false, reason: `peer protocol version ${quote(version)} is not ${PEER_PROTOCOL_VERSION}` };
  }
  const authMode = authModeOf(secret);
  const peerMode = fieldOf(value, 'authMode');
  if (peerMode !== authMode) {
    return {
      accepted: false,
      reason: `peer's cluster secret mode is ${quote(peerMode)}, this node's is "${authMode}"; give every node the same security.clusterSecretFile`,
    };
  }
  const nonce = bytesField(value, 'nonce', NONCE_BYTES);
  const proof = bytesField(value, 'proof', PROOF_BYTES);
  if (nonce === null || proof === null) return { accepted: false, reason: 'peer challenge has no valid nonce or proof' };
  const transcript: Transcript = {
    authMode,
    clusterId: expected.clusterId,
    dialerId: expected.selfId,
    listenerId: expected.peerId,
    dialerNonce: expected.dialerNonce,
    listenerNonce: nonce,
  };
  if (!proofMatches(proof, 'listener', transcript, secret)) {
    return {
      accepted: false,
      reason: `peer did not prove it is node ${quote(expected.peerId)} of cluster ${quote(expected.clusterId)}${secret === null ? '' : ' with this cluster secret'}: its clusterId${secret === null ? '' : ' or secret file'} differs, or the host/port in the config reach another node`,
    };
  }
  return { accepted: true, transcript, reply: { kind: 'lmq-peer-proof', proof: proofOf('dialer', transcript, secret) } };
}

/** The listener's answer to our proof: null when accepted, else the reason to log. */
export function acceptanceProblem(value: unknown): string | null {
  const kind = fieldOf(value, 'kind');
  if (kind === 'lmq-peer-accepted') return null;
  if (kind === 'lmq-peer-refused') return `refused by peer: ${quote(fieldOf(value, 'reason'))}`;
  return 'reply to our proof is neither an acceptance nor a refusal';
}

// ---- the listener's side -----------------------------------------------------------------

export interface HelloExpectations {
  clusterId: string;
  selfId: string;
  knownPeerIds: ReadonlySet<string>;
}

export type HelloVerdict =
  | {
      accepted: true;
      transcript: Transcript;
      challenge: PeerChallenge;
      /** Why this dialer will be refused after its proof, or null: kept for the local log only. */
      problem: string | null;
    }
  | { accepted: false; reason: string; reply: PeerRefusal };

/**
 * A malformed hello is refused at once. A well-formed one always gets a challenge, even when
 * its cluster or ids are wrong: answering those differently would tell a stranger which cluster
 * id and node ids are right. The proof in the challenge is over this node's own view.
 */
export function challengeHello(value: unknown, expected: HelloExpectations, secret: ClusterSecret): HelloVerdict {
  const refuse = (reason: string, reply = REFUSED_REASON): HelloVerdict => ({ accepted: false, reason, reply: { kind: 'lmq-peer-refused', reason: reply } });
  if (fieldOf(value, 'kind') !== 'lmq-peer-hello') return refuse('first frame is not a peer hello');
  const version = fieldOf(value, 'protocolVersion');
  if (version !== PEER_PROTOCOL_VERSION) {
    // The version is no secret, and saying it lets an operator see a half-upgraded cluster.
    return refuse(`protocol version ${quote(version)} is not ${PEER_PROTOCOL_VERSION}`, `peer protocol version ${PEER_PROTOCOL_VERSION} required`);
  }
  const clusterId = stringField(value, 'clusterId');
  const nodeId = stringField(value, 'nodeId');
  const targetId = stringField(value, 'targetId');
  const dialerNonce = bytesField(value, 'nonce', NONCE_BYTES);
  if (clusterId === null || nodeId === null || targetId === null || dialerNonce === null) return refuse('peer hello has a missing or malformed field');
  const transcript: Transcript = {
    authMode: authModeOf(secret),
    clusterId: expected.clusterId,
    dialerId: nodeId,
    listenerId: expected.selfId,
    dialerNonce,
    listenerNonce: newNonce(),
  };
  const challenge: PeerChallenge = {
    kind: 'lmq-peer-challenge',
    protocolVersion: PEER_PROTOCOL_VERSION,
    authMode: transcript.authMode,
    nonce: transcript.listenerNonce,
    proof: proofOf('listener', transcript, secret),
  };
  return { accepted: true, transcript, challenge, problem: helloProblem({ clusterId, nodeId, targetId }, expected) };
}

function helloProblem(hello: { clusterId: string; nodeId: string; targetId: string }, expected: HelloExpectations): string | null {
  if (hello.clusterId !== expected.clusterId) {
    return `cluster id ${quote(hello.clusterId)} does not match this node's ${quote(expected.clusterId)}`;
  }
  if (!expected.knownPeerIds.has(hello.nodeId)) return `node id ${quote(hello.nodeId)} is not a peer in this node's config`;
  if (hello.targetId !== expected.selfId) {
    return `dialer expected node ${quote(hello.targetId)} but this is ${quote(expected.selfId)}; check host/port in the config`;
  }
  return null;
}

/** The dialer's proof: null when it proves the transcript, else the reason to log. */
export function proofProblem(value: unknown, transcript: Transcript, secret: ClusterSecret): string | null {
  if (fieldOf(value, 'kind') !== 'lmq-peer-proof') return 'second frame is not a peer proof';
  const proof = bytesField(value, 'proof', PROOF_BYTES);
  if (proof === null) return 'peer proof is malformed';
  if (!proofMatches(proof, 'dialer', transcript, secret)) {
    return `dialer claiming node ${quote(transcript.dialerId)} did not prove ${secret === null ? 'the handshake' : 'the cluster secret'} (wrong secret, or a replayed or forged handshake)`;
  }
  return null;
}
