-- Reconciliation: how many times a leg whose outcome was unknown has been re-sent (at most once,
-- claimed atomically so two instances or a restart can never both re-send it).
-- (Twin of sqlite/0005_reconcile.sql.)
ALTER TABLE order_legs ADD COLUMN resends BIGINT NOT NULL DEFAULT 0;
CREATE INDEX order_legs_status ON order_legs (status);
