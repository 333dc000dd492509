// Registry of CLI commands and the options every command shares.
import { Command, InvalidArgumentError, Option } from 'commander';
import { registerCheck } from './check.js';
import { registerSim } from './sim.js';

export const DEFAULT_CONFIG_PATH = './cluster.config.json';

/** The options every command takes (CONTRACT.md): --config FILE, and --json where it prints results. */
export function withConfig(command: Command): Command {
  return command.addOption(new Option('--config <file>', 'cluster config file').default(DEFAULT_CONFIG_PATH));
}

export function parseIntOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}, not "${value}"`);
    }
    return n;
  };
}

export function registerCommands(program: Command): void {
  registerSim(program);
  registerCheck(program);
}
