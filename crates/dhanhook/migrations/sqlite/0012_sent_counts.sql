-- Orders sent per IST day, in all and per strategy (issue 15). The send gate reads
-- MAX_ORDERS_PER_DAY(_PER_STRATEGY) from here instead of rescanning the day's leg_events at
-- every order, a scan that grew with the day and ran while every other write waited.
-- A day's row is counted from leg_events the first time that day is asked for, then kept by
-- the gate itself (one more for each leg's first SUBMITTING of the day).
CREATE TABLE sent_counts (
    day_start    INTEGER NOT NULL, -- the IST day's first instant, ms since the epoch
    strategy_key TEXT NOT NULL,    -- '*': every strategy; 's:<name>'; '-': alerts naming none
    n            INTEGER NOT NULL,
    PRIMARY KEY (day_start, strategy_key)
);
