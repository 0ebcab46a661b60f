//! Statements over medvault's own tables (schema/FORMAT.md §9): the vault's
//! metadata, users, scopes, key epochs, grants and the signed schema
//! versions. Both stores run these texts as they are (`?` placeholders and
//! backquoted names work in both dialects) with the values built here, in
//! the order the statements name them; rows come back through the checked
//! decoders of [`super`] ([`super::user_row`], [`super::grant_row`], ...).
//! The stores keep what is theirs: transactions, locks, retries and the
//! keyring.

use super::{column_list, EPOCHS, GRANTS, POLICIES, USERS};
use crate::error::{Error, Result};
use crate::store::{EpochRow, GrantRow, PolicyRow, ScopeRow, UserRow, Value};

/// One `vault_meta` value by key.
pub const META_VALUE: &str = "SELECT `value` FROM vault_meta WHERE `key` = ?";

/// Deletes the record that every row is signed if it still holds the
/// bytes given (FORMAT.md §5.10: one that does not verify, replaced).
pub const DELETE_ROWS_SIGNED: &str =
    "DELETE FROM vault_meta WHERE `key` = 'rows_signed' AND `value` = ?";

/// Stores the record that every row is signed, keeping one already there.
pub fn insert_rows_signed(d: super::ddl::Dialect) -> String {
    format!(
        "{} INTO vault_meta (`key`, `value`) VALUES ('rows_signed', ?)",
        d.insert_keeping()
    )
}

/// A `vault_meta` row: key, value.
pub const INSERT_META: &str = "INSERT INTO vault_meta (`key`, `value`) VALUES (?, ?)";

/// Every user, by name.
pub fn users() -> String {
    format!("SELECT {} FROM users ORDER BY name", column_list(&USERS))
}

/// Whether the user `name = ?` exists; on MySQL the row is locked for the
/// rest of the transaction.
pub fn user_exists(d: super::ddl::Dialect) -> &'static str {
    match d {
        super::ddl::Dialect::Sqlite => "SELECT 1 FROM users WHERE name = ?",
        super::ddl::Dialect::Mysql => "SELECT 1 FROM users WHERE name = ? FOR UPDATE",
    }
}

/// A new user: [`user_values`].
pub const INSERT_USER: &str = "INSERT INTO users \
     (name, role, status, cert, locked_key, certifier, signed_at, signature) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

/// A user's values in the order of [`INSERT_USER`].
pub fn user_values(u: &UserRow) -> Vec<Value> {
    vec![
        Value::Text(u.name.clone()),
        Value::Text(u.role.clone()),
        Value::Text(u.status.clone()),
        Value::Blob(u.cert.clone()),
        Value::Blob(u.locked_key.clone()),
        Value::Text(u.certifier.clone()),
        Value::Int(u.signed_at),
        Value::Blob(u.signature.clone()),
    ]
}

/// Rewrites a user's row: [`user_update_values`].
pub const UPDATE_USER: &str = "UPDATE users SET role = ?, status = ?, cert = ?, \
     locked_key = ?, certifier = ?, signed_at = ?, signature = ? WHERE name = ?";

/// A user's locked secret key replaced (a password change): the key,
/// then the name. The row's signature does not cover it (FORMAT.md §5.1):
/// the certificate does, and a login checks the key against it.
pub const SET_LOCKED_KEY: &str = "UPDATE users SET locked_key = ? WHERE name = ?";

/// The values of [`UPDATE_USER`]: every column but the name, then the name.
pub fn user_update_values(u: &UserRow) -> Vec<Value> {
    let mut v = user_values(u);
    let name = v.remove(0);
    v.push(name);
    v
}

/// Every scope, by id.
pub const SCOPES: &str = "SELECT id, name, owner FROM scopes ORDER BY id";

/// A new scope: id, name, owner (NULL for a shared scope).
pub const INSERT_SCOPE: &str = "INSERT INTO scopes (id, name, owner) VALUES (?, ?, ?)";

/// A scope's values in the order of [`INSERT_SCOPE`].
pub fn scope_values(s: &ScopeRow) -> Vec<Value> {
    vec![
        Value::Int(i64::from(s.id)),
        Value::Text(s.name.clone()),
        s.owner.clone().map_or(Value::Null, Value::Text),
    ]
}

/// Every key epoch, by scope and epoch.
pub fn epochs() -> String {
    format!(
        "SELECT {} FROM epochs ORDER BY scope_id, epoch",
        column_list(&EPOCHS)
    )
}

/// A new key epoch: [`epoch_values`].
pub const INSERT_EPOCH: &str = "INSERT INTO epochs \
     (scope_id, epoch, state, commitment, creator, signature) VALUES (?, ?, ?, ?, ?, ?)";

/// An epoch's values in the order of [`INSERT_EPOCH`].
pub fn epoch_values(e: &EpochRow) -> Vec<Value> {
    vec![
        Value::Int(i64::from(e.scope_id)),
        Value::Int(i64::from(e.epoch)),
        Value::Text(e.state.clone()),
        Value::Blob(e.commitment.clone()),
        Value::Text(e.creator.clone()),
        Value::Blob(e.signature.clone()),
    ]
}

