/**
 * Fitting messages into a context window. PURE and dependency-free (the token
 * counter is handed in), so workflows and tests can use it without loading a
 * tokenizer.
 *
 * Order of sacrifice: system prompts are always kept;
 * the oldest non-system turns are dropped first (the last user message never);
 * then the longest user text is cut, keeping its head and marking the cut
 * with {@link TRUNCATION_MARKER}, until the messages fit.
 */
import type { ChatMessage, TruncationInfo } from './types.ts';

/** Appended to a user text that was cut. */
export const TRUNCATION_MARKER = '\n[truncated]';

/** How a tokenizer family counts a conversation. */
export interface MessageCounter {
  /** Tokens of one text. */
  text(s: string): number;
  /** Framing tokens per message (role, separators). */
  perMessage: number;
  /** Framing tokens per request (e.g. the reply primer). */
  base: number;
  /**
   * Optional fast path: the length in characters of the longest head of `s`
   * that counts at most `maxTokens` (one pass over the tokenizer's pieces).
   * Without it, truncation binary-searches with `text`.
   */
  headWithin?(s: string, maxTokens: number): number;
}

/** What {@link truncateMessages} returns. */
export interface TruncateOutcome {
  messages: ChatMessage[];
  inputTokens: number;
  /** Null when nothing had to be removed. */
  truncation: TruncationInfo | null;
  /** False when even the system prompt(s) plus an emptied user text exceed the budget. */
  fits: boolean;
}

/** Total tokens of a conversation under a counter. */
export function countMessages(messages: readonly ChatMessage[], counter: MessageCounter): number {
  return messages.reduce((sum, m) => sum + counter.perMessage + counter.text(m.content), counter.base);
}

/**
 * Returns messages that fit `budget` tokens (the context window minus the
 * tokens reserved for the answer), and what was removed to get there.
 * The input array is not modified.
 */
export function truncateMessages(messages: readonly ChatMessage[], budget: number, counter: MessageCounter): TruncateOutcome {
  const kept = messages.map((m) => ({ ...m }));
  const cost = kept.map((m) => counter.perMessage + counter.text(m.content));
  let total = cost.reduce((a, b) => a + b, counter.base);
  const originalTokens = total;
  if (total <= budget) return { messages: kept, inputTokens: total, truncation: null, fits: true };

  const lastUser = kept.findLastIndex((m) => m.role === 'user');
  const dropped = new Set<number>();
  for (let i = 0; i < kept.length && total > budget; i++) {
    if (kept[i]!.role === 'system' || i === lastUser) continue;
    dropped.add(i);
    total -= cost[i]!;
  }

  let trimmedChars = 0;
  const exhausted = new Set<number>();
  while (total > budget) {
    const i = longestUser(kept, dropped, exhausted);
    if (i === -1) break;
    const msg = kept[i]!;
    const target = cost[i]! - (total - budget);
    const head = fitHead(msg.content, target - counter.perMessage, counter);
    const content = head + TRUNCATION_MARKER;
    trimmedChars += msg.content.length - head.length;
    msg.content = content;
    const newCost = counter.perMessage + counter.text(content);
    total += newCost - cost[i]!;
    cost[i] = newCost;
    exhausted.add(i);
  }

  const out = kept.filter((_, i) => !dropped.has(i));
  return {
    messages: out,
    inputTokens: total,
    truncation: { originalTokens, finalTokens: total, droppedMessages: dropped.size, trimmedChars },
    fits: total <= budget,
  };
}

function longestUser(msgs: readonly ChatMessage[], dropped: ReadonlySet<number>, exhausted: ReadonlySet<number>): number {
  let best = -1;
  msgs.forEach((m, i) => {
    if (m.role !== 'user' || dropped.has(i) || exhausted.has(i)) return;
    if (best === -1 || m.content.length > msgs[best]!.content.length) best = i;
  });
  return best;
}

/**
 * The longest head of `text` whose tokens, with the marker, stay within `maxTokens`:
 * the counter's one-pass `headWithin` when it has one, else a binary search on the
 * character count (O(log n) counts, each fast because pieces are memoised).
 */
function fitHead(text: string, maxTokens: number, counter: MessageCounter): string {
  const fits = (n: number): boolean => counter.text(text.slice(0, n) + TRUNCATION_MARKER) <= maxTokens;
  if (!fits(0)) return '';
  let lo = 0;
  let hi = text.length;
  if (counter.headWithin) {
    // One pass gives the answer at piece granularity (a word boundary); verify it,
    // since the marker may join the last piece, and search below it only if needed.
    const guess = counter.headWithin(text, maxTokens - counter.text(TRUNCATION_MARKER));
    if (fits(guess)) lo = hi = guess;
    else hi = Math.max(0, guess - 1);
  }
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  let cut = lo;
  // Never split a surrogate pair; prefer a word boundary when one is close.
  if (cut > 0 && cut < text.length && /[\uD800-\uDBFF]/.test(text.charAt(cut - 1))) cut -= 1;
  const space = text.lastIndexOf(' ', cut);
  if (space > 0 && cut - space < 40 && cut < text.length) cut = space;
  return text.slice(0, cut);
}

/** Per-message overhead that bounds every tokenizer we use (OpenAI 4 + base 3; Anthropic 5). */
const MAX_MESSAGE_OVERHEAD = 8;

/**
 * True when the messages fit the window whatever the tokenizer: a BPE token is at
 * least one UTF-8 byte, a UTF-16 code unit is at most 3 UTF-8 bytes, and the
 * Anthropic estimate counts fewer tokens than characters. Workflows use it to skip
 * the counting activity for the usual short prompt (no history events, no I/O).
 */
export function surelyFits(messages: readonly { content: string }[], contextWindow: number, reserveOutputTokens: number): boolean {
  const upper = messages.reduce((sum, m) => sum + MAX_MESSAGE_OVERHEAD + 3 * m.content.length, MAX_MESSAGE_OVERHEAD);
  return upper + reserveOutputTokens <= contextWindow;
}
