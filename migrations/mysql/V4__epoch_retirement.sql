-- Key rotation (schema/FORMAT.md §5.5, §9.4): an epoch no cell uses any
-- more is retired by a record an administrator signs. Until a retirement
-- verifies, an epoch is live: searches carry its index values and its key
-- still opens cells. The unsigned `state` column is kept for old readers
-- and mirrors the signed record; no decision is taken on it.
ALTER TABLE epochs
    ADD COLUMN retired_by VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD COLUMN retired_at BIGINT NULL,
    ADD COLUMN retired_sig BLOB NULL;
