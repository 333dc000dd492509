import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrokerCommand, ProduceMessage } from '../src/broker/commands.js';
import type { ApplyResult, BrokerStateMachine, CommittedLogReader } from '../src/broker/state-machine.js';
import { LIMITS } from '../src/protocol/index.js';
import { bytes, dumpState, Machines, MemoryLog, payloadOf, RetainedLog, tempDir } from './broker-helpers.js';

// Transactions in the state machine: half messages are stored invisible, a commit places all of
// them at the commit's log position, a rollback discards them, an end is decided once, check
// counts are replicated, and a snapshot carries open transactions through retention.

let temp: ReturnType<typeof tempDir>;
let log: MemoryLog;
let machines: Machines;

function machine(name: string, reader: CommittedLogReader = log): BrokerStateMachine {
  return machines.open(name, reader);
}

function message(text: string, extra: Partial<ProduceMessage> = {}): ProduceMessage {
  return { msgId: `id-${text}`, topic: 'orders', queueId: 0, body: bytes(text), keys: [`k-${text}`], ...extra };
}

function half(txId: string, messages: ProduceMessage[], timestampMs = 1000, producerGroup = 'pg'): BrokerCommand {
  return { kind: 'txHalf', timestampMs, producerGroup, producerId: 'p1', txId, checkAtMs: timestampMs + 6000, messages };
}

/** What the leader builds: a commit carries the transaction's half messages as the state holds them. */
function end(state: BrokerStateMachine, txId: string, outcome: 'commit' | 'rollback', source: 'producer' | 'check' | 'maxChecks' = 'producer', timestampMs = 2000): BrokerCommand {
  const messages = outcome === 'commit' ? [...(state.openTransaction(txId)?.halfMessages ?? [])] : [];
  return { kind: 'txEnd', timestampMs, txId, outcome, source, messages };
}

let seq = 0;
function produce(messages: ProduceMessage[], timestampMs = 1500): BrokerCommand {
  return { kind: 'produce', producerId: 'plain', seq: ++seq, timestampMs, messages };
}

function run(state: BrokerStateMachine, ...commands: BrokerCommand[]): ApplyResult[] {
  return state.apply(commands.map((command) => log.append(command)));
}

const bodies = (state: BrokerStateMachine, queueId = 0) => state.read('orders', queueId, 0, 100, 1 << 20).map((m) => Buffer.from(m.body).toString());

beforeEach(() => {
  temp = tempDir('lmq-broker-tx-');
  machines = new Machines(temp.dir);
  log = new MemoryLog();
  seq = 0;
});

afterEach(async () => {
  await machines.closeAll();
  temp.cleanup();
});

