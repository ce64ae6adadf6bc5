-- Routing: how each alert was routed (now / amo / queue / reject, as JSON), and for queued
-- alerts the instant they become due. The queue is the alerts table itself: a queued alert is
-- claimed by moving its status from 'queued' to 'processing' in one statement (here with
-- FOR UPDATE SKIP LOCKED, so concurrent runners pass over each other's rows).
-- (Twin of sqlite/0004_queue.sql.)
ALTER TABLE alerts ADD COLUMN route TEXT;
ALTER TABLE alerts ADD COLUMN queued_until BIGINT;
CREATE INDEX alerts_queue ON alerts (status, queued_until);
