-- The queue's claim gets columns of its own instead of borrowing `alerts.status`: a claimed
-- alert has a `claim_holder` (the instance running it) and `claimed_at` (0007); both are NULL
-- when nobody runs it. `status` is from now on only what the alert's legs say. An alert waits
-- in the queue while it was queued (`queued_until`), is not claimed and has legs still QUEUED.
ALTER TABLE alerts ADD COLUMN claim_holder TEXT;

-- Claims taken before this migration were a status of 'processing' on a queued alert: they
-- stay claims (by an unnamed holder), so a run that is still going is not raced, and one that
-- died is recovered as before (by `claimed_at`, NULL counting as stale).
UPDATE alerts SET claim_holder = 'before-0008'
 WHERE status = 'processing' AND queued_until IS NOT NULL;

-- Recovery looks for old claims.
CREATE INDEX alerts_claimed ON alerts (claimed_at) WHERE claim_holder IS NOT NULL;
