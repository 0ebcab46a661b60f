-- medvault schema v1 (SQLCipher). Every encrypted column holds a field
-- envelope (schema/FORMAT.md §1); every bi_* column a blind index (§4).
-- Row ids are 16 random bytes made by the client, never AUTO_INCREMENT,
-- because they are part of each ciphertext's associated data.

CREATE TABLE vault_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

CREATE TABLE users (
    name       TEXT PRIMARY KEY NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    status     TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    cert       BLOB NOT NULL,
    locked_key BLOB NOT NULL,
    certifier  TEXT NOT NULL,
    signed_at  INTEGER NOT NULL,
    signature  BLOB NOT NULL
);

CREATE TABLE scopes (
    id    INTEGER PRIMARY KEY NOT NULL,
    name  TEXT NOT NULL UNIQUE,
    owner TEXT
);

CREATE TABLE epochs (
    scope_id   INTEGER NOT NULL REFERENCES scopes (id),
    epoch      INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('current', 'retired')),
    commitment BLOB NOT NULL,
    creator    TEXT NOT NULL,
    signature  BLOB NOT NULL,
    PRIMARY KEY (scope_id, epoch)
);

CREATE TABLE grants (
    scope_id  INTEGER NOT NULL,
    epoch     INTEGER NOT NULL,
    grantee   TEXT NOT NULL,
    rights    TEXT NOT NULL,
    wrapped   BLOB NOT NULL,
    granter   TEXT NOT NULL,
    signed_at INTEGER NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (scope_id, epoch, grantee),
    FOREIGN KEY (scope_id, epoch) REFERENCES epochs (scope_id, epoch)
);
CREATE INDEX grants_grantee ON grants (grantee);

CREATE TABLE patients (
    id             BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    family_name    BLOB NOT NULL,
    given_names    BLOB NOT NULL,
    born           BLOB NOT NULL,
    sex            BLOB NOT NULL,
    bi_family_name BLOB NOT NULL,
    bi_given_names BLOB NOT NULL,
    bi_born        BLOB NOT NULL,
    bi_family_born BLOB NOT NULL,
    author         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX patients_bi_family_name ON patients (bi_family_name);
CREATE INDEX patients_bi_given_names ON patients (bi_given_names);
CREATE INDEX patients_bi_born ON patients (bi_born);
CREATE INDEX patients_bi_family_born ON patients (bi_family_born);

CREATE TABLE notes (
    id         BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    patient_id BLOB NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    scope_id   INTEGER NOT NULL REFERENCES scopes (id),
    body       BLOB NOT NULL,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX notes_patient ON notes (patient_id, created_at);
