-- The notification outbox: a message is written here where its event happens (same journal,
-- so it survives a crash), and the notifier worker delivers it: one row per channel, in order
-- per alert and channel, claimed by one instance at a time (`holder`, `held_until`), retried
-- with backoff (`next_at`, `attempts`) until sent (`sent_at`) or given up (`failed_at`).
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    alert_id TEXT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    holder TEXT,
    held_until INTEGER,
    sent_at INTEGER,
    failed_at INTEGER,
    last_error TEXT
);
CREATE INDEX notifications_open ON notifications (next_at) WHERE sent_at IS NULL AND failed_at IS NULL;
