//! Account secrets: argon2id password hashes and opaque API tokens.
//!
//! Passwords are hashed with argon2id (the crate's recommended parameters) and
//! a fresh random salt. Tokens are 256 random bits from the operating system,
//! shown to the client once as hex; only their SHA-256 is stored, so a database
//! leak gives no usable token. Hashing is slow on purpose: callers run it off
//! the async executor.
//!
//! A check reuses one argon2 work area per thread (19 MiB at the default
//! cost) instead of allocating a fresh one: the allocator serves argon2's
//! 64-byte-aligned blocks in a way that left each freed area unusable for the
//! next, so every check made the process ~19 MiB bigger until memory was
//! fragmented enough to reuse. The few threads that check passwords (the
//! password gate's) each keep one area.

use std::cell::RefCell;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Password;

/// A password hash could not be made (never expected with valid parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashingError(String);

/// Hashes a password into a PHC string (`$argon2id$v=19$...`).
pub fn hash_password(password: &Password) -> Result<String, HashingError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| HashingError(error.to_string()))
}

/// Work areas larger than this (in 1 KiB blocks) are not kept between checks.
const MAX_KEPT_BLOCKS: usize = 4 * Params::DEFAULT_M_COST as usize;

thread_local! {
    /// This thread's argon2 work area, reused by every check it runs.
    static WORK_AREA: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// True when `candidate` matches `stored_hash`; a malformed stored hash never matches.
pub fn verify_password(candidate: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .ok()
        .and_then(|parsed| matches(candidate, &parsed))
        .unwrap_or(false)
}

/// Recomputes the hash with the stored parameters and salt; compares in
/// constant time (`Output`'s equality). `None` when the stored hash is unusable.
fn matches(candidate: &str, stored: &PasswordHash<'_>) -> Option<bool> {
    let (salt, expected) = (stored.salt?, stored.hash?);
    let algorithm = Algorithm::try_from(stored.algorithm).ok()?;
    let version = match stored.version {
        Some(version) => Version::try_from(version).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(stored).ok()?;
    let blocks = params.block_count();
    let hasher = Argon2::new(algorithm, version, params);
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).ok()?;
    let mut computed = vec![0u8; expected.len()];
    let hashed = if blocks <= MAX_KEPT_BLOCKS {
        WORK_AREA.with_borrow_mut(|area| {
            if area.len() < blocks {
                area.resize(blocks, Block::default());
            }
            hasher.hash_password_into_with_memory(
                candidate.as_bytes(),
                salt,
                &mut computed,
                &mut area[..blocks],
            )
        })
    } else {
        hasher.hash_password_into(candidate.as_bytes(), salt, &mut computed)
    };
    hashed.ok()?;
    Some(Output::new(&computed).ok()? == expected)
}

/// A newly issued API token: the text for the client and the hash to store.
pub struct IssuedToken {
    /// 64 hex characters (256 bits), shown to the client once.
    pub text: String,
    /// SHA-256 of the text: the only form that is stored.
    pub hash: Vec<u8>,
}

/// Draws a new random token.
pub fn issue_token() -> IssuedToken {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let text = hex::encode(bytes);
    let hash = hash_token(&text);
    IssuedToken { text, hash }
}

/// The stored form of a token.
pub fn hash_token(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// A random password for an account nobody chose one for (24 characters).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_another_does_not() {
        let password = Password::parse("correct horse").unwrap();
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let password = Password::parse("correct horse").unwrap();
        assert_ne!(
            hash_password(&password).unwrap(),
            hash_password(&password).unwrap()
        );
    }

    #[test]
    fn hashes_made_with_other_parameters_still_verify() {
        let params = Params::new(8 * 1024, 1, 1, None).unwrap();
        let hasher = Argon2::new(Algorithm::Argon2i, Version::V0x10, params);
        let salt = SaltString::generate(&mut OsRng);
        let hash = hasher
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
    }

    #[test]
    fn a_malformed_stored_hash_never_matches() {
        assert!(!verify_password("anything", "not-a-hash"));
    }

    #[test]
    fn tokens_are_random_and_stored_as_their_hash() {
        let first = issue_token();
        let second = issue_token();
        assert_eq!(first.text.len(), 64);
        assert_ne!(first.text, second.text);
        assert_eq!(first.hash, hash_token(&first.text));
        assert_ne!(first.hash, first.text.as_bytes());
    }

    #[test]
    fn generated_passwords_are_long_enough() {
        let password = generate_password();
        assert_eq!(password.len(), 24);
        assert!(Password::parse(&password).is_ok());
    }
}
