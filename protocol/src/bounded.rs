//! Deserializers that refuse a list or a text longer than a bound while it is decoded, for the
//! fields of wire messages: a peer's declared length is checked before any item is read, so a
//! frame of tiny items cannot make the node build millions of them.
//!
//! Used as `#[serde(deserialize_with = "crate::bounded::vec::<_, _, N>")]`; encoding is unchanged.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

/// A `Vec<T>` of at most `N` items.
pub fn vec<'de, D, T, const N: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(BoundedSeq::<T, N>(PhantomData))
}

/// A `String` of at most `N` bytes.
pub fn string<'de, D, const N: usize>(deserializer: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    if text.len() > N {
        return Err(D::Error::custom(format!(
            "a text of {} bytes, over the limit of {N}",
            text.len()
        )));
    }
    Ok(text)
}

/// A `Vec<u8>` of at most `N` bytes.
pub fn bytes<'de, D, const N: usize>(deserializer: D) -> Result<Vec<u8>, D::Error>
where
    D: Deserializer<'de>,
{
    vec::<D, u8, N>(deserializer)
}

struct BoundedSeq<T, const N: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for BoundedSeq<T, N> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of at most {N} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let declared = seq.size_hint().unwrap_or(0);
        if declared > N {
            return Err(A::Error::custom(format!(
                "a list of {declared} items, over the limit of {N}"
            )));
        }
        let mut items = Vec::with_capacity(declared);
        while let Some(item) = seq.next_element()? {
            if items.len() == N {
                return Err(A::Error::custom(format!(
                    "a list over the limit of {N} items"
                )));
            }
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Message {
        #[serde(deserialize_with = "super::vec::<_, _, 3>")]
        items: Vec<u32>,
        #[serde(deserialize_with = "super::string::<_, 5>")]
        text: String,
    }

    fn decode(items: Vec<u32>, text: &str) -> Result<Message, postcard::Error> {
        let message = Message {
            items,
            text: text.into(),
        };
        postcard::from_bytes(&postcard::to_allocvec(&message).unwrap())
    }

    #[test]
    fn lists_and_texts_within_their_bounds_decode() {
        let message = decode(vec![1, 2, 3], "hola").unwrap();
        assert_eq!(message.items, [1, 2, 3]);
        assert_eq!(message.text, "hola");
    }

    #[test]
    fn longer_ones_are_refused() {
        assert!(decode(vec![1, 2, 3, 4], "hola").is_err());
        assert!(decode(vec![1], "buenas").is_err());
    }

    /// A declared length of four billion items with no items behind it is refused before any
    /// is read (postcard reads the length first).
    #[test]
    fn a_declared_length_is_refused_before_reading() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(postcard::from_bytes::<Message>(&bytes).is_err());
    }
}
