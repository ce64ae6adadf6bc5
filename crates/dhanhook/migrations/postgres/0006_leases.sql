-- Leases: a named job held by one instance until a time (e.g. minting the Dhan token, which
-- must happen in exactly one place because a new token kills the old one).
CREATE TABLE leases (
    name   TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
