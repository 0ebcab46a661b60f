//! Enrolment that keeps a user's secret theirs (`schema/FORMAT.md` §5.6).
//!
//! `user add` makes the new user's key on the administrator's machine,
//! under a password the administrator types: the administrator could keep
//! a copy and read that user's personal scope. Enrolment moves the key's
//! making to the user:
//!
//! 1. An administrator issues an **invitation** ([`Session::invite`]): the
//!    terms (name, role, expiry) signed by them, and a random 32-byte code,
//!    also sealed to the administrator's own key so they can check it later
//!    without keeping anything. The invitation is a short text file handed
//!    to the user over a channel the administrator trusts (in person, a
//!    phone call for the code): whoever holds it can enrol as that name.
//! 2. The user, on their own machine and without access to the store,
//!    makes their key under a password only they know ([`enrol`]) and
//!    returns an **enrolment request**: the terms, their certificate and
//!    locked key, and an HMAC under the code that ties them together. The
//!    request holds no code, so it may travel over any channel.
//! 3. The administrator **certifies** it ([`Session::certify`]): their own
//!    signature on the terms, the code unsealed with their key, the tag,
//!    the expiry, the certificate's root and name, then the user row they
//!    sign as for `user add`. A request altered on its way (another key
//!    swapped in, another role) fails the tag or the signature.
//!
//! Nothing is stored between the steps, so an invitation cannot be
//! withdrawn before it expires (the default is 7 days); it is good once,
//! since a name is certified once.

use std::time::Duration;

use crate::crypto::kdf;
use crate::crypto::secret::ct_eq;
use crate::error::{Error, Result};
use crate::keys::pgp::{self, KdfParams, LockedKey};

use super::trust::{self, InviteTerms};
use super::{check_new_password, check_password, now, validate_user_name, Session};

const INVITATION_MAGIC: &str = "medvault-invitation 1";
const REQUEST_MAGIC: &str = "medvault-enrolment 1";

/// How long an invitation is good for when the caller does not say.
pub const DEFAULT_INVITATION_DAYS: u64 = 7;

/// Bytes of an invitation's secret code.
const CODE_LEN: usize = 32;

/// What the invitation and the request share: the terms, the code sealed
/// to the inviter, and the inviter's signature.
struct Signed {
    root: String,
    terms: InviteTerms,
    sealed_code: Vec<u8>,
    signature: Vec<u8>,
}

/// A parsed enrolment request.
struct Request {
    signed: Signed,
    cert: Vec<u8>,
    locked_key: Vec<u8>,
    tag: [u8; 32],
}

/// What [`Session::certify`] reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Enrolled {
    /// The new user's name.
    pub name: String,
    /// `admin` or `user`.
    pub role: String,
    /// Their certificate's fingerprint (compare it with the one the user
    /// reads out from `medvault enrol`, for a second check).
    pub fingerprint: String,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadInvitation(reason.into())
}

/// Adds the line `check: <first 4 bytes of SHA-256 of all before>` that
/// tells a damaged or truncated file from a forged one early.
fn with_check(mut body: String) -> String {
    let check = hex::encode(&kdf::sha256(body.as_bytes())[..4]);
    body.push_str(&format!("check: {check}\n"));
    body
}

/// The lines of `text` as `(key, value)`, after its magic line; the check
/// line verified and dropped. Blank lines and `\r` are tolerated.
fn fields<'a>(text: &'a str, magic: &str, what: &str) -> Result<Vec<(&'a str, &'a str)>> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.first().map(|l| l.trim()) != Some(magic) {
        return Err(bad(format!(
            "this is not a {what} (its first line is not {magic:?})"
        )));
    }
    let Some((last, body)) = lines.split_last() else {
        return Err(bad(format!("the {what} is empty")));
    };
    let check = last
        .strip_prefix("check: ")
        .ok_or_else(|| bad(format!("the {what} has no check line: it is cut short")))?;
    let mut canon: String = body.iter().map(|l| format!("{}\n", l.trim())).collect();
    canon = with_check(canon);
    if !canon.ends_with(&format!("check: {}\n", check.trim().to_ascii_lowercase())) {
        return Err(bad(format!(
            "the {what} fails its check: a character was changed or lost when it was copied"
        )));
    }
    body[1..]
        .iter()
        .map(|l| {
            l.trim()
                .split_once(": ")
                .ok_or_else(|| bad(format!("a line of the {what} is not `key: value`")))
        })
        .collect()
}

