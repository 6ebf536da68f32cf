/**
 * Custom search attributes, registered by `npm run dev-server` and upserted by
 * the workflows so the Web UI can list a batch's items without opening payloads.
 * Never put secrets here: search attributes are not encoded.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const BATCH_ID = defineSearchAttributeKey('BatchId', SearchAttributeType.KEYWORD);
export const ITEM_STATUS = defineSearchAttributeKey('ItemStatus', SearchAttributeType.KEYWORD);
export const PROVIDER = defineSearchAttributeKey('Provider', SearchAttributeType.KEYWORD);

/** `--search-attribute` values for `temporal server start-dev`. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword'> = { BatchId: 'Keyword', ItemStatus: 'Keyword', Provider: 'Keyword' };
