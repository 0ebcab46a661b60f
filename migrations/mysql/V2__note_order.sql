-- Notes are listed in the order they were written. `created_at` has whole
-- seconds, so notes written in one second tied and came back in id order
-- (ids are random). `seq` is assigned by the server (AUTO_INCREMENT) in
-- insertion order; rows copied from another store keep theirs.
-- schema/FORMAT.md §9.
ALTER TABLE notes
    ADD COLUMN seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE,
    ADD KEY notes_patient_order (patient_id, created_at, seq);