describe('broker transactions – apply', () => {
  it('keeps half messages invisible, then a commit places all of them at the commit position (queue order is commit order)', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 2 });
    expect(run(a, half('tx1', [message('t1-a'), message('t1-b', { queueId: 1 })]))).toEqual([{ kind: 'txHalf', txId: 'tx1', messages: 2, duplicate: false }]);
    expect(run(a, half('tx1', [message('t1-c')]))).toEqual([{ kind: 'txHalf', txId: 'tx1', messages: 3, duplicate: false }]);
    run(a, produce([message('plain-1')]));
    // Invisible to every read: queues, key and msgId lookups.
    expect(bodies(a)).toEqual(['plain-1']);
    expect(a.lookupByKey('orders', 'k-t1-a', 10)).toEqual([]);
    expect(a.lookupByMsgId('id-t1-a')).toBeUndefined();
    expect(a.transactions()).toEqual([{ txId: 'tx1', producerGroup: 'pg', producerId: 'p1', topics: ['orders'], messages: 3, storedAtMs: 1000, checks: 0, nextCheckAtMs: 7000 }]);

    const [committed] = run(a, end(a, 'tx1', 'commit'));
    const commitIndex = log.all().length;
    expect(committed).toEqual({ kind: 'txEnd', outcome: 'commit', duplicate: false, placed: [
      { msgId: 'id-t1-a', queueId: 0, offset: 1 }, { msgId: 'id-t1-b', queueId: 1, offset: 0 }, { msgId: 'id-t1-c', queueId: 0, offset: 2 },
    ] });
    run(a, produce([message('plain-2')]));
    expect(bodies(a)).toEqual(['plain-1', 't1-a', 't1-c', 'plain-2']);
    expect(bodies(a, 1)).toEqual(['t1-b']);
    expect(a.read('orders', 0, 1, 1, 1 << 20)[0]).toMatchObject({ logIndex: commitIndex, storeTimestampMs: 2000 });
    expect(a.lookupByKey('orders', 'k-t1-c', 10).map((m) => m.offset)).toEqual([2]);
    expect(a.lookupByMsgId('id-t1-b')).toMatchObject({ queueId: 1, offset: 0 });
    expect(a.transactions()).toEqual([]);
    expect(a.transactionOutcome('tx1')).toEqual({ outcome: 'commit', producerGroup: 'pg' });
  });

  it('a rollback discards every half message; a repeated half send stores nothing more', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    run(a, half('tx1', [message('x'), message('y')]));
    expect(run(a, half('tx1', [message('x'), message('y')]))).toEqual([{ kind: 'txHalf', txId: 'tx1', messages: 2, duplicate: true }]);
    expect(run(a, half('tx1', [message('y'), message('z')]))[0]).toMatchObject({ kind: 'txHalf', error: 'LMQ_BAD_INPUT' });
    expect(run(a, end(a, 'tx1', 'rollback'))).toEqual([{ kind: 'txEnd', outcome: 'rollback', duplicate: false, placed: [] }]);
    expect(bodies(a)).toEqual([]);
    expect(a.lookupByMsgId('id-x')).toBeUndefined();
    expect(a.transactions()).toEqual([]);
    // A half send to an ended transaction is refused and stores nothing.
    expect(run(a, half('tx1', [message('late')]))[0]).toMatchObject({ kind: 'txHalf', error: 'LMQ_BAD_INPUT', message: expect.stringMatching(/already ended \(rollback\)/) });
    expect(a.transactions()).toEqual([]);
  });

  it('an end is decided once: a second end (retry, or a check answer racing it) returns the first outcome and places nothing', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    run(a, half('tx1', [message('once')]));
    const commit = end(a, 'tx1', 'commit');
    expect(run(a, commit)[0]).toMatchObject({ outcome: 'commit', duplicate: false });
    // The same commit again (a new leader re-proposing it), and a rollback from a check answer.
    expect(run(a, commit, end(a, 'tx1', 'rollback', 'check'))).toEqual([
      { kind: 'txEnd', outcome: 'commit', duplicate: true, placed: [] },
      { kind: 'txEnd', outcome: 'commit', duplicate: true, placed: [] },
    ]);
    expect(bodies(a)).toEqual(['once']);
    // Rolled back first: a later commit (carrying the messages) answers rollback and places nothing.
    run(a, half('tx2', [message('never')]));
    const lateCommit = end(a, 'tx2', 'commit');
    run(a, end(a, 'tx2', 'rollback', 'maxChecks'));
    expect(run(a, lateCommit)).toEqual([{ kind: 'txEnd', outcome: 'rollback', duplicate: true, placed: [] }]);
    expect(bodies(a)).toEqual(['once']);
    expect(run(a, end(a, 'nope', 'rollback'))[0]).toMatchObject({ kind: 'txEnd', error: 'LMQ_BAD_INPUT', message: expect.stringMatching(/no transaction nope/) });
  });

  it('never commits part of a transaction: a commit built before a later half send is stale and changes nothing', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    run(a, half('tx1', [message('first')]));
    const early = end(a, 'tx1', 'commit');
    run(a, half('tx1', [message('second')]));
    expect(run(a, early)).toEqual([{ kind: 'txEnd', stale: true }]);
    expect(bodies(a)).toEqual([]);
    expect(a.transactions()[0]).toMatchObject({ txId: 'tx1', messages: 2 });
    expect(run(a, end(a, 'tx1', 'commit'))[0]).toMatchObject({ outcome: 'commit', duplicate: false });
    expect(bodies(a)).toEqual(['first', 'second']);
  });

  it('refuses half sends past one commit entry, to a missing queue, or of another producer group', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    const many = Array.from({ length: LIMITS.maxMessagesPerProduce }, (_, i) => message(`m${i}`));
    expect(run(a, half('big', many))[0]).toMatchObject({ messages: LIMITS.maxMessagesPerProduce });
    expect(run(a, half('big', [message('one-more')]))[0]).toMatchObject({ error: 'LMQ_BAD_INPUT', message: expect.stringMatching(/at most 1024 messages/) });
    expect(run(a, half('q', [message('nowhere', { queueId: 3 })]))[0]).toMatchObject({ error: 'LMQ_BAD_INPUT' });
    expect(run(a, half('t', [message('none', { topic: 'missing' })]))[0]).toMatchObject({ error: 'LMQ_TOPIC_NOT_FOUND' });
    run(a, half('g', [message('g1')]));
    expect(run(a, half('g', [message('g2')], 1000, 'other'))[0]).toMatchObject({ error: 'LMQ_BAD_INPUT', message: expect.stringMatching(/belongs to producer group pg/) });
    expect(a.transactions().map((tx) => tx.txId).sort()).toEqual(['big', 'g']);
  });

  it('counts check-backs once per count (a repeated proposal counts once) and orders due checks', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    run(a, half('early', [message('e')], 1000), half('late', [message('l')], 2000));
    expect(a.dueTransactions(6999, 10)).toEqual([]);
    expect(a.dueTransactions(8000, 10).map((tx) => tx.txId)).toEqual(['early', 'late']);
    const checked: BrokerCommand = { kind: 'txChecked', timestampMs: 7000, checks: [{ txId: 'early', checks: 1, nextCheckAtMs: 67_000 }] };
    expect(run(a, checked, checked)).toEqual([{ kind: 'txChecked', counted: 1 }, { kind: 'txChecked', counted: 0 }]);
    expect(a.dueTransactions(8000, 10).map((tx) => tx.txId)).toEqual(['late']);
    expect(a.dueTransactions(67_000, 10).map((tx) => [tx.txId, tx.checks])).toEqual([['late', 0], ['early', 1]]);
    // An ended transaction is no longer due, and a mark naming it counts nothing.
    run(a, end(a, 'late', 'rollback'));
    expect(run(a, { kind: 'txChecked', timestampMs: 9000, checks: [{ txId: 'late', checks: 1, nextCheckAtMs: 69_000 }] })).toEqual([{ kind: 'txChecked', counted: 0 }]);
    expect(a.dueTransactions(100_000, 10).map((tx) => tx.txId)).toEqual(['early']);
  });

  it('a snapshot carries open transactions, their counts and remembered ends; a rebuild from the retained log equals applying', async () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 2 });
    run(a, half('open', [message('o1'), message('o2', { queueId: 1 })]));
    run(a, half('done', [message('d1')]));
    run(a, produce([message('p1')]));
    run(a, { kind: 'txChecked', timestampMs: 7000, checks: [{ txId: 'open', checks: 1, nextCheckAtMs: 67_000 }] });
    run(a, end(a, 'done', 'commit'));
    run(a, half('gone', [message('g1')]), end(a, 'gone', 'rollback'));
    // Retention deletes the log below here: the half sends' entries are gone.
    const firstIndex = log.all().length + 1;
    run(a, { kind: 'truncateLog', firstIndex });
    run(a, produce([message('p2')]));
    const snapshot = a.beginSnapshot();
    const payload = await payloadOf(snapshot);
    const b = machine('b', new RetainedLog(log, firstIndex));
    await b.restoreSnapshot(snapshot.index, payload, new RetainedLog(log, firstIndex));
    expect(b.stateDigest()).toBe(a.stateDigest());
    expect(dumpState(b)).toEqual(dumpState(a));
    expect(b.transactions()).toEqual(a.transactions());
    expect(b.transactions()).toEqual([expect.objectContaining({ txId: 'open', messages: 2, checks: 1, nextCheckAtMs: 67_000 })]);
    expect(b.transactionOutcome('done')).toEqual({ outcome: 'commit', producerGroup: 'pg' });
    expect(b.transactionOutcome('gone')).toEqual({ outcome: 'rollback', producerGroup: 'pg' });
    // The restored half messages commit, though their half send entries are deleted.
    const commit = end(b, 'open', 'commit');
    const entry = log.append(commit);
    const [onA, onB] = [a.apply([entry]), b.apply([entry])];
    expect(onB).toEqual(onA);
    // d1 and p1 went with retention; the commit lands after p2.
    expect(bodies(b)).toEqual(['p2', 'o1']);
    expect(bodies(b, 1)).toEqual(['o2']);
    expect(b.stateDigest()).toBe(a.stateDigest());
  });
});

