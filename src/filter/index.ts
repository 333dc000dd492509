// Message filters of a subscription (RocketMQ's MessageSelector): tag expressions and SQL92
// selectors over user properties. The layer sits below the broker and the client — both
// compile the same filter, the client when a consumer subscribes (a bad expression fails
// there, with the character it goes wrong at) and the broker again when a pull carrying it
// arrives — and above the protocol, whose limits table bounds an expression.
import { LmqError } from '../util/errors.js';
import { type Condition, parseSql, sqlMatches } from './sql.js';
import { parseTagExpression, type TagSelector, tagMatches } from './tag.js';

export { tagHash } from './tag.js';

/** What a subscription carries on the wire (a pull's `filter`). */
export interface SubscriptionFilter {
  readonly type: 'tag' | 'sql';
  readonly expression: string;
}

/** What a filter looks at of a message. */
export interface FilteredMessage {
  readonly tag?: string | undefined;
  readonly properties?: Readonly<Record<string, string>> | undefined;
}

export interface MessageFilter {
  readonly filter: SubscriptionFilter;
  /** Whether every message matches (`*`): the broker reads as if there were no filter. */
  readonly all: boolean;
  /**
   * False when the consume queue record's tag hash (null: no tag) already shows the message
   * does not match, so it is skipped unread. True says only "read it and ask matches()".
   */
  mayMatchTagHash(tagHash: number | null): boolean;
  matches(message: FilteredMessage): boolean;
}

/** Compiles a filter; LMQ_BAD_INPUT (with `position`, 1-based) for a malformed expression. */
export function compileFilter(filter: SubscriptionFilter): MessageFilter {
  if (filter.type === 'tag') return tagFilter(filter, parseTagExpression(filter.expression));
  if (filter.type === 'sql') return sqlFilter(filter, parseSql(filter.expression));
  throw new LmqError('LMQ_BAD_INPUT', `unknown filter type ${JSON.stringify((filter as { type: unknown }).type)}; use tag or sql`);
}

function tagFilter(filter: SubscriptionFilter, selector: TagSelector): MessageFilter {
  return {
    filter,
    all: selector.all,
    mayMatchTagHash: (hash) => selector.all || (hash !== null && selector.hashes.has(hash)),
    matches: (message) => tagMatches(selector, message.tag),
  };
}

function sqlFilter(filter: SubscriptionFilter, condition: Condition): MessageFilter {
  return {
    filter,
    all: false,
    mayMatchTagHash: () => true,
    matches: (message) => sqlMatches(condition, message.properties),
  };
}

/**
 * Compiled filters by expression, for the broker: a consumer sends the same one with every
 * pull. Bounded: at maxEntries it starts again empty (the next pulls compile theirs again).
 */
export class FilterCache {
  private readonly compiled = new Map<string, MessageFilter>();

  constructor(private readonly maxEntries: number) {}

  get(filter: SubscriptionFilter): MessageFilter {
    const key = `${filter.type}\u0000${filter.expression}`;
    const found = this.compiled.get(key);
    if (found !== undefined) return found;
    const compiled = compileFilter(filter);
    if (this.compiled.size >= this.maxEntries) this.compiled.clear();
    this.compiled.set(key, compiled);
    return compiled;
  }
}
