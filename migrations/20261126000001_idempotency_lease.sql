-- Who holds a reservation: a token made by the request that reserved the key
-- (or took it over after its lease). A request that failed frees only a
-- reservation holding its own token, so a late release, retried while the
-- database was unreachable, can never free a key another request now holds.
ALTER TABLE idempotency_keys ADD COLUMN lease_token CHAR(32) CHARACTER SET ascii NULL;
