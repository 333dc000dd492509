// The cluster secret file (security.clusterSecretFile): the key every node proves to its
// peers in the peer handshake (transport/peer-handshake.ts). This folder holds the security
// material a node reads at start; it sits below transport and broker, which import it.
// Owns the file's format (the secret as hex or base64 text), creating one for `cluster start`,
// and the checks `node start` makes before trusting one: a node never creates a secret (a
// typo in the path would otherwise start a node that no peer accepts), and a secret that other
// users can read is no secret. Every problem is an LMQ_BAD_CONFIG line saying what to do.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';

/** What `cluster start` writes: 256 bits. */
export const CREATED_SECRET_BYTES = 32;
/** 128 bits: below that a secret can be guessed offline from one recorded handshake. */
export const MIN_SECRET_BYTES = 16;
const MAKE_ONE = 'make one with `openssl rand -hex 32`, or delete it and run `ledgermq cluster start`';

/**
 * Creates the secret file when it is missing (its folder too): 32 random bytes as hex, mode
 * 0600. Returns whether it created one. An existing file is left alone, good or bad.
 */
export function createClusterSecretIfMissing(path: string): boolean {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const text = `${randomBytes(CREATED_SECRET_BYTES).toString('hex')}\n`;
  try {
    // 'wx': two `cluster start`s racing must not end with two different secrets.
    writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new LmqError('LMQ_BAD_CONFIG', `cannot create cluster secret file ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)}); check security.clusterSecretFile and its folder`);
  }
  return true;
}

/** Reads and checks the secret file; throws LmqError LMQ_BAD_CONFIG saying what to do. */
export function readClusterSecret(path: string): Buffer {
  const fail = (problem: string): never => {
    throw new LmqError('LMQ_BAD_CONFIG', `cluster secret file ${path} ${problem}`);
  };
  let text: string;
  try {
    const stats = statSync(path);
    if (!stats.isFile()) fail('is not a regular file; point security.clusterSecretFile at the file every node shares');
    // Windows has no such permission bits; elsewhere group or other access is a leak.
    if (process.platform !== 'win32' && (stats.mode & 0o077) !== 0) {
      fail(`can be read or changed by other users (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}); run chmod 600 ${path}`);
    }
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof LmqError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    if (code === 'ENOENT') {
      return fail('does not exist; `ledgermq cluster start` creates it, or copy the file the other nodes use (mode 0600)');
    }
    return fail(`cannot be read (${code}); make it readable by the user running the node, mode 0600`);
  }
  return decodeClusterSecret(text, fail);
}

/** Hex (as `openssl rand -hex` writes) or else base64 (`openssl rand -base64`); whitespace around it is ignored. */
function decodeClusterSecret(text: string, fail: (problem: string) => never): Buffer {
  const trimmed = text.trim();
  let secret: Buffer;
  if (/^(?:[0-9a-fA-F]{2})+$/.test(trimmed)) secret = Buffer.from(trimmed, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) secret = Buffer.from(trimmed, 'base64');
  else return fail(`is not hex or base64 text; ${MAKE_ONE}`);
  if (secret.length < MIN_SECRET_BYTES) {
    return fail(`holds ${secret.length} bytes of secret, fewer than ${MIN_SECRET_BYTES}; ${MAKE_ONE}`);
  }
  assert(secret.length >= MIN_SECRET_BYTES, 'a secret has at least MIN_SECRET_BYTES');
  return secret;
}