/// Reads the fields named `keys`, in that order, and nothing else.
fn take<'a>(fields: &[(&'a str, &'a str)], keys: &[&str], what: &str) -> Result<Vec<&'a str>> {
    if fields.len() != keys.len() || fields.iter().zip(keys).any(|((k, _), want)| k != want) {
        return Err(bad(format!(
            "the {what} does not have the fields {} in that order",
            keys.join(", ")
        )));
    }
    Ok(fields.iter().map(|(_, v)| *v).collect())
}

fn unhex(v: &str, field: &str) -> Result<Vec<u8>> {
    hex::decode(v.trim()).map_err(|_| bad(format!("field {field} is not hex")))
}

const SIGNED_KEYS: [&str; 8] = [
    "vault",
    "root",
    "name",
    "role",
    "inviter",
    "expires",
    "sealed-code",
    "signature",
];

fn signed_lines(s: &Signed) -> String {
    format!(
        "vault: {}\nroot: {}\nname: {}\nrole: {}\ninviter: {}\nexpires: {}\nsealed-code: {}\nsignature: {}\n",
        hex::encode(s.terms.vault_id),
        s.root,
        s.terms.name,
        s.terms.role,
        s.terms.inviter,
        s.terms.expires,
        hex::encode(&s.sealed_code),
        hex::encode(&s.signature),
    )
}

fn parse_signed(v: &[&str]) -> Result<Signed> {
    let vault_id: [u8; 16] = unhex(v[0], "vault")?
        .try_into()
        .map_err(|_| bad("field vault is not 16 bytes"))?;
    let root = v[1].trim().to_ascii_uppercase();
    if root.is_empty() || !root.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("field root is not a fingerprint"));
    }
    let name = v[2].trim().to_owned();
    validate_user_name(&name)?;
    let role = v[3].trim().to_owned();
    if role != "admin" && role != "user" {
        return Err(bad("field role is neither admin nor user"));
    }
    let inviter = v[4].trim().to_owned();
    validate_user_name(&inviter)?;
    let expires: i64 = v[5]
        .trim()
        .parse()
        .map_err(|_| bad("field expires is not a number of seconds"))?;
    Ok(Signed {
        root,
        terms: InviteTerms {
            vault_id,
            name,
            role,
            inviter,
            expires,
        },
        sealed_code: unhex(v[6], "sealed-code")?,
        signature: unhex(v[7], "signature")?,
    })
}

/// Parses an invitation: its terms and its secret code.
fn parse_invitation(text: &str) -> Result<(Signed, zeroize::Zeroizing<Vec<u8>>)> {
    let f = fields(text, INVITATION_MAGIC, "invitation")?;
    let mut keys = SIGNED_KEYS.to_vec();
    keys.push("code");
    let v = take(&f, &keys, "invitation")?;
    let signed = parse_signed(&v[..8])?;
    let code = zeroize::Zeroizing::new(unhex(v[8], "code")?);
    if code.len() != CODE_LEN {
        return Err(bad(format!("field code is not {CODE_LEN} bytes")));
    }
    Ok((signed, code))
}

fn parse_request(text: &str) -> Result<Request> {
    let f = fields(text, REQUEST_MAGIC, "enrolment request")?;
    let mut keys = SIGNED_KEYS.to_vec();
    keys.extend(["cert", "locked-key", "tag"]);
    let v = take(&f, &keys, "enrolment request")?;
    Ok(Request {
        signed: parse_signed(&v[..8])?,
        cert: unhex(v[8], "cert")?,
        locked_key: unhex(v[9], "locked-key")?,
        tag: unhex(v[10], "tag")?
            .try_into()
            .map_err(|_| bad("field tag is not 32 bytes"))?,
    })
}

