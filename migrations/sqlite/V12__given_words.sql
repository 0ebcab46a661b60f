-- Each given name, a blind index of kind `tokens` (FORMAT.md §4.5, §9.6):
-- the keyed words of the given names side by side, and the columns SQLite
-- derives of them, each with an index: the first 4 keyed words, one per
-- column, and whether there are more; and an index on the value itself
-- (what finds the rows not filled yet). NULL in the rows written before this
-- version until an administrator fills it (`medvault schema fill`).
ALTER TABLE patients ADD COLUMN bi_given_words BLOB;
ALTER TABLE patients ADD COLUMN bi_given_words__1 BLOB AS (substr(bi_given_words, 1, 2)) VIRTUAL;
ALTER TABLE patients ADD COLUMN bi_given_words__2 BLOB AS (substr(bi_given_words, 3, 2)) VIRTUAL;
ALTER TABLE patients ADD COLUMN bi_given_words__3 BLOB AS (substr(bi_given_words, 5, 2)) VIRTUAL;
ALTER TABLE patients ADD COLUMN bi_given_words__4 BLOB AS (substr(bi_given_words, 7, 2)) VIRTUAL;
ALTER TABLE patients ADD COLUMN bi_given_words__more INTEGER AS (length(bi_given_words) > 8) VIRTUAL;
CREATE INDEX patients_bi_given_words ON patients (bi_given_words);
CREATE INDEX patients_bi_given_words_1 ON patients (bi_given_words__1);
CREATE INDEX patients_bi_given_words_2 ON patients (bi_given_words__2);
CREATE INDEX patients_bi_given_words_3 ON patients (bi_given_words__3);
CREATE INDEX patients_bi_given_words_4 ON patients (bi_given_words__4);
CREATE INDEX patients_bi_given_words_more ON patients (bi_given_words__more);
