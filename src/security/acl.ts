// The client ACL (security.aclFile), in RocketMQ's model: users named by an access key and
// proven by a secret key; per user an admin flag, permissions on topics (PUB, SUB) and groups
// (SUB, RESET), each looked up by exact name, then by the longest `prefix*` pattern, then the
// user's default (DENY when not set); and optionally the remote addresses it may connect
// from. This module parses and answers questions; reading the file and reloading it on change
// is acl-source.ts, and which operation needs which permission is the broker's (access.ts).
import { z } from 'zod';
import { LmqError } from '../util/errors.js';
import { MAX_ACCESS_KEY_LENGTH } from './signature.js';

export type TopicPermission = 'PUB' | 'SUB';
export type GroupPermission = 'SUB' | 'RESET';
export type Permission = TopicPermission | GroupPermission;
export type ResourceKind = 'topic' | 'group';

/** The permissions a resource kind can grant; a value is `DENY` or these joined by `|`. */
const GRANTABLE: Readonly<Record<ResourceKind, readonly Permission[]>> = { topic: ['PUB', 'SUB'], group: ['SUB', 'RESET'] };
/** Bound on users, on patterns per user and on addresses per user: an ACL is written by hand. */
const MAX_USERS = 10_000;
const MAX_PATTERNS_PER_USER = 10_000;
const MAX_ADDRESSES_PER_USER = 256;
const MIN_SECRET_KEY_LENGTH = 8;
const MAX_SECRET_KEY_LENGTH = 256;

function permissionValue(kind: ResourceKind) {
  const grantable = GRANTABLE[kind];
  const rule = `must be DENY or ${grantable.join(', ')} joined by "|" (e.g. "${grantable.join('|')}")`;
  return z.string().transform((value, ctx): ReadonlySet<Permission> => {
    if (value === 'DENY') return new Set();
    const parts = value.split('|');
    if (parts.some((p) => !grantable.includes(p as Permission)) || new Set(parts).size !== parts.length) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `"${value}" ${rule}` });
      return z.NEVER;
    }
    return new Set(parts as Permission[]);
  });
}

/** A topic or group name (src/protocol/limits.ts's characters), optionally ending in `*`. */
const patternKey = z.string().regex(/^[A-Za-z0-9%|_-]{0,127}\*?$/, 'must be a name, or a name prefix ending in "*"').refine((k) => k.length > 0, 'must not be empty');
function permissionTable(kind: ResourceKind) {
  return z
    .record(patternKey, permissionValue(kind))
    .refine((table) => Object.keys(table).length <= MAX_PATTERNS_PER_USER, `more than ${MAX_PATTERNS_PER_USER} entries`);
}

/** An address as the node sees it (127.0.0.1, ::1), or a prefix ending in `*` (10.0.*, or * alone). */
const address = z.string().regex(/^[0-9A-Fa-f.:]{0,45}\*?$/, 'must be an IP address or a prefix ending in "*" (e.g. "10.0.*")').refine((a) => a.length > 0, 'must not be empty');

const userSchema = z
  .object({
    accessKey: z.string().regex(new RegExp(`^[A-Za-z0-9._-]{3,${MAX_ACCESS_KEY_LENGTH}}$`), `3 to ${MAX_ACCESS_KEY_LENGTH} letters, digits, ".", "_" or "-"`),
    // No control characters: HMAC pads a short key with zero bytes, so "k" and "k\0" would be one key.
    secretKey: z
      .string()
      .min(MIN_SECRET_KEY_LENGTH)
      .max(MAX_SECRET_KEY_LENGTH)
      .refine((k) => !/[\u0000-\u001f\u007f]/.test(k), 'must not contain control characters'),
    /** Every permission on every topic and group, and the admin operations (topic create, …). */
    admin: z.boolean().default(false),
    defaultTopicPerm: permissionValue('topic').default('DENY'),
    defaultGroupPerm: permissionValue('group').default('DENY'),
    topicPerms: permissionTable('topic').default({}),
    groupPerms: permissionTable('group').default({}),
    /** Omitted: any address. */
    allowedAddresses: z.array(address).min(1).max(MAX_ADDRESSES_PER_USER).optional(),
  })
  .strict();

