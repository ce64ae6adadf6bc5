-- What each leg resolved to in the scrip master: the exact instrument and quantity sent to
-- the broker (units), kept with the leg so the journal shows what was traded, not only what
-- the alert said. NULL for legs journaled before resolution existed.
-- (Twin of sqlite/0003_resolved_legs.sql.)
ALTER TABLE order_legs ADD COLUMN security_id TEXT;
ALTER TABLE order_legs ADD COLUMN exchange_segment TEXT;
ALTER TABLE order_legs ADD COLUMN trading_symbol TEXT;
ALTER TABLE order_legs ADD COLUMN lot_size BIGINT;
ALTER TABLE order_legs ADD COLUMN units BIGINT;