/// An epoch signed again: creator, signature, then scope id and epoch.
pub const RESIGN_EPOCH: &str =
    "UPDATE epochs SET creator = ?, signature = ? WHERE scope_id = ? AND epoch = ?";

/// The values of [`RESIGN_EPOCH`].
pub fn resign_values(e: &EpochRow) -> Vec<Value> {
    vec![
        Value::Text(e.creator.clone()),
        Value::Blob(e.signature.clone()),
        Value::Int(i64::from(e.scope_id)),
        Value::Int(i64::from(e.epoch)),
    ]
}

/// An epoch retired (FORMAT.md §5.5): [`retire_values`]. `state` mirrors
/// the signed record for readers of the table; medvault decides on the
/// signature alone.
pub const RETIRE_EPOCH: &str = "UPDATE epochs SET state = 'retired', retired_by = ?, \
     retired_at = ?, retired_sig = ? WHERE scope_id = ? AND epoch = ?";

/// The values of [`RETIRE_EPOCH`] for `e`, whose `retired` is set.
pub fn retire_values(e: &EpochRow) -> Result<Vec<Value>> {
    let r = e
        .retired
        .as_ref()
        .ok_or(Error::Refused("an epoch without a retirement record"))?;
    Ok(vec![
        Value::Text(r.by.clone()),
        Value::Int(r.at),
        Value::Blob(r.signature.clone()),
        Value::Int(i64::from(e.scope_id)),
        Value::Int(i64::from(e.epoch)),
    ])
}

/// The grants to `grantee = ?`.
pub fn grants_to() -> String {
    format!(
        "SELECT {} FROM grants WHERE grantee = ? ORDER BY scope_id, epoch",
        column_list(&GRANTS)
    )
}

/// The grants signed by `granter = ?`.
pub fn grants_by() -> String {
    format!(
        "SELECT {} FROM grants WHERE granter = ? ORDER BY scope_id, epoch, grantee",
        column_list(&GRANTS)
    )
}

/// Every grant.
pub fn grants_all() -> String {
    format!(
        "SELECT {} FROM grants ORDER BY scope_id, epoch, grantee",
        column_list(&GRANTS)
    )
}

/// A grant, replacing the one of the same (scope, epoch, grantee):
/// [`grant_values`]. `REPLACE INTO` means the same in both dialects.
pub const PUT_GRANT: &str = "REPLACE INTO grants \
     (scope_id, epoch, grantee, rights, wrapped, granter, signed_at, signature) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

/// A grant's values in the order of [`PUT_GRANT`].
pub fn grant_values(g: &GrantRow) -> Vec<Value> {
    vec![
        Value::Int(i64::from(g.scope_id)),
        Value::Int(i64::from(g.epoch)),
        Value::Text(g.grantee.clone()),
        Value::Text(g.rights.clone()),
        Value::Blob(g.wrapped.clone()),
        Value::Text(g.granter.clone()),
        Value::Int(g.signed_at),
        Value::Blob(g.signature.clone()),
    ]
}

/// The grants of scope `scope_id = ?` to `grantee = ?`.
pub const DELETE_GRANTS: &str = "DELETE FROM grants WHERE scope_id = ? AND grantee = ?";

/// Every grant to `grantee = ?` (a disabled user's).
pub const DELETE_GRANTS_TO: &str = "DELETE FROM grants WHERE grantee = ?";

/// The signed schema of the highest version.
pub fn latest_policy() -> String {
    format!(
        "SELECT {} FROM policies ORDER BY version DESC LIMIT 1",
        column_list(&POLICIES)
    )
}

/// The key-state columns of [`PROBE`] and [`PROBE_KEYS`].
macro_rules! probe_keys {
    () => {
        "(SELECT COUNT(*) FROM epochs), \
         (SELECT COUNT(retired_sig) FROM epochs), \
         (SELECT COUNT(*) FROM grants WHERE grantee = ?), \
         (SELECT COALESCE(MAX(signed_at), -1) FROM users WHERE name = ?), \
         (SELECT COUNT(*) FROM grants WHERE grantee = ? AND rights = 'read'), \
         (SELECT COALESCE(MAX(signed_at), -1) FROM grants WHERE grantee = ?), \
         (SELECT COUNT(*) FROM vault_meta WHERE `key` = 'rows_signed')"
    };
}

/// What a session checks before each write and alongside each search to
/// learn that the signed state it depends on changed (parameters: the
/// user's name, four times): the highest schema version, the number of key
/// epochs and of retired ones, the grants to the user, and when the
/// user's row was signed (-1 with none), the grants to the user for
/// reading and the newest of their signatures, and whether the record
/// that every row is signed is there. Unsigned counts, used only to
/// decide to read the signed state again, never believed themselves.
pub const PROBE: &str = concat!(
    "SELECT (SELECT COALESCE(MAX(version), 0) FROM policies), ",
    probe_keys!()
);