/// The user's side of enrolment: makes their key pair under `password`
/// (which only they know; it must pass the floor, [`check_new_password`]),
/// bound to the vault root the invitation names, and returns the
/// enrolment request to give back to the administrator. Needs no access to
/// the store. Blocking (one Argon2 run).
///
/// ```no_run
/// # fn demo(invitation: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let kdf = medvault::KdfParams::PRODUCTION;
/// let request = medvault::enrol(invitation, "a sentence only I know", kdf)?;
/// std::fs::write("dr.moreau.request", request)?;
/// # Ok(()) }
/// ```
pub fn enrol(invitation: &str, password: &str, kdf: KdfParams) -> Result<String> {
    let (signed, code) = parse_invitation(invitation)?;
    if signed.terms.expires < now() {
        return Err(Error::InvitationExpired(signed.terms.name.clone()));
    }
    check_new_password(password, &signed.terms.name, kdf)?;
    let pw = check_password(password)?;
    let (cert, locked_key) = pgp::generate(&signed.terms.name, &pw, kdf, &signed.root, None)?;
    let fpr = pgp::fingerprint(&cert);
    let cert = pgp::cert_bytes(&cert)?;
    let tag = kdf::hmac(
        &code,
        &trust::enrol_record(&signed.terms, &fpr, &cert, &locked_key),
    );
    Ok(with_check(format!(
        "{REQUEST_MAGIC}\n{}cert: {}\nlocked-key: {}\ntag: {}\n",
        signed_lines(&signed),
        hex::encode(cert),
        hex::encode(locked_key),
        hex::encode(tag),
    )))
}

/// The fingerprint of the key an enrolment request carries, for the user
/// to read out to the administrator (a check beside the tag).
pub fn request_fingerprint(request: &str) -> Result<String> {
    let r = parse_request(request)?;
    Ok(pgp::fingerprint(&pgp::parse_cert(&r.cert)?))
}

impl Session {
    /// Issues an invitation for a new user `name` (admin only): the text
    /// to hand them, for [`enrol`]. `admin` makes them an administrator
    /// when certified. It is good for `valid_for` (None: 7 days), once,
    /// and only this administrator can certify it. The text holds a
    /// secret code: hand it over as you would a password.
    ///
    /// ```no_run
    /// # async fn demo(admin: &medvault::Session) -> Result<(), Box<dyn std::error::Error>> {
    /// let invitation = admin.invite("dr.moreau", false, None).await?;
    /// std::fs::write("dr.moreau.invitation", invitation)?;
    /// # Ok(()) }
    /// ```
    pub async fn invite(
        &self,
        name: &str,
        admin: bool,
        valid_for: Option<Duration>,
    ) -> Result<String> {
        self.require_admin()?;
        validate_user_name(name)?;
        let mut dir = self.directory().await?;
        if dir.row(name).is_some() {
            return Err(Error::UserExists(name.to_owned()));
        }
        let me = dir.verify(&self.user)?;
        let valid = valid_for.unwrap_or(Duration::from_secs(DEFAULT_INVITATION_DAYS * 86_400));
        let secs = i64::try_from(valid.as_secs())
            .ok()
            .filter(|s| *s > 0 && *s <= 366 * 86_400)
            .ok_or_else(|| bad("an invitation is valid for 1 second to 366 days"))?;
        let terms = InviteTerms {
            vault_id: self.vault_id,
            name: name.to_owned(),
            role: if admin { "admin" } else { "user" }.into(),
            inviter: self.user.clone(),
            expires: now() + secs,
        };
        let code = zeroize::Zeroizing::new(crate::crypto::random_array::<CODE_LEN>());
        let sealed_code = pgp::wrap(&[&me.cert], &code[..])?;
        let msg = trust::invite_record(&terms, &code[..]);
        let signature = self.with_signer(|s| s.sign(&msg)).await?;
        let signed = Signed {
            root: pgp::fingerprint(&self.root_cert),
            terms,
            sealed_code,
            signature,
        };
        Ok(with_check(format!(
            "{INVITATION_MAGIC}\n{}code: {}\n",
            signed_lines(&signed),
            hex::encode(&code[..]),
        )))
    }