const aclFileSchema = z.object({ users: z.array(userSchema).max(MAX_USERS) }).strict();

interface PermissionTable {
  readonly exact: ReadonlyMap<string, ReadonlySet<Permission>>;
  /** Longest prefix first, so the first match is the most specific. */
  readonly prefixes: readonly (readonly [string, ReadonlySet<Permission>])[];
  readonly fallback: ReadonlySet<Permission>;
}

export interface AclUser {
  readonly accessKey: string;
  readonly secretKey: string;
  readonly admin: boolean;
  readonly topics: PermissionTable;
  readonly groups: PermissionTable;
  /** null: any address. */
  readonly allowedAddresses: readonly string[] | null;
}

function table(entries: Record<string, ReadonlySet<Permission>>, fallback: ReadonlySet<Permission>): PermissionTable {
  const all = Object.entries(entries);
  const prefixes = all.filter(([k]) => k.endsWith('*')).map(([k, v]) => [k.slice(0, -1), v] as const);
  prefixes.sort((a, b) => b[0].length - a[0].length);
  return { exact: new Map(all.filter(([k]) => !k.endsWith('*'))), prefixes, fallback };
}

function permissionsOf(t: PermissionTable, name: string): ReadonlySet<Permission> {
  const exact = t.exact.get(name);
  if (exact !== undefined) return exact;
  for (const [prefix, permissions] of t.prefixes) if (name.startsWith(prefix)) return permissions;
  return t.fallback;
}

/** An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; the ACL speaks of a.b.c.d. */
function plainAddress(remoteAddress: string): string {
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice('::ffff:'.length) : remoteAddress;
}

export class Acl {
  private constructor(private readonly users: ReadonlyMap<string, AclUser>) {}

  /** Validates an ACL file's parsed JSON; throws LMQ_BAD_CONFIG naming `source` and the first problem. */
  static parse(raw: unknown, source: string): Acl {
    const result = aclFileSchema.safeParse(raw);
    if (!result.success) {
      const issue = result.error.issues[0];
      const where = issue === undefined || issue.path.length === 0 ? '(top level)' : issue.path.join('.');
      const what = issue?.code === 'unrecognized_keys' ? `unknown key ${issue.keys.map((k) => `"${k}"`).join(', ')}` : (issue?.message ?? 'invalid');
      throw new LmqError('LMQ_BAD_CONFIG', `bad ACL file ${source}: ${where}: ${what}`);
    }
    const users = new Map<string, AclUser>();
    for (const [i, u] of result.data.users.entries()) {
      if (users.has(u.accessKey)) throw new LmqError('LMQ_BAD_CONFIG', `bad ACL file ${source}: users.${i}.accessKey: "${u.accessKey}" is listed twice`);
      users.set(u.accessKey, {
        accessKey: u.accessKey,
        secretKey: u.secretKey,
        admin: u.admin,
        topics: table(u.topicPerms, u.defaultTopicPerm),
        groups: table(u.groupPerms, u.defaultGroupPerm),
        allowedAddresses: u.allowedAddresses ?? null,
      });
    }
    return new Acl(users);
  }

  get accessKeys(): ReadonlySet<string> {
    return new Set(this.users.keys());
  }

  user(accessKey: string): AclUser | undefined {
    return this.users.get(accessKey);
  }
}

/** Whether `user` holds `permission` on the topic or group `name` (admins hold every one). */
export function permits(user: AclUser, kind: ResourceKind, name: string, permission: Permission): boolean {
  if (user.admin) return true;
  return permissionsOf(kind === 'topic' ? user.topics : user.groups, name).has(permission);
}

/** Whether `user` may connect from `remoteAddress`. */
export function addressAllowed(user: AclUser, remoteAddress: string): boolean {
  if (user.allowedAddresses === null) return true;
  const plain = plainAddress(remoteAddress);
  return user.allowedAddresses.some((a) => (a.endsWith('*') ? plain.startsWith(a.slice(0, -1)) : plain === a));
}
