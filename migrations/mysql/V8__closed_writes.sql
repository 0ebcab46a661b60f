-- Records that a user's key gives no write right any more under some
-- scopes' epochs, except in the batches listed (FORMAT.md §5.11, §9.15):
-- stored by a revocation, a downgrade to read, a disable and a recovery.
CREATE TABLE medvault_closed_writes (
    id          BINARY(16) NOT NULL PRIMARY KEY,
    name        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    fingerprint VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    scopes      MEDIUMBLOB NOT NULL,
    batches     MEDIUMBLOB NOT NULL,
    signer      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    signed_at   BIGINT NOT NULL,
    signature   BLOB NOT NULL
) ENGINE = InnoDB;

-- A user's batches, listed when their write right is closed.
CREATE INDEX medvault_batches_signer ON medvault_batches (signer);
