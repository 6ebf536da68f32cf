/**
 * The workflow's fast path skips token counting only when the prompt provably
 * fits: the bound must never be below a real tokenizer's count.
 */
import { describe, expect, it } from 'vitest';
import { countTokens } from '../../activities/tokens.ts';
import { surelyFits } from '../../src/shared/truncate.ts';
import type { ChatMessage } from '../../src/shared/types.ts';

const samples = ['plain English text about invoices and refunds. ', '日本語のテキストと絵文字 🎉🚀 ', 'x'.repeat(97), '{"a":[1,2,3],"b":"\\u00e9"} ', 'Ωμέγα ∑ ∫ ≈ ', '  \n\t  '];

describe('surelyFits', () => {
  for (const [kind, model] of [
    ['openai', 'gpt-4o-mini'],
    ['openai-compatible', 'local'],
    ['anthropic', 'claude-haiku-4-5'],
  ] as const) {
    it(`never claims a fit that ${kind}'s count denies`, () => {
      for (const s of samples) {
        for (const reps of [1, 10, 200]) {
          const messages: ChatMessage[] = [
            { role: 'system', content: 'sys' },
            { role: 'user', content: s.repeat(reps) },
          ];
          const real = countTokens(kind, model, messages);
          // The tightest window surelyFits accepts must hold the real count.
          let lo = 1;
          let hi = 10_000_000;
          while (lo < hi) {
            const mid = Math.floor((lo + hi) / 2);
            if (surelyFits(messages, mid, 100)) hi = mid;
            else lo = mid + 1;
          }
          expect(real + 100, `${kind} ${JSON.stringify(s.slice(0, 10))} x${reps}`).toBeLessThanOrEqual(lo);
        }
      }
    });
  }

  it('sends long prompts to the counting activity', () => {
    expect(surelyFits([{ content: 'a'.repeat(2_000) }], 4_096, 1_024)).toBe(false);
    expect(surelyFits([{ content: 'a'.repeat(500) }], 4_096, 1_024)).toBe(true);
  });
});
