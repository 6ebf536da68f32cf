/**
 * The `when` condition of a pipeline step: a small expression over the item's
 * fields and earlier steps' outputs, such as
 * `steps.extract.total >= 100 and steps.classify.category != "travel"`.
 *
 * Grammar (whitespace between tokens is free):
 *   expr    := and ( ("or" | "||") and )*
 *   and     := not ( ("and" | "&&") not )*
 *   not     := ("not" | "!") not | compare
 *   compare := value ( ("==" | "!=" | "<" | "<=" | ">" | ">=") value )?
 *   value   := number | string | "true" | "false" | "null" | path | "(" expr ")"
 *   path    := ("steps" "." step | "item") ( "." name )*
 * Strings are in single or double quotes (backslash escapes the next character).
 *
 * Semantics: a missing path is `null`; `==` / `!=` compare JSON values exactly (no
 * coercion: `"1" == 1` is false); `<`, `<=`, `>`, `>=` compare two numbers or two
 * strings and are false for anything else; a bare value is true unless it is
 * `null`, `false`, `0` or `""`. Pure and deterministic: no Node built-ins, no
 * clock, no randomness, so workflows evaluate it themselves.
 */

/** A parsed condition: a plain JSON tree (serialisable, comparable). */
export type WhenNode =
  | { op: 'lit'; value: string | number | boolean | null }
  | { op: 'path'; path: string[] }
  | { op: 'not'; arg: WhenNode }
  | { op: 'and' | 'or'; args: WhenNode[] }
  | { op: '==' | '!=' | '<' | '<=' | '>' | '>='; left: WhenNode; right: WhenNode };

/** A condition that does not parse, with the 1-based character position of the problem. */
export class WhenSyntaxError extends Error {
  override readonly name = 'WhenSyntaxError';
  readonly position: number;
  constructor(message: string, position: number) {
    super(`at position ${position}: ${message}`);
    this.position = position;
  }
}

type Token = { kind: 'num' | 'str' | 'word' | 'op' | 'end'; text: string; value?: string | number; at: number };

/** Longest conditions accepted, in characters. */
export const MAX_WHEN_CHARS = 2_000;

const OPS = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '(', ')', '.'];

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const at = i + 1;
    if (c === '"' || c === "'") {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) j++;
        s += src[j];
        j++;
      }
      if (j >= src.length) throw new WhenSyntaxError(`the string started here has no closing ${c}`, at);
      out.push({ kind: 'str', text: src.slice(i, j + 1), value: s, at });
      i = j + 1;
      continue;
    }
    const num = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(src.slice(i));
    if (num && (c !== '-' || !/[\w)]/.test(out.length > 0 ? (out[out.length - 1]!.text.slice(-1) ?? '') : ''))) {
      out.push({ kind: 'num', text: num[0], value: Number(num[0]), at });
      i += num[0].length;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(src.slice(i));
    if (word) {
      out.push({ kind: 'word', text: word[0], at });
      i += word[0].length;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) throw new WhenSyntaxError(`unexpected character ${JSON.stringify(c)}`, at);
    out.push({ kind: 'op', text: op, at });
    i += op.length;
  }
  out.push({ kind: 'end', text: '', at: src.length + 1 });
  return out;
}

const COMPARE = ['==', '!=', '<', '<=', '>', '>='] as const;

/**
 * Parses a condition. `steps` are the names a `steps.<name>` path may use (the
 * steps before this one); a path to any other step, or one that starts with a name
 * other than `steps` or `item`, is an error.
 * @throws WhenSyntaxError with the position of the problem
 */
