-- The schema in force, signed (schema/FORMAT.md §5.4, §9.11): one row per
-- version an administrator applied with `medvault schema apply`; the
-- highest version is in force. `text` is the application's schema file
-- (schema/LANGUAGE.md) as applied; the built-in tables are not in it.
CREATE TABLE policies (
    version   INTEGER PRIMARY KEY NOT NULL CHECK (version >= 1),
    text      BLOB NOT NULL,
    signer    TEXT NOT NULL,
    signed_at INTEGER NOT NULL,
    signature BLOB NOT NULL
);