    /// Certifies the user an enrolment request names (admin only, and only
    /// the administrator who issued the invitation): checks the invitation
    /// is theirs and unexpired, the request's tag under the invitation's
    /// code, and that the key is a medvault key of that name bound to this
    /// vault's root; then signs the user row and makes their personal
    /// scope, as [`Session::add_user`] does. The user's password never
    /// leaves their machine, and no forced change follows. Any failure
    /// changes nothing.
    ///
    /// ```no_run
    /// # async fn demo(admin: &medvault::Session) -> Result<(), Box<dyn std::error::Error>> {
    /// let request = std::fs::read_to_string("dr.moreau.request")?;
    /// let enrolled = admin.certify(&request).await?;
    /// println!("{} {}", enrolled.name, enrolled.fingerprint);
    /// # Ok(()) }
    /// ```
    pub async fn certify(&self, request: &str) -> Result<Enrolled> {
        self.require_admin()?;
        let r = parse_request(request)?;
        let t = &r.signed.terms;
        if !ct_eq(&t.vault_id, &self.vault_id) {
            return Err(bad("it is for another vault"));
        }
        if t.inviter != self.user {
            return Err(bad(format!(
                "it was issued by {}; only they can certify it",
                t.inviter
            )));
        }
        let mut dir = self.directory().await?;
        let me = dir.verify(&self.user)?;
        // One message for both failures: what the unsealing gives is not
        // told apart from a bad signature.
        let code = self
            .dec
            .unwrap(&r.signed.sealed_code)
            .filter(|c| c.len() == CODE_LEN)
            .filter(|c| pgp::verify(&me.cert, &trust::invite_record(t, c), &r.signed.signature))
            .ok_or_else(|| bad("its terms do not carry your signature"))?;
        if t.expires < now() {
            return Err(Error::InvitationExpired(t.name.clone()));
        }
        let cert = pgp::parse_cert(&r.cert)?;
        let fpr = pgp::fingerprint(&cert);
        let want = kdf::hmac(&code, &trust::enrol_record(t, &fpr, &r.cert, &r.locked_key));
        if !ct_eq(&want, &r.tag) {
            return Err(bad(
                "the request was altered on its way, or made from another invitation",
            ));
        }
        let locked = LockedKey::parse(&r.locked_key)?;
        if pgp::fingerprint(&locked.cert()) != fpr {
            return Err(bad("its locked key is not the key of its certificate"));
        }
        // What a login will act on (the locked key's binding) and what
        // others will read (the certificate) must both be the invited
        // name under this root, with a password no one else chose.
        let root = pgp::fingerprint(&self.root_cert);
        let mine = locked.cert();
        for c in [&cert, &mine] {
            if pgp::root_pin(c).as_deref() != Some(root.as_str()) {
                return Err(bad("its key is not bound to this vault's root"));
            }
            if !pgp::has_userid(c, &t.name) || c.userids().count() != 1 {
                return Err(bad("its key does not carry the invited name alone"));
            }
            if pgp::password_set_by(c).is_some() {
                return Err(bad("its key says someone else chose its password"));
            }
        }
        if !locked.protected_at_least(self.kdf) {
            return Err(bad(
                "its secret key is protected by a cheaper Argon2 setting than this vault's",
            ));
        }
        if dir.row(&t.name).is_some() {
            return Err(Error::UserExists(t.name.clone()));
        }
        let fingerprint = self
            .enter_user(&t.name, t.role == "admin", &cert, r.locked_key.clone())
            .await?;
        Ok(Enrolled {
            name: t.name.clone(),
            role: t.role.clone(),
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_line_catches_one_changed_character() {
        let text = with_check(format!("{INVITATION_MAGIC}\nname: bob\n"));
        assert!(fields(&text, INVITATION_MAGIC, "invitation").is_ok());
        let typo = text.replacen("bob", "bod", 1);
        assert!(matches!(
            fields(&typo, INVITATION_MAGIC, "invitation"),
            Err(Error::BadInvitation(m)) if m.contains("check")
        ));
        let cut = text.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(matches!(
            fields(&cut, INVITATION_MAGIC, "invitation"),
            Err(Error::BadInvitation(m)) if m.contains("cut short")
        ));
    }
}
