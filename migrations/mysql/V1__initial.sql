-- medvault schema v1 (MySQL / MariaDB). The same tables and columns as
-- migrations/sqlite/V1__initial.sql. Envelopes and blind indexes live in
-- binary columns (VARBINARY, BLOB, BINARY): never in a text column with a
-- collation. Names of users and scopes are ASCII with a binary collation.

CREATE TABLE vault_meta (
    `key` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    value MEDIUMBLOB NOT NULL
) ENGINE = InnoDB;

CREATE TABLE users (
    name       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    role       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    status     VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    cert       BLOB NOT NULL,
    locked_key BLOB NOT NULL,
    certifier  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    signed_at  BIGINT NOT NULL,
    signature  BLOB NOT NULL,
    CHECK (role IN ('admin', 'user')),
    CHECK (status IN ('active', 'disabled'))
) ENGINE = InnoDB;

CREATE TABLE scopes (
    id    INT UNSIGNED NOT NULL PRIMARY KEY,
    name  VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL
) ENGINE = InnoDB;

CREATE TABLE epochs (
    scope_id   INT UNSIGNED NOT NULL,
    epoch      INT UNSIGNED NOT NULL,
    state      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    commitment VARBINARY(32) NOT NULL,
    creator    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    signature  BLOB NOT NULL,
    PRIMARY KEY (scope_id, epoch),
    FOREIGN KEY (scope_id) REFERENCES scopes (id),
    CHECK (state IN ('current', 'retired'))
) ENGINE = InnoDB;

CREATE TABLE grants (
    scope_id  INT UNSIGNED NOT NULL,
    epoch     INT UNSIGNED NOT NULL,
    grantee   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    rights    VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    wrapped   BLOB NOT NULL,
    granter   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    signed_at BIGINT NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (scope_id, epoch, grantee),
    KEY grants_grantee (grantee),
    FOREIGN KEY (scope_id, epoch) REFERENCES epochs (scope_id, epoch)
) ENGINE = InnoDB;

CREATE TABLE patients (
    id             BINARY(16) NOT NULL PRIMARY KEY,
    family_name    VARBINARY(512) NOT NULL,
    given_names    VARBINARY(512) NOT NULL,
    born           VARBINARY(128) NOT NULL,
    sex            VARBINARY(128) NOT NULL,
    bi_family_name VARBINARY(32) NOT NULL,
    bi_given_names VARBINARY(32) NOT NULL,
    bi_born        VARBINARY(32) NOT NULL,
    bi_family_born VARBINARY(32) NOT NULL,
    author         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    KEY patients_bi_family_name (bi_family_name),
    KEY patients_bi_given_names (bi_given_names),
    KEY patients_bi_born (bi_born),
    KEY patients_bi_family_born (bi_family_born)
) ENGINE = InnoDB;

CREATE TABLE notes (
    id         BINARY(16) NOT NULL PRIMARY KEY,
    patient_id BINARY(16) NOT NULL,
    scope_id   INT UNSIGNED NOT NULL,
    body       MEDIUMBLOB NOT NULL,
    author     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at BIGINT NOT NULL,
    KEY notes_patient (patient_id, created_at),
    FOREIGN KEY (patient_id) REFERENCES patients (id) ON DELETE CASCADE,
    FOREIGN KEY (scope_id) REFERENCES scopes (id)
) ENGINE = InnoDB;
