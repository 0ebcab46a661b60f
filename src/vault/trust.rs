//! Signed records and the chain of trust to the pinned root
//! (`schema/FORMAT.md` §5).
//!
//! Nothing the store says about users, key epochs or grants is believed
//! until its signature verifies under a certificate that chains to the
//! root key whose fingerprint the client pins.

use std::collections::HashMap;

use sequoia_openpgp::Cert;

use crate::crypto::kdf::sha256;
use crate::error::{Error, Result};
use crate::keys::pgp;
use crate::store::{EpochRow, GrantRow, PolicyRow, Retirement, ScopeRow, UserRow};

/// Name under which the root key signs and receives grants. User names
/// cannot start with `@`, so it cannot collide with one.
pub const ROOT: &str = "@root";

fn record(kind: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("medvault/v1/{kind}").into_bytes();
    out.push(0);
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// §5.1: what a user row's signature covers.
pub fn user_record(vault_id: &[u8; 16], u: &UserRow, fingerprint: &str) -> Vec<u8> {
    record(
        "user",
        &[
            vault_id,
            u.name.as_bytes(),
            u.role.as_bytes(),
            u.status.as_bytes(),
            fingerprint.as_bytes(),
            u.certifier.as_bytes(),
            &u.signed_at.to_be_bytes(),
        ],
    )
}

/// §5.2: what an epoch row's signature covers.
pub fn epoch_record(vault_id: &[u8; 16], s: &ScopeRow, e: &EpochRow) -> Vec<u8> {
    record(
        "epoch",
        &[
            vault_id,
            &s.id.to_be_bytes(),
            s.name.as_bytes(),
            s.owner.as_deref().unwrap_or("").as_bytes(),
            &e.epoch.to_be_bytes(),
            &e.commitment,
            e.creator.as_bytes(),
        ],
    )
}

/// §5.5: what the signature retiring an epoch covers. The epoch's
/// commitment is in it, so a retirement cannot be moved to another epoch
/// or to a re-created scope of the same id.
pub fn retire_record(vault_id: &[u8; 16], s: &ScopeRow, e: &EpochRow, r: &Retirement) -> Vec<u8> {
    record(
        "retire",
        &[
            vault_id,
            &s.id.to_be_bytes(),
            s.name.as_bytes(),
            &e.epoch.to_be_bytes(),
            &e.commitment,
            r.by.as_bytes(),
            &r.at.to_be_bytes(),
        ],
    )
}

/// What an invitation says (§5.6), before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteTerms {
    /// Vault id.
    pub vault_id: [u8; 16],
    /// The name the new user will have.
    pub name: String,
    /// `admin` or `user`.
    pub role: String,
    /// The administrator who issued it (and alone can certify it).
    pub inviter: String,
    /// Unix seconds after which it is refused.
    pub expires: i64,
}

/// §5.6: what the inviter's signature over an invitation covers; `code`
/// is the invitation's secret code.
pub fn invite_record(t: &InviteTerms, code: &[u8]) -> Vec<u8> {
    record(
        "invite",
        &[
            &t.vault_id,
            t.name.as_bytes(),
            t.role.as_bytes(),
            t.inviter.as_bytes(),
            &t.expires.to_be_bytes(),
            &sha256(code),
        ],
    )
}

/// §5.6: what an enrolment request's tag (HMAC-SHA256 under the code)
/// covers: the terms and the user's certificate and locked key.
pub fn enrol_record(t: &InviteTerms, fingerprint: &str, cert: &[u8], locked_key: &[u8]) -> Vec<u8> {
    record(
        "enrol",
        &[
            &t.vault_id,
            t.name.as_bytes(),
            t.role.as_bytes(),
            t.inviter.as_bytes(),
            &t.expires.to_be_bytes(),
            fingerprint.as_bytes(),
            &sha256(cert),
            &sha256(locked_key),
        ],
    )
}

/// §5.7: what a requester's signature over an access request covers.
pub fn request_record(
    vault_id: &[u8; 16],
    s: &ScopeRow,
    r: &super::access::RequestRow,
    requester_fpr: &str,
) -> Vec<u8> {
    record(
        "request",
        &[
            vault_id,
            &s.id.to_be_bytes(),
            s.name.as_bytes(),
            r.requester.as_bytes(),
            requester_fpr.as_bytes(),
            &r.requested_at.to_be_bytes(),
        ],
    )
}

