// Assertions shared by the install tests (kept out of log-helpers.ts: the kill children import
// that, and vitest's expect cannot load outside a test run).
import { existsSync, readdirSync } from 'node:fs';
import { expect } from 'vitest';
import { segmentFiles } from './log-helpers.js';

/** After an install or an open that settled one: no staging or replaced log beside dir, every sealed segment indexed. */
export function expectInstallSettled(dir: string): void {
  expect(existsSync(`${dir}.install`)).toBe(false);
  expect(existsSync(`${dir}.old`)).toBe(false);
  const sealed = segmentFiles(dir).slice(0, -1);
  expect(readdirSync(dir).filter((name) => name.endsWith('.idx')).sort()).toEqual(sealed.map((name) => name.replace('.seg', '.idx')));
}
