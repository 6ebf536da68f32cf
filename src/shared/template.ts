/**
 * Prompt templates: `{{field}}` (or `{{ field.sub }}`) replaced with the item's fields.
 * Pure and deterministic, so workflows render prompts themselves.
 */
import { INVALID_LINE_FIELD } from './tiers.ts';
import type { Item, PipelineSpec } from './spec.ts';
import type { ChatMessage } from './types.ts';

const PLACEHOLDER = /\{\{\s*([A-Za-z_][\w.]*)\s*\}\}/g;

/** The field paths a template refers to, in order of first use. */
export function placeholders(template: string): string[] {
  const seen: string[] = [];
  for (const m of template.matchAll(PLACEHOLDER)) if (m[1] && !seen.includes(m[1])) seen.push(m[1]);
  return seen;
}

function lookup(item: Record<string, unknown>, path: string): unknown {
  let cur: unknown = item;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function asText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The prompt a spec renders: its own, or (a multi-step spec) its first step's. */
export function promptOf(spec: PipelineSpec): { system?: string | undefined; template: string } {
  return spec.prompt ?? spec.steps?.[0]?.prompt ?? { template: '' };
}

/**
 * Checks an item against the spec: required fields and every placeholder present,
 * and the size limit. Returns the problems, each naming the field; empty when valid.
 */
export function validateItem(item: Item, spec: PipelineSpec): string[] {
  const problems: string[] = [];
  const invalid = item[INVALID_LINE_FIELD];
  if (typeof invalid === 'string') return [invalid];
  // A multi-step spec (checked before it runs, e.g. by the CLI): the item fields of every step; `steps.*` are outputs.
  const prompts = spec.steps ? spec.steps.map((st) => st.prompt) : [promptOf(spec)];
  const used = prompts.flatMap((p) => [...placeholders(p.template), ...placeholders(p.system ?? '')]).filter((f) => !(spec.steps && f.startsWith('steps.')));
  const fields = new Set([...spec.input.required, ...used]);
  for (const f of fields) {
    const v = lookup(item, f);
    if (v === undefined || v === null) problems.push(`item ${item.id}: field "${f}" is missing`);
    else if (typeof v === 'string' && v.trim() === '') problems.push(`item ${item.id}: field "${f}" is empty`);
  }
  if (spec.input.maxChars !== undefined) {
    const size = JSON.stringify(item).length;
    if (size > spec.input.maxChars) problems.push(`item ${item.id}: ${size} characters, over input.maxChars ${spec.input.maxChars}`);
  }
  return problems;
}

/** Renders the spec's prompt for one item into chat messages. */
export function renderMessages(spec: PipelineSpec, item: Item): ChatMessage[] {
  const fill = (t: string) => t.replace(PLACEHOLDER, (_m, path: string) => asText(lookup(item, path) ?? ''));
  const messages: ChatMessage[] = [];
  const prompt = promptOf(spec);
  if (prompt.system) messages.push({ role: 'system', content: fill(prompt.system) });
  messages.push({ role: 'user', content: fill(prompt.template) });
  return messages;
}
