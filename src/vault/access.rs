//! Restricted scopes and access requests (README, "Access over time";
//! `schema/FORMAT.md` §5.7, §9.12).
//!
//! A user asks for a scope they do not hold ([`Session::request_access`]):
//! a row of `access_requests` signed by their own key. Administrators see
//! the pending requests with whether each signature verifies
//! ([`Session::access_requests`]); one who holds the scope approves (a
//! grant, [`Session::approve_request`]) or declines
//! ([`Session::decline_request`]). A request the store made up, or moved
//! to another scope or user, does not verify and cannot be approved.
//!
//! A sensitive patient's notes move into a restricted scope (one made with
//! [`Session::create_scope`] for their care team) with
//! [`Session::move_notes`]: each note is sealed again under the new
//! scope's key, so only its holders read it.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::keys::pgp;
use crate::records::Id;
use crate::sql::keys as stmt;

use super::trust::{self, ROOT};
use super::{now, validate_user_name, Rights, Session, PERSONAL_PREFIX};

/// A stored access request (FORMAT.md §9.12).
#[derive(Clone, Debug)]
pub struct RequestRow {
    /// The scope asked for.
    pub scope_id: u32,
    /// Who asks.
    pub requester: String,
    /// Unix seconds.
    pub requested_at: i64,
    /// The requester's signature (FORMAT.md §5.7).
    pub signature: Vec<u8>,
}

/// One entry of a scope's access list ([`Session::access_list`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The user.
    pub user: String,
    /// What their signed grant of the scope's current epoch lets them do.
    #[serde(serialize_with = "rights_text")]
    pub rights: Rights,
}

