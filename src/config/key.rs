//! The code key of a development machine: made once, kept in a file of its own.
//!
//! Without `crypto.key` and outside production, herald does not fall back to a key
//! anyone could read in its source: it draws a random one on first start into
//! `crypto.key_file` (mode 0600) and reuses it after, so `herald serve` works with
//! no configuration and codes stored on one machine stay readable there.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;

use super::{invalid, ConfigError};

/// The key in `path`, made first if there is none. Safe with several processes
/// starting at once: the key is written to a file of this process's own and linked
/// into place, and a process that finds one there already reads that one.
///
/// # Errors
/// The file cannot be read or written, or holds no key.
pub fn load_or_create(path: &Path) -> Result<[u8; 32], ConfigError> {
    let key_error = |message: String| invalid("crypto.key_file", format!("{}: {message}", path.display()));
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| key_error(e.to_string()))?;
        }
        let tmp = path.with_extension(format!("tmp.{}.{:x}", std::process::id(), rand::random::<u64>()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
            writeln!(f, "{key}")?;
            f.sync_all()?;
            match std::fs::hard_link(&tmp, path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        written.map_err(|e| key_error(e.to_string()))?;
    }
    let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| key_error("is not base64 of 32 bytes".into()))?;
    bytes.try_into().map_err(|_| key_error("must hold base64 of exactly 32 bytes".into()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_key_is_made_once_private_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("herald-key-{:x}", rand::random::<u64>()));
        let path = dir.join("sub/herald.key");
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), first);
        let other = dir.join("other.key");
        assert_ne!(load_or_create(&other).unwrap(), first, "each machine its own key");
        std::fs::write(&other, "garbage").unwrap();
        assert!(load_or_create(&other).unwrap_err().to_string().contains("crypto.key_file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
