// Where `ledgermq` starts (bin/ledgermq). A command that only talks to a cluster, and help,
// run from the client bundle (client-bundle.ts) while it is fresh: a handful of files instead
// of some 30 modules for Node to find, read and link one by one, about a fifth of what such a
// command spends beyond Node's own start. Every other command, and a client command after a `tsc` alone (which leaves
// the bundle stale), runs main.js unbundled: the same code, a little slower to start.
import { BUNDLED_MAIN, bundleIsFresh } from './client-bundle.js';
import { commandNamed } from './command-table.js';

const entry = commandNamed(process.argv.slice(2));
const client = entry === undefined || entry.clientOnly === true;
await import(client && bundleIsFresh() ? BUNDLED_MAIN.href : './main.js');
