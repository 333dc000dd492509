// The ACL file (src/security/acl.ts, acl-source.ts): its format and the one-line errors for a
// bad one, permission lookup (exact name, then longest prefix pattern, then the default), the
// address rule, and reloading on change — a broken edit keeps the ACL in force.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Acl, addressAllowed, permits } from '../src/security/acl.js';
import { AclSource, loadAclFile } from '../src/security/acl-source.js';
import { loadConfig } from '../src/config/config.js';
import { isLmqError } from '../src/util/errors.js';
import { until } from '../src/util/until.js';
import { tempDir } from './broker-helpers.js';
import { capturingLogger } from './transport-helpers.js';

const shop = {
  accessKey: 'shop',
  secretKey: 'shop-secret',
  defaultTopicPerm: 'SUB',
  topicPerms: { orders: 'PUB|SUB', 'audit-*': 'PUB', 'audit-secret-*': 'DENY', payroll: 'DENY' },
  groupPerms: { billing: 'SUB|RESET', 'web-*': 'SUB' },
  allowedAddresses: ['127.0.0.1', '10.1.*'],
};

function parseError(raw: unknown): string {
  try {
    Acl.parse(raw, 'acl.json');
  } catch (error) {
    expect(isLmqError(error, 'LMQ_BAD_CONFIG')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected the ACL to be refused');
}

describe('security – ACL file format', () => {
  it('looks permissions up by exact name, then the longest prefix pattern, then the default', () => {
    const user = Acl.parse({ users: [shop] }, 'acl.json').user('shop')!;
    expect(permits(user, 'topic', 'orders', 'PUB')).toBe(true);
    expect(permits(user, 'topic', 'payroll', 'SUB')).toBe(false); // DENY beats the default SUB
    expect(permits(user, 'topic', 'audit-log', 'PUB')).toBe(true);
    expect(permits(user, 'topic', 'audit-log', 'SUB')).toBe(false); // the pattern, not the default
    expect(permits(user, 'topic', 'audit-secret-1', 'PUB')).toBe(false); // longer prefix wins
    expect(permits(user, 'topic', 'news', 'SUB')).toBe(true);
    expect(permits(user, 'topic', 'news', 'PUB')).toBe(false);
    expect(permits(user, 'group', 'billing', 'RESET')).toBe(true);
    expect(permits(user, 'group', 'web-1', 'SUB')).toBe(true);
    expect(permits(user, 'group', 'web-1', 'RESET')).toBe(false);
    expect(permits(user, 'group', 'other', 'SUB')).toBe(false); // defaultGroupPerm is DENY when unset
  });

  it('gives admins every permission and checks allowed addresses', () => {
    const acl = Acl.parse({ users: [shop, { accessKey: 'root', secretKey: 'root-secret', admin: true }] }, 'acl.json');
    const root = acl.user('root')!;
    expect(permits(root, 'topic', 'payroll', 'PUB')).toBe(true);
    expect(permits(root, 'group', 'any', 'RESET')).toBe(true);
    expect(addressAllowed(root, '192.168.0.9')).toBe(true);
    const user = acl.user('shop')!;
    expect(addressAllowed(user, '127.0.0.1')).toBe(true);
    expect(addressAllowed(user, '::ffff:127.0.0.1')).toBe(true);
    expect(addressAllowed(user, '10.1.2.3')).toBe(true);
    expect(addressAllowed(user, '10.2.0.1')).toBe(false);
    expect(addressAllowed(user, '127.0.0.2')).toBe(false);
    expect(acl.user('nobody')).toBeUndefined();
  });

  it('refuses a bad file with one line naming the file, the key and what is wrong', () => {
    expect(parseError({ users: [{ ...shop, topicPerms: { orders: 'PUB|RESET' } }] })).toMatch(/^bad ACL file acl\.json: users\.0\.topicPerms\.orders: "PUB\|RESET" must be DENY or PUB, SUB/);
    expect(parseError({ users: [{ ...shop, groupPerms: { g: 'PUB' } }] })).toMatch(/users\.0\.groupPerms\.g: "PUB" must be DENY or SUB, RESET/);
    expect(parseError({ users: [{ ...shop, defaultTopicPerm: 'SUB|SUB' }] })).toMatch(/users\.0\.defaultTopicPerm/);
    expect(parseError({ users: [{ ...shop, secretKey: 'short' }] })).toMatch(/users\.0\.secretKey/);
    expect(parseError({ users: [{ ...shop, admn: true }] })).toMatch(/users\.0: unknown key "admn"/);
    expect(parseError({ users: [shop, { ...shop }] })).toMatch(/users\.1\.accessKey: "shop" is listed twice/);
    expect(parseError({ users: [{ ...shop, topicPerms: { 'a*b': 'PUB' } }] })).toMatch(/users\.0\.topicPerms\.a\*b/);
    expect(parseError({})).toMatch(/users/);
    for (const message of [parseError({ users: 3 }), parseError({ users: [{ accessKey: 'x' }] })]) expect(message).not.toContain('\n');
  });

  it('names a missing or unparsable file', () => {
    const { dir, cleanup } = tempDir('lmq-acl-');
    try {
      expect(() => loadAclFile(join(dir, 'none.json'))).toThrow(/cannot read ACL file .*none\.json \(ENOENT\)/);
      writeFileSync(join(dir, 'broken.json'), '{"users": [');
      expect(() => loadAclFile(join(dir, 'broken.json'))).toThrow(/ACL file .*broken\.json is not valid JSON/);
    } finally {
      cleanup();
    }
  });
});

describe('security – the config key', () => {
  it('resolves security.aclFile against the config file and refuses unknown security keys', () => {
    const temp = tempDir('lmq-acl-config-');
    try {
      const base = { clusterId: 'c', nodes: [{ id: 'n1', host: '127.0.0.1', raftPort: 7101, clientPort: 7201, dataDir: 'd' }], flush: { mode: 'sync' }, quorum: 'majority' };
      const path = join(temp.dir, 'cluster.config.json');
      writeFileSync(path, JSON.stringify({ ...base, security: { aclFile: 'acl.json' } }));
      expect(loadConfig(path).security?.aclFile).toBe(join(temp.dir, 'acl.json'));
      writeFileSync(path, JSON.stringify(base));
      expect(loadConfig(path).security).toBeUndefined();
      writeFileSync(path, JSON.stringify({ ...base, security: { aclFlie: 'acl.json' } }));
      expect(() => loadConfig(path)).toThrow(/unknown key "security\.aclFlie"/);
    } finally {
      temp.cleanup();
    }
  });
});

describe('security – ACL reload', () => {
  let source: AclSource | null = null;
  let cleanup: () => void = () => undefined;
  afterEach(() => {
    source?.close();
    source = null;
    cleanup();
  });

  it('takes a changed file within the reload interval; a broken edit keeps the ACL in force and logs one error', async () => {
    const temp = tempDir('lmq-acl-');
    cleanup = temp.cleanup;
    const path = join(temp.dir, 'acl.json');
    writeFileSync(path, JSON.stringify({ users: [shop] }));
    const { logger, records } = capturingLogger();
    source = new AclSource(path, logger, 50);
    expect(source.current().user('late')).toBeUndefined();
    const reloads: number[] = [];
    source.onReload((acl) => reloads.push(acl.accessKeys.size));

    // Written aside and renamed in, as an editor or a deploy would: a new inode.
    writeFileSync(`${path}.tmp`, JSON.stringify({ users: [shop, { accessKey: 'late', secretKey: 'late-secret', defaultTopicPerm: 'PUB' }] }));
    renameSync(`${path}.tmp`, path);
    await until('the added user', () => source!.current().user('late') ?? null, 5_000, 20);
    expect(reloads).toEqual([2]);

    writeFileSync(path, '{"users": [ {"accessKey": "late"');
    const errors = () => records.filter((r) => r.level >= 50);
    await until('the error line', () => (errors().length > 0 ? true : null), 5_000, 20);
    expect(errors()).toHaveLength(1);
    expect(errors()[0]!.msg).toMatch(/ACL not reloaded, the previous one stays in force: ACL file .*acl\.json is not valid JSON/);
    expect(source.current().user('late')).toBeDefined();
    expect(source.current().user('shop')).toBeDefined();

    rmSync(path);
    await until('a second error line', () => (errors().length > 1 ? true : null), 5_000, 20);
    expect(errors()[1]!.msg).toMatch(/cannot read ACL file/);
    expect(source.current().user('late')).toBeDefined();
    expect(reloads).toEqual([2]);
  });
});
