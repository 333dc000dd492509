// The ACL file a node serves by: read once at start (a missing or invalid file stops the node
// with one line naming it), then stat'ed every ACL_RELOAD_INTERVAL_MS and reloaded whenever it
// changed (inode, size, mtime or ctime; a rename into place counts). A
// reload that fails — the file is gone, half written, or invalid — keeps the ACL in force and
// logs one error line per change: a bad edit must never open the door, nor lock everyone out.
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import { Acl } from './acl.js';

/** How often the file is stat'ed: a change takes effect within this long (and one more read). */
export const ACL_RELOAD_INTERVAL_MS = 1_000;

/** Reads and validates an ACL file; throws LMQ_BAD_CONFIG naming the file and what is wrong. */
export function loadAclFile(path: string): Acl {
  const raw = readJsonFile(path, 'ACL file', 'fix security.aclFile or create the file (README, "Clients and ACLs")');
  return Acl.parse(raw, path);
}

/** What identifies a version of the file: any change of these is a change of the file. */
function versionOf(path: string): string {
  try {
    const stats = statSync(path);
    return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  }
}

export class AclSource {
  private acl: Acl;
  /** The file version last read (loaded or refused), so each change is read and logged once. */
  private version: string;
  private readonly listeners: ((acl: Acl) => void)[] = [];
  private readonly timer: NodeJS.Timeout;

  /** Loads the file (throws LMQ_BAD_CONFIG) and starts polling it. */
  constructor(
    readonly path: string,
    private readonly logger: Logger,
    intervalMs = ACL_RELOAD_INTERVAL_MS,
  ) {
    assert(intervalMs >= 1, 'ACL reload interval >= 1 ms');
    // Stat before reading: a change made during the read is then seen by the next poll.
    this.version = versionOf(path);
    this.acl = loadAclFile(path);
    // unref: polling the ACL never keeps a stopping node alive.
    this.timer = setInterval(() => this.poll(), intervalMs).unref();
  }

  current(): Acl {
    return this.acl;
  }

  /** Called after each successful reload with the new ACL. */
  onReload(listener: (acl: Acl) => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private poll(): void {
    const version = versionOf(this.path);
    if (version === this.version) return;
    this.version = version;
    let next: Acl;
    try {
      next = loadAclFile(this.path);
    } catch (error) {
      const message = error instanceof LmqError ? error.message : String(error);
      this.logger.error({ aclFile: this.path }, `ACL not reloaded, the previous one stays in force: ${message}`);
      return;
    }
    this.acl = next;
    this.logger.info({ aclFile: this.path, users: next.accessKeys.size }, 'ACL reloaded');
    for (const listener of this.listeners) listener(next);
  }
}
