-- The steps of a multi-step pipeline's item, in order, as JSON text: each step's name,
-- status, output, tier, provider, model, attempts, tokens and cost. NULL for items of
-- one-prompt pipelines (and for every row written before this column existed).
ALTER TABLE results ADD COLUMN steps TEXT;
