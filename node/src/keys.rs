//! The node's two ed25519 keys, as files of mode 0600 in the data dir: the network key (its
//! libp2p identity) and the author key (signs content; exported to move an author elsewhere).

use std::fs;
use std::io;
use std::path::Path;

use minga_protocol::{AuthorId, AuthorKey};

use crate::datadir::{DataDir, write_atomic};

/// First word of an exported author key, so a wrong file is recognised.
const EXPORT_TAG: &str = "minga-author-key-1";

/// The keys of a node.
#[derive(Debug)]
pub struct Keys {
    pub author: AuthorKey,
    /// Secret of the network key; the peer id is derived from its public half.
    pub network: [u8; 32],
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("key file {path} is not a minga key: {reason}")]
    Invalid { path: String, reason: String },
}

impl Keys {
    /// Loads both keys, creating the missing ones from the system's randomness.
    pub fn load_or_create(dir: &DataDir) -> Result<Self, KeyError> {
        let author = load_or_create_secret(&dir.author_key_file())?;
        let network = load_or_create_secret(&dir.network_key_file())?;
        Ok(Keys {
            author: AuthorKey::from_bytes(&author),
            network,
        })
    }

    /// The libp2p peer id of the network key (`12D3KooW…`).
    pub fn peer_id(&self) -> String {
        let public = ed25519_dalek::SigningKey::from_bytes(&self.network).verifying_key();
        // Protobuf PublicKey { Type = Ed25519 (1), Data = 32 bytes }, under an identity multihash.
        let mut bytes = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
        bytes.extend_from_slice(public.as_bytes());
        bs58::encode(bytes).into_string()
    }
}

/// The text of an exported author key.
pub fn export_author(dir: &DataDir) -> Result<String, KeyError> {
    let secret = load_secret(&dir.author_key_file())?;
    let id = AuthorKey::from_bytes(&secret).id();
    Ok(format!("{EXPORT_TAG} {} {id}\n", hex::encode(secret)))
}

/// Replaces the author key with an exported one; returns its public id.
pub fn import_author(dir: &DataDir, exported: &str, origin: &Path) -> Result<AuthorId, KeyError> {
    let invalid = |reason: &str| KeyError::Invalid {
        path: origin.display().to_string(),
        reason: reason.to_owned(),
    };
    let mut words = exported.split_whitespace();
    if words.next() != Some(EXPORT_TAG) {
        return Err(invalid("it does not start with minga-author-key-1"));
    }
    let secret = parse_secret(words.next().unwrap_or("")).ok_or_else(|| invalid("bad secret"))?;
    let key = AuthorKey::from_bytes(&secret);
    if let Some(claimed) = words.next()
        && claimed != key.id().to_string()
    {
        return Err(invalid(
            "the public key does not match the secret (damaged file?)",
        ));
    }
    dir.create()
        .map_err(|source| io_error(&dir.author_key_file(), source))?;
    write_secret(&dir.author_key_file(), &secret)?;
    Ok(key.id())
}

fn load_or_create_secret(path: &Path) -> Result<[u8; 32], KeyError> {
    if path.exists() {
        return load_secret(path);
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| io_error(path, io::Error::other(e.to_string())))?;
    write_secret(path, &secret)?;
    Ok(secret)
}

fn load_secret(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = fs::read_to_string(path).map_err(|source| io_error(path, source))?;
    parse_secret(text.trim()).ok_or_else(|| KeyError::Invalid {
        path: path.display().to_string(),
        reason: "expected 64 hex digits".into(),
    })
}

fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), KeyError> {
    write_atomic(path, format!("{}\n", hex::encode(secret)).as_bytes(), 0o600)
        .map_err(|source| io_error(path, source))
}

fn parse_secret(text: &str) -> Option<[u8; 32]> {
    let mut secret = [0u8; 32];
    hex::decode_to_slice(text, &mut secret).ok()?;
    Some(secret)
}

fn io_error(path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_private_files_and_survive_export_import() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path());
        dir.create().unwrap();
        let keys = Keys::load_or_create(&dir).unwrap();
        let mode = fs::metadata(dir.author_key_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(keys.peer_id().starts_with("12D3KooW"));

        let exported = export_author(&dir).unwrap();
        let other = DataDir::new(temp.path().join("other"));
        let id = import_author(&other, &exported, Path::new("backup")).unwrap();
        assert_eq!(id, keys.author.id());
        assert_eq!(
            Keys::load_or_create(&other).unwrap().author.id(),
            keys.author.id()
        );
        assert!(import_author(&other, "garbage", Path::new("x")).is_err());
    }
}
