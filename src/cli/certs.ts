// `ledgermq certs init`: a local CA and a certificate per node of the config, for security.tls
// (src/security/cert-authority.ts). Prints what it wrote and the config snippet that uses it.
import type { Command } from 'commander';
import { dirname, relative, resolve } from 'node:path';
import { loadConfig } from '../config/config.js';
import { CERT_FILE_NAMES, initCerts, MAX_CERT_DAYS } from '../security/cert-authority.js';
import { parseIntOption, withConfig } from './options.js';

interface CertsInitOptions {
  config: string;
  dir?: string;
  days: number;
  force?: boolean;
  json?: boolean;
}

const DEFAULT_DAYS = 825;

export function registerCerts(program: Command): void {
  const certs = program.command('certs').description('TLS certificates for security.tls');
  withConfig(certs.command('init'))
    .description("make a local CA and a certificate per node of the config (the node's host, 127.0.0.1 and localhost)")
    .option('--dir <dir>', 'folder for the files (default: certs/ beside the config)')
    .option('--days <n>', 'validity of the certificates in days', parseIntOption('--days', 1, MAX_CERT_DAYS), DEFAULT_DAYS)
    .option('--force', 'replace files that exist (every node then needs its new certificate)')
    .option('--json', 'print {"caCert","caKey","nodes":[{"id","cert","key"}],"tls":{"cert","key","ca"}} (absolute paths; tls: the config snippet)')
    .action((options: CertsInitOptions) => {
      const config = loadConfig(options.config);
      const configDir = dirname(resolve(options.config));
      const dir = resolve(options.dir ?? resolve(configDir, 'certs'));
      const written = initCerts({ dir, clusterId: config.clusterId, nodes: config.nodes, days: options.days, force: options.force === true });
      const inConfig = (name: string): string => relative(configDir, resolve(dir, name)) || '.';
      const snippet = { cert: inConfig(CERT_FILE_NAMES.nodeCert), key: inConfig(CERT_FILE_NAMES.nodeKey), ca: inConfig(CERT_FILE_NAMES.caCert) };
      if (options.json) {
        const nodes = written.nodes.map((n) => ({ id: n.id, cert: n.cert, key: n.key }));
        process.stdout.write(`${JSON.stringify({ caCert: written.caCert, caKey: written.caKey, nodes, tls: snippet })}\n`);
        return;
      }
      const out = process.stdout;
      out.write(`wrote the CA certificate ${written.caCert} and its key ${written.caKey} (mode 0600; it signs certificates: keep it off the nodes)\n`);
      for (const node of written.nodes) out.write(`wrote node ${node.id}'s certificate ${node.cert} and key ${node.key} (mode 0600)\n`);
      out.write(`\nadd to the "security" object of ${options.config} ({id} is each node's id; paths are relative to the config):\n`);
      out.write(`  "tls": ${JSON.stringify(snippet)}\n`);
      out.write(`clients then connect with --tls-ca ${inConfig(CERT_FILE_NAMES.caCert)} (or LMQ_TLS_CA); commands given --config read security.tls.ca themselves\n`);
    });
}
