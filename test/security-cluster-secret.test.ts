import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClusterSecretIfMissing, readClusterSecret } from '../src/security/cluster-secret.js';
import { LmqError } from '../src/util/errors.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-secret-'));
  dirs.push(dir);
  return dir;
}

function secretFile(text: string, mode = 0o600): string {
  const path = join(tempDir(), 'cluster.secret');
  writeFileSync(path, text, { mode });
  chmodSync(path, mode); // writeFileSync's mode is filtered by the umask
  return path;
}

function problemOf(path: string): string {
  try {
    readClusterSecret(path);
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    expect((error as LmqError).exitCode).toBe(2);
    expect((error as LmqError).message).not.toContain('\n');
    return (error as LmqError).message;
  }
  throw new Error('the secret was accepted');
}

describe('security – the cluster secret file', () => {
  it('cluster start creates 32 random bytes as hex, mode 0600, in a new folder; an existing file is kept', () => {
    const path = join(tempDir(), 'new', 'folder', 'cluster.secret');
    expect(createClusterSecretIfMissing(path)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/^[0-9a-f]{64}\n$/);
    expect(readClusterSecret(path)).toEqual(Buffer.from(text.trim(), 'hex'));
    expect(createClusterSecretIfMissing(path)).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe(text);
    const other = join(tempDir(), 'cluster.secret');
    createClusterSecretIfMissing(other);
    expect(readFileSync(other, 'utf8')).not.toBe(text);
  });

  it('reads hex and base64 secrets, whitespace around them ignored', () => {
    const bytes = Buffer.from(Array.from({ length: 24 }, (_, i) => i * 11));
    expect(readClusterSecret(secretFile(`  ${bytes.toString('hex').toUpperCase()}\n`))).toEqual(bytes);
    expect(readClusterSecret(secretFile(`${bytes.toString('base64')}\n`))).toEqual(bytes);
    expect(readClusterSecret(secretFile(bytes.toString('base64url')))).toEqual(bytes);
  });

  it('refuses, with what to do, a missing file, a folder, a short secret, non-text and loose permissions', () => {
    const missing = join(tempDir(), 'nope.secret');
    expect(problemOf(missing)).toBe(`cluster secret file ${missing} does not exist; \`ledgermq cluster start\` creates it, or copy the file the other nodes use (mode 0600)`);
    const folder = join(tempDir(), 'folder.secret');
    mkdirSync(folder);
    expect(problemOf(folder)).toMatch(/is not a regular file; point security\.clusterSecretFile at the file every node shares$/);
    expect(problemOf(secretFile('00112233445566778899aabbccddee'))).toMatch(/holds 15 bytes of secret, fewer than 16; make one with `openssl rand -hex 32`/);
    expect(problemOf(secretFile(''))).toMatch(/is not hex or base64 text/);
    expect(problemOf(secretFile('correct horse battery staple'))).toMatch(/is not hex or base64 text/);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      const path = secretFile('00112233445566778899aabbccddeeff', mode);
      expect(problemOf(path)).toBe(`cluster secret file ${path} can be read or changed by other users (mode 0${mode.toString(8)}); run chmod 600 ${path}`);
    }
    expect(readClusterSecret(secretFile('00112233445566778899aabbccddeeff', 0o400))).toHaveLength(16);
  });

  it.skipIf(process.getuid?.() === 0)('refuses an unreadable file and says how to fix it', () => {
    const path = secretFile('00112233445566778899aabbccddeeff', 0o200);
    expect(problemOf(path)).toBe(`cluster secret file ${path} cannot be read (EACCES); make it readable by the user running the node, mode 0600`);
  });
});
