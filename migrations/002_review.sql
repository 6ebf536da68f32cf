-- The last human decision on an item (decision, reviewer, note, time) as JSON text;
-- NULL for items nobody reviewed.
ALTER TABLE results ADD COLUMN review TEXT;
