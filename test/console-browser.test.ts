// The web console in real headless Chromium against a real three-node cluster: the cluster
// view from the first fetch, creating a topic from the page, the backlog in messages and seconds
// as the CLI produces and consumes, a lookup by key, and the page following the new leader when
// the leader (whose console the page was loaded from) is SIGKILLed. Screenshots go to
// test-output/console/.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './process-helpers.js';
import { type ConsoleCluster, launchChromium, startConsoleCluster } from './support/console-cluster.js';

const OUT = resolve(import.meta.dirname, '../test-output/console');
/** Every wait on the page is bounded: a console polls each second, an election takes well under this. */
const WAIT_MS = 15_000;

let setup: ConsoleCluster;
let browser: Awaited<ReturnType<typeof launchChromium>>;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  // A failed delivery goes straight to the dead-letter queue, so the test can make one at once.
  [setup, browser] = await Promise.all([startConsoleCluster(true, { consumer: { maxReconsumeTimes: 0 } }), launchChromium()]);
});

afterAll(async () => {
  await browser?.close();
  await setup?.cluster.dispose();
});

/** The text of `selector` once it satisfies `ok` (bounded). */
async function textOnceIt(page: Page, selector: string, ok: (text: string) => boolean): Promise<string> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const node = page.locator(selector);
    const text = (await node.count()) === 1 ? (await node.textContent()) ?? '' : '';
    if (ok(text)) return text;
    if (Date.now() > deadline) throw new Error(`${selector} never matched; it reads ${JSON.stringify(text.slice(0, 300))}`);
    await page.waitForTimeout(200);
  }
}

/** The text of the group row for group/queue, once it satisfies `ok` (bounded). */
async function groupRow(page: Page, group: string, queue: string, ok: (lag: string, seconds: string) => boolean): Promise<{ lag: string; seconds: string }> {
  const row = page.locator(`#group-table tr[data-group="${group}"][data-queue="${queue}"]`);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if ((await row.count()) === 1) {
      const lag = (await row.locator('td.lag').textContent()) ?? '';
      const seconds = (await row.locator('td.lag-seconds').textContent()) ?? '';
      if (ok(lag, seconds)) return { lag, seconds };
    }
    if (Date.now() > deadline) throw new Error(`group row ${group} ${queue} never matched (row count ${await row.count()})`);
    await page.waitForTimeout(200);
  }
}

