// The checker's transactional anomalies on hand-written histories: each one found in a history
// made to show it, none in the valid history they are cut from, and malformed transaction
// events refused naming the line.
import { describe, expect, it } from 'vitest';
import { checkHistory } from '../src/checker/index.js';
import { drain, foundKinds, history, poll, send, type Step } from './checker-helpers.js';

const Q0 = 'orders/0';
const Q1 = 'orders/1';

function txsend(process: number, txId: string, messages: [string, string][], outcome: 'ok' | 'info' = 'ok'): Step[] {
  const value = { txId, messages: messages.map(([queue, body]) => ({ queue, body })) };
  return [
    { type: 'invoke', process, f: 'txsend', value },
    { type: outcome, process, f: 'txsend', value },
  ];
}

function txend(process: number, txId: string, end: 'commit' | 'rollback', outcome: 'ok' | 'fail' | 'info' = 'ok', by: 'producer' | 'check' = 'producer'): Step[] {
  const value = { txId, end, by };
  return [
    { type: 'invoke', process, f: 'txend', value },
    { type: outcome, process, f: 'txend', value },
  ];
}

/**
 * t1 (two queues) is committed by its producer; t2 rolled back; t3's producer died after its
 * half messages and a check-back responder committed it; a plain send sits beside them.
 */
function validTxHistory(): Step[][] {
  return [
    send(0, Q0, 'plain', 0),
    txsend(1, 't1', [[Q0, 't1-a'], [Q1, 't1-b']]),
    txend(1, 't1', 'commit'),
    poll(5, Q0, [[0, 'plain'], [1, 't1-a']]),
    txsend(1, 't2', [[Q0, 't2-a']]),
    txend(1, 't2', 'rollback'),
    txsend(2, 't3', [[Q1, 't3-a'], [Q1, 't3-b']]),
    txend(3, 't3', 'commit', 'ok', 'check'),
    drain(4, Q0, [[0, 'plain'], [1, 't1-a']]),
    drain(4, Q1, [[0, 't1-b'], [1, 't3-a'], [2, 't3-b']]),
  ];
}

describe('checker – transactions', () => {
  it('commits visible whole, rollbacks never, check-backs ending a dead producer\'s transaction: valid', () => {
    const report = checkHistory(history(...validTxHistory()));
    expect(foundKinds(report)).toEqual([]);
    expect(report.verdict).toBe('valid');
  });

  it('tx-committed-lost: a committed message missing from the final drain (and so partial)', () => {
    const steps = validTxHistory();
    steps.splice(9, 1, drain(4, Q1, [[1, 't3-a'], [2, 't3-b']]));
    const report = checkHistory(history(...steps));
    expect(foundKinds(report)).toEqual(['tx-committed-lost', 'tx-partial']);
    expect(report.anomalies['tx-committed-lost'][0]).toMatchObject({ txId: 't1', missing: ['t1-b'] });
  });

  it('tx-rolled-back-visible: a read shows a message of an acknowledged rollback', () => {
    const steps = validTxHistory();
    steps.splice(8, 1, drain(4, Q0, [[0, 'plain'], [1, 't1-a'], [2, 't2-a']]));
    expect(foundKinds(checkHistory(history(...steps)))).toEqual(['tx-rolled-back-visible', 'tx-visible-early']);
  });

  it('tx-partial: only some of an uncommitted-by-producer transaction\'s messages visible', () => {
    const steps = validTxHistory();
    steps.splice(9, 1, drain(4, Q1, [[0, 't1-b'], [1, 't3-a']]));
    const report = checkHistory(history(...steps));
    expect(foundKinds(report)).toEqual(['tx-committed-lost', 'tx-partial']);
    expect(report.anomalies['tx-partial'][0]).toMatchObject({ txId: 't3', visible: ['t3-a'] });
    // Half messages whose storing ended unknown may be partly stored: not judged for partial.
    const unknownHalves = validTxHistory();
    unknownHalves.splice(6, 2, txsend(2, 't3', [[Q1, 't3-a'], [Q1, 't3-b']], 'info'), txend(3, 't3', 'commit', 'ok', 'check'));
    unknownHalves.splice(9, 1, drain(4, Q1, [[0, 't1-b'], [1, 't3-a']]));
    expect(foundKinds(checkHistory(history(...unknownHalves)))).toEqual([]);
  });

  it('tx-visible-early: a message read before any commit of its transaction was asked', () => {
    const steps = validTxHistory();
    steps.splice(2, 0, poll(6, Q1, [[0, 't1-b']])); // read between the half send and the commit
    const report = checkHistory(history(...steps));
    expect(foundKinds(report)).toEqual(['tx-visible-early']);
    expect(report.anomalies['tx-visible-early'][0]).toMatchObject({ txId: 't1', body: 't1-b' });
  });

  it('a read racing an unknown commit is not early once the commit was asked', () => {
    const steps = validTxHistory();
    steps.splice(2, 1, txend(1, 't1', 'commit', 'info'));
    steps.splice(4, 2, txsend(7, 't2', [[Q0, 't2-a']]), txend(7, 't2', 'rollback')); // process 1 ended info: t2 goes on as another
    expect(foundKinds(checkHistory(history(...steps)))).toEqual([]);
  });

  it('refuses a transaction sent twice, an end of an unknown transaction, and a body reused', () => {
    expect(() => checkHistory(history(txsend(1, 't1', [[Q0, 'a']]), txsend(1, 't1', [[Q0, 'b']])))).toThrow(/transaction "t1" was already sent at line 1/);
    expect(() => checkHistory(history(txend(1, 't9', 'commit')))).toThrow(/txend names transaction "t9", which no earlier txsend began/);
    expect(() => checkHistory(history(send(0, Q0, 'a', 0), txsend(1, 't1', [[Q0, 'a']])))).toThrow(/body "a" was already sent at line 1/);
    expect(() => checkHistory(history([{ type: 'invoke', process: 1, f: 'txend', value: { txId: 't1', end: 'abort', by: 'producer' } } as unknown as Step]))).toThrow(/value.end must be commit or rollback/);
  });
});
