import { Tiktoken } from 'js-tiktoken/lite';
import o200k from 'js-tiktoken/ranks/o200k_base';
import { describe, expect, it } from 'vitest';
import { ANTHROPIC_TOKENS_PER_MESSAGE, TRUNCATION_MARKER, countText, countTokens, encodingFor, fitToWindow, truncateMessages, warmTokenizers } from '../../activities/tokens.ts';
import type { MessageCounter } from '../../activities/tokens.ts';
import { ProviderSpec } from '../../src/shared/spec.ts';
import type { ChatMessage } from '../../src/shared/types.ts';

/** One token per character, no framing: makes truncation arithmetic exact and readable. */
const chars: MessageCounter = { text: (s) => s.length, perMessage: 0, base: 0 };

const sys = (content: string): ChatMessage => ({ role: 'system', content });
const user = (content: string): ChatMessage => ({ role: 'user', content });
const bot = (content: string): ChatMessage => ({ role: 'assistant', content });

/** Deterministic "natural" text: many distinct words, like a real document. */
function prose(size: number, seed = 7): string {
  const syll = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'vo', 'shi', 'an', 'de', 'po', 'ze'];
  let x = seed;
  const out: string[] = [];
  let len = 0;
  while (len < size) {
    let w = '';
    const n = 1 + (x % 4);
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      w += syll[x % syll.length];
    }
    if (x % 11 === 0) w += '.';
    out.push(w);
    len += w.length + 1;
  }
  return out.join(' ').slice(0, size);
}

describe('token counting', () => {
  it('picks the encoding per family and model', () => {
    expect(encodingFor('openai', 'gpt-4o-mini')).toBe('o200k_base');
    expect(encodingFor('openai', 'gpt-4.1-nano')).toBe('o200k_base');
    expect(encodingFor('openai', 'o3-mini')).toBe('o200k_base');
    expect(encodingFor('openai', 'gpt-4-turbo')).toBe('cl100k_base');
    expect(encodingFor('openai-compatible', 'llama-3.1-8b')).toBe('cl100k_base');
    expect(encodingFor('anthropic', 'claude-3-5-haiku-latest')).toBe('anthropic_estimate');
  });

  it('matches tiktoken exactly for OpenAI text', () => {
    const text = `${prose(5000)} 12345 naïve café 日本語のテキスト {"a": [1, 2]}`;
    const exact = new Tiktoken(o200k).encode(text).length;
    expect(countText('openai', 'gpt-4o', text)).toBe(exact);
  });

  it('adds chat framing per message and per request', () => {
    const msgs = [sys('You classify.'), user('hello world')];
    const body = countText('openai', 'gpt-4o', 'You classify.') + countText('openai', 'gpt-4o', 'hello world');
    expect(countTokens('openai', 'gpt-4o', msgs)).toBe(body + 2 * 4 + 3);
  });

  it('estimates Anthropic conservatively: ASCII / 3, non-ASCII one each, plus framing', () => {
    expect(countText('anthropic', 'claude-3-5-haiku-latest', 'abcdef')).toBe(2);
    expect(countText('anthropic', 'claude-3-5-haiku-latest', 'abcdefg')).toBe(3);
    expect(countText('anthropic', 'claude-3-5-haiku-latest', '日本語')).toBe(3);
    expect(countTokens('anthropic', 'claude-3-5-haiku-latest', [user('abc')])).toBe(1 + ANTHROPIC_TOKENS_PER_MESSAGE);
  });

  it('never counts fewer than chars/4 for OpenAI-compatible servers (unknown tokenizer)', () => {
    const text = 'a'.repeat(4000);
    expect(countText('openai-compatible', 'small-4k', text)).toBeGreaterThanOrEqual(1000);
  });

  it('counts 100 KB in milliseconds (figure printed)', () => {
    warmTokenizers();
    const text = prose(100_000, 424242);
    const t0 = performance.now();
    const cold = countText('openai', 'gpt-4o', text);
    const coldMs = performance.now() - t0;
    const t1 = performance.now();
    const warm = countText('openai', 'gpt-4o', text);
    const warmMs = performance.now() - t1;
    const t2 = performance.now();
    countText('openai', 'gpt-4o', 'x'.repeat(100_000));
    const blobMs = performance.now() - t2;
    console.log(`100 KB o200k_base: ${cold} tokens, first count ${coldMs.toFixed(1)} ms, repeat ${warmMs.toFixed(1)} ms; 100 KB without spaces ${blobMs.toFixed(1)} ms`);
    expect(warm).toBe(cold);
    // A sanity bound only (CI machines vary): the point is milliseconds, not seconds.
    expect(coldMs).toBeLessThan(1000);
    expect(blobMs).toBeLessThan(1000);
  });
});

