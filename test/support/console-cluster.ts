// A three-node cluster of real processes whose nodes serve the console and /metrics (httpPort),
// and real headless Chromium (Debian's `chromium`, driven by playwright-core) to open it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { LocalCluster } from '../../src/cluster/local-cluster.js';
import { freePorts } from '../../src/cluster/ports.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface ConsoleCluster {
  readonly cluster: LocalCluster;
  /** Each node's console base URL (no trailing slash), by node id. */
  readonly consoles: Readonly<Record<string, string>>;
}

/** `overrides` replace further top-level config keys (e.g. consumer), as LocalCluster.create's do. */
export async function startConsoleCluster(allowWrites: boolean, overrides: Record<string, unknown> = {}): Promise<ConsoleCluster> {
  const ports = await freePorts(9);
  const ids = ['n1', 'n2', 'n3'];
  const nodes = ids.map((id, i) => ({ id, host: '127.0.0.1', raftPort: ports[i]!, clientPort: ports[i + 3]!, httpPort: ports[i + 6]!, dataDir: id }));
  const cluster = await LocalCluster.create({ ...overrides, nodes, http: { allowWrites } });
  cluster.startAll();
  await cluster.leader();
  return { cluster, consoles: Object.fromEntries(nodes.map((n) => [n.id, `http://127.0.0.1:${n.httpPort}`])) };
}

/** Headless Chromium with a fresh profile; close() ends it and removes the profile. */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'lmq-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 1400 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
