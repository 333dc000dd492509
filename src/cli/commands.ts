// Registry of CLI commands: each lives in its own module.
import type { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerCerts } from './certs.js';
import { registerChaos } from './chaos.js';
import { registerCheck } from './check.js';
import { registerClusterStart } from './cluster-start.js';
import { registerConsume } from './consume.js';
import { registerDlq } from './dlq.js';
import { registerGroup } from './group.js';
import { registerMessage } from './message.js';
import { registerNodeStart } from './node-start.js';
import { registerProduce } from './produce.js';
import { registerSim } from './sim.js';
import { registerStatus } from './status.js';
import { registerTopic } from './topic.js';
import { registerTx } from './tx.js';

export function registerCommands(program: Command): void {
  registerClusterStart(program);
  registerNodeStart(program);
  registerStatus(program);
  registerTopic(program);
  registerProduce(program);
  registerConsume(program);
  registerGroup(program);
  registerDlq(program);
  registerTx(program);
  registerMessage(program);
  registerSim(program);
  registerCheck(program);
  registerChaos(program);
  registerBench(program);
  registerCerts(program);
}
