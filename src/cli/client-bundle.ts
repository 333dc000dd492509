// The client bundle (dist/cli, built by scripts/bundle-cli.mjs from main.js and the client
// commands' modules): where it is, and whether it is fresh, i.e. built from the files there now.
import { readFileSync, statSync } from 'node:fs';

export const BUNDLED_MAIN = new URL('../../cli/main.js', import.meta.url);
/** Written beside the bundle: each input's mtime in ms, by its path from the package root. */
const INPUTS = new URL('../../cli/inputs.json', import.meta.url);
const PACKAGE_ROOT = new URL('../../../', import.meta.url);

/** The bundle exists and every file it was built from is as it was then (a `tsc` alone rewrites them all). */
export function bundleIsFresh(): boolean {
  let inputs: Record<string, number>;
  try {
    inputs = JSON.parse(readFileSync(INPUTS, 'utf8')) as Record<string, number>;
  } catch {
    return false; // not built
  }
  return Object.entries(inputs).every(([path, mtimeMs]) => statSync(new URL(path, PACKAGE_ROOT), { throwIfNoEntry: false })?.mtimeMs === mtimeMs);
}