describe('broker transactions – command codec', () => {
  it('round-trips the three commands and refuses malformed ones', async () => {
    const { decodeCommand, encodeCommand } = await import('../src/broker/commands.js');
    const commands: BrokerCommand[] = [
      half('tx1', [message('a'), message('b', { tag: 'T', properties: { p: '1' } })]),
      { kind: 'txEnd', timestampMs: 5, txId: 'tx1', outcome: 'commit', source: 'check', messages: [message('a')] },
      { kind: 'txEnd', timestampMs: 5, txId: 'tx1', outcome: 'rollback', source: 'maxChecks', messages: [] },
      { kind: 'txChecked', timestampMs: 5, checks: [{ txId: 'tx1', checks: 2, nextCheckAtMs: 99 }] },
    ];
    for (const command of commands) expect(decodeCommand(encodeCommand(command))).toEqual(command);
    const refused: [BrokerCommand, RegExp][] = [
      [{ kind: 'txEnd', timestampMs: 5, txId: 'tx1', outcome: 'rollback', source: 'producer', messages: [message('a')] }, /messages must hold 0 to 0|a rollback carries no messages/],
      [{ kind: 'txEnd', timestampMs: 5, txId: 'tx1', outcome: 'commit', source: 'producer', messages: [] }, /messages must hold 1 to 1024/],
      [half('tx1', [message('late', { deliverAtMs: 10 })]), /never delayed/],
      [{ kind: 'txChecked', timestampMs: 5, checks: [{ txId: 'tx1', checks: 0, nextCheckAtMs: 9 }] }, /checks\[0\]\.checks must be from 1/],
      [{ ...half('tx1', [message('a')]), producerGroup: 'bad group' } as BrokerCommand, /producerGroup "bad group" may only use/],
    ];
    for (const [command, problem] of refused) expect(() => encodeCommand(command)).toThrow(problem);
  });
});
