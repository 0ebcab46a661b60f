-- Notes are listed in the order they were written. `created_at` has whole
-- seconds, so notes written in one second tied and came back in id order
-- (ids are random). `seq` is one more than the largest in the table,
-- assigned by the writer inside its write transaction; rows that exist
-- already take their insertion order (rowid). schema/FORMAT.md §9.
ALTER TABLE notes ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE notes SET seq = rowid;
CREATE UNIQUE INDEX notes_seq ON notes (seq);
CREATE INDEX notes_patient_order ON notes (patient_id, created_at, seq);
