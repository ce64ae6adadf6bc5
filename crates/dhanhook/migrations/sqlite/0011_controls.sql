-- Trader controls (issue 13).
--
-- The kill switch: one row, shared by every instance on this journal. Each change is also
-- written to kill_switch_events with who made it (client IP, or "cli") and when.
CREATE TABLE kill_switch (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    active   INTEGER NOT NULL,
    since    INTEGER,            -- when it last changed (ms)
    by_whom  TEXT,
    note     TEXT
);
INSERT INTO kill_switch (id, active) VALUES (1, 0);

CREATE TABLE kill_switch_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    active  INTEGER NOT NULL,
    by_whom TEXT NOT NULL,
    note    TEXT
);

-- The alert's multi-leg policy (continue | stop), fixed when it is admitted, so a queued
-- alert keeps it at the open.
ALTER TABLE alerts ADD COLUMN on_leg_reject TEXT;

-- The alert marked this leg as closing a position (a flat `position`): exits pass the kill
-- switch and the entry window.
ALTER TABLE order_legs ADD COLUMN closes INTEGER NOT NULL DEFAULT 0;

-- Orders sent today (MAX_ORDERS_PER_DAY) are counted from the SUBMITTING transitions.
CREATE INDEX leg_events_sent ON leg_events (at) WHERE status = 'SUBMITTING';