describe('truncateMessages', () => {
  it('returns the messages untouched when they fit', () => {
    const msgs = [sys('S'), user('hello')];
    const r = truncateMessages(msgs, 100, chars);
    expect(r).toEqual({ messages: msgs, inputTokens: 6, truncation: null, fits: true });
  });

  it('keeps the system prompt and the last user message, dropping the oldest turns first', () => {
    const msgs = [sys('SYSTEM'), user('u1'.repeat(10)), bot('a1'.repeat(10)), user('u2'.repeat(10)), bot('a2'.repeat(10)), user('last')];
    // total 6 + 20*4 + 4 = 90; budget 55 needs 35 tokens gone: two oldest turns (40).
    const r = truncateMessages(msgs, 55, chars);
    expect(r.messages.map((m) => m.content)).toEqual(['SYSTEM', 'u2'.repeat(10), 'a2'.repeat(10), 'last']);
    expect(r.truncation).toEqual({ originalTokens: 90, finalTokens: 50, droppedMessages: 2, trimmedChars: 0 });
    expect(r.fits).toBe(true);
    expect(msgs).toHaveLength(6);
  });

  it('then trims the longest user text, keeping its head and marking it', () => {
    const long = `HEAD ${'x'.repeat(500)}`;
    const msgs = [sys('SYS'), bot('old answer'), user(long)];
    const r = truncateMessages(msgs, 103, chars);
    expect(r.messages).toHaveLength(2);
    expect(r.messages[0]).toEqual(sys('SYS'));
    const cut = r.messages[1]!.content;
    expect(cut.startsWith('HEAD xxx')).toBe(true);
    expect(cut.endsWith(TRUNCATION_MARKER)).toBe(true);
    expect(r.inputTokens).toBeLessThanOrEqual(103);
    expect(r.inputTokens).toBe(103);
    expect(r.truncation).toMatchObject({ originalTokens: 3 + 10 + long.length, droppedMessages: 1, trimmedChars: long.length - (cut.length - TRUNCATION_MARKER.length) });
  });

  it('reports fits:false when the system prompt alone is too big', () => {
    const r = truncateMessages([sys('S'.repeat(50)), user('hello')], 20, chars);
    expect(r.fits).toBe(false);
    expect(r.messages[0]!.content).toBe('S'.repeat(50));
    expect(r.truncation?.finalTokens).toBeGreaterThan(20);
  });

  it('fits a 100 KB document into a 4k window with the real tokenizer', () => {
    const provider = ProviderSpec.parse({ kind: 'openai-compatible', model: 'small-4k', contextWindow: 4096, maxOutputTokens: 256 });
    const msgs = [sys('Summarise the document.'), user(`Document:\n${prose(100_000)}`)];
    const t0 = performance.now();
    const r = fitToWindow(provider, msgs, 256);
    console.log(`fit 100 KB into 4096 tokens: ${(performance.now() - t0).toFixed(1)} ms`);
    expect(r.fits).toBe(true);
    expect(r.contextWindow).toBe(4096);
    expect(r.inputTokens).toBeLessThanOrEqual(4096 - 256);
    expect(r.inputTokens).toBeGreaterThan(4096 - 256 - 50);
    expect(r.inputTokens).toBe(countTokens('openai-compatible', 'small-4k', r.messages));
    expect(r.messages[0]!.content).toBe('Summarise the document.');
    expect(r.messages[1]!.content.startsWith('Document:\n')).toBe(true);
    expect(r.messages[1]!.content.endsWith('[truncated]')).toBe(true);
    expect(r.truncation!.trimmedChars).toBeGreaterThan(80_000);
  });
});
