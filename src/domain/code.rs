//! Invite codes: how they are drawn, and how they are kept at rest.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::Rng;

const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const NONCE_LEN: usize = 12;

/// A plain invite code. Not `Display`, and its `Debug` is redacted: a code must
/// never reach a log line by accident.
pub struct InviteCode(String);

/// Redacted: the code itself never appears in `{:?}` output.
impl std::fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteCode(***)")
    }
}

impl InviteCode {
    /// `len` characters drawn uniformly from `A–Z0–9` by the OS-seeded CSPRNG.
    /// `gen_range` samples by rejection, so there is no modulo bias.
    pub fn generate(len: usize) -> Self {
        let mut rng = rand::thread_rng();
        InviteCode((0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect())
    }

    pub fn from_plain(s: String) -> Self {
        InviteCode(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with what a user typed: case-insensitive (the alphabet has one case)
    /// and in constant time for equal lengths.
    pub fn matches(&self, typed: &str) -> bool {
        let typed = typed.trim().to_ascii_uppercase();
        if typed.len() != self.0.len() {
            return false;
        }
        typed.bytes().zip(self.0.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// AES-256-GCM under `crypto.key`. The user id is bound in as associated data, so a
/// ciphertext copied to another user's row does not decrypt.
#[derive(Clone)]
pub struct CodeCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for CodeCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeCipher(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invite code could not be decrypted (wrong crypto.key, or a damaged row)")]
pub struct DecryptError;

impl CodeCipher {
    pub fn new(key: &[u8; 32]) -> Self {
        CodeCipher { cipher: Aes256Gcm::new(key.into()) }
    }

    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, code: &InviteCode, user_id: &str) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload { msg: code.0.as_bytes(), aad: user_id.as_bytes() };
        // Encryption with a 12-byte nonce and a message far below GCM's size limit
        // cannot fail.
        let sealed = self.cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encrypt");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Seals any other secret herald keeps (a ZITADEL provider's signing keys, a
    /// ZITADEL message that holds a code) the way codes are sealed, bound to `owner`.
    pub fn seal_bytes(&self, plain: &[u8], owner: &str) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload { msg: plain, aad: owner.as_bytes() };
        // As in `seal`: a 12-byte nonce and a message far below GCM's limit cannot fail.
        let sealed = self.cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encrypt");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Opens what [`CodeCipher::seal_bytes`] sealed for the same `owner`.
    ///
    /// # Errors
    /// A wrong key, another owner, or a damaged value.
    pub fn open_bytes(&self, sealed: &[u8], owner: &str) -> Result<Vec<u8>, DecryptError> {
        if sealed.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: owner.as_bytes() })
            .map_err(|_| DecryptError)
    }

    pub fn open(&self, sealed: &[u8], user_id: &str) -> Result<InviteCode, DecryptError> {
        if sealed.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: user_id.as_bytes() })
            .map_err(|_| DecryptError)?;
        String::from_utf8(plain).map(InviteCode).map_err(|_| DecryptError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_alphabet_and_length() {
        for len in [1, 6, 20] {
            let c = InviteCode::generate(len);
            assert_eq!(c.expose().len(), len);
            assert!(c.expose().bytes().all(|b| ALPHABET.contains(&b)));
        }
    }

    #[test]
    fn every_symbol_appears_roughly_uniformly() {
        let mut counts = [0u32; 36];
        for _ in 0..6_000 {
            for b in InviteCode::generate(6).expose().bytes() {
                counts[ALPHABET.iter().position(|&a| a == b).unwrap()] += 1;
            }
        }
        // 36,000 draws: 1,000 expected per symbol; 800..1200 is > 6 sigma wide.
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn sealed_codes_open_only_for_their_user() {
        let cipher = CodeCipher::new(&[7u8; 32]);
        let code = InviteCode::generate(6);
        let sealed = cipher.seal(&code, "42");
        assert!(!sealed.windows(6).any(|w| w == code.expose().as_bytes()));
        assert!(cipher.open(&sealed, "42").unwrap().matches(code.expose()));
        assert!(cipher.open(&sealed, "43").is_err());
        assert!(CodeCipher::new(&[8u8; 32]).open(&sealed, "42").is_err());
    }

    #[test]
    fn sealed_bytes_open_only_for_their_owner() {
        let cipher = CodeCipher::new(&[7u8; 32]);
        let sealed = cipher.seal_bytes(b"signing-key", "p1");
        assert_eq!(cipher.open_bytes(&sealed, "p1").unwrap(), b"signing-key");
        assert!(cipher.open_bytes(&sealed, "p2").is_err());
    }

    #[test]
    fn matching_ignores_case_and_rejects_others() {
        let c = InviteCode::from_plain("K3M9QX".into());
        assert!(c.matches("k3m9qx"));
        assert!(c.matches(" K3M9QX "));
        assert!(!c.matches("K3M9QY"));
        assert!(!c.matches("K3M9Q"));
    }
}
