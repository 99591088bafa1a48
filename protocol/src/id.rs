//! Self-certifying document ids: the first 16 bytes of a document's genesis change hash,
//! written as bs58check like automerge-repo's, so nobody can create a second document under an
//! id that is already taken.

use std::fmt;
use std::str::FromStr;

use automerge::ChangeHash;

/// The id of an entry or a collection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentId([u8; DocumentId::LEN]);

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a Minga id (expected bs58check of 16 bytes)")]
pub struct IdError {
    input: String,
}

impl DocumentId {
    /// Length of an id in bytes.
    pub const LEN: usize = 16;

    /// The id of the document whose first change has this hash.
    pub fn of_genesis(hash: &ChangeHash) -> Self {
        let mut bytes = [0; Self::LEN];
        bytes.copy_from_slice(&hash.0[..Self::LEN]);
        Self(bytes)
    }

    /// Whether a change with this hash may be the first change of this document.
    pub fn is_genesis(&self, hash: &ChangeHash) -> bool {
        hash.0[..Self::LEN] == self.0
    }

    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).with_check().into_string())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl FromStr for DocumentId {
    type Err = IdError;

    /// Accepts the bare id and the `automerge:` URL form.
    fn from_str(input: &str) -> Result<Self, IdError> {
        let error = || IdError {
            input: input.chars().take(80).collect(),
        };
        let encoded = input.strip_prefix("automerge:").unwrap_or(input);
        let bytes = bs58::decode(encoded)
            .with_check(None)
            .into_vec()
            .map_err(|_| error())?;
        let bytes: [u8; Self::LEN] = bytes.try_into().map_err(|_| error())?;
        Ok(Self(bytes))
    }
}

impl serde::Serialize for DocumentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DocumentId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text_and_url() {
        let id = DocumentId::of_genesis(&ChangeHash([7; 32]));
        assert_eq!(id.to_string().parse::<DocumentId>(), Ok(id));
        assert_eq!(format!("automerge:{id}").parse::<DocumentId>(), Ok(id));
    }

    #[test]
    fn refuses_bad_checksum_and_length() {
        let id = DocumentId::of_genesis(&ChangeHash([7; 32])).to_string();
        let mut broken = id.clone().into_bytes();
        broken[3] = if broken[3] == b'a' { b'b' } else { b'a' };
        assert!(
            String::from_utf8(broken)
                .unwrap()
                .parse::<DocumentId>()
                .is_err()
        );
        let long = bs58::encode([1u8; 20]).with_check().into_string();
        assert!(long.parse::<DocumentId>().is_err());
        assert!("../../etc/passwd".parse::<DocumentId>().is_err());
    }
}
