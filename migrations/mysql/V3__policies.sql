-- The schema in force, signed (schema/FORMAT.md §5.4, §9.11): one row per
-- version an administrator applied with `medvault schema apply`; the
-- highest version is in force. `text` is the application's schema file
-- (schema/LANGUAGE.md) as applied; the built-in tables are not in it.
CREATE TABLE policies (
    version   BIGINT NOT NULL PRIMARY KEY,
    text      MEDIUMBLOB NOT NULL,
    signer    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    signed_at BIGINT NOT NULL,
    signature BLOB NOT NULL
) ENGINE = InnoDB;