export function parseWhen(src: string, steps: readonly string[]): WhenNode {
  if (src.length > MAX_WHEN_CHARS) throw new WhenSyntaxError(`a condition has at most ${MAX_WHEN_CHARS} characters`, MAX_WHEN_CHARS + 1);
  const toks = tokenize(src);
  let k = 0;
  const peek = (): Token => toks[k]!;
  const isOp = (t: Token, ...ops: string[]): boolean => (t.kind === 'op' && ops.includes(t.text)) || (t.kind === 'word' && ops.includes(t.text));
  const describe = (t: Token): string => (t.kind === 'end' ? 'the end of the condition' : JSON.stringify(t.text));

  const orExpr = (): WhenNode => {
    const args = [andExpr()];
    while (isOp(peek(), 'or', '||')) {
      k++;
      args.push(andExpr());
    }
    return args.length === 1 ? args[0]! : { op: 'or', args };
  };
  const andExpr = (): WhenNode => {
    const args = [notExpr()];
    while (isOp(peek(), 'and', '&&')) {
      k++;
      args.push(notExpr());
    }
    return args.length === 1 ? args[0]! : { op: 'and', args };
  };
  const notExpr = (): WhenNode => {
    if (isOp(peek(), 'not', '!')) return (k++, { op: 'not', arg: notExpr() });
    const left = value();
    const t = peek();
    if (t.kind === 'op' && (COMPARE as readonly string[]).includes(t.text)) {
      k++;
      return { op: t.text as (typeof COMPARE)[number], left, right: value() };
    }
    return left;
  };
  const name = (): string => {
    const t = peek();
    if (t.kind !== 'word' && t.kind !== 'num') throw new WhenSyntaxError(`expected a field name after ".", found ${describe(t)}`, t.at);
    k++;
    return t.text;
  };
  const value = (): WhenNode => {
    const t = peek();
    if (t.kind === 'num' || t.kind === 'str') return (k++, { op: 'lit', value: t.value! });
    if (isOp(t, '(')) {
      k++;
      const inner = orExpr();
      if (!isOp(peek(), ')')) throw new WhenSyntaxError(`expected ")" to close the "(" at position ${t.at}, found ${describe(peek())}`, peek().at);
      k++;
      return inner;
    }
    if (t.kind === 'word') {
      k++;
      if (t.text === 'true' || t.text === 'false') return { op: 'lit', value: t.text === 'true' };
      if (t.text === 'null') return { op: 'lit', value: null };
      if (t.text !== 'steps' && t.text !== 'item') throw new WhenSyntaxError(`unknown name ${JSON.stringify(t.text)}: a path starts with "steps." or "item."`, t.at);
      const path = [t.text];
      while (isOp(peek(), '.')) {
        k++;
        path.push(name());
      }
      if (t.text === 'steps') {
        const step = path[1];
        if (step === undefined) throw new WhenSyntaxError('"steps" must be followed by ".<step name>"', t.at);
        if (!steps.includes(step)) {
          const known = steps.length > 0 ? `earlier steps: ${steps.join(', ')}` : 'no step runs before this one';
          throw new WhenSyntaxError(`step ${JSON.stringify(step)} is not an earlier step (${known})`, t.at);
        }
      }
      return { op: 'path', path };
    }
    throw new WhenSyntaxError(`expected a value (number, string, true, false, null, a path or "("), found ${describe(t)}`, t.at);
  };

  const tree = orExpr();
  if (peek().kind !== 'end') throw new WhenSyntaxError(`unexpected ${describe(peek())}`, peek().at);
  return tree;
}

function resolve(ctx: Record<string, unknown>, path: readonly string[]): unknown {
  let cur: unknown = ctx;
  for (const part of path) {
    if (cur === null || typeof cur !== 'object') return null;
    cur = Array.isArray(cur) ? cur[Number(part)] : (cur as Record<string, unknown>)[part];
  }
  return cur === undefined ? null : cur;
}

function truthy(v: unknown): boolean {
  return !(v === null || v === false || v === 0 || v === '');
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function evalNode(n: WhenNode, ctx: Record<string, unknown>): unknown {
  switch (n.op) {
    case 'lit':
      return n.value;
    case 'path':
      return resolve(ctx, n.path);
    case 'not':
      return !truthy(evalNode(n.arg, ctx));
    case 'and':
      return n.args.every((a) => truthy(evalNode(a, ctx)));
    case 'or':
      return n.args.some((a) => truthy(evalNode(a, ctx)));
    default: {
      const l = evalNode(n.left, ctx);
      const r = evalNode(n.right, ctx);
      if (n.op === '==') return equal(l, r);
      if (n.op === '!=') return !equal(l, r);
      const comparable = (typeof l === 'number' && typeof r === 'number') || (typeof l === 'string' && typeof r === 'string');
      if (!comparable) return false;
      const a = l as number | string;
      const b = r as number | string;
      return n.op === '<' ? a < b : n.op === '<=' ? a <= b : n.op === '>' ? a > b : a >= b;
    }
  }
}

/**
 * Evaluates a parsed condition against the item (`item.<field>`) and the outputs of
 * the steps that ran (`steps.<name>.<field>`; a skipped step's output is `null`).
 */
export function evaluateWhen(tree: WhenNode, ctx: { item: Record<string, unknown>; steps: Record<string, unknown> }): boolean {
  return truthy(evalNode(tree, ctx));
}