/// §5.4: what a policy row's signature covers.
pub fn policy_record(vault_id: &[u8; 16], p: &PolicyRow) -> Vec<u8> {
    record(
        "policy",
        &[
            vault_id,
            &p.version.to_be_bytes(),
            &sha256(&p.text),
            p.signer.as_bytes(),
            &p.signed_at.to_be_bytes(),
        ],
    )
}

/// §5.3: what a grant row's signature covers.
pub fn grant_record(vault_id: &[u8; 16], s: &ScopeRow, g: &GrantRow, grantee_fpr: &str) -> Vec<u8> {
    grant_record_hashed(
        vault_id,
        s,
        g.epoch,
        (&g.grantee, grantee_fpr),
        (&g.rights, &sha256(&g.wrapped)),
        (&g.granter, g.signed_at),
    )
}

/// [`grant_record`] from the SHA-256 of the wrapped key: what a batch's
/// evidence (§5.8) carries in place of the wrapped key.
pub fn grant_record_hashed(
    vault_id: &[u8; 16],
    s: &ScopeRow,
    epoch: u32,
    (grantee, grantee_fpr): (&str, &str),
    (rights, wrapped_sha256): (&str, &[u8; 32]),
    (granter, signed_at): (&str, i64),
) -> Vec<u8> {
    record(
        "grant",
        &[
            vault_id,
            &s.id.to_be_bytes(),
            s.name.as_bytes(),
            &epoch.to_be_bytes(),
            grantee.as_bytes(),
            grantee_fpr.as_bytes(),
            rights.as_bytes(),
            wrapped_sha256,
            granter.as_bytes(),
            &signed_at.to_be_bytes(),
        ],
    )
}

/// §5.8: one version of one row as stored, which a batch's leaf is the
/// SHA-256 of: the row's table, id, version, author and time, then each
/// stored column but the id by name and value ([`super::authorship`]).
pub fn row_record(
    vault_id: &[u8; 16],
    v: &super::authorship::RowVersion<'_>,
    columns: &[(&str, super::authorship::Stored<'_>)],
) -> Vec<u8> {
    let version = v.version.to_be_bytes();
    let written_at = v.written_at.to_be_bytes();
    let values: Vec<Vec<u8>> = columns.iter().map(|(_, c)| c.encode()).collect();
    let mut parts: Vec<&[u8]> = vec![
        vault_id,
        v.table.as_bytes(),
        v.id,
        &version,
        v.author.as_bytes(),
        &written_at,
    ];
    for ((name, _), value) in columns.iter().zip(&values) {
        parts.push(name.as_bytes());
        parts.push(value);
    }
    record("row", &parts)
}

/// §5.8: what a batch's signature covers.
pub fn batch_record(vault_id: &[u8; 16], b: &super::authorship::BatchRow) -> Vec<u8> {
    record(
        "batch",
        &[
            vault_id,
            &b.id,
            b.kind.as_bytes(),
            b.signer.as_bytes(),
            &b.signed_at.to_be_bytes(),
            &sha256(&b.evidence),
            &b.leaves,
        ],
    )
}

/// A user whose row verified up to the root.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Name.
    pub name: String,
    /// Whether they may certify users and grant scopes.
    pub admin: bool,
    /// Whether they are active.
    pub active: bool,
    /// Certificate.
    pub cert: Cert,
}

/// A user's key replaced by a recovery (FORMAT.md §5.9, §9.14), kept so
/// that what it signed before stays verifiable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplacedKey {
    /// The user.
    pub user: String,
    /// The replaced certificate, binary OpenPGP.
    pub cert: Vec<u8>,
    /// When it was replaced (Unix seconds): it vouches for nothing it
    /// signed later.
    pub replaced_at: i64,
    /// Who signed this record: the root, or an active administrator.
    pub signer: String,
    /// The signature over [`replaced_key_record`].
    pub signature: Vec<u8>,
}

