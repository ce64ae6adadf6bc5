-- The journal: every accepted alert and every order leg, written before any broker call.
-- The PostgreSQL twin of migrations/sqlite/0001_journal.sql: same tables, columns and meaning,
-- one migration per SQLite migration so both folders stay easy to compare.
--
-- Type mapping: SQLite's INTEGER is 64-bit, so integers are BIGINT here (the Rust side reads
-- i64 from both); REAL is DOUBLE PRECISION; instants are BIGINT milliseconds since the Unix
-- epoch (UTC), exactly as in SQLite. `amo` is a BOOLEAN (SQLite stores 0/1 in an INTEGER; both
-- read back as a Rust bool).
--
-- Ids that queries sort by are COLLATE "C": byte order, like SQLite's BINARY collation, so
-- tie-breaks in `ORDER BY ..., id` give the same order on both backends whatever the server's
-- default collation is.

CREATE TABLE alerts (
    id           TEXT COLLATE "C" PRIMARY KEY, -- UUIDv7, time-ordered
    received_at  BIGINT NOT NULL,
    client_ip    TEXT,
    format       TEXT NOT NULL,                -- dhan | flat
    alert_type   TEXT NOT NULL,
    strategy     TEXT,
    dedupe_key   TEXT NOT NULL,
    payload      TEXT NOT NULL,                -- the alert JSON with the secret removed
    mode         TEXT NOT NULL,                -- paper | live
    status       TEXT NOT NULL,
    duplicates   BIGINT NOT NULL DEFAULT 0,    -- redeliveries answered from this row
    updated_at   BIGINT NOT NULL
);
CREATE INDEX alerts_received_at ON alerts (received_at);

-- One row per live dedupe key. The primary key is what makes "exactly one alert per key" hold
-- under concurrency and across restarts. expires_at NULL = never (explicit id or timenow).
--
-- The foreign key is checked at commit (DEFERRABLE INITIALLY DEFERRED): admission claims the
-- key first (INSERT ... ON CONFLICT DO NOTHING) and only then writes the alert it points at, so
-- a losing concurrent delivery never writes an alert row at all.
CREATE TABLE dedupe_keys (
    key        TEXT PRIMARY KEY,
    alert_id   TEXT COLLATE "C" NOT NULL REFERENCES alerts (id) DEFERRABLE INITIALLY DEFERRED,
    expires_at BIGINT
);

CREATE TABLE order_legs (
    alert_id        TEXT COLLATE "C" NOT NULL REFERENCES alerts (id),
    leg_no          BIGINT NOT NULL,          -- 1-based, execution order
    correlation_id  TEXT NOT NULL UNIQUE,     -- sent to Dhan; <= 25 chars of [A-Za-z0-9_-]
    symbol          TEXT NOT NULL,
    exchange        TEXT NOT NULL,
    side            TEXT NOT NULL,
    quantity        BIGINT NOT NULL,
    order_type      TEXT NOT NULL,
    product         TEXT NOT NULL,
    validity        TEXT NOT NULL,
    price           DOUBLE PRECISION,
    trigger_price   DOUBLE PRECISION,
    instrument      TEXT,
    option_type     TEXT,
    strike_price    DOUBLE PRECISION,
    expiry_date     TEXT,
    amo             BOOLEAN NOT NULL,
    amo_time        TEXT,
    mode            TEXT NOT NULL,
    status          TEXT NOT NULL,
    broker_order_id TEXT,
    fill_price      DOUBLE PRECISION,
    message         TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (alert_id, leg_no)
);
CREATE INDEX order_legs_created_at ON order_legs (created_at);

-- A single row rewritten by the readiness check: proves the journal accepts writes.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at BIGINT NOT NULL
);
