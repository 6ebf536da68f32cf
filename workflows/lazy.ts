/**
 * zod-backed modules the workflows load only when they need them.
 *
 * Every workflow evaluates its imports afresh, and building the spec's zod schemas
 * costs about 8 ms of CPU: an item workflow on the happy path never needs them, so
 * nothing it imports statically may pull in zod. `webpackMode: "eager"` keeps these
 * modules in the one workflow bundle; they are evaluated on first use only.
 * Loading is a resolved promise (no command, no history event), so it is replay-safe.
 */
import type * as Spec from '../src/shared/spec.ts';
import type * as Validate from '../src/shared/validate.ts';

export function loadSpec(): Promise<typeof Spec> {
  return import(/* webpackMode: "eager" */ '../src/shared/spec.ts');
}

export function loadValidate(): Promise<typeof Validate> {
  return import(/* webpackMode: "eager" */ '../src/shared/validate.ts');
}
