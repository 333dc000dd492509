// RocketMQ's SQL92 message selector over a message's user properties: a hand-written
// tokenizer and recursive-descent parser into a small condition tree, and its three-valued
// evaluation. Semantics follow org.apache.rocketmq.filter (ComparisonExpression,
// LogicExpression, UnaryExpression), read against its source:
//   - Properties are strings; a missing one is NULL.
//   - `>`, `>=`, `<`, `<=` and BETWEEN compare numbers: a literal operand must be numeric
//     (refused at parse time otherwise, as RocketMQ's checkLessThanOperand does) and a property
//     is converted to a number. A NULL operand makes the comparison unknown.
//   - `=` with a number or TRUE/FALSE on one side converts the other (a string) to that type;
//     two strings compare as strings. NULL as RocketMQ's doCreateEqual has it: a NULL left side
//     is unknown, a NULL right side alone is FALSE, both NULL is TRUE (only `prop = prop` can
//     meet the last two). `a <> b` is NOT (a = b).
//   - IN takes a property and string literals; a NULL property is unknown, for NOT IN too.
//   - IS [NOT] NULL is never unknown. AND, OR, NOT are Kleene's three-valued logic; a message
//     matches only when the whole condition is TRUE (unknown does not match).
// One deliberate difference: RocketMQ throws when a property that is not a number meets a
// numeric comparison, and its broker then drops the message whatever the rest of the
// condition says, depending on evaluation order (`x > 1 OR b = 'y'` never matches x = 'abc',
// `b = 'y' OR x > 1` does). Here such a comparison is unknown, like NULL: it does not match,
// under NOT either, and AND / OR stay commutative. A number here is a JavaScript double, and
// any decimal text converts (RocketMQ parses a property as the literal's own Java type).
// NOT binds looser than comparisons, as in SQL (`NOT a = 1` is NOT (a = 1)); a comparison's
// operands are properties and literals only.
import { LIMITS } from '../protocol/limits.js';
import { assert, unreachable } from '../util/assert.js';
import { LmqError } from '../util/errors.js';

/** TRUE, FALSE, or null: unknown (SQL's NULL truth value). */
export type Truth = boolean | null;

export type Operand =
  | { readonly kind: 'property'; readonly name: string }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'boolean'; readonly value: boolean };

export type CompareOp = '=' | '<>' | '>' | '>=' | '<' | '<=';

export type Condition =
  | { readonly kind: 'constant'; readonly value: Truth }
  | { readonly kind: 'and' | 'or'; readonly operands: readonly Condition[] }
  | { readonly kind: 'not'; readonly operand: Condition }
  | { readonly kind: 'compare'; readonly op: CompareOp; readonly left: Operand; readonly right: Operand }
  | { readonly kind: 'between'; readonly not: boolean; readonly value: Operand; readonly low: Operand; readonly high: Operand }
  | { readonly kind: 'in'; readonly not: boolean; readonly property: string; readonly values: ReadonlySet<string> }
  | { readonly kind: 'isNull'; readonly not: boolean; readonly operand: Operand };

export type Properties = Readonly<Record<string, string>> | undefined;

// --- tokens -----------------------------------------------------------------------------------

type TokenKind = 'id' | 'keyword' | 'string' | 'number' | 'op' | 'end';
interface Token {
  readonly kind: TokenKind;
  /** Keywords upper-cased; a string's value unquoted; an id as written. */
  readonly text: string;
  /** 1-based character position in the expression. */
  readonly position: number;
}

