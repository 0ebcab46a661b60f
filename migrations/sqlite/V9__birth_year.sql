-- The year of birth, a blind index of kind `year` (FORMAT.md §4.2, §9.6),
-- for a search by year at the desk. NULL in the rows written before this
-- version until an administrator fills it (`medvault schema fill`).
ALTER TABLE patients ADD COLUMN bi_born_year BLOB;
CREATE INDEX patients_bi_born_year ON patients (bi_born_year);
