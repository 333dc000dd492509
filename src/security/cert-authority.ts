// `ledgermq certs init`: a local CA and one certificate per node, for a quick start with
// security.tls. Node's crypto parses certificates but cannot issue them, so the openssl command
// line does the signing (child_process, no shell); this module decides names, extensions and
// file modes. Each node certificate is valid for TLS server and client use (the peer port is
// mutual TLS) and names the node's host (IP or DNS) plus 127.0.0.1 and localhost. Keys are
// P-256 ECDSA, written mode 0600; nothing existing is overwritten unless asked.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';

export interface CertsInitOptions {
  readonly dir: string;
  readonly clusterId: string;
  readonly nodes: readonly { readonly id: string; readonly host: string }[];
  readonly days: number;
  /** Overwrite files that exist; otherwise any existing target file refuses the whole run. */
  readonly force: boolean;
}

export interface WrittenCerts {
  readonly caCert: string;
  readonly caKey: string;
  readonly nodes: readonly { readonly id: string; readonly cert: string; readonly key: string }[];
}

/** Up to 100 years; openssl's own limit is far above, a longer one is a typo. */
export const MAX_CERT_DAYS = 36_500;

/** The files certs init writes in `dir`: {id} stands for each node's id (as in security.tls). */
export const CERT_FILE_NAMES = Object.freeze({ caCert: 'ca.pem', caKey: 'ca.key', nodeCert: '{id}.pem', nodeKey: '{id}.key' });

function openssl(args: readonly string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const { code, stderr } = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (code === 'ENOENT') throw new LmqError('LMQ_BAD_INPUT', 'certs init needs the openssl command, which is not on the PATH; install OpenSSL');
    const detail = stderr?.toString().trim().split('\n')[0] ?? String(error);
    throw new LmqError('LMQ_BAD_INPUT', `openssl ${args[0]} failed: ${detail}`);
  }
}

/** subjectAltName for a node: its host as an IP or DNS name, then loopback by IP and name. */
export function subjectAltNames(host: string): string {
  const names = [isIP(host) === 0 ? `DNS:${host}` : `IP:${host}`, 'IP:127.0.0.1', 'DNS:localhost'];
  return [...new Set(names)].join(',');
}

function targetsOf(options: CertsInitOptions): WrittenCerts {
  const file = (name: string, id = ''): string => join(options.dir, name.replace('{id}', id));
  return {
    caCert: file(CERT_FILE_NAMES.caCert),
    caKey: file(CERT_FILE_NAMES.caKey),
    nodes: options.nodes.map((node) => ({ id: node.id, cert: file(CERT_FILE_NAMES.nodeCert, node.id), key: file(CERT_FILE_NAMES.nodeKey, node.id) })),
  };
}

/** Makes the CA and the node certificates in a scratch folder, then writes them all to `dir`. */
export function initCerts(options: CertsInitOptions): WrittenCerts {
  assert(Number.isSafeInteger(options.days) && options.days >= 1 && options.days <= MAX_CERT_DAYS, 'days within 1..MAX_CERT_DAYS');
  assert(options.nodes.length >= 1, 'at least one node');
  const targets = targetsOf(options);
  const all = [targets.caCert, targets.caKey, ...targets.nodes.flatMap((n) => [n.cert, n.key])];
  const existing = all.filter((path) => existsSync(path));
  if (existing.length > 0 && !options.force) {
    throw new LmqError('LMQ_BAD_INPUT', `certs init would overwrite ${existing.join(', ')}; pass --force to replace them (every node then needs its new certificate), or --dir DIR for another folder`);
  }
  const scratch = mkdtempSync(join(tmpdir(), 'lmq-certs-'));
  try {
    const made = makeAll(scratch, options);
    mkdirSync(options.dir, { recursive: true });
    writeInto(targets.caCert, made.caCert, 0o644);
    writeInto(targets.caKey, made.caKey, 0o600);
    for (const [i, node] of targets.nodes.entries()) {
      writeInto(node.cert, made.nodes[i]!.cert, 0o644);
      writeInto(node.key, made.nodes[i]!.key, 0o600);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return targets;
}

/** `mode` is set even on a replaced file (writeFileSync applies it only to a new one). */
function writeInto(path: string, bytes: Buffer, mode: number): void {
  writeFileSync(path, bytes, { mode });
  chmodSync(path, mode);
}

function makeAll(scratch: string, options: CertsInitOptions): { caCert: Buffer; caKey: Buffer; nodes: { cert: Buffer; key: Buffer }[] } {
  const days = String(options.days);
  const caCert = join(scratch, 'ca.pem');
  const caKey = join(scratch, 'ca.key');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', caKey, '-out', caCert, '-days', days, '-subj', `/CN=ledgermq ${options.clusterId} CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const nodes = options.nodes.map((node) => {
    const key = join(scratch, `${node.id}.key`);
    const csr = join(scratch, `${node.id}.csr`);
    const cert = join(scratch, `${node.id}.pem`);
    const extensions = join(scratch, `${node.id}.ext`);
    writeFileSync(extensions, [
      `subjectAltName=${subjectAltNames(node.host)}`, 'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth,clientAuth', '',
    ].join('\n'));
    openssl(['req', ...ec, '-keyout', key, '-out', csr, '-subj', `/CN=${node.id}`]);
    // A random serial: two runs must never issue two certificates with one serial.
    openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', days, '-extfile', extensions, '-out', cert]);
    return { cert: readFileSync(cert), key: readFileSync(key) };
  });
  return { caCert: readFileSync(caCert), caKey: readFileSync(caKey), nodes };
}