const KEYWORDS: ReadonlySet<string> = new Set(['AND', 'OR', 'NOT', 'BETWEEN', 'IN', 'IS', 'NULL', 'TRUE', 'FALSE']);
const ID_START = /[A-Za-z_$]/;
const ID_PART = /[A-Za-z0-9_$]/;
/** A numeric literal at the tokenizer's position (sticky). */
const NUMBER = /(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/y;
const OPERATORS = ['<>', '>=', '<=', '=', '>', '<', '(', ')', ',', '-', '+'];

function syntaxError(position: number, problem: string): LmqError {
  return new LmqError('LMQ_BAD_INPUT', `bad SQL filter at character ${position}: ${problem}`, { position });
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      i++;
      continue;
    }
    const position = i + 1;
    if (ID_START.test(c)) {
      let end = i + 1;
      while (end < text.length && ID_PART.test(text[end]!)) end++;
      const word = text.slice(i, end);
      const upper = word.toUpperCase();
      tokens.push(KEYWORDS.has(upper) ? { kind: 'keyword', text: upper, position } : { kind: 'id', text: word, position });
      i = end;
    } else if (c === "'") {
      const { value, end } = readString(text, i);
      tokens.push({ kind: 'string', text: value, position });
      i = end;
    } else if (numberAt(text, i) !== undefined) {
      const literal = numberAt(text, i)!;
      const end = i + literal.length;
      if (end < text.length && ID_PART.test(text[end]!)) throw syntaxError(end + 1, `unexpected "${text[end]}" after the number ${literal}`);
      tokens.push({ kind: 'number', text: literal, position });
      i = end;
    } else {
      const op = OPERATORS.find((o) => text.startsWith(o, i));
      if (op === undefined) throw syntaxError(position, `unexpected character "${c}"`);
      tokens.push({ kind: 'op', text: op, position });
      i += op.length;
    }
  }
  tokens.push({ kind: 'end', text: '', position: text.length + 1 });
  return tokens;
}

function numberAt(text: string, i: number): string | undefined {
  NUMBER.lastIndex = i;
  return NUMBER.exec(text)?.[0];
}

/** A single-quoted string from `start` (its quote); '' inside is one quote. */
function readString(text: string, start: number): { value: string; end: number } {
  let value = '';
  let i = start + 1;
  for (;;) {
    const quote = text.indexOf("'", i);
    if (quote < 0) throw syntaxError(start + 1, 'the string starting here is not closed with a quote');
    value += text.slice(i, quote);
    if (text[quote + 1] !== "'") return { value, end: quote + 1 };
    value += "'";
    i = quote + 2;
  }
}

// --- parser -----------------------------------------------------------------------------------

const COMPARE_OPS: ReadonlySet<string> = new Set(['=', '<>', '>', '>=', '<', '<=']);

class Parser {
  private at = 0;
  private depth = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  parse(): Condition {
    const condition = this.or();
    const next = this.peek();
    if (next.kind !== 'end') throw syntaxError(next.position, `unexpected ${describe(next)}${next.text === ')' ? ' (no "(" opens it)' : ''}`);
    return condition;
  }

