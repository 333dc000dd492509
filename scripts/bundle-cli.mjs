// Builds the client bundle (dist/cli) from tsc's output: main.js and the module of every client
// command of the table (src/cli/command-table.ts), each an entry, their shared code in chunks
// beside them, commander and msgpackr inside. src/cli/entry.ts runs client commands and help from
// it while it is fresh, judged by inputs.json: each input file's mtime. Packages with native
// parts or their own files stay outside, loaded from node_modules; a client command uses none
// of them, and the build fails if one of the node's modules (broker, Raft core, log, ...) got in.
// Run by `npm run build` (and so by `npm ci`'s prepare and `npm test`) after tsc.
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'src', 'cli');
const OUT = join(ROOT, 'dist', 'cli');
// src/raft's message and entry constants size the full config schema's bounds, which a client
// loads only to word a bad config's line (src/config/client-config.ts): they are not the core.
const NODE_ONLY = /^dist\/src\/(broker|log|node|sim|chaos|checker|grpc|http)\/|^dist\/src\/raft\/(?!messages|types)|^node_modules\/(lmdb|pino|fastify|@grpc|prom-client)\//;

const { COMMANDS } = await import(join(CLI, 'command-table.js'));
const modules = [...new Set(COMMANDS.filter((c) => c.clientOnly === true).map((c) => c.module))];
rmSync(OUT, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: ['main', ...modules].map((m) => join(CLI, `${m}.js`)),
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // commander is CommonJS: its require() of Node's modules needs a require in an ES module.
  banner: { js: "import { createRequire as lmqCreateRequire } from 'node:module'; const require = lmqCreateRequire(import.meta.url);" },
  packages: 'bundle',
  external: ['lmdb', 'msgpackr-extract', 'pino', 'pino-pretty', 'fastify', '@grpc/*', 'prom-client', 'hdr-histogram-js'],
  metafile: true,
  logLevel: 'warning',
});
const inputs = Object.keys(result.metafile.inputs);
const nodeOnly = inputs.filter((path) => NODE_ONLY.test(path));
if (nodeOnly.length > 0) throw new Error(`the client bundle took in modules of the node: ${nodeOnly.join(', ')}`);
writeFileSync(join(OUT, 'meta.json'), `${JSON.stringify(result.metafile)}\n`);
writeFileSync(join(OUT, 'inputs.json'), `${JSON.stringify(Object.fromEntries(inputs.map((path) => [path, statSync(join(ROOT, path)).mtimeMs])))}\n`);
process.stdout.write(`client bundle: ${modules.length + 1} entries from ${inputs.length} inputs in ${relative(ROOT, OUT)}\n`);
