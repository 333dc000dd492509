// Child process for the broker recovery test: applies a deterministic workload in batches and
// reports each committed batch on stdout, until the parent kills it with SIGKILL.
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import { applyRange, MemoryLog, workload } from './broker-helpers.js';

const [dir, seedText, countText, batchText, bufferedText] = process.argv.slice(2);
const log = new MemoryLog();
for (const command of workload(Number(seedText), Number(countText))) log.append(command);
const machine = BrokerStateMachine.open({ dir: dir as string, log, maxBufferedRecords: Number(bufferedText) });
const batchEntries = Number(batchText);
for (let lo = machine.appliedIndex() + 1; lo <= log.all().length; lo += batchEntries) {
  applyRange(machine, log, lo, Math.min(lo + batchEntries - 1, log.all().length), batchEntries);
  process.stdout.write(`applied ${machine.appliedIndex()}\n`);
}
process.stdout.write('done\n');
setInterval(() => {}, 1000); // wait to be killed: the parent decides when the crash happens
