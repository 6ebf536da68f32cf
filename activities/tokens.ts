/**
 * Token counting per provider family, and truncation to a context window.
 *
 * - OpenAI: the model's tiktoken encoding (`o200k_base` for gpt-4o, gpt-4.1,
 *   gpt-5 and the o-series; `cl100k_base` otherwise), plus the chat framing
 *   from OpenAI's cookbook (4 tokens per message, 3 per request).
 * - OpenAI-compatible servers (local models): their tokenizer is unknown, so
 *   the larger of the `cl100k_base` count and `ceil(chars / 4)`.
 * - Anthropic: no public tokenizer. A conservative estimate:
 *   `ceil(asciiChars / 3 + otherChars)` per text plus 5 per message, which
 *   overestimates Claude's count for English and code (about 3.5-4 chars per
 *   token) and treats every non-ASCII character as a whole token (CJK).
 *
 * Encodings are loaded on first use (about 0.5-1 s to parse) and cached per
 * process. Counting is fast because token counts of text pieces are memoised:
 * natural text repeats its words, so 100 KB counts in a few milliseconds.
 */
import { createRequire } from 'node:module';
import { Tiktoken } from 'js-tiktoken/lite';
import type { TiktokenBPE } from 'js-tiktoken/lite';
import type { ProviderSpec } from '../src/shared/spec.ts';
import { contextWindowOf } from '../src/shared/spec.ts';
import type { ChatMessage, TruncateResult } from '../src/shared/types.ts';
import { countMessages, truncateMessages } from '../src/shared/truncate.ts';
import type { MessageCounter } from '../src/shared/truncate.ts';

export { countMessages, truncateMessages, TRUNCATION_MARKER } from '../src/shared/truncate.ts';
export type { MessageCounter, TruncateOutcome } from '../src/shared/truncate.ts';

/** A provider family, as in the spec. */
export type ProviderKind = ProviderSpec['kind'];
/** The counting scheme used for a model. */
export type Encoding = 'o200k_base' | 'cl100k_base' | 'anthropic_estimate';

/** Characters per token assumed for ASCII text in the Anthropic estimate (lower = more conservative). */
export const ANTHROPIC_ASCII_CHARS_PER_TOKEN = 3;
/** Per-message framing assumed for Anthropic. */
export const ANTHROPIC_TOKENS_PER_MESSAGE = 5;

const O200K_MODEL = /^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o\d)/i;

/** Which tokenizer counts a model's tokens. */
export function encodingFor(kind: ProviderKind, model: string): Encoding {
  if (kind === 'anthropic') return 'anthropic_estimate';
  return O200K_MODEL.test(model) ? 'o200k_base' : 'cl100k_base';
}

const require = createRequire(import.meta.url);
const encoders = new Map<Encoding, PieceCounter>();

/** Longest piece merged in one go; longer pieces are counted in chunks of this size. */
const CHUNK = 64;

/**
 * Wraps a tiktoken encoder with a memo of piece counts. Pieces come from the
 * encoding's own pre-tokenizer regex, exactly as tiktoken splits them; pieces
 * longer than {@link CHUNK} characters (no whitespace, e.g. base64) are counted
 * chunk by chunk, because js-tiktoken's merge is quadratic in the piece length
 * (100 KB of "aaaa..." takes over a second whole). Chunking can only over-count,
 * by at most one token per chunk: the safe direction for a context check.
 */
class PieceCounter {
  private readonly enc: Tiktoken;
  private readonly pattern: RegExp;
  private readonly memo = new Map<string, number>();
  constructor(ranks: TiktokenBPE) {
    this.enc = new Tiktoken(ranks);
    this.pattern = new RegExp(ranks.pat_str, 'gu');
  }
  count(text: string): number {
    let n = 0;
    for (const m of text.matchAll(this.pattern)) {
      const p = m[0];
      if (p.length <= CHUNK) n += this.piece(p);
      else for (let i = 0; i < p.length; i += CHUNK) n += this.piece(p.slice(i, i + CHUNK));
    }
    return n;
  }
  /** Characters of the longest head of `text` whose pieces add up to at most `maxTokens`. */
  headWithin(text: string, maxTokens: number): number {
    let n = 0;
    for (const m of text.matchAll(this.pattern)) {
      const p = m[0];
      for (let i = 0; i < p.length; i += CHUNK) {
        const c = this.piece(p.slice(i, i + CHUNK));
        if (n + c > maxTokens) return m.index + i;
        n += c;
      }
    }
    return text.length;
  }
  private piece(p: string): number {
    const hit = this.memo.get(p);
    if (hit !== undefined) return hit;
    const n = this.enc.encode(p, [], []).length;
    // Bounded memo: a worker counts many documents; forget everything rather than grow without limit.
    if (this.memo.size >= 200_000) this.memo.clear();
    this.memo.set(p, n);
    return n;
  }
}

function tiktoken(encoding: 'o200k_base' | 'cl100k_base'): PieceCounter {
  let enc = encoders.get(encoding);
  if (!enc) {
    const mod = require(`js-tiktoken/ranks/${encoding}`) as { default?: TiktokenBPE } & TiktokenBPE;
    enc = new PieceCounter(mod.default ?? mod);
    encoders.set(encoding, enc);
  }
  return enc;
}

/** Loads the tokenizers now (worker start-up) so the first item does not pay for it. */
export function warmTokenizers(): void {
  tiktoken('o200k_base');
  tiktoken('cl100k_base');
}

function anthropicEstimate(text: string): number {
  let ascii = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) < 128) ascii++;
  return Math.ceil(ascii / ANTHROPIC_ASCII_CHARS_PER_TOKEN + (text.length - ascii));
}

/** The counter (text count plus framing) for a provider family and model. */
export function counterFor(kind: ProviderKind, model: string): MessageCounter {
  const encoding = encodingFor(kind, model);
  if (encoding === 'anthropic_estimate') return { text: anthropicEstimate, perMessage: ANTHROPIC_TOKENS_PER_MESSAGE, base: 0 };
  const enc = tiktoken(encoding);
  if (kind === 'openai-compatible') {
    return {
      text: (s) => Math.max(enc.count(s), Math.ceil(s.length / 4)),
      headWithin: (s, max) => Math.min(enc.headWithin(s, max), Math.max(0, max * 4)),
      perMessage: 4,
      base: 3,
    };
  }
  return { text: (s) => enc.count(s), headWithin: (s, max) => enc.headWithin(s, max), perMessage: 4, base: 3 };
}

/** Tokens of a conversation for a provider family and model, framing included. */
export function countTokens(kind: ProviderKind, model: string, messages: readonly ChatMessage[]): number {
  return countMessages(messages, counterFor(kind, model));
}

/** Tokens of one text (no framing). */
export function countText(kind: ProviderKind, model: string, text: string): number {
  return counterFor(kind, model).text(text);
}

/**
 * Counts and, when needed, truncates messages to fit `provider`'s context
 * window minus `reserveOutputTokens` (the activity `countAndTruncate`).
 */
export function fitToWindow(provider: ProviderSpec, messages: readonly ChatMessage[], reserveOutputTokens: number): TruncateResult {
  const contextWindow = contextWindowOf(provider);
  const budget = contextWindow - Math.max(0, reserveOutputTokens);
  const r = truncateMessages(messages, budget, counterFor(provider.kind, provider.model));
  return { messages: r.messages, inputTokens: r.inputTokens, contextWindow, truncation: r.truncation, fits: r.fits };
}