fn rights_text<S: serde::Serializer>(r: &Rights, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

/// A pending access request as an administrator sees it.
#[derive(Clone, Debug, Serialize)]
pub struct AccessRequest {
    /// The scope asked for.
    pub scope: String,
    /// Who asks.
    pub requester: String,
    /// Unix seconds.
    pub requested_at: i64,
    /// Whether the requester's signature verifies (an active user's key,
    /// over this scope and time). Only verified requests can be approved.
    pub verified: bool,
}

/// A user's personal scope (an owner, or the `personal:` prefix).
pub(super) fn is_personal(s: &crate::store::ScopeRow) -> bool {
    s.owner.is_some() || s.name.starts_with(PERSONAL_PREFIX)
}

fn request_row(cells: Vec<crate::sql::Cell>) -> Result<RequestRow> {
    let mut d = crate::sql::ACCESS_REQUESTS.decoder(cells)?;
    Ok(RequestRow {
        scope_id: d.int(0)?,
        requester: d.text(1)?,
        requested_at: d.int(2)?,
        signature: d.blob(3)?,
    })
}

impl Session {
    /// Asks for access to `scope` (any active user): stores a request
    /// signed with this user's key, replacing an earlier one of theirs for
    /// the same scope. Refused for a scope the user holds already, for
    /// another user's personal scope, and for an unknown scope.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// s.request_access("care-team-dupont").await?;
    /// # Ok(()) }
    /// ```
    pub async fn request_access(&self, scope: &str) -> Result<()> {
        if self.user == ROOT {
            return Err(Error::Refused("the root holds every scope"));
        }
        // A scope made since login is learned first.
        self.refresh_keys().await?;
        let sid = self.scope_id(scope)?;
        let ks = self.ks();
        let scope_row = self.scope_row(sid, scope)?;
        if is_personal(&scope_row) {
            return Err(Error::Refused("a personal scope is its owner's alone"));
        }
        if ks.live(sid).next().is_some() {
            return Err(Error::Refused("you hold this scope already"));
        }
        let mut dir = self.directory().await?;
        let me = dir.verify(&self.user)?;
        let mut row = RequestRow {
            scope_id: sid,
            requester: self.user.clone(),
            requested_at: now(),
            signature: Vec::new(),
        };
        let msg = trust::request_record(
            &self.vault_id,
            &scope_row,
            &row,
            &pgp::fingerprint(&me.cert),
        );
        row.signature = self.with_signer(|s| s.sign(&msg)).await?;
        self.store
            .write_all(vec![
                (
                    stmt::DELETE_REQUEST.into(),
                    stmt::request_key(sid, &self.user),
                ),
                (stmt::INSERT_REQUEST.into(), stmt::request_values(&row)),
            ])
            .await?;
        Ok(())
    }

    /// The pending access requests (admin only), by scope and requester,
    /// each with whether its signature verifies. A row naming a scope
    /// that does not exist is listed under `#<id>`, unverified.
    pub async fn access_requests(&self) -> Result<Vec<AccessRequest>> {
        self.require_admin()?;
        self.refresh_keys().await?;
        let rows = self.request_rows().await?;
        let mut dir = self.directory().await?;
        let ks = self.ks();
        Ok(rows
            .into_iter()
            .map(|r| {
                let scope = ks.scopes.get(&r.scope_id);
                AccessRequest {
                    scope: scope.map_or_else(|| format!("#{}", r.scope_id), |s| s.name.clone()),
                    verified: scope.is_some_and(|s| self.request_verifies(&mut dir, s, &r)),
                    requester: r.requester,
                    requested_at: r.requested_at,
                }
            })
            .collect())
    }

    /// The scope's access list (administrators, and holders of the scope):
    /// who holds its current key epoch by a
    /// grant that verifies to the root, active users only, with the rights
    /// each signed grant gives, sorted by name. The root, which holds every
    /// epoch, is not listed.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// for h in s.access_list("clinical").await? {
    ///     println!("{} {}", h.user, h.rights);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn access_list(&self, scope: &str) -> Result<Vec<Holder>> {
        let sid = self.scope_id(scope)?;
        if !self.is_admin() && self.ks().live(sid).next().is_none() {
            return Err(Error::NoAccess(self.scope_name(sid)));
        }
        let latest = self.ks().latest.get(&sid).copied();
        let Some(latest) = latest else {
            return Err(Error::UnknownScope(scope.to_owned()));
        };
        Ok(self
            .holders(sid, Some(latest))
            .await?
            .into_iter()
            .map(|(user, _, rights)| Holder { user, rights })
            .collect())
    }

    /// Approves `user`'s request for `scope` (admin holding the scope):
    /// the request must verify, and the scope be no one's personal scope;
    /// then the scope is granted with `rights` ([`Session::grant_rights`])
    /// and the request removed.
    pub async fn approve_request(&self, user: &str, scope: &str, rights: Rights) -> Result<()> {
        self.require_admin()?;
        validate_user_name(user)?;
        self.refresh_keys().await?;
        let sid = self.scope_id(scope)?;
        let scope_row = self.scope_row(sid, scope)?;
        let row = self
            .request_rows()
            .await?
            .into_iter()
            .find(|r| r.scope_id == sid && r.requester == user)
            .ok_or(Error::Refused(
                "no pending request of this user for this scope",
            ))?;
        if is_personal(&scope_row) {
            return Err(Error::Refused("a personal scope is its owner's alone"));
        }
        let mut dir = self.directory().await?;
        if !self.request_verifies(&mut dir, &scope_row, &row) {
            return Err(Error::BadSignature {
                what: format!("access request of {user} for {}", scope_row.name),
            });
        }
        self.grant_rights(user, scope, rights).await?;
        self.store
            .write_all(vec![(
                stmt::DELETE_REQUEST.into(),
                stmt::request_key(sid, user),
            )])
            .await?;
        Ok(())
    }

    /// Declines `user`'s request for `scope` (admin only): the request is
    /// removed; nothing is granted. Returns whether there was one.
    pub async fn decline_request(&self, user: &str, scope: &str) -> Result<bool> {
        self.require_admin()?;
        validate_user_name(user)?;
        self.refresh_keys().await?;
        let sid = self.scope_id(scope)?;
        let n = self
            .store
            .write_all(vec![(
                stmt::DELETE_REQUEST.into(),
                stmt::request_key(sid, user),
            )])
            .await?;
        Ok(n.first().copied().unwrap_or(0) > 0)
    }

    async fn request_rows(&self) -> Result<Vec<RequestRow>> {
        self.store
            .select(stmt::requests(), Vec::new())
            .await?
            .into_iter()
            .map(request_row)
            .collect()
    }

    /// Whether `r` is signed by its requester, an active user whose row
    /// verifies, over this scope.
    fn request_verifies(
        &self,
        dir: &mut trust::Directory,
        scope: &crate::store::ScopeRow,
        r: &RequestRow,
    ) -> bool {
        if r.requester == ROOT || is_personal(scope) {
            return false;
        }
        let Ok(v) = dir.verify(&r.requester) else {
            return false;
        };
        v.active
            && pgp::verify(
                &v.cert,
                &trust::request_record(&self.vault_id, scope, r, &pgp::fingerprint(&v.cert)),
                &r.signature,
            )
    }

    /// Moves `patient`'s notes of scope `from` into scope `to` (a
    /// restricted scope for their care team, say; admin only, holding
    /// both; neither may be a personal scope): each is sealed again under
    /// `to`'s current key, with its author, time and order as they were,
    /// so only holders of `to` read it from now on. Returns how many moved;
    /// a note another client changed meanwhile is left, and reported as
    /// [`Error::Concurrent`] after the others moved (run it again). Copies
    /// made before (a backup, what a holder of `from` read) are not taken
    /// back.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session, patient: medvault::Id) -> medvault::Result<()> {
    /// s.create_scope("care-team-dupont").await?;
    /// let moved = s.move_notes(&patient, "clinical", "care-team-dupont").await?;
    /// # Ok(()) }
    /// ```
    pub async fn move_notes(&self, patient: &Id, from: &str, to: &str) -> Result<usize> {
        self.require_admin()?;
        // The rights below are judged on the key state as stored now.
        self.refresh_keys().await?;
        let (from_id, to_id) = (self.scope_id(from)?, self.scope_id(to)?);
        for sid in [from_id, to_id] {
            let ks = self.ks();
            let row = ks
                .scopes
                .get(&sid)
                .ok_or_else(|| Error::UnknownScope(self.scope_name(sid)))?;
            if is_personal(row) {
                return Err(Error::Refused(
                    "notes do not move into or out of a personal scope",
                ));
            }
            if ks.live(sid).next().is_none() {
                // `RolledBack` where the store hides the newest epoch and
                // this client remembers the older ones retired.
                return Err(self.not_writable(sid));
            }
            // Read from `from` (any live epoch held), written under `to`'s
            // current epoch; taking notes out of `from` is a write to it,
            // so both need the write right.
            self.current_keys(sid)?;
        }
        if from_id == to_id {
            return Ok(0);
        }
        let notes = self.notes().await?;
        if self.patients().await?.get(*patient).await?.is_none() {
            return Err(Error::NoSuchPatient(patient.to_string()));
        }
        let from_name = self.scope_name(from_id);
        let (mut moved, mut raced) = (0, 0);
        for r in notes.children(*patient).await? {
            if r.scope.as_deref() != Some(from_name.as_str()) {
                continue;
            }
            let at = (r.id, Some(*patient), from_id, to_id);
            let done = match notes.move_to_scope(at).await {
                Err(e) if super::rows::read_again(&e) => {
                    self.refresh_keys().await?;
                    notes.move_to_scope(at).await?
                }
                other => other?,
            };
            if done {
                moved += 1;
            } else {
                raced += 1;
            }
        }
        if raced > 0 {
            return Err(Error::Concurrent("a note of this patient"));
        }
        Ok(moved)
    }
}