/// §5.9: what a replaced key's record covers.
pub fn replaced_key_record(vault_id: &[u8; 16], r: &ReplacedKey, fingerprint: &str) -> Vec<u8> {
    record(
        "replaced-key",
        &[
            vault_id,
            r.user.as_bytes(),
            fingerprint.as_bytes(),
            &r.replaced_at.to_be_bytes(),
            r.signer.as_bytes(),
        ],
    )
}

/// A record that a user's key gives no write right any more under some
/// scopes' epochs, except in the batches it lists (FORMAT.md §5.11,
/// §9.15). A revocation, a downgrade to read, a disable and a recovery
/// store one, listing every write batch the user had signed when their
/// right was taken away: a batch they sign afterwards with the grants
/// they kept (and back-date) vouches for nothing under those epochs,
/// also while the old epoch is still live during the rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedWrites {
    /// The user.
    pub user: String,
    /// Fingerprint of their certificate whose write right is closed (hex,
    /// upper case, as in §5.1).
    pub fingerprint: String,
    /// (scope id, newest epoch closed), sorted by scope id, each scope
    /// once: grants of that scope at that epoch or older. Empty: every
    /// epoch of every scope.
    pub scopes: Vec<(u32, u32)>,
    /// The batches still vouched for, each as its [`batch_tag`], sorted,
    /// each once.
    pub batches: Vec<[u8; 16]>,
    /// The root or an administrator.
    pub signer: String,
    /// When (Unix seconds).
    pub signed_at: i64,
    /// The signature over [`closed_writes_record`].
    pub signature: Vec<u8>,
}

impl ClosedWrites {
    /// `scopes` as stored: per scope, scope id then epoch, u32 BE each.
    pub fn scopes_bytes(&self) -> Vec<u8> {
        self.scopes
            .iter()
            .flat_map(|(s, e)| s.to_be_bytes().into_iter().chain(e.to_be_bytes()))
            .collect()
    }

    /// Parses stored `scopes`: `None` unless 8 bytes a scope, scope ids
    /// strictly increasing.
    pub fn parse_scopes(b: &[u8]) -> Option<Vec<(u32, u32)>> {
        if !b.len().is_multiple_of(8) {
            return None;
        }
        let out: Vec<(u32, u32)> = b
            .chunks_exact(8)
            .filter_map(|c| {
                let (s, e) = c.split_at(4);
                Some((
                    u32::from_be_bytes(s.try_into().ok()?),
                    u32::from_be_bytes(e.try_into().ok()?),
                ))
            })
            .collect();
        (out.len() * 8 == b.len() && out.windows(2).all(|w| w[0].0 < w[1].0)).then_some(out)
    }

    /// Parses stored `batches`: `None` unless 16 bytes a batch, strictly
    /// increasing.
    pub fn parse_batches(b: &[u8]) -> Option<Vec<[u8; 16]>> {
        if !b.len().is_multiple_of(16) {
            return None;
        }
        let out: Vec<[u8; 16]> = b
            .chunks_exact(16)
            .filter_map(|c| c.try_into().ok())
            .collect();
        (out.len() * 16 == b.len() && out.windows(2).all(|w| w[0] < w[1])).then_some(out)
    }

    /// Whether it closes the grant of (`scope`, `epoch`) to its key.
    pub fn covers(&self, scope: u32, epoch: u32) -> bool {
        self.scopes.is_empty()
            || self
                .scopes
                .iter()
                .any(|(s, upto)| *s == scope && epoch <= *upto)
    }
}

/// How a record of closed writes names a batch: the first 16 bytes of the
/// SHA-256 of its signature, which covers its id, signer, time, leaves and
/// evidence (§5.8), so the name stands for that batch alone.
pub fn batch_tag(signature: &[u8]) -> [u8; 16] {
    let h = sha256(signature);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

/// §5.11: what a record of closed writes covers.
pub fn closed_writes_record(vault_id: &[u8; 16], r: &ClosedWrites) -> Vec<u8> {
    record(
        "closed-writes",
        &[
            vault_id,
            r.user.as_bytes(),
            r.fingerprint.as_bytes(),
            &r.scopes_bytes(),
            &r.batches.concat(),
            r.signer.as_bytes(),
            &r.signed_at.to_be_bytes(),
        ],
    )
}

/// The record, signed by the root or an administrator, after which every
/// row of the vault is authenticated (FORMAT.md §5.10): a row with no
/// authentication is forged from then on. A vault made by this version
/// has it from the start (signed by the root); a vault made before gets
/// it when an administrator adopts its unsigned rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowsSigned {
    /// The root (`@root`) or an administrator.
    pub signer: String,
    /// When (Unix seconds).
    pub signed_at: i64,
    /// The signature over [`rows_signed_record`].
    pub signature: Vec<u8>,
}