describe('console – headless Chromium against a three-node cluster', () => {
  it('shows the cluster, creates a topic, follows the backlog, looks up by key, resets offsets, resends a dead letter and survives a leader kill', async () => {
    const { cluster, consoles } = setup;
    const cli = (args: string[], input?: string) => runCli(cluster.configPath, args, 20_000, input);
    const leader = (await cluster.leader()).id;
    const page = await browser.context.newPage();
    await page.goto(`${consoles[leader]}/`, { timeout: WAIT_MS });

    // The first fetch already shows every node, which one leads, and says where it reads from.
    await page.locator(`#nodes tr[data-node="${leader}"][data-role="leader"]`).waitFor({ timeout: WAIT_MS });
    for (const id of ['n1', 'n2', 'n3']) expect(await page.locator(`#nodes tr[data-node="${id}"]`).count()).toBe(1);
    expect(await page.locator(`#nodes tr[data-node="${leader}"] td`).nth(1).textContent()).toBe('leader');
    expect(await page.locator('#leader').textContent()).toContain(`leader: ${leader}`);
    expect(await page.locator('#source').textContent()).toContain(`reading from ${leader}`);

    // Create a topic from the page (http.allowWrites is on).
    await page.fill('#create-topic-name', 'orders');
    await page.fill('#create-topic-queues', '1');
    await page.click('#create-topic-submit');
    await textOnceIt(page, '#topic-result', (text) => text === 'created orders: 1 queues');
    await page.locator('#topic-table tr[data-topic="orders"]').waitFor({ timeout: WAIT_MS });

    // A group that has consumed one message, then a backlog of five produced through the CLI.
    expect((await cli(['produce', '--topic', 'orders', '--body', 'first'])).code).toBe(0);
    expect((await cli(['consume', '--topic', 'orders', '--group', 'billing', '--max', '1', '--timeout', '5000'])).code).toBe(0);
    const lines = [1, 2, 3, 4, 5].map((i) => JSON.stringify({ body: `order ${i} paid`, key: `order-${i}` })).join('\n');
    expect((await cli(['produce', '--topic', 'orders', '--jsonl'], `${lines}\n`)).code).toBe(0);
    const backlog = await groupRow(page, 'billing', 'orders/0', (lag, seconds) => lag === '5' && Number(seconds) > 0);
    expect(Number(backlog.seconds)).toBeLessThan(60); // the age of a message stored seconds ago
    await page.screenshot({ path: join(OUT, 'console-backlog.png'), fullPage: true });

    // Consuming drains it: 0 messages and 0 seconds, never negative.
    expect((await cli(['consume', '--topic', 'orders', '--group', 'billing', '--max', '5', '--timeout', '5000'])).code).toBe(0);
    await groupRow(page, 'billing', 'orders/0', (lag, seconds) => lag === '0' && seconds === '0.0');

    // Lookup by key: found (body and where it is stored), and a key nobody sent is "not found".
    await page.fill('#lookup-topic', 'orders');
    await page.fill('#lookup-key', 'order-3');
    await page.click('#lookup-submit');
    const found = await textOnceIt(page, '#lookup-result', (text) => text.startsWith('found 1 message'));
    expect(found).toContain('order 3 paid');
    expect(found).toContain('queue 0');
    expect(found).toContain('offset 3');
    await page.fill('#lookup-key', 'order-404');
    await page.click('#lookup-submit');
    await textOnceIt(page, '#lookup-result', (text) => text.startsWith('not found'));

    // Reset the group to the first offset: a dry-run preview first, and only then the apply.
    await page.fill('#reset-group', 'billing');
    await page.fill('#reset-topic', 'orders');
    await page.fill('#reset-to', 'first');
    expect(await page.locator('#reset-apply').isDisabled()).toBe(true);
    await page.click('#reset-preview');
    expect(await textOnceIt(page, '#reset-result', (text) => text.startsWith('dry run'))).toContain('orders/0: 6 → 0');
    await groupRow(page, 'billing', 'orders/0', (lag) => lag === '0'); // nothing changed yet
    await page.click('#reset-apply');
    await textOnceIt(page, '#reset-result', (text) => text.startsWith('reset done'));
    await groupRow(page, 'billing', 'orders/0', (lag, seconds) => lag === '6' && Number(seconds) > 0);

    // A handler that fails sends its message to %DLQ%audit (consumer.maxReconsumeTimes 0): listed, then resent once.
    expect((await cli(['consume', '--topic', 'orders', '--group', 'audit', '--exec', 'exit 1', '--concurrency', '1', '--max', '1', '--timeout', '5000'])).code).toBe(0);
    await page.fill('#dlq-group', 'audit');
    await page.click('#dlq-list');
    const resend = page.locator('#dlq-result button[data-msgid]').first();
    await resend.waitFor({ timeout: WAIT_MS });
    expect(await resend.textContent()).toBe('Resend');
    await resend.click();
    await textOnceIt(page, '#dlq-result button[data-msgid] >> nth=0', (text) => text === 'resent');

    // Grow the topic from the page.
    await page.fill('#create-topic-name', 'orders');
    await page.fill('#create-topic-queues', '2');
    await page.click('#grow-topic-submit');
    await textOnceIt(page, '#topic-result', (text) => text === 'grew orders: 2 queues');

    // SIGKILL the leader, whose console served this page: it reads on through another console
    // and shows the new leader, with the old one down.
    await cluster.kill(leader);
    await textOnceIt(page, '#leader', (text) => /^leader: n\d/.test(text) && !text.startsWith(`leader: ${leader} `));
    await page.locator(`#nodes tr[data-node="${leader}"][data-role="down"]`).waitFor({ timeout: WAIT_MS });
    const newLeader = (await cluster.leader([leader])).id;
    expect(await page.locator('#leader').textContent()).toContain(`leader: ${newLeader}`);
    const source = (await page.locator('#source').textContent()) ?? '';
    expect(source).toMatch(/^reading from n\d/);
    expect(source).not.toContain(`reading from ${leader}`);
    expect(await page.locator('#timeline li').count()).toBeGreaterThanOrEqual(2);
    await page.screenshot({ path: join(OUT, 'console-failover.png'), fullPage: true });
  });
});
