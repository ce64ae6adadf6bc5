-- The journal: every accepted alert and every order leg, written before any broker call.
-- Instants are INTEGER milliseconds since the Unix epoch (UTC): exact, portable to PostgreSQL,
-- and compared as numbers.

CREATE TABLE alerts (
    id           TEXT PRIMARY KEY,          -- UUIDv7, time-ordered
    received_at  INTEGER NOT NULL,
    client_ip    TEXT,
    format       TEXT NOT NULL,             -- dhan | flat
    alert_type   TEXT NOT NULL,
    strategy     TEXT,
    dedupe_key   TEXT NOT NULL,
    payload      TEXT NOT NULL,             -- the alert JSON with the secret removed
    mode         TEXT NOT NULL,             -- paper | live
    status       TEXT NOT NULL,
    duplicates   INTEGER NOT NULL DEFAULT 0, -- redeliveries answered from this row
    updated_at   INTEGER NOT NULL
);
CREATE INDEX alerts_received_at ON alerts (received_at);

-- One row per live dedupe key. The primary key is what makes "exactly one alert per key" hold
-- under concurrency and across restarts. expires_at NULL = never (explicit id or timenow).
CREATE TABLE dedupe_keys (
    key        TEXT PRIMARY KEY,
    alert_id   TEXT NOT NULL REFERENCES alerts (id),
    expires_at INTEGER
);

CREATE TABLE order_legs (
    alert_id        TEXT NOT NULL REFERENCES alerts (id),
    leg_no          INTEGER NOT NULL,       -- 1-based, execution order
    correlation_id  TEXT NOT NULL UNIQUE,   -- sent to Dhan; <= 25 chars of [A-Za-z0-9_-]
    symbol          TEXT NOT NULL,
    exchange        TEXT NOT NULL,
    side            TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    order_type      TEXT NOT NULL,
    product         TEXT NOT NULL,
    validity        TEXT NOT NULL,
    price           REAL,
    trigger_price   REAL,
    instrument      TEXT,
    option_type     TEXT,
    strike_price    REAL,
    expiry_date     TEXT,
    amo             INTEGER NOT NULL,
    amo_time        TEXT,
    mode            TEXT NOT NULL,
    status          TEXT NOT NULL,
    broker_order_id TEXT,
    fill_price      REAL,
    message         TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (alert_id, leg_no)
);
CREATE INDEX order_legs_created_at ON order_legs (created_at);

-- A single row rewritten by the readiness check: proves the journal accepts writes.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