/// §5.10: what the record that every row is signed covers.
pub fn rows_signed_record(vault_id: &[u8; 16], signer: &str, signed_at: i64) -> Vec<u8> {
    record(
        "rows-signed",
        &[vault_id, signer.as_bytes(), &signed_at.to_be_bytes()],
    )
}

impl RowsSigned {
    /// Signs the record as `signer` (`name`), now.
    pub fn sign(
        vault_id: &[u8; 16],
        name: &str,
        signer: &mut pgp::RecordSigner,
        signed_at: i64,
    ) -> Result<RowsSigned> {
        Ok(RowsSigned {
            signer: name.to_owned(),
            signed_at,
            signature: signer.sign(&rows_signed_record(vault_id, name, signed_at))?,
        })
    }

    /// The stored form (`vault_meta.rows_signed`, FORMAT.md §9.1):
    /// `0x01` ‖ signed_at (i64 BE) ‖ signer length (u8) ‖ signer (UTF-8)
    /// ‖ signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![1];
        out.extend_from_slice(&self.signed_at.to_be_bytes());
        // A user name is at most 64 bytes (`validate_user_name`).
        out.push(u8::try_from(self.signer.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.signer.as_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the stored form strictly; `None` if it is anything else.
    pub fn parse(b: &[u8]) -> Option<RowsSigned> {
        let (tag, rest) = b.split_first()?;
        if *tag != 1 {
            return None;
        }
        let (at, rest) = rest.split_first_chunk::<8>()?;
        let (len, rest) = rest.split_first()?;
        let len = usize::from(*len);
        if len == 0 || len > 64 || rest.len() <= len {
            return None;
        }
        let (signer, signature) = rest.split_at(len);
        Some(RowsSigned {
            signer: String::from_utf8(signer.to_vec()).ok()?,
            signed_at: i64::from_be_bytes(*at),
            signature: signature.to_vec(),
        })
    }

    /// Whether the record verifies: signed by the root, or by an
    /// administrator verified to it (one disabled since, by a record
    /// signed no earlier than this one, still counts), with their present
    /// key or one a recovery replaced later.
    pub fn verifies(&self, dir: &mut Directory, vault_id: &[u8; 16]) -> bool {
        let Ok(who) = dir.verify(&self.signer) else {
            return false;
        };
        let disabled_at = dir.row(&self.signer).map(|r| r.signed_at);
        if !who.admin || !(who.active || disabled_at.is_some_and(|t| self.signed_at <= t)) {
            return false;
        }
        let msg = rows_signed_record(vault_id, &self.signer, self.signed_at);
        dir.certs_of(&self.signer)
            .iter()
            .filter(|(_, until)| until.is_none_or(|t| self.signed_at <= t))
            .any(|(c, _)| pgp::verify(c, &msg, &self.signature))
    }
}

/// The users table, verified on demand.
pub struct Directory {
    vault_id: [u8; 16],
    root: Cert,
    rows: HashMap<String, UserRow>,
    done: HashMap<String, Verified>,
    replaced: HashMap<String, Vec<ReplacedKey>>,
    /// Records of closed writes by user, with whether each verified once
    /// checked (`None` until then).
    closed: HashMap<String, Vec<(ClosedWrites, Option<bool>)>>,
}

impl Directory {
    /// Wraps the rows read from the store.
    ///
    /// A row named `@root` (which no user name can be) is dropped: the
    /// root is the pinned certificate, never a row.
    pub fn new(vault_id: [u8; 16], root: Cert, rows: Vec<UserRow>) -> Directory {
        Directory {
            vault_id,
            root,
            rows: rows
                .into_iter()
                .filter(|r| r.name != ROOT)
                .map(|r| (r.name.clone(), r))
                .collect(),
            done: HashMap::new(),
            replaced: HashMap::new(),
            closed: HashMap::new(),
        }
    }

    /// Adds the records of replaced keys read from the store; each is
    /// checked when it is used ([`Directory::certs_of`]).
    pub fn with_replaced(mut self, rows: Vec<ReplacedKey>) -> Directory {
        for r in rows {
            self.replaced.entry(r.user.clone()).or_default().push(r);
        }
        self
    }

    /// Adds the records of closed writes read from the store (and those
    /// this client wrote itself); each is checked when it is used
    /// ([`Directory::write_closed`]). The same record twice counts once.
    pub fn with_closed(mut self, rows: Vec<ClosedWrites>) -> Directory {
        for r in rows {
            let mine = self.closed.entry(r.user.clone()).or_default();
            if !mine.iter().any(|(c, _)| *c == r) {
                mine.push((r, None));
            }
        }
        self
    }

    /// Whether the grant of (`scope`, `epoch`) to `user`'s key
    /// `fingerprint`, carried in the batch whose [`batch_tag`] is `batch`,
    /// is closed: a record that verifies (signed by the root, or by an
    /// administrator active then, with a key valid then) covers it and
    /// does not list the batch.
    /// Records only take rights away, so one that does not verify is
    /// ignored (a store can drop a record as well; SECURITY.md).
    pub fn write_closed(
        &mut self,
        user: &str,
        fingerprint: &str,
        batch: &[u8; 16],
        at: (u32, u32),
    ) -> bool {
        self.closing(user, fingerprint, at, Some(batch))
    }

    /// Whether a record that verifies closes the write right of `user`'s
    /// key `fingerprint` under (`scope`, `epoch`), whatever batches it
    /// lists: a grant of that epoch made now would give no write right.
    pub fn closes(&mut self, user: &str, fingerprint: &str, at: (u32, u32)) -> bool {
        self.closing(user, fingerprint, at, None)
    }

    fn closing(
        &mut self,
        user: &str,
        fingerprint: &str,
        (scope, epoch): (u32, u32),
        batch: Option<&[u8; 16]>,
    ) -> bool {
        let Some(mut records) = self.closed.remove(user) else {
            return false;
        };
        let mut closed = false;
        for (r, ok) in &mut records {
            if r.fingerprint != fingerprint || !r.covers(scope, epoch) {
                continue;
            }
            if ok.is_none() {
                *ok = Some(self.closed_writes_verify(r));
            }
            if *ok == Some(true) && batch.is_none_or(|b| r.batches.binary_search(b).is_err()) {
                closed = true;
                break;
            }
        }
        self.closed.insert(user.to_owned(), records);
        closed
    }

    /// Whether record `r` verifies (see [`Directory::write_closed`]).
    pub fn closed_writes_verify(&mut self, r: &ClosedWrites) -> bool {
        if r.user == ROOT {
            return false;
        }
        // An active administrator's (one being disabled has theirs signed
        // again first): a disabled one could date a record as they like.
        if r.signer != ROOT {
            let Ok(who) = self.verify(&r.signer) else {
                return false;
            };
            if !who.admin || !who.active {
                return false;
            }
        }
        let msg = closed_writes_record(&self.vault_id, r);
        self.certs_of(&r.signer)
            .iter()
            .filter(|(_, until)| until.is_none_or(|t| r.signed_at <= t))
            .any(|(c, _)| pgp::verify(c, &msg, &r.signature))
    }

    /// The certificates `name` has signed with: their present one (no
    /// limit; the root's for `@root`, which is never replaced), then each
    /// replaced one whose record the root signed, with the time after which
    /// it vouches for nothing (no later than the user's present row was
    /// signed: a key is replaced when the row changes). Empty if `name`'s
    /// row does not verify.
    pub fn certs_of(&mut self, name: &str) -> Vec<(Cert, Option<i64>)> {
        let Ok(v) = self.verify(name) else {
            return Vec::new();
        };
        let mut out = vec![(v.cert, None)];
        if name == ROOT {
            return out;
        }
        let row_signed_at = self.rows.get(name).map(|r| r.signed_at);
        for r in self.replaced.get(name).cloned().unwrap_or_default() {
            // Only the root replaces a key (a recovery); an administrator's
            // record would let them sign as anyone.
            if r.signer != ROOT || row_signed_at.is_none_or(|t| r.replaced_at > t) {
                continue;
            }
            let Ok(cert) = pgp::parse_cert(&r.cert) else {
                continue;
            };
            let msg = replaced_key_record(&self.vault_id, &r, &pgp::fingerprint(&cert));
            if pgp::verify(&self.root, &msg, &r.signature) {
                out.push((cert, Some(r.replaced_at)));
            }
        }
        out
    }

    /// Names of all rows, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rows.keys().cloned().collect();
        v.sort();
        v
    }

    /// The raw row of `name`.
    pub fn row(&self, name: &str) -> Option<&UserRow> {
        self.rows.get(name)
    }

    /// Whether epoch row `e` of `scope` is signed by its creator, who must
    /// be the root or an active administrator verified to it.
    pub fn epoch_signed(&mut self, scope: &ScopeRow, e: &EpochRow) -> bool {
        let msg = epoch_record(&self.vault_id, scope, e);
        self.signer_cert(&e.creator)
            .is_ok_and(|c| pgp::verify(&c, &msg, &e.signature))
    }

    /// Whether epoch row `e` of `scope` carries a retirement signed by the
    /// root or an active administrator.
    pub fn retirement_signed(&mut self, scope: &ScopeRow, e: &EpochRow) -> bool {
        let Some(r) = &e.retired else {
            return false;
        };
        let msg = retire_record(&self.vault_id, scope, e, r);
        self.signer_cert(&r.by)
            .is_ok_and(|c| pgp::verify(&c, &msg, &r.signature))
    }

    /// The certificate that signs as `name` (`@root` or a verified admin).
    pub fn signer_cert(&mut self, name: &str) -> Result<Cert> {
        if name == ROOT {
            return Ok(self.root.clone());
        }
        let v = self.verify(name)?;
        // A disabled administrator's key signs nothing any more; the rows
        // it signed while active were re-signed when it was disabled.
        if !v.admin || !v.active {
            return Err(Error::BadSignature {
                what: format!("signature by {name}, who is not an active administrator"),
            });
        }
        Ok(v.cert)
    }

    /// Verifies `name`'s row and its certifier chain up to the root
    /// (`@root` is the root itself).
    pub fn verify(&mut self, name: &str) -> Result<Verified> {
        self.verify_depth(name, 0)
    }

    fn verify_depth(&mut self, name: &str, depth: usize) -> Result<Verified> {
        if name == ROOT {
            // The root acts as an active administrator (a session opened
            // from recovery shares, Vault::open_with_shares).
            return Ok(Verified {
                name: ROOT.to_owned(),
                admin: true,
                active: true,
                cert: self.root.clone(),
            });
        }
        if let Some(v) = self.done.get(name) {
            return Ok(v.clone());
        }
        let what = || format!("user record of {name}");
        if depth > 32 {
            return Err(Error::BadSignature { what: what() });
        }
        let row = self
            .rows
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownUser(name.to_owned()))?;
        let cert = pgp::parse_cert(&row.cert).map_err(|_| Error::BadSignature { what: what() })?;
        let certifier = if row.certifier == ROOT {
            self.root.clone()
        } else {
            if row.certifier == name {
                return Err(Error::BadSignature { what: what() });
            }
            let c = self
                .verify_depth(&row.certifier.clone(), depth + 1)
                .map_err(|_| Error::BadSignature { what: what() })?;
            if !c.admin || !c.active {
                return Err(Error::BadSignature { what: what() });
            }
            c.cert
        };
        let msg = user_record(&self.vault_id, &row, &pgp::fingerprint(&cert));
        if !pgp::verify(&certifier, &msg, &row.signature) {
            return Err(Error::BadSignature { what: what() });
        }
        let v = Verified {
            name: name.to_owned(),
            admin: row.role == "admin",
            active: row.status == "active",
            cert,
        };
        self.done.insert(name.to_owned(), v.clone());
        Ok(v)
    }
}
