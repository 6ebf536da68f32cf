-- Which endpoint gave an item's answer: the vendor (openai, anthropic, openai-compatible,
-- or simulated for the fault-injecting provider), the host of its base URL, and whether
-- the answer was simulated (1) or real (0). NULL when no call answered (failed, skipped).
ALTER TABLE results ADD COLUMN endpoint_vendor TEXT;
ALTER TABLE results ADD COLUMN endpoint_host TEXT;
ALTER TABLE results ADD COLUMN simulated INTEGER;
