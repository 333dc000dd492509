// The error document (docs/errors.md) and the catalogue (ERROR_TRAITS) stay in step: every
// code is documented exactly once, with the catalogue's retriable, indeterminate and exit code.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_TRAITS, type ErrorCode, LmqError, NOT_SENT } from '../src/util/errors.js';

const DOC = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

interface DocumentedError {
  code: string;
  retriable: boolean;
  indeterminate: boolean;
  exitCode: number;
  meaning: string;
  advice: string;
}

/** The table's rows: | `CODE` | meaning | retriable | indeterminate | CLI exit | what to do | */
function documentedErrors(markdown: string): DocumentedError[] {
  const rows = markdown.split('\n').filter((line) => /^\| `LMQ_/.test(line));
  return rows.map((row) => {
    const cells = row.split('|').slice(1, -1).map((cell) => cell.trim());
    expect(cells, row).toHaveLength(6);
    const [code, meaning, retriable, indeterminate, exitCode, advice] = cells as [string, string, string, string, string, string];
    const yesNo = (cell: string) => {
      expect(cell, `${code}: "${cell}" starts with yes or no`).toMatch(/^(yes|no)\b/);
      return cell.startsWith('yes');
    };
    return { code: code.replaceAll('`', ''), meaning, retriable: yesNo(retriable), indeterminate: yesNo(indeterminate), exitCode: Number(exitCode), advice };
  });
}

describe('errors – the document and the catalogue', () => {
  it('documents every code once with the catalogue\'s traits, and no code the catalogue lacks', () => {
    const documented = documentedErrors(DOC);
    expect(documented.map((e) => e.code).sort()).toEqual(Object.keys(ERROR_TRAITS).sort());
    for (const entry of documented) {
      const traits = ERROR_TRAITS[entry.code as ErrorCode];
      expect({ code: entry.code, retriable: entry.retriable, indeterminate: entry.indeterminate, exitCode: entry.exitCode }).toEqual({ code: entry.code, ...traits });
      expect(entry.meaning.length, `${entry.code} has a meaning`).toBeGreaterThan(20);
      expect(entry.advice.length, `${entry.code} says what to do`).toBeGreaterThan(5);
    }
  });

  it('names sent: false, which makes any error determinate, where the document says it does', () => {
    expect(DOC).toContain('`details.sent === false`');
    for (const code of Object.keys(ERROR_TRAITS) as ErrorCode[]) {
      expect(new LmqError(code, 'x', NOT_SENT).indeterminate).toBe(false);
      expect(new LmqError(code, 'x').indeterminate).toBe(ERROR_TRAITS[code].indeterminate);
    }
  });
});
