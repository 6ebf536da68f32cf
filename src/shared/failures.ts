/**
 * The failure vocabulary: every `ApplicationFailure.type` Steadfast raises.
 * Workflows branch on these names (never on message text); `docs/errors.md`
 * is the catalog that explains each one.
 */
export const FailureType = {
  // Infrastructure: transient, retried by Temporal with backoff.
  RateLimited: 'RateLimited',
  ProviderOverloaded: 'ProviderOverloaded',
  ProviderUnavailable: 'ProviderUnavailable',
  Timeout: 'Timeout',
  ConnectionFailed: 'ConnectionFailed',
  // Permanent provider errors: the tier is left for the next one.
  AuthFailed: 'AuthFailed',
  InvalidRequest: 'InvalidRequest',
  ModelNotFound: 'ModelNotFound',
  QuotaExhausted: 'QuotaExhausted',
  // Model errors: handled by the workflow (truncate, repair, next tier).
  ContextWindowExceeded: 'ContextWindowExceeded',
  OutputTruncated: 'OutputTruncated',
  InvalidOutput: 'InvalidOutput',
  ContentRefused: 'ContentRefused',
  /** An answer too large to carry in a Temporal payload (over the worker's answer byte limit). */
  PayloadsTooLarge: 'PayloadsTooLarge',
  // Data errors: the item or the spec is wrong; a human must look.
  InvalidItem: 'InvalidItem',
  InvalidSpec: 'InvalidSpec',
  InvalidInput: 'InvalidInput',
  /** Two batches named one batch id: the id must be the batch's workflow id. */
  BatchIdConflict: 'BatchIdConflict',
  // Persistence and notification.
  StoreUnavailable: 'StoreUnavailable',
  WebhookFailed: 'WebhookFailed',
  // Recorded by the workflows, never thrown by an activity.
  /** The batch's circuit breaker closed the tier to this item; the chain moved on. */
  CircuitOpen: 'CircuitOpen',
  /** A provider batch ended (its completion window passed) before this request ran; the chain moves on. */
  BatchExpired: 'BatchExpired',
  /** A provider batch was cancelled before this request ran; the chain moves on. */
  BatchCancelled: 'BatchCancelled',
  /** A provider batch failed as a whole (the provider rejected its file or it could not be submitted); the chain moves on. */
  BatchFailed: 'BatchFailed',
  /** The batch's budget stopped it before this item started; the item's row is `skipped`. */
  BudgetExceeded: 'BudgetExceeded',
  /** An error that carried no type (a bug or an SDK error), kept so nothing is lost. */
  Unknown: 'Unknown',
} as const;

export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Types that a retry of the same request cannot fix. */
export const NON_RETRYABLE_TYPES: readonly FailureType[] = [
  FailureType.AuthFailed,
  FailureType.InvalidRequest,
  FailureType.ModelNotFound,
  FailureType.QuotaExhausted,
  FailureType.ContextWindowExceeded,
  FailureType.OutputTruncated,
  FailureType.InvalidOutput,
  FailureType.ContentRefused,
  FailureType.PayloadsTooLarge,
  FailureType.InvalidItem,
  FailureType.InvalidSpec,
  FailureType.InvalidInput,
  FailureType.BatchIdConflict,
];

/** Transient types: Temporal retries them with backoff (and Retry-After). */
export const RETRYABLE_TYPES: readonly FailureType[] = [
  FailureType.RateLimited,
  FailureType.ProviderOverloaded,
  FailureType.ProviderUnavailable,
  FailureType.Timeout,
  FailureType.ConnectionFailed,
  FailureType.StoreUnavailable,
  FailureType.WebhookFailed,
];

/** The message of anything thrown: an Error's message, else its string form. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
