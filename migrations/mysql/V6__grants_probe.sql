-- The probe every search and write runs (src/sql/keys.rs PROBE) counts a
-- user's read-only grants and takes the newest grant signature, so an open
-- session sees a change of rights. This index answers both from the index
-- alone: without it each lookup read the user's grant rows (wrapped keys,
-- signatures) and cost about 40% more (BENCHMARKS.md, key rotation).
CREATE INDEX grants_probe ON grants (grantee, rights, signed_at);
