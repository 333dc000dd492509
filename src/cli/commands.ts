// Registry of CLI commands: each lives in its own module.
import type { Command } from 'commander';
import { registerCheck } from './check.js';
import { registerSim } from './sim.js';
import { registerStatus } from './status.js';

export function registerCommands(program: Command): void {
  registerStatus(program);
  registerSim(program);
  registerCheck(program);
}