/// The first column of [`PROBE`] (no parameters): what a retirement
/// checks before its commit, that no schema was stored since its
/// rotation's passes read theirs (one may declare more cells of the
/// scope). Nothing else: its own statements change the count of retired
/// epochs, and an epoch stored since (another rotation, a new scope) does
/// not make older epochs hold cells again.
pub const SCHEMA_VERSION: &str = "SELECT (SELECT COALESCE(MAX(version), 0) FROM policies)";

/// [`PROBE`] without its first column (the schema version): the key
/// state alone, what a write that seals nothing under a schema checks
/// (a rotation's or an index's reseal, [`crate::store::Guard`]). Same
/// parameters.
pub const PROBE_KEYS: &str = concat!("SELECT ", probe_keys!());

/// Every pending access request, by scope and requester.
pub fn requests() -> String {
    format!(
        "SELECT {} FROM access_requests ORDER BY scope_id, requester",
        column_list(&super::ACCESS_REQUESTS)
    )
}

/// A new access request: [`request_values`].
pub const INSERT_REQUEST: &str = "INSERT INTO access_requests \
     (scope_id, requester, requested_at, signature) VALUES (?, ?, ?, ?)";

/// Removes the request of `requester = ?` for `scope_id = ?`:
/// [`request_key`].
pub const DELETE_REQUEST: &str = "DELETE FROM access_requests WHERE scope_id = ? AND requester = ?";

/// The values of [`INSERT_REQUEST`].
pub fn request_values(r: &crate::vault::access::RequestRow) -> Vec<Value> {
    vec![
        Value::Int(i64::from(r.scope_id)),
        Value::Text(r.requester.clone()),
        Value::Int(r.requested_at),
        Value::Blob(r.signature.clone()),
    ]
}

/// The values of [`DELETE_REQUEST`].
pub fn request_key(scope_id: u32, requester: &str) -> Vec<Value> {
    vec![
        Value::Int(i64::from(scope_id)),
        Value::Text(requester.to_owned()),
    ]
}

/// The highest stored schema version (0 with none).
pub const MAX_POLICY_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM policies";

/// A signed schema version: [`policy_values`].
pub const INSERT_POLICY: &str = "INSERT INTO policies \
     (version, text, signer, signed_at, signature) VALUES (?, ?, ?, ?, ?)";

/// A policy row's values in the order of [`INSERT_POLICY`].
pub fn policy_values(p: &PolicyRow) -> Result<Vec<Value>> {
    let version = i64::try_from(p.version)
        .map_err(|_| Error::Policy("a schema version past the largest integer".into()))?;
    Ok(vec![
        Value::Int(version),
        Value::Blob(p.text.clone()),
        Value::Text(p.signer.clone()),
        Value::Int(p.signed_at),
        Value::Blob(p.signature.clone()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement has a placeholder for every value its builder makes.
    #[test]
    fn placeholders_match_values() {
        let marks = |s: &str| s.matches('?').count();
        let u = UserRow {
            name: "n".into(),
            role: "r".into(),
            status: "s".into(),
            cert: vec![1],
            locked_key: vec![2],
            certifier: "c".into(),
            signed_at: 3,
            signature: vec![4],
        };
        assert_eq!(marks(INSERT_USER), user_values(&u).len());
        assert_eq!(marks(UPDATE_USER), user_update_values(&u).len());
        assert!(matches!(user_update_values(&u).last(), Some(Value::Text(n)) if n == "n"));
        let e = EpochRow {
            scope_id: 1,
            epoch: 2,
            state: "current".into(),
            commitment: vec![0; 32],
            creator: "c".into(),
            signature: vec![5],
            retired: None,
        };
        assert_eq!(marks(INSERT_EPOCH), epoch_values(&e).len());
        assert!(retire_values(&e).is_err());
        let retired = EpochRow {
            retired: Some(crate::store::Retirement {
                by: "a".into(),
                at: 1,
                signature: vec![6],
            }),
            ..e.clone()
        };
        assert_eq!(marks(RETIRE_EPOCH), retire_values(&retired).unwrap().len());
        assert_eq!(marks(RESIGN_EPOCH), resign_values(&e).len());
        let s = ScopeRow {
            id: 1,
            name: "clinical".into(),
            owner: None,
        };
        assert_eq!(marks(INSERT_SCOPE), scope_values(&s).len());
        assert!(matches!(scope_values(&s)[2], Value::Null));
        let g = GrantRow {
            scope_id: 1,
            epoch: 1,
            grantee: "g".into(),
            rights: "read-write".into(),
            wrapped: vec![6],
            granter: "a".into(),
            signed_at: 7,
            signature: vec![8],
        };
        assert_eq!(marks(PUT_GRANT), grant_values(&g).len());
        let p = PolicyRow {
            version: 1,
            text: vec![9],
            signer: "a".into(),
            signed_at: 10,
            signature: vec![11],
        };
        assert_eq!(marks(INSERT_POLICY), policy_values(&p).unwrap().len());
        let too_big = PolicyRow {
            version: u64::MAX,
            ..p
        };
        assert!(policy_values(&too_big).is_err());
    }
}