  private peek(ahead = 0): Token {
    return this.tokens[Math.min(this.at + ahead, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.at++;
    return token;
  }

  private isKeyword(word: string, ahead = 0): boolean {
    const token = this.peek(ahead);
    return token.kind === 'keyword' && token.text === word;
  }

  private isOp(op: string, ahead = 0): boolean {
    const token = this.peek(ahead);
    return token.kind === 'op' && token.text === op;
  }

  private expectKeyword(word: string, context: string): void {
    const token = this.next();
    if (token.kind !== 'keyword' || token.text !== word) throw syntaxError(token.position, `expected ${word} ${context}, found ${describe(token)}`);
  }

  private expectOp(op: string, context: string): void {
    const token = this.next();
    if (token.kind !== 'op' || token.text !== op) throw syntaxError(token.position, `expected "${op}" ${context}, found ${describe(token)}`);
  }

  /** Nesting (parentheses and NOT) is bounded, so a hostile expression cannot exhaust the stack. */
  private nested<T>(position: number, parse: () => T): T {
    if (this.depth >= LIMITS.maxFilterNestingDepth) throw syntaxError(position, `nested deeper than maxFilterNestingDepth ${LIMITS.maxFilterNestingDepth}`);
    this.depth++;
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  private or(): Condition {
    return this.chain('or', () => this.and());
  }

  private and(): Condition {
    return this.chain('and', () => this.not());
  }

  /** operand (KIND operand)*: one n-ary node, so a long chain nests no deeper than its operands. */
  private chain(kind: 'and' | 'or', operand: () => Condition): Condition {
    const operands = [operand()];
    while (this.isKeyword(kind.toUpperCase())) {
      this.next();
      operands.push(operand());
    }
    return operands.length === 1 ? operands[0]! : { kind, operands };
  }

  private not(): Condition {
    if (!this.isKeyword('NOT')) return this.predicate();
    const token = this.next();
    return this.nested(token.position, () => ({ kind: 'not', operand: this.not() }));
  }

  private predicate(): Condition {
    const token = this.peek();
    if (this.isOp('(')) {
      this.next();
      const inner = this.nested(token.position, () => this.or());
      this.expectOp(')', `to close the "(" at character ${token.position}`);
      return inner;
    }
    if (this.isKeyword('NULL') && !this.startsComparison(1)) {
      this.next();
      return { kind: 'constant', value: null };
    }
    if ((this.isKeyword('TRUE') || this.isKeyword('FALSE')) && !this.startsComparison(1)) {
      this.next();
      return { kind: 'constant', value: token.text === 'TRUE' };
    }
    const left = this.operand('a condition');
    return this.comparison(left, token);
  }

  /** Whether the token `ahead` begins a comparison's operator (so what precedes it is an operand). */
  private startsComparison(ahead: number): boolean {
    const token = this.peek(ahead);
    if (token.kind === 'op') return COMPARE_OPS.has(token.text);
    if (token.kind !== 'keyword') return false;
    if (token.text === 'NOT') return this.isKeyword('BETWEEN', ahead + 1) || this.isKeyword('IN', ahead + 1);
    return token.text === 'BETWEEN' || token.text === 'IN' || token.text === 'IS';
  }

  private comparison(left: Operand, start: Token): Condition {
    const token = this.peek();
    if (token.kind === 'op' && COMPARE_OPS.has(token.text)) {
      this.next();
      const op = token.text as CompareOp;
      const rightToken = this.peek();
      const right = this.operand(`after "${op}"`);
      if (op !== '=' && op !== '<>') {
        numericOnly(left, start.position, op);
        numericOnly(right, rightToken.position, op);
      }
      return { kind: 'compare', op, left, right };
    }
    if (this.isKeyword('IS')) {
      this.next();
      const not = this.isKeyword('NOT');
      if (not) this.next();
      this.expectKeyword('NULL', `after IS${not ? ' NOT' : ''}`);
      return { kind: 'isNull', not, operand: left };
    }
    const not = this.isKeyword('NOT');
    if (not) this.next();
    if (this.isKeyword('BETWEEN')) return this.between(left, start, not);
    if (this.isKeyword('IN')) return this.in(left, start, not);
    const found = this.peek();
    throw syntaxError(found.position, `expected a comparison (=, <>, >, >=, <, <=, BETWEEN, IN, IS) after ${describeOperand(left)}, found ${describe(found)}`);
  }

  private between(value: Operand, start: Token, not: boolean): Condition {
    const keyword = this.next();
    const lowToken = this.peek();
    const low = this.operand('after BETWEEN');
    this.expectKeyword('AND', 'between the bounds of BETWEEN');
    const highToken = this.peek();
    const high = this.operand('after BETWEEN … AND');
    numericOnly(value, start.position, 'BETWEEN');
    numericOnly(low, lowToken.position, 'BETWEEN');
    numericOnly(high, highToken.position, 'BETWEEN');
    // RocketMQ's createBetween refuses constant bounds out of order.
    if (low.kind === 'number' && high.kind === 'number' && low.value > high.value) {
      throw syntaxError(keyword.position, `BETWEEN ${low.value} AND ${high.value}: the low bound must not exceed the high bound`);
    }
    return { kind: 'between', not, value, low, high };
  }

  private in(left: Operand, start: Token, not: boolean): Condition {
    this.next();
    if (left.kind !== 'property') throw syntaxError(start.position, 'IN needs a property on its left');
    this.expectOp('(', 'after IN');
    const values = new Set<string>();
    for (;;) {
      const token = this.next();
      if (token.kind !== 'string') throw syntaxError(token.position, `IN takes single-quoted string literals, found ${describe(token)}`);
      values.add(token.text);
      if (this.isOp(',')) {
        this.next();
        continue;
      }
      this.expectOp(')', 'to close the IN list');
      return { kind: 'in', not, property: left.name, values };
    }
  }

  private operand(context: string): Operand {
    const token = this.next();
    if (token.kind === 'id') return { kind: 'property', name: token.text };
    if (token.kind === 'string') return { kind: 'string', value: token.text };
    if (token.kind === 'number') return { kind: 'number', value: numberValue(token) };
    if (token.kind === 'keyword' && (token.text === 'TRUE' || token.text === 'FALSE')) return { kind: 'boolean', value: token.text === 'TRUE' };
    if (token.kind === 'op' && (token.text === '-' || token.text === '+')) {
      const number = this.next();
      if (number.kind !== 'number') throw syntaxError(number.position, `expected a number after "${token.text}", found ${describe(number)}`);
      const value = numberValue(number);
      return { kind: 'number', value: token.text === '-' ? -value : value };
    }
    if (token.kind === 'keyword' && token.text === 'NULL') throw syntaxError(token.position, 'NULL cannot be compared; use IS NULL or IS NOT NULL');
    throw syntaxError(token.position, `expected ${context === 'a condition' ? 'a condition' : `a property or a literal ${context}`}, found ${describe(token)}`);
  }
}

function numberValue(token: Token): number {
  const value = Number(token.text);
  if (!Number.isFinite(value)) throw syntaxError(token.position, `the number ${token.text} is out of range`);
  return value;
}

/** RocketMQ's checkLessThanOperand: only numbers (and properties, converted) are ordered. */
function numericOnly(operand: Operand, position: number, op: string): void {
  if (operand.kind === 'string' || operand.kind === 'boolean') {
    throw syntaxError(position, `${describeOperand(operand)} cannot be compared with ${op}: it takes numbers and properties`);
  }
}

function describe(token: Token): string {
  switch (token.kind) {
    case 'end':
      return 'the end of the expression';
    case 'string':
      return `the string '${token.text}'`;
    case 'id':
      return `the property ${token.text}`;
    case 'number':
      return `the number ${token.text}`;
    case 'keyword':
      return token.text;
    case 'op':
      return `"${token.text}"`;
    default:
      return unreachable(token.kind, 'token kind');
  }
}

function describeOperand(operand: Operand): string {
  switch (operand.kind) {
    case 'property':
      return `the property ${operand.name}`;
    case 'string':
      return `the string '${operand.value}'`;
    case 'number':
      return `the number ${operand.value}`;
    case 'boolean':
      return operand.value ? 'TRUE' : 'FALSE';
    default:
      return unreachable(operand, 'operand');
  }
}

/** Parses an SQL92 selector; a malformed one is LMQ_BAD_INPUT naming the character where it goes wrong. */
export function parseSql(expression: string): Condition {
  if (expression.length > LIMITS.maxFilterExpressionLength) {
    throw syntaxError(LIMITS.maxFilterExpressionLength + 1, `longer than maxFilterExpressionLength ${LIMITS.maxFilterExpressionLength}`);
  }
  const tokens = tokenize(expression);
  if (tokens.length === 1) throw syntaxError(1, 'the expression is empty');
  return new Parser(tokens).parse();
}

// --- evaluation -------------------------------------------------------------------------------

type Value = string | number | boolean | null;

/** Decimal text, as a property holds a number; anything else is not one. */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function toNumber(value: string | number | boolean): number | null {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return null;
  const trimmed = value.trim();
  return DECIMAL.test(trimmed) ? Number(trimmed) : null;
}

function toBoolean(value: string): boolean | null {
  const lower = value.trim().toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : null;
}

function valueOf(operand: Operand, properties: Properties): Value {
  if (operand.kind !== 'property') return operand.value;
  // Own properties only: a name such as "constructor" must not find Object's.
  if (properties === undefined || !Object.hasOwn(properties, operand.name)) return null;
  return properties[operand.name]!;
}

/** `=` on two non-NULL values: a string meets a number or boolean converted, else unknown. */
function equalValues(left: string | number | boolean, right: string | number | boolean): Truth {
  if (typeof left === typeof right) return left === right;
  if (typeof left === 'string' || typeof right === 'string') {
    const [text, other] = typeof left === 'string' ? [left, right] : [right as string, left];
    const converted = typeof other === 'number' ? toNumber(text) : toBoolean(text);
    return converted === null ? null : converted === other;
  }
  return false; // a number and a boolean: RocketMQ compares different types as unequal
}

function equals(condition: Extract<Condition, { kind: 'compare' }>, properties: Properties): Truth {
  const left = valueOf(condition.left, properties);
  const right = valueOf(condition.right, properties);
  if (left === null) return right === null ? true : null;
  if (right === null) return false;
  return equalValues(left, right);
}

function order(op: '>' | '>=' | '<' | '<=', left: Value, right: Value): Truth {
  if (left === null || right === null) return null;
  const l = toNumber(left);
  const r = toNumber(right);
  if (l === null || r === null) return null;
  switch (op) {
    case '>':
      return l > r;
    case '>=':
      return l >= r;
    case '<':
      return l < r;
    case '<=':
      return l <= r;
    default:
      return unreachable(op, 'order operator');
  }
}

function and2(a: Truth, b: Truth): Truth {
  if (a === false || b === false) return false;
  return a === null || b === null ? null : true;
}

function or2(a: Truth, b: Truth): Truth {
  if (a === true || b === true) return true;
  return a === null || b === null ? null : false;
}

function not(value: Truth): Truth {
  return value === null ? null : !value;
}

export function evaluate(condition: Condition, properties: Properties): Truth {
  switch (condition.kind) {
    case 'constant':
      return condition.value;
    case 'and': {
      let unknown = false;
      for (const operand of condition.operands) {
        const value = evaluate(operand, properties);
        if (value === false) return false;
        if (value === null) unknown = true;
      }
      return unknown ? null : true;
    }
    case 'or': {
      let unknown = false;
      for (const operand of condition.operands) {
        const value = evaluate(operand, properties);
        if (value === true) return true;
        if (value === null) unknown = true;
      }
      return unknown ? null : false;
    }
    case 'not':
      return not(evaluate(condition.operand, properties));
    case 'compare': {
      if (condition.op === '=') return equals(condition, properties);
      if (condition.op === '<>') return not(equals(condition, properties));
      return order(condition.op, valueOf(condition.left, properties), valueOf(condition.right, properties));
    }
    case 'between': {
      const value = valueOf(condition.value, properties);
      const low = valueOf(condition.low, properties);
      const high = valueOf(condition.high, properties);
      // RocketMQ: BETWEEN is (>= low AND <= high), NOT BETWEEN is (< low OR > high).
      if (condition.not) return or2(order('<', value, low), order('>', value, high));
      return and2(order('>=', value, low), order('<=', value, high));
    }
    case 'in': {
      const value = valueOf({ kind: 'property', name: condition.property }, properties);
      if (value === null) return null;
      assert(typeof value === 'string', 'a property is a string');
      return condition.values.has(value) !== condition.not;
    }
    case 'isNull':
      return (valueOf(condition.operand, properties) === null) !== condition.not;
    default:
      return unreachable(condition, 'condition');
  }
}

/** Whether a message with these properties matches: only a TRUE condition does. */
export function sqlMatches(condition: Condition, properties: Properties): boolean {
  return evaluate(condition, properties) === true;
}
