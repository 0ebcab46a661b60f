-- Row authentication by the author (FORMAT.md §5.8, §9.13). Each row of
-- a data table carries `medvault_auth`: which version of the row it is,
-- who wrote it and when, and which leaf of which signed batch vouches for
-- it. It lives in the row itself, so a row and its authentication change
-- in one statement, and a write conditional on one is conditional on the
-- other. Rows written before this version have none (NULL): "unsigned".
-- Declared tables made before it get the column from the client
-- (src/vault/schema.rs, `check_tables`).
ALTER TABLE patients ADD COLUMN medvault_auth BLOB;
ALTER TABLE notes ADD COLUMN medvault_auth BLOB;

-- One signature by a writer over the leaves of the rows it wrote in one
-- go (or by an administrator over rows it sealed again), with the
-- writer's signed grants as evidence of its write right.
CREATE TABLE medvault_batches (
    id        BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    kind      TEXT NOT NULL,
    signer    TEXT NOT NULL,
    signed_at INTEGER NOT NULL,
    leaves    BLOB NOT NULL,
    evidence  BLOB NOT NULL,
    signature BLOB NOT NULL
);

-- A user's key replaced by a recovery, signed by the root: what it signed
-- before (batches, grants) stays verifiable (FORMAT.md §5.9).
CREATE TABLE medvault_replaced_keys (
    name        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    cert        BLOB NOT NULL,
    replaced_at INTEGER NOT NULL,
    signer      TEXT NOT NULL,
    signature   BLOB NOT NULL,
    PRIMARY KEY (name, fingerprint)
);
