/**
 * The repair prompt: what the item workflow sends after an answer failed the
 * output schema. Pure and zod-free, so item workflows can import it without
 * evaluating zod (see src/shared/tiers.ts).
 */
import type { ChatMessage } from './types.ts';

/** First line of every repair request; also how an earlier repair turn is recognised. */
export const REPAIR_PREFIX = 'Your previous answer was rejected';
/** Longest rejected answer echoed back; a runaway answer must not blow the context window. */
const MAX_ECHO_CHARS = 8_000;
const MAX_ERRORS = 20;

/**
 * The conversation for a repair attempt: the original messages, the rejected
 * answer as the assistant's turn, and a user turn that lists the validation
 * errors and asks for corrected JSON only. An earlier repair exchange is
 * replaced rather than stacked, so repeated repairs do not grow the prompt.
 */
export function repairMessages(messages: readonly ChatMessage[], badText: string, errors: readonly string[]): ChatMessage[] {
  let base = [...messages];
  const last = base[base.length - 1];
  const prev = base[base.length - 2];
  if (last?.role === 'user' && last.content.startsWith(REPAIR_PREFIX) && prev?.role === 'assistant') base = base.slice(0, -2);
  const echo = badText.length > MAX_ECHO_CHARS ? `${badText.slice(0, MAX_ECHO_CHARS)}\n[truncated]` : badText;
  const listed = errors.slice(0, MAX_ERRORS).map((e) => `- ${e}`);
  if (errors.length > MAX_ERRORS) listed.push(`- ... and ${errors.length - MAX_ERRORS} more`);
  const request = [
    `${REPAIR_PREFIX} because it does not match the required JSON schema:`,
    ...listed,
    'Reply again with only the corrected JSON value: no explanation, no Markdown fences.',
  ].join('\n');
  // Providers reject empty assistant turns; say what was there instead.
  return [...base, { role: 'assistant', content: echo.trim() === '' ? '(empty answer)' : echo }, { role: 'user', content: request }];
}
