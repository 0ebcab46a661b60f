-- The family name as it sounds, a blind index of kind `phonetic`
-- (FORMAT.md §4.2, §9.6), for a search by a name heard at the desk. NULL in
-- the rows written before this version until an administrator fills it
-- (`medvault schema fill`).
ALTER TABLE patients
    ADD COLUMN bi_family_phonetic VARBINARY(32) NULL,
    ADD KEY patients_bi_family_phonetic (bi_family_phonetic);
