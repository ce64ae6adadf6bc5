-- When the queue runner claimed a queued alert. Kept apart from `updated_at` because the
-- reconciler refreshes an alert's status (and `updated_at`) after the claim; a stale claim is
-- judged by the claim's age alone. NULL for claims made before this column existed: those are
-- treated as stale.
ALTER TABLE alerts ADD COLUMN claimed_at INTEGER;
