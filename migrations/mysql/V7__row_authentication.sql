-- Row authentication by the author (FORMAT.md §5.8, §9.10). Each row of
-- a data table carries `medvault_auth`: which version of the row it is,
-- who wrote it and when, and which leaf of which signed batch vouches for
-- it. It lives in the row itself, so a row and its authentication change
-- in one statement, and a write conditional on one is conditional on the
-- other. Rows written before this version have none (NULL): "unsigned".
-- Declared tables made before it get the column from the client
-- (src/vault/schema.rs, `add_auth_columns`).
ALTER TABLE patients ADD COLUMN medvault_auth VARBINARY(255) NULL;
ALTER TABLE notes ADD COLUMN medvault_auth VARBINARY(255) NULL;

-- One signature by a writer over the leaves of the rows it wrote in one
-- go (or by an administrator over rows it sealed again), with the
-- writer's signed grants as evidence of its write right.
CREATE TABLE medvault_batches (
    id        BINARY(16) NOT NULL PRIMARY KEY,
    kind      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    signer    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    signed_at BIGINT NOT NULL,
    leaves    MEDIUMBLOB NOT NULL,
    evidence  MEDIUMBLOB NOT NULL,
    signature BLOB NOT NULL
) ENGINE = InnoDB;

-- A recovery that gives a user a new key signs their batches again
-- (src/vault/rows/auth.rs, `resign_batches_of`): found by signer.
CREATE INDEX medvault_batches_signer ON medvault_batches (signer);
