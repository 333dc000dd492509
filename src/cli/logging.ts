// Structured logs (pino) on stderr, so stdout stays for results. Pretty on a terminal, JSON
// otherwise; `cluster start` asks its children for JSON and prettifies them itself.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export const LOG_FORMAT_ENV = 'LEDGERMQ_LOG_FORMAT';

export function prettyStream(destination: NodeJS.WritableStream = process.stderr) {
  return pretty({ destination, colorize: process.stderr.isTTY === true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', messageFormat: '{node} {msg}', singleLine: true });
}

/** `context` adds fields to every line as they are at that moment (a node's term and role). */
export function createLogger(fields: Record<string, unknown>, context: () => Record<string, unknown> = () => ({})): Logger {
  const level = process.env.LEDGERMQ_LOG_LEVEL ?? 'info';
  const wantPretty = process.env[LOG_FORMAT_ENV] !== 'json' && process.stderr.isTTY === true;
  const options = { level, base: fields, mixin: context };
  return wantPretty ? pino(options, prettyStream()) : pino(options, pino.destination(2));
}
