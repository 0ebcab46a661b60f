-- Records that a user's key gives no write right any more under some
-- scopes' epochs, except in the batches listed (FORMAT.md §5.11, §9.15):
-- stored by a revocation, a downgrade to read, a disable and a recovery.
CREATE TABLE medvault_closed_writes (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    name        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    scopes      BLOB NOT NULL,
    batches     BLOB NOT NULL,
    signer      TEXT NOT NULL,
    signed_at   INTEGER NOT NULL,
    signature   BLOB NOT NULL
);

-- A user's batches, listed when their write right is closed.
CREATE INDEX medvault_batches_signer ON medvault_batches (signer);
