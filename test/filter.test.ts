import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileFilter, FilterCache } from '../src/filter/index.js';
import { parseSql, sqlMatches } from '../src/filter/sql.js';
import { parseTagExpression, tagHash } from '../src/filter/tag.js';
import { LIMITS } from '../src/protocol/index.js';
import { LmqError } from '../src/util/errors.js';

type Props = Record<string, string>;

function matches(expression: string, properties: Props | undefined): boolean {
  return sqlMatches(parseSql(expression), properties);
}

function refusal(action: () => unknown): LmqError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    return error as LmqError;
  }
  throw new Error('no error thrown');
}

// --- the reference: RocketMQ's rules written out as truth tables over a fixed value pool -------

/** Truth values as the reference spells them: TRUE, FALSE, UNKNOWN. */
type T = 'T' | 'F' | 'U';
const NAMES = ['a', 'b', 'c'] as const;
/** Every property value the generator uses, with the number and boolean each stands for (if any). */
const POOL: Record<string, { number?: number; boolean?: boolean }> = {
  '1': { number: 1 },
  '2.5': { number: 2.5 },
  '-3': { number: -3 },
  '10': { number: 10 },
  ' 7 ': { number: 7 },
  '1e1': { number: 10 },
  abc: {},
  x: {},
  '': {},
  '5x': {},
  true: { boolean: true },
  TRUE: { boolean: true },
  false: { boolean: false },
};

type RefValue = { p: string } | { s: string } | { n: number } | { b: boolean };
type Ref =
  | { k: 'const'; v: T }
  | { k: 'and' | 'or'; items: Ref[] }
  | { k: 'not'; item: Ref }
  | { k: 'cmp'; op: string; l: RefValue; r: RefValue }
  | { k: 'between'; not: boolean; v: RefValue; lo: RefValue; hi: RefValue }
  | { k: 'in'; not: boolean; p: string; list: string[] }
  | { k: 'isnull'; not: boolean; v: RefValue };

const AND: Record<string, T> = { TT: 'T', TF: 'F', TU: 'U', FT: 'F', FF: 'F', FU: 'F', UT: 'U', UF: 'F', UU: 'U' };
const OR: Record<string, T> = { TT: 'T', TF: 'T', TU: 'T', FT: 'T', FF: 'F', FU: 'U', UT: 'T', UF: 'U', UU: 'U' };
const NOT: Record<T, T> = { T: 'F', F: 'T', U: 'U' };

/** A value as the reference sees it: null for a missing property. */
function refGet(v: RefValue, props: Props): { type: 'null' } | { type: 'string'; s: string } | { type: 'number'; n: number } | { type: 'boolean'; b: boolean } {
  if ('p' in v) return Object.hasOwn(props, v.p) ? { type: 'string', s: props[v.p]! } : { type: 'null' };
  if ('s' in v) return { type: 'string', s: v.s };
  if ('n' in v) return { type: 'number', n: v.n };
  return { type: 'boolean', b: v.b };
}

function refNumber(x: ReturnType<typeof refGet>): number | undefined {
  if (x.type === 'number') return x.n;
  if (x.type === 'string') return POOL[x.s]?.number;
  return undefined;
}

function refOrder(op: string, l: ReturnType<typeof refGet>, r: ReturnType<typeof refGet>): T {
  const a = refNumber(l);
  const b = refNumber(r);
  if (a === undefined || b === undefined) return 'U'; // NULL, or not a number
  const holds = op === '>' ? a > b : op === '>=' ? a >= b : op === '<' ? a < b : a <= b;
  return holds ? 'T' : 'F';
}

function refEqual(l: ReturnType<typeof refGet>, r: ReturnType<typeof refGet>): T {
  // RocketMQ's doCreateEqual: NULL on the left is unknown, on the right alone FALSE, on both TRUE.
  if (l.type === 'null') return r.type === 'null' ? 'T' : 'U';
  if (r.type === 'null') return 'F';
  if (l.type === r.type) return JSON.stringify(l) === JSON.stringify(r) ? 'T' : 'F';
  if (l.type === 'string' || r.type === 'string') {
    const [text, other] = l.type === 'string' ? [l.s, r] : [(r as { s: string }).s, l];
    if (other.type === 'number') {
      const n = POOL[text]?.number;
      return n === undefined ? 'U' : n === other.n ? 'T' : 'F';
    }
    const b = POOL[text]?.boolean;
    return b === undefined ? 'U' : b === (other as { b: boolean }).b ? 'T' : 'F';
  }
  return 'F';
}

