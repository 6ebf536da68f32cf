/**
 * Custom search attributes, registered by `npm run dev-server` and upserted by
 * the workflows so the Web UI can list a batch's items without opening payloads.
 * Never put secrets here: search attributes are not encoded.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const BATCH_ID = defineSearchAttributeKey('BatchId', SearchAttributeType.KEYWORD);
export const ITEM_STATUS = defineSearchAttributeKey('ItemStatus', SearchAttributeType.KEYWORD);
export const PROVIDER = defineSearchAttributeKey('Provider', SearchAttributeType.KEYWORD);
/** The failure type an item waits for review with (`ErrorType="AuthFailed"`). */
export const ERROR_TYPE = defineSearchAttributeKey('ErrorType', SearchAttributeType.KEYWORD);
/** When an item started to wait for review (`ReviewSince < "2026-12-01T09:00:00Z"`). */
export const REVIEW_SINCE = defineSearchAttributeKey('ReviewSince', SearchAttributeType.DATETIME);
/** On a re-run batch: the batch it re-runs (`ParentBatch="b1"`). */
export const PARENT_BATCH = defineSearchAttributeKey('ParentBatch', SearchAttributeType.KEYWORD);

/** Every key the workflows upsert: register them all on a server before workers run. */
export const ALL_SEARCH_ATTRIBUTES = [BATCH_ID, ITEM_STATUS, PROVIDER, ERROR_TYPE, REVIEW_SINCE, PARENT_BATCH];

/** Names and types as `temporal server start-dev --search-attribute Name=Type` and `temporal operator search-attribute create` take them. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'Datetime'> = {
  BatchId: 'Keyword',
  ItemStatus: 'Keyword',
  Provider: 'Keyword',
  ErrorType: 'Keyword',
  ReviewSince: 'Datetime',
  ParentBatch: 'Keyword',
};
