// Where a node's console is: its own module, so `cluster start` can print it without loading
// the console's server (fastify, prom-client).
import type { NodeConfig } from '../config/config.js';

/** The console URL of a node of the config; null when it has no httpPort. */
export function consoleUrl(node: Pick<NodeConfig, 'host' | 'httpPort'>): string | null {
  if (node.httpPort === undefined) return null;
  const host = node.host.includes(':') ? `[${node.host}]` : node.host;
  return `http://${host}:${node.httpPort}/`;
}