function reference(e: Ref, props: Props): T {
  switch (e.k) {
    case 'const':
      return e.v;
    case 'and':
      return e.items.map((i) => reference(i, props)).reduce((x, y) => AND[x + y]!);
    case 'or':
      return e.items.map((i) => reference(i, props)).reduce((x, y) => OR[x + y]!);
    case 'not':
      return NOT[reference(e.item, props)];
    case 'cmp': {
      const l = refGet(e.l, props);
      const r = refGet(e.r, props);
      if (e.op === '=') return refEqual(l, r);
      if (e.op === '<>') return NOT[refEqual(l, r)];
      return refOrder(e.op, l, r);
    }
    case 'between': {
      const v = refGet(e.v, props);
      const lo = refGet(e.lo, props);
      const hi = refGet(e.hi, props);
      return e.not ? OR[refOrder('<', v, lo) + refOrder('>', v, hi)]! : AND[refOrder('>=', v, lo) + refOrder('<=', v, hi)]!;
    }
    case 'in': {
      if (!Object.hasOwn(props, e.p)) return 'U';
      return e.list.includes(props[e.p]!) !== e.not ? 'T' : 'F';
    }
    case 'isnull':
      return (refGet(e.v, props).type === 'null') !== e.not ? 'T' : 'F';
  }
}

// --- rendering the reference tree as text, with random spacing and keyword case --------------

function renderValue(v: RefValue): string {
  if ('p' in v) return v.p;
  if ('s' in v) return `'${v.s.replaceAll("'", "''")}'`;
  if ('n' in v) return String(v.n);
  return v.b ? 'TRUE' : 'FALSE';
}

function render(e: Ref, kw: (word: string) => string, sp: () => string): string {
  const w = (word: string) => `${sp()}${kw(word)}${sp()}`;
  switch (e.k) {
    case 'const':
      return kw(e.v === 'T' ? 'TRUE' : e.v === 'F' ? 'FALSE' : 'NULL');
    case 'and':
    case 'or':
      return e.items.map((i) => `(${render(i, kw, sp)})`).join(` ${w(e.k.toUpperCase())} `);
    case 'not':
      return `${kw('NOT')} (${render(e.item, kw, sp)})`;
    case 'cmp':
      return `${renderValue(e.l)}${sp()}${e.op}${sp()}${renderValue(e.r)}`;
    case 'between':
      return `${renderValue(e.v)} ${e.not ? `${kw('NOT')} ` : ''}${w('BETWEEN')} ${renderValue(e.lo)} ${w('AND')} ${renderValue(e.hi)}`;
    case 'in':
      return `${e.p} ${e.not ? `${kw('NOT')} ` : ''}${w('IN')} (${e.list.map((s) => renderValue({ s })).join(`${sp()},${sp()}`)})`;
    case 'isnull':
      return `${renderValue(e.v)} ${w('IS')} ${e.not ? `${kw('NOT')} ` : ''}${kw('NULL')}`;
  }
}

const property = fc.constantFrom(...NAMES).map((p): RefValue => ({ p }));
const numberLiteral = fc.constantFrom(1, 2.5, -3, 10, 7, 0).map((n): RefValue => ({ n }));
const stringLiteral = fc.constantFrom(...Object.keys(POOL), "it's").map((s): RefValue => ({ s }));
const booleanLiteral = fc.boolean().map((b): RefValue => ({ b }));
const numeric = fc.oneof(property, numberLiteral);
const anyValue = fc.oneof(property, numberLiteral, stringLiteral, booleanLiteral);

