import { afterEach, describe, expect, it } from 'vitest';
import { HardStateStore } from '../src/log/hard-state-store.js';
import { InvariantViolation } from '../src/util/assert.js';
import { removeTempDirs, tempDir } from './log-helpers.js';

afterEach(removeTempDirs);

describe('hard state store – durable term and vote', () => {
  it('starts at term 0 with no vote and keeps what was saved across a reopen', async () => {
    const dir = tempDir();
    const store = HardStateStore.open(dir);
    expect(store.load()).toEqual({ term: 0, vote: null });
    await store.save({ term: 3, vote: 'n2' });
    await store.save({ term: 4, vote: null });
    await store.save({ term: 4, vote: 'n1' });
    expect(store.load()).toEqual({ term: 4, vote: 'n1' });
    await store.close();
    const reopened = HardStateStore.open(dir);
    expect(reopened.load()).toEqual({ term: 4, vote: 'n1' });
    await reopened.close();
  });

  it('asserts Raft rules: the term never goes back, a vote is never changed within a term', async () => {
    const store = HardStateStore.open(tempDir());
    await store.save({ term: 5, vote: 'n1' });
    expect(() => store.save({ term: 4, vote: null })).toThrow(InvariantViolation);
    expect(() => store.save({ term: 5, vote: 'n2' })).toThrow(InvariantViolation);
    await store.save({ term: 5, vote: 'n1' });
    expect(store.load()).toEqual({ term: 5, vote: 'n1' });
    await store.close();
  });
});
