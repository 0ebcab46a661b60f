-- The first letters of the family name, a blind index of kind `prefix`
-- (FORMAT.md §4.4, §9.6): the keyed prefixes of 3, 4 and 5 characters side
-- by side, for a search by the first letters typed at the desk. NULL in the
-- rows written before this version until an administrator fills it
-- (`medvault schema fill`).
ALTER TABLE patients
    ADD COLUMN bi_family_prefix VARBINARY(32) NULL,
    ADD KEY patients_bi_family_prefix (bi_family_prefix);
