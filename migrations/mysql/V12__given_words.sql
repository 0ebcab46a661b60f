-- Each given name, a blind index of kind `tokens` (FORMAT.md §4.5, §9.6):
-- the keyed words of the given names side by side, and the columns MySQL
-- derives of them, each with an index: the first 4 keyed words, one per
-- column, and whether there are more; and an index on the value itself
-- (what finds the rows not filled yet). NULL in the rows written before this
-- version until an administrator fills it (`medvault schema fill`).
ALTER TABLE patients
    ADD COLUMN bi_given_words VARBINARY(32) NULL,
    ADD COLUMN bi_given_words__1 VARBINARY(2) AS (SUBSTRING(bi_given_words, 1, 2)) VIRTUAL,
    ADD COLUMN bi_given_words__2 VARBINARY(2) AS (SUBSTRING(bi_given_words, 3, 2)) VIRTUAL,
    ADD COLUMN bi_given_words__3 VARBINARY(2) AS (SUBSTRING(bi_given_words, 5, 2)) VIRTUAL,
    ADD COLUMN bi_given_words__4 VARBINARY(2) AS (SUBSTRING(bi_given_words, 7, 2)) VIRTUAL,
    ADD COLUMN bi_given_words__more TINYINT AS (LENGTH(bi_given_words) > 8) VIRTUAL,
    ADD KEY patients_bi_given_words (bi_given_words),
    ADD KEY patients_bi_given_words_1 (bi_given_words__1),
    ADD KEY patients_bi_given_words_2 (bi_given_words__2),
    ADD KEY patients_bi_given_words_3 (bi_given_words__3),
    ADD KEY patients_bi_given_words_4 (bi_given_words__4),
    ADD KEY patients_bi_given_words_more (bi_given_words__more);
