// Tag expressions (RocketMQ's SubscriptionData for ExpressionType.TAG): `*` takes every message,
// `TagA || TagB` the messages whose tag is one of those. Each tag is trimmed and must be a valid
// tag (the produce check's rule); an empty one (`TagA ||`) or `*` beside others is refused
// rather than ignored, so a typo cannot widen or empty a subscription unnoticed.
//
// The consume queue record keeps tagHash(tag) (RocketMQ's tagsCode), so the broker skips a
// message whose hash is not among the subscription's without reading it from the commit log;
// a hash that collides is caught by comparing the tag itself once the message is read.
import { CONTROL_CHARACTER, LIMITS } from '../protocol/limits.js';
import { LmqError } from '../util/errors.js';

export type TagSelector =
  | { readonly all: true }
  | { readonly all: false; readonly tags: ReadonlySet<string>; readonly hashes: ReadonlySet<number> };

/** FNV-1a over the tag's UTF-16 code units: a 32-bit unsigned number, equal on every node. */
export function tagHash(tag: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < tag.length; i++) {
    hash ^= tag.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function tagError(position: number, problem: string): LmqError {
  return new LmqError('LMQ_BAD_INPUT', `bad tag filter at character ${position}: ${problem}`, { position });
}

export function parseTagExpression(expression: string): TagSelector {
  if (expression.length > LIMITS.maxFilterExpressionLength) {
    throw tagError(LIMITS.maxFilterExpressionLength + 1, `longer than maxFilterExpressionLength ${LIMITS.maxFilterExpressionLength}`);
  }
  if (expression.trim() === '*') return { all: true };
  const tags = new Set<string>();
  let start = 0;
  for (const part of expression.split('||')) {
    const tag = part.trim();
    // 1-based position of the part's first non-blank character (or of where it would be).
    const position = start + (part.length - part.trimStart().length) + 1;
    if (tag === '') throw tagError(position, expression.trim() === '' ? 'the expression is empty' : 'an empty tag between "||"');
    if (tag === '*') throw tagError(position, '"*" takes every message and stands alone');
    if (tag.length > LIMITS.maxTagLength) throw tagError(position, `a tag longer than maxTagLength ${LIMITS.maxTagLength}`);
    const control = CONTROL_CHARACTER.exec(tag);
    if (control !== null) throw tagError(position + control.index, 'a control character in a tag');
    if (tag.includes('|')) throw tagError(position + tag.indexOf('|'), 'a single "|" (tags are separated by "||")');
    tags.add(tag);
    start += part.length + 2;
  }
  return { all: false, tags, hashes: new Set([...tags].map(tagHash)) };
}

export function tagMatches(selector: TagSelector, tag: string | undefined): boolean {
  return selector.all || (tag !== undefined && selector.tags.has(tag));
}
