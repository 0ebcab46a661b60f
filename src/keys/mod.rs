//! Key management: OpenPGP user and root keys, and root-key recovery.

pub mod pgp;
pub mod recovery;
