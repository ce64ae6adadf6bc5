-- The notification outbox (twin of sqlite/0010_outbox.sql): a message is written here where
-- its event happens, and the notifier worker delivers it: one row per channel, in order per
-- alert and channel, claimed by one instance at a time (`holder`, `held_until`), retried with
-- backoff (`next_at`, `attempts`) until sent (`sent_at`) or given up (`failed_at`).
CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL,
    alert_id TEXT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    holder TEXT,
    held_until BIGINT,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);
CREATE INDEX notifications_open ON notifications (next_at) WHERE sent_at IS NULL AND failed_at IS NULL;
