// `ledgermq check HISTORY.jsonl [--json]` (CONTRACT.md): checks a history file and prints
// the report; exit 0 when valid, 1 when invalid or unknown, 2 for a malformed history.
import type { Command } from 'commander';
import { checkHistoryFile, formatReport } from '../checker/index.js';
import { withConfig } from './options.js';

export function registerCheck(program: Command): void {
  withConfig(
    program
      .command('check')
      .description('check a Jepsen-style history (JSON Lines) for lost, duplicated, reordered or invented messages')
      .argument('<history>', 'history file, one operation event per line')
      .option('--json', 'print the report as JSON on stdout'),
  ).action(async (path: string, options: { json?: boolean }) => {
    const report = await checkHistoryFile(path);
    process.stdout.write(options.json === true ? `${JSON.stringify(report)}\n` : formatReport(report));
    // exitCode, not exit(): let stdout drain. Anything but a clean `valid` fails the check.
    process.exitCode = report.valid ? 0 : 1;
  });
}
