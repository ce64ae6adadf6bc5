-- The Dhan access token in use, one row per Dhan client id, so a restart reuses it instead of
-- minting (Dhan allows about one mint per 2 minutes, and a new token kills the old one).
-- Instances sharing this database share the token too. (Twin of sqlite/0002_tokens.sql.)
CREATE TABLE dhan_tokens (
    client_id   TEXT PRIMARY KEY,
    token       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    source      TEXT NOT NULL,    -- minted | consent | renewed | env
    obtained_at BIGINT NOT NULL
);
