-- A leg is followed past ACCEPTED to its final state (issue 12). The leg keeps what the broker
-- last said about the order: the quantity filled so far, the exchange's order id and time, and
-- the reason of a rejection, cancellation or expiry (`fill_price` holds the average price).
ALTER TABLE order_legs ADD COLUMN filled_qty INTEGER;
ALTER TABLE order_legs ADD COLUMN exchange_order_id TEXT;
ALTER TABLE order_legs ADD COLUMN exchange_time INTEGER;
ALTER TABLE order_legs ADD COLUMN reason TEXT;

-- Every transition of a leg, with when and who saw it (placement, queue, reconciler, poll;
-- later the WebSocket feed and postbacks). Written in the transaction that moves the leg.
CREATE TABLE leg_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id   TEXT NOT NULL,
    leg_no     INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    source     TEXT NOT NULL,
    status     TEXT NOT NULL,
    filled_qty INTEGER,
    fill_price REAL,
    message    TEXT,
    FOREIGN KEY (alert_id, leg_no) REFERENCES order_legs (alert_id, leg_no)
);
CREATE INDEX leg_events_leg ON leg_events (alert_id, leg_no, id);

-- The tracker looks for open legs with an order id.
CREATE INDEX order_legs_open ON order_legs (status) WHERE status IN ('ACCEPTED', 'PENDING', 'PART_TRADED');