const { condition } = fc.letrec<{ condition: Ref }>((tie) => ({
  condition: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom<T>('T', 'F', 'U').map((v): Ref => ({ k: 'const', v })),
    fc.record({ op: fc.constantFrom('=', '<>'), l: anyValue, r: anyValue }).map((c): Ref => ({ k: 'cmp', ...c })),
    fc.record({ op: fc.constantFrom('>', '>=', '<', '<='), l: numeric, r: numeric }).map((c): Ref => ({ k: 'cmp', ...c })),
    fc.record({ not: fc.boolean(), v: numeric, lo: numeric, hi: numeric }).map((c): Ref => {
      // Constant bounds out of order are refused (RocketMQ's createBetween): keep them ordered.
      if ('n' in c.lo && 'n' in c.hi && c.lo.n > c.hi.n) return { k: 'between', ...c, lo: c.hi, hi: c.lo };
      return { k: 'between', ...c };
    }),
    fc.record({ not: fc.boolean(), p: fc.constantFrom(...NAMES), list: fc.array(stringLiteral.map((v) => (v as { s: string }).s), { minLength: 1, maxLength: 4 }) }).map((c): Ref => ({ k: 'in', ...c })),
    fc.record({ not: fc.boolean(), v: anyValue }).map((c): Ref => ({ k: 'isnull', ...c })),
    fc.record({ k: fc.constantFrom<'and' | 'or'>('and', 'or'), items: fc.array(tie('condition'), { minLength: 2, maxLength: 3 }) }).map((c): Ref => c),
    tie('condition').map((item): Ref => ({ k: 'not', item })),
  ),
}));

const propertyMap = fc.dictionary(fc.constantFrom(...NAMES), fc.constantFrom(...Object.keys(POOL)), { maxKeys: 3 });

