-- Trader controls (issue 13); twin of sqlite/0011_controls.sql.
--
-- The kill switch: one row, shared by every instance on this journal. Each change is also
-- written to kill_switch_events with who made it (client IP, or "cli") and when. The row is
-- also the lock (`FOR UPDATE`) that makes the risk rails' count-then-send one step across
-- instances.
CREATE TABLE kill_switch (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    active   BOOLEAN NOT NULL,
    since    BIGINT,
    by_whom  TEXT,
    note     TEXT
);
INSERT INTO kill_switch (id, active) VALUES (1, FALSE);

CREATE TABLE kill_switch_events (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    active  BOOLEAN NOT NULL,
    by_whom TEXT NOT NULL,
    note    TEXT
);

ALTER TABLE alerts ADD COLUMN on_leg_reject TEXT;

ALTER TABLE order_legs ADD COLUMN closes BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX leg_events_sent ON leg_events (at) WHERE status = 'SUBMITTING';
