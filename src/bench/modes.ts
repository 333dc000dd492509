// Benchmark modes: a flush mode and a quorum mode, written "flush:quorum" on the command line
// (sync:majority, async:leader, …). Each mode runs on a fresh cluster configured with them.
import { FLUSH_MODES, type FlushMode, QUORUM_MODES, type QuorumMode } from '../config/config.js';
import { LmqError } from '../util/errors.js';

export interface BenchMode {
  readonly name: string;
  readonly flush: FlushMode;
  readonly quorum: QuorumMode;
}

/** Most modes one run accepts (each starts its own cluster). */
export const MAX_MODES = 16;

export function parseModes(text: string): BenchMode[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length === 0) throw new LmqError('LMQ_BAD_INPUT', '--modes is empty; give e.g. sync:majority,async:majority');
  if (names.length > MAX_MODES) throw new LmqError('LMQ_BAD_INPUT', `--modes lists ${names.length} modes; at most ${MAX_MODES}`);
  return names.map(parseMode);
}

function parseMode(name: string): BenchMode {
  const [flush, quorum, extra] = name.split(':');
  const allowed = `flush is one of ${FLUSH_MODES.join('|')}, quorum one of ${QUORUM_MODES.join('|')}`;
  if (extra !== undefined || !FLUSH_MODES.includes(flush as FlushMode) || !QUORUM_MODES.includes(quorum as QuorumMode)) {
    throw new LmqError('LMQ_BAD_INPUT', `bad mode "${name}": write it as flush:quorum (${allowed}), e.g. sync:majority`);
  }
  return { name, flush: flush as FlushMode, quorum: quorum as QuorumMode };
}