describe('filter – SQL92 evaluation against a reference', () => {
  it('matches exactly when the reference evaluates TRUE, for random conditions and property maps', () => {
    fc.assert(
      fc.property(condition, fc.array(propertyMap, { minLength: 1, maxLength: 8 }), fc.boolean(), fc.boolean(), (tree, maps, lower, spaces) => {
        const text = render(tree, (word) => (lower ? word.toLowerCase() : word), () => (spaces ? '  ' : ''));
        const parsed = parseSql(text);
        for (const props of maps) expect(sqlMatches(parsed, props), `${text} over ${JSON.stringify(props)}`).toBe(reference(tree, props) === 'T');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('filter – SQL92 operators', () => {
  const cases: [string, Props, boolean][] = [
    ["a = 'abc'", { a: 'abc' }, true],
    ["a = 'abc'", { a: 'abd' }, false],
    ['a = 5', { a: '5' }, true],
    ['a = 5', { a: '5.0' }, true],
    ['a = 5', { a: 'five' }, false],
    ["a <> 'abc'", { a: 'x' }, true],
    ["a <> 'abc'", { a: 'abc' }, false],
    ['a > 5', { a: '6' }, true],
    ['a > 5', { a: '5' }, false],
    ['a >= 5', { a: '5' }, true],
    ['a < 5', { a: '-1.5' }, true],
    ['a < 5', { a: '10' }, false],
    ['a <= 5', { a: '5' }, true],
    ['a > -2', { a: '-1' }, true],
    ['a > 1.5e1', { a: '16' }, true],
    ['a BETWEEN 1 AND 3', { a: '3' }, true],
    ['a BETWEEN 1 AND 3', { a: '4' }, false],
    ['a NOT BETWEEN 1 AND 3', { a: '4' }, true],
    ['a NOT BETWEEN 1 AND 3', { a: '2' }, false],
    ["a IN ('x', 'y')", { a: 'y' }, true],
    ["a IN ('x', 'y')", { a: 'z' }, false],
    ["a NOT IN ('x', 'y')", { a: 'z' }, true],
    ['a IS NULL', {}, true],
    ['a IS NULL', { a: '' }, false],
    ['a IS NOT NULL', { a: '' }, true],
    ["a > 5 AND b = 'abc'", { a: '6', b: 'abc' }, true],
    ["a > 5 AND b = 'abc'", { a: '6', b: 'abd' }, false],
    ["a > 5 OR b = 'abc'", { a: '1', b: 'abc' }, true],
    ['NOT a = 1', { a: '2' }, true],
    ['NOT (a = 1 OR a = 2)', { a: '2' }, false],
    ['TRUE', {}, true],
    ['FALSE', {}, false],
    ['flag = TRUE', { flag: 'true' }, true],
    ['flag = FALSE', { flag: 'TRUE' }, false],
    ["a = 'it''s'", { a: "it's" }, true],
    ['a > b', { a: '3', b: '2' }, true],
    ['constructor IS NULL', {}, true],
    ['a = 1 and B = 2 or not c is null', { a: '1', B: '2' }, true],
  ];
  it.each(cases)('%s over %j is %s', (expression, props, expected) => {
    expect(matches(expression, props)).toBe(expected);
  });

  it('matches nothing that needs a property of a message without properties', () => {
    expect(matches('a = 1', undefined)).toBe(false);
    expect(matches('a IS NULL', undefined)).toBe(true);
  });
});

describe('filter – three-valued NULL logic', () => {
  const cases: [string, Props, boolean][] = [
    // A missing property makes a comparison unknown; unknown never matches, under NOT neither.
    ['a > 5', {}, false],
    ['NOT a > 5', {}, false],
    ["a IN ('x')", {}, false],
    ["a NOT IN ('x')", {}, false],
    ['a BETWEEN 1 AND 2', {}, false],
    ['a NOT BETWEEN 1 AND 2', {}, false],
    // Kleene: unknown OR TRUE is TRUE, unknown AND FALSE is FALSE.
    ['a > 5 OR TRUE', {}, true],
    ['NOT (a > 5 AND FALSE)', {}, true],
    ['NOT (a > 5 OR FALSE)', {}, false],
    ['NULL', {}, false],
    ['NOT NULL', {}, false],
    // RocketMQ's `=`: a NULL left side is unknown, a NULL right side alone FALSE, both TRUE.
    ["a = 'x'", {}, false],
    ["NOT a = 'x'", {}, false],
    ["NOT 'x' = a", {}, true],
    ['a = b', {}, true],
    ['a <> b', { a: '1' }, true],
    // A property that is not a number meets a numeric comparison: unknown, like NULL.
    ['a > 5', { a: 'abc' }, false],
    ['NOT a > 5', { a: 'abc' }, false],
    ['a > 5 OR b = 1', { a: 'abc', b: '1' }, true],
    ['b = 1 OR a > 5', { a: 'abc', b: '1' }, true],
    ['a = 5', { a: 'abc' }, false],
    ['NOT a = 5', { a: 'abc' }, false],
  ];
  it.each(cases)('%s over %j is %s', (expression, props, expected) => {
    expect(matches(expression, props)).toBe(expected);
  });
});

describe('filter – malformed SQL92 is refused with its position', () => {
  const cases: [string, number, string][] = [
    ['', 1, 'empty'],
    ['a >', 4, 'expected a property or a literal'],
    ['a > 5 AND', 10, 'expected a condition'],
    ["a > 'abc'", 5, 'cannot be compared with >'],
    ["a BETWEEN 'x' AND 3", 11, 'cannot be compared with BETWEEN'],
    ['a BETWEEN 5 AND 1', 3, 'low bound'],
    ['a BETWEEN 1 OR 3', 13, 'expected AND'],
    ['a IN (1, 2)', 7, 'string literals'],
    ["a IN ('x'", 10, 'to close the IN list'],
    ["5 IN ('x')", 1, 'IN needs a property'],
    ['(a = 1', 7, 'to close the "("'],
    ['a = 1)', 6, 'unexpected ")"'],
    ['a', 2, 'expected a comparison'],
    ["a = 'open", 5, 'not closed'],
    ['a = NULL', 5, 'use IS NULL'],
    ['a IS 5', 6, 'expected NULL'],
    ['a ! 5', 3, 'unexpected character "!"'],
    ['a = 5x', 6, 'after the number'],
    ['a = 1 b = 2', 7, 'unexpected the property b'],
    ['a = - b', 7, 'expected a number after "-"'],
  ];
  it.each(cases)('%j at character %i', (expression, position, problem) => {
    const error = refusal(() => compileFilter({ type: 'sql', expression }));
    expect(error.code).toBe('LMQ_BAD_INPUT');
    expect(error.details['position']).toBe(position);
    expect(error.message).toContain(`at character ${position}`);
    expect(error.message).toContain(problem);
  });

  it('bounds the nesting and the length', () => {
    const depth = LIMITS.maxFilterNestingDepth;
    expect(matches(`${'('.repeat(depth - 1)}a = 1${')'.repeat(depth - 1)}`, { a: '1' })).toBe(true);
    const deep = refusal(() => parseSql(`${'('.repeat(depth + 1)}a = 1${')'.repeat(depth + 1)}`));
    expect(deep.message).toContain('maxFilterNestingDepth');
    expect(deep.details['position']).toBe(depth + 1);
    expect(refusal(() => parseSql('NOT '.repeat(depth + 1) + 'a = 1')).message).toContain('maxFilterNestingDepth');
    const long = `a = '${'x'.repeat(LIMITS.maxFilterExpressionLength)}'`;
    expect(refusal(() => parseSql(long)).message).toContain('maxFilterExpressionLength');
    // A long flat chain is no deeper than its operands.
    const chain = Array.from({ length: 300 }, (_, i) => `a = ${i}`).join(' OR ');
    expect(chain.length).toBeLessThanOrEqual(LIMITS.maxFilterExpressionLength);
    expect(matches(chain, { a: '299' })).toBe(true);
  });
});

describe('filter – tag expressions', () => {
  it('takes every message for *, and the listed tags otherwise', () => {
    const all = compileFilter({ type: 'tag', expression: ' * ' });
    expect(all.all).toBe(true);
    expect(all.matches({})).toBe(true);
    const some = compileFilter({ type: 'tag', expression: 'TagA || TagB' });
    expect(some.all).toBe(false);
    expect(some.matches({ tag: 'TagA' })).toBe(true);
    expect(some.matches({ tag: 'TagB' })).toBe(true);
    expect(some.matches({ tag: 'TagC' })).toBe(false);
    expect(some.matches({})).toBe(false);
  });

  it('decides by the tag hash where it can: no tag or another hash is skipped unread', () => {
    const some = compileFilter({ type: 'tag', expression: 'TagA||TagB' });
    expect(some.mayMatchTagHash(tagHash('TagA'))).toBe(true);
    expect(some.mayMatchTagHash(tagHash('TagC'))).toBe(false);
    expect(some.mayMatchTagHash(null)).toBe(false);
    expect(compileFilter({ type: 'sql', expression: 'a = 1' }).mayMatchTagHash(null)).toBe(true);
  });

  it('hashes tags to 32-bit unsigned numbers, alike for alike', () => {
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 128 }), (tag) => {
      const hash = tagHash(tag);
      expect(Number.isInteger(hash) && hash >= 0 && hash < 2 ** 32).toBe(true);
      expect(tagHash(String(tag))).toBe(hash);
    }));
    expect(tagHash('TagA')).not.toBe(tagHash('TagB'));
  });

  const bad: [string, number, string][] = [
    ['', 1, 'empty'],
    ['TagA ||', 8, 'empty tag'],
    ['TagA |||| TagB', 8, 'empty tag'],
    ['TagA || *', 9, 'stands alone'],
    ['TagA | TagB', 6, 'single "|"'],
    [`TagA || ${'x'.repeat(LIMITS.maxTagLength + 1)}`, 9, 'maxTagLength'],
  ];
  it.each(bad)('refuses %j at character %i', (expression, position, problem) => {
    const error = refusal(() => parseTagExpression(expression));
    expect(error.code).toBe('LMQ_BAD_INPUT');
    expect(error.details['position']).toBe(position);
    expect(error.message).toContain(problem);
  });
});

describe('filter – the broker cache', () => {
  it('compiles each expression once and refuses a bad one every time', () => {
    const cache = new FilterCache(2);
    const first = cache.get({ type: 'sql', expression: 'a = 1' });
    expect(cache.get({ type: 'sql', expression: 'a = 1' })).toBe(first);
    expect(cache.get({ type: 'tag', expression: 'a = 1' })).not.toBe(first);
    expect(() => cache.get({ type: 'sql', expression: 'a =' })).toThrow(/character 4/);
    expect(() => cache.get({ type: 'sql', expression: 'a =' })).toThrow(/character 4/);
    cache.get({ type: 'sql', expression: 'b = 1' }); // at its bound: starts again empty
    expect(cache.get({ type: 'sql', expression: 'a = 1' })).not.toBe(first);
  });
});
