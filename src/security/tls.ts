// The TLS material of security.tls (config.ts), read and checked before a node trusts it, and
// the socket layers made from it (transport/tls-sockets.ts). A node reads all three files —
// its certificate and key (`{id}` in their paths is its node id, so one config serves every
// node) and the CA — and refuses to start on any problem with one LMQ_BAD_CONFIG line naming
// the file and what to do: missing, unreadable, not PEM, a key that is not the certificate's,
// a certificate the CA did not issue, or one outside its validity. A client reads only the CA.
// The transport makes its TLS sockets from these bytes (transport/tls-sockets.ts).

import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ClusterConfig } from '../config/config.js';
import { LmqError } from '../util/errors.js';

export type TlsConfig = NonNullable<NonNullable<ClusterConfig['security']>['tls']>;

export interface NodeTlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

const MAKE_THEM = 'run `ledgermq certs init` to make a CA and node certificates';

/** The node's own file for a path of security.tls: `{id}` is replaced by its node id. */
export function tlsFileFor(path: string, nodeId: string): string {
  return path.replaceAll('{id}', nodeId);
}

function readPem(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    const what = code === 'ENOENT' ? `does not exist; ${MAKE_THEM}, or point ${key} at the PEM file` : `cannot be read (${code}); make it readable by the user running the node`;
    throw new LmqError('LMQ_BAD_CONFIG', `${key} file ${path} ${what}`);
  }
}

function parseCertificate(pem: Buffer, path: string, key: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new LmqError('LMQ_BAD_CONFIG', `${key} file ${path} is not a PEM certificate ("-----BEGIN CERTIFICATE-----"); ${MAKE_THEM}`);
  }
}

function parseKey(pem: Buffer, path: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    throw new LmqError('LMQ_BAD_CONFIG', `security.tls.key file ${path} is not an unencrypted PEM private key; ${MAKE_THEM}`);
  }
}

/** How many certificates a PEM file holds: a chain (leaf and intermediates) is checked against the CA by the TLS handshake only. */
function certificateCount(pem: Buffer): number {
  return pem.toString('latin1').split('-----BEGIN CERTIFICATE-----').length - 1;
}

function validityProblem(cert: X509Certificate, nowMs: number): string | null {
  if (Date.parse(cert.validFrom) > nowMs) return `is not valid before ${cert.validFrom}`;
  if (Date.parse(cert.validTo) < nowMs) return `expired on ${cert.validTo}; make a new one (\`ledgermq certs init --force\`)`;
  return null;
}

/** The CA certificate(s) a client or node verifies the other side against. */
export function readTlsCa(path: string, key = 'security.tls.ca'): Buffer {
  const pem = readPem(path, key);
  const ca = parseCertificate(pem, path, key);
  const problem = validityProblem(ca, Date.now());
  if (problem !== null) throw new LmqError('LMQ_BAD_CONFIG', `${key} file ${path} ${problem}`);
  return pem;
}

/** Reads and checks the node's certificate, key and CA (see the header); throws LMQ_BAD_CONFIG. */
export function readNodeTls(tls: TlsConfig, nodeId: string): NodeTlsFiles {
  const certPath = tlsFileFor(tls.cert, nodeId);
  const keyPath = tlsFileFor(tls.key, nodeId);
  const ca = readTlsCa(tls.ca);
  const certPem = readPem(certPath, 'security.tls.cert');
  const keyPem = readPem(keyPath, 'security.tls.key');
  const cert = parseCertificate(certPem, certPath, 'security.tls.cert');
  if (!cert.checkPrivateKey(parseKey(keyPem, keyPath))) {
    throw new LmqError('LMQ_BAD_CONFIG', `security.tls.key file ${keyPath} is not the key of the certificate ${certPath}; give each node the key its certificate was made with`);
  }
  const problem = validityProblem(cert, Date.now());
  if (problem !== null) throw new LmqError('LMQ_BAD_CONFIG', `security.tls.cert file ${certPath} ${problem}`);
  if (certificateCount(certPem) === 1 && certificateCount(ca) === 1 && !cert.checkIssued(new X509Certificate(ca))) {
    throw new LmqError('LMQ_BAD_CONFIG', `security.tls.cert file ${certPath} was not issued by the CA ${tls.ca}, so no peer would accept it; use a certificate that CA signed (${MAKE_THEM})`);
  }
  return { cert: certPem, key: keyPem, ca };
}
