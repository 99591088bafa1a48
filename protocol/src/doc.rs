//! Small typed accessors over automerge documents, shared by entries and collections.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc, ScalarValue, Value};

/// A string scalar, or the content of a Text object, at `key` of `obj`.
pub(crate) fn string<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
        _ => None,
    }
}

pub(crate) fn int<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key).ok()??.0 {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Some(*i),
            ScalarValue::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn float<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<f64> {
    match doc.get(obj, key).ok()??.0 {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::F64(f) => Some(*f),
            ScalarValue::Int(i) => Some(*i as f64),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn boolean<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<bool> {
    match doc.get(obj, key).ok()??.0 {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Boolean(b) => Some(*b),
            _ => None,
        },
        _ => None,
    }
}

/// The object at `key`, if it is of type `kind`.
pub(crate) fn object<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str, kind: ObjType) -> Option<ObjId> {
    match doc.get(obj, key).ok()?? {
        (Value::Object(found), id) if found == kind => Some(id),
        _ => None,
    }
}

/// A list of strings at `key`; non-string items are skipped.
pub(crate) fn strings<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Vec<String> {
    let Some(list) = object(doc, obj, key, ObjType::List) else {
        return Vec::new();
    };
    (0..doc.length(&list))
        .filter_map(|i| match doc.get(&list, i).ok()?? {
            (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// The maps in the list at `key`.
pub(crate) fn maps<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Vec<ObjId> {
    let Some(list) = object(doc, obj, key, ObjType::List) else {
        return Vec::new();
    };
    (0..doc.length(&list))
        .filter_map(|i| match doc.get(&list, i).ok()?? {
            (Value::Object(ObjType::Map), id) => Some(id),
            _ => None,
        })
        .collect()
}

/// Replaces the list at `key` with these strings.
pub(crate) fn put_strings<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
    items: &[String],
) -> Result<(), AutomergeError> {
    let list = tx.put_object(obj, key, ObjType::List)?;
    for (i, item) in items.iter().enumerate() {
        tx.insert(&list, i, item.as_str())?;
    }
    Ok(())
}

/// Replaces the list at `key` with one map per item, each written by `fill`.
pub(crate) fn put_maps<T: Transactable, I>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
    items: &[I],
    fill: impl Fn(&mut T, &ObjId, &I) -> Result<(), AutomergeError>,
) -> Result<(), AutomergeError> {
    let list = tx.put_object(obj, key, ObjType::List)?;
    for (i, item) in items.iter().enumerate() {
        let map = tx.insert_object(&list, i, ObjType::Map)?;
        fill(tx, &map, item)?;
    }
    Ok(())
}

/// Creates a Text object at `key` holding `text`.
pub(crate) fn put_text<T: Transactable + ReadDoc>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
    text: &str,
) -> Result<(), AutomergeError> {
    // One batch for the whole text: far cheaper than a splice, which inserts op by op.
    let value = automerge::hydrate::Value::text(tx.text_encoding(), text);
    tx.batch_create_object(obj, key, &value, false).map(|_| ())
}

/// Makes the Text at `key` read `text` through a character diff, so concurrent edits merge.
pub(crate) fn update_text<T: Transactable + ReadDoc>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
    text: &str,
) -> Result<(), AutomergeError> {
    match object(tx, obj, key, ObjType::Text) {
        Some(id) => tx.update_text(&id, text),
        None => put_text(tx, obj, key, text),
    }
}
