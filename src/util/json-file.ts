// Reading a JSON file a user wrote (the config, the ACL): one LMQ_BAD_CONFIG line naming the
// file and what to do when it cannot be read, another when it is not JSON.
import { readFileSync } from 'node:fs';
import { LmqError } from './errors.js';

/**
 * The file's JSON value. `what` names the file in the messages ("config", "ACL file"); `fix`
 * says what to do when it cannot be read.
 */
export function readJsonFile(path: string, what: string, fix: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new LmqError('LMQ_BAD_CONFIG', `cannot read ${what} ${path} (${reason}); ${fix}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new LmqError('LMQ_BAD_CONFIG', `${what} ${path} is not valid JSON: ${(error as Error).message}`);
  }
}
