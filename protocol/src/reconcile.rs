//! Range-based set reconciliation: two peers find which entries of a collection differ in
//! O(d log n) messages, and an unchanged collection costs one small round trip.
//!
//! Each side holds a sorted set of items `(document id, digest of its heads)`. A message is a
//! list of consecutive ranges, each closed by an upper bound and carrying a fingerprint (XOR of
//! per-item hashes), the items themselves when the range is small, or nothing (the range is
//! settled). A side that receives a fingerprint it does not share splits the range; a side that
//! receives items knows the whole difference of that range and reports those ids to sync.
//!
//! An [`ItemSet`] keeps the prefix XORs of its item hashes, so any range's fingerprint costs two
//! lookups: a node keeps one per collection and updates it with every write, instead of hashing
//! every item of every range on every step.

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_RANGE_BOUND_BYTES, MAX_RANGE_ITEMS};

/// Bytes of a fingerprint and of an item digest.
pub const DIGEST_LEN: usize = 16;

/// Ranges with at most this many items are sent as items rather than split.
const ITEMS_THRESHOLD: usize = 12;
const _: () = assert!(
    ITEMS_THRESHOLD <= MAX_RANGE_ITEMS,
    "honest ranges must be accepted"
);

/// A differing range is split into this many parts.
const BRANCHING: usize = 16;

/// Most parts accepted in one message; more is a protocol violation.
pub const MAX_PARTS: usize = 4096;

/// One element of a reconciled set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Item {
    pub id: [u8; 16],
    pub digest: [u8; DIGEST_LEN],
}

/// What a range carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeBody {
    /// Settled: nothing to do.
    Skip,
    Fingerprint([u8; DIGEST_LEN]),
    /// The range's items, sorted by id, at most [`MAX_RANGE_ITEMS`].
    Items(#[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX_RANGE_ITEMS>")] Vec<Item>),
}

/// A range from the previous part's upper bound (or the start) up to `upper`, exclusive; `None`
/// is the end of the id space. A bound is the shortest id prefix that separates the ranges
/// (ids compare with it lexicographically), usually 2 or 3 bytes rather than 16.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangePart {
    pub upper: Option<Vec<u8>>,
    pub body: RangeBody,
}

/// Why a reconciliation message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error("a reconciliation message has {0} parts; at most {MAX_PARTS} are allowed")]
    TooManyParts(usize),
    #[error("reconciliation ranges are not in increasing order")]
    Unordered,
    #[error("a reconciliation range has {0} items; at most {MAX_RANGE_ITEMS} are allowed")]
    TooManyItems(usize),
    #[error("a reconciliation range's items are not in increasing order of id, or not inside it")]
    UnorderedItems,
    #[error(
        "a reconciliation range bound of {0} bytes; at most {MAX_RANGE_BOUND_BYTES} are allowed"
    )]
    BoundTooLong(usize),
}

/// The digest of a document's heads (sorted change hashes), as reconciled.
pub fn heads_digest<'a>(heads: impl IntoIterator<Item = &'a [u8; 32]>) -> [u8; DIGEST_LEN] {
    let mut sorted: Vec<&[u8; 32]> = heads.into_iter().collect();
    sorted.sort();
    let mut hasher = blake3::Hasher::new_derive_key("minga heads digest 1");
    for head in sorted {
        hasher.update(head);
    }
    truncate(hasher.finalize())
}

/// Fingerprints are XORs of item hashes, so ranges combine cheaply.
fn xor(mut a: [u8; DIGEST_LEN], b: [u8; DIGEST_LEN]) -> [u8; DIGEST_LEN] {
    a.iter_mut().zip(b).for_each(|(a, b)| *a ^= b);
    a
}

/// A reconciled set: items sorted by id, with the fingerprint of every prefix cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemSet {
    items: Vec<Item>,
    /// `prefix[i]` is the fingerprint of `items[..i]`; one longer than `items`.
    prefix: Vec<[u8; DIGEST_LEN]>,
}

impl Default for ItemSet {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl ItemSet {
    /// A set of `items`; for ids given twice, the last digest wins.
    pub fn new(mut items: Vec<Item>) -> Self {
        items.reverse();
        items.sort_by_key(|item| item.id);
        items.dedup_by_key(|item| item.id);
        let mut set = Self {
            items,
            prefix: Vec::new(),
        };
        set.refresh_from(0);
        set
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sets the digest of `id`, adding it if absent.
    pub fn upsert(&mut self, item: Item) {
        let at = match self.items.binary_search_by_key(&item.id, |i| i.id) {
            Ok(at) if self.items[at] == item => return,
            Ok(at) => {
                self.items[at] = item;
                at
            }
            Err(at) => {
                self.items.insert(at, item);
                at
            }
        };
        self.refresh_from(at);
    }

    pub fn remove(&mut self, id: &[u8; 16]) {
        if let Ok(at) = self.items.binary_search_by_key(id, |i| i.id) {
            self.items.remove(at);
            self.refresh_from(at);
        }
    }

    /// Recomputes the prefix fingerprints from index `at` on.
    fn refresh_from(&mut self, at: usize) {
        self.prefix.truncate(at + 1);
        if self.prefix.is_empty() {
            self.prefix.push([0; DIGEST_LEN]);
        }
        for item in &self.items[at..] {
            let last = *self.prefix.last().expect("never empty");
            self.prefix.push(xor(last, item_hash(item)));
        }
    }

    /// The fingerprint of `items[range]`.
    fn fingerprint(&self, range: std::ops::Range<usize>) -> [u8; DIGEST_LEN] {
        xor(self.prefix[range.start], self.prefix[range.end])
    }
}

fn item_hash(item: &Item) -> [u8; DIGEST_LEN] {
    let mut hasher = blake3::Hasher::new_derive_key("minga reconcile item 1");
    hasher.update(&item.id);
    hasher.update(&item.digest);
    truncate(hasher.finalize())
}

fn truncate(hash: blake3::Hash) -> [u8; DIGEST_LEN] {
    hash.as_bytes()[..DIGEST_LEN].try_into().expect("16 bytes")
}

/// The first message of a reconciliation: the fingerprint of the whole set.
pub fn initiate(set: &ItemSet) -> Vec<RangePart> {
    vec![RangePart {
        upper: None,
        body: RangeBody::Fingerprint(set.fingerprint(0..set.len())),
    }]
}

/// The outcome of handling one message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// The reply to send; empty when every range is settled.
    pub reply: Vec<RangePart>,
    /// Ids whose entries differ between the two sides (held by either or both), sorted.
    pub differing: Vec<[u8; 16]>,
    /// Of `differing`, the ids we hold in ranges of which the peer holds nothing at all (a new
    /// replica, or a part of the collection it never had), sorted: nothing else is bringing
    /// them, so they are worth sending whole at once. A document the peer lacks among others
    /// it holds is not here: it is most likely on its way by gossip or from another neighbour.
    pub they_lack: Vec<[u8; 16]>,
}

/// Handles a message against our set.
pub fn respond(set: &ItemSet, message: &[RangePart]) -> Result<Step, ReconcileError> {
    let items = set.items();
    if message.len() > MAX_PARTS {
        return Err(ReconcileError::TooManyParts(message.len()));
    }
    let mut step = Step::default();
    let mut start = 0usize;
    let mut lower: Option<&Vec<u8>> = None;
    for part in message {
        if let (Some(low), Some(up)) = (lower, &part.upper)
            && up <= low
        {
            return Err(ReconcileError::Unordered);
        }
        if let Some(up) = &part.upper
            && up.len() > MAX_RANGE_BOUND_BYTES
        {
            return Err(ReconcileError::BoundTooLong(up.len()));
        }
        let end = match &part.upper {
            Some(upper) => start + items[start..].partition_point(|i| i.id[..] < upper[..]),
            None => items.len(),
        };
        let ours = &items[start..end];
        match &part.body {
            RangeBody::Skip => push(&mut step.reply, part.upper.clone(), RangeBody::Skip),
            RangeBody::Fingerprint(theirs) => {
                if set.fingerprint(start..end) == *theirs {
                    push(&mut step.reply, part.upper.clone(), RangeBody::Skip);
                } else if ours.len() <= ITEMS_THRESHOLD {
                    let items = RangeBody::Items(ours.to_vec());
                    push(&mut step.reply, part.upper.clone(), items);
                } else {
                    split(&mut step.reply, set, start..end, part.upper.clone());
                }
            }
            RangeBody::Items(theirs) => {
                check_items(theirs, lower, part.upper.as_ref())?;
                compare(ours, theirs, &mut step);
                push(&mut step.reply, part.upper.clone(), RangeBody::Skip);
            }
        }
        start = end;
        lower = part.upper.as_ref();
        if part.upper.is_none() {
            break;
        }
    }
    if step.reply.iter().all(|p| p.body == RangeBody::Skip) {
        step.reply.clear();
    }
    step.differing.sort();
    step.differing.dedup();
    step.they_lack.sort();
    Ok(step)
}

/// Appends a part, merging consecutive skips.
fn push(reply: &mut Vec<RangePart>, upper: Option<Vec<u8>>, body: RangeBody) {
    if body == RangeBody::Skip
        && let Some(last) = reply.last_mut()
        && last.body == RangeBody::Skip
    {
        last.upper = upper;
        return;
    }
    reply.push(RangePart { upper, body });
}

/// Splits `set.items()[range]` into [`BRANCHING`] ranges of about equal counts, each with its
/// fingerprint.
fn split(
    reply: &mut Vec<RangePart>,
    set: &ItemSet,
    range: std::ops::Range<usize>,
    upper: Option<Vec<u8>>,
) {
    let chunk = range.len().div_ceil(BRANCHING);
    let starts: Vec<usize> = range.clone().step_by(chunk).collect();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(range.end);
        // Each range ends where the next chunk begins; the last one where the parent ended.
        let bound = if end == range.end {
            upper.clone()
        } else {
            Some(separator(&set.items()[end - 1].id, &set.items()[end].id))
        };
        reply.push(RangePart {
            upper: bound,
            body: RangeBody::Fingerprint(set.fingerprint(start..end)),
        });
    }
}

/// The shortest prefix of `next` that is greater than `last` (`last < next`).
fn separator(last: &[u8; 16], next: &[u8; 16]) -> Vec<u8> {
    let common = last.iter().zip(next).take_while(|(a, b)| a == b).count();
    next[..=common].to_vec()
}

/// Refuses a peer's items that are too many, not strictly increasing by id, or outside the
/// range `[lower, upper)` they were sent for: honest nodes send a slice of their sorted set.
fn check_items(
    theirs: &[Item],
    lower: Option<&Vec<u8>>,
    upper: Option<&Vec<u8>>,
) -> Result<(), ReconcileError> {
    if theirs.len() > MAX_RANGE_ITEMS {
        return Err(ReconcileError::TooManyItems(theirs.len()));
    }
    let increasing = theirs.windows(2).all(|w| w[0].id < w[1].id);
    let inside = theirs.iter().all(|t| {
        lower.is_none_or(|low| t.id[..] >= low[..]) && upper.is_none_or(|up| t.id[..] < up[..])
    });
    if increasing && inside {
        Ok(())
    } else {
        Err(ReconcileError::UnorderedItems)
    }
}

/// Records the ids present on one side only or with different digests in one merge walk over
/// the two sorted lists, and ours as lacking when the peer holds none of the range.
fn compare(ours: &[Item], theirs: &[Item], step: &mut Step) {
    if theirs.is_empty() {
        step.they_lack.extend(ours.iter().map(|item| item.id));
    }
    use std::cmp::Ordering;
    let (mut o, mut t) = (ours.iter().peekable(), theirs.iter().peekable());
    loop {
        let order = match (o.peek(), t.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.id.cmp(&b.id),
        };
        match order {
            Ordering::Less => {
                let a = o.next().expect("peeked");
                step.differing.push(a.id);
            }
            Ordering::Greater => step.differing.push(t.next().expect("peeked").id),
            Ordering::Equal => {
                let (a, b) = (o.next().expect("peeked"), t.next().expect("peeked"));
                if a.digest != b.digest {
                    step.differing.push(a.id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn items(map: &BTreeMap<[u8; 16], u8>) -> ItemSet {
        ItemSet::new(
            map.iter()
                .map(|(id, v)| Item {
                    id: *id,
                    digest: [*v; 16],
                })
                .collect(),
        )
    }

    /// Runs a whole reconciliation; returns the differing ids found and the messages sent.
    /// A fingerprint computed from scratch, to check the cached ones against.
    fn fingerprint(items: &[Item]) -> [u8; DIGEST_LEN] {
        items.iter().map(item_hash).fold([0; DIGEST_LEN], xor)
    }

    fn reconcile(a: &ItemSet, b: &ItemSet) -> (Vec<[u8; 16]>, usize) {
        let mut message = initiate(a);
        let mut found = Vec::new();
        let mut sides = [b, a];
        let mut rounds = 1;
        while !message.is_empty() {
            let step = respond(sides[0], &message).unwrap();
            found.extend(step.differing);
            message = step.reply;
            sides.swap(0, 1);
            rounds += 1;
            assert!(rounds < 100, "reconciliation does not terminate");
        }
        found.sort();
        found.dedup();
        (found, rounds)
    }

    fn id(n: u32) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id
    }

    #[test]
    fn equal_sets_settle_in_one_round_trip() {
        let set = ItemSet::new(
            (0..10_000)
                .map(|n| Item {
                    id: id(n * 7),
                    digest: [1; 16],
                })
                .collect(),
        );
        let first = initiate(&set);
        let step = respond(&set, &first).unwrap();
        assert_eq!(step, Step::default());
        assert!(postcard::to_allocvec(&first).unwrap().len() < 64);
    }

    #[test]
    fn an_empty_side_learns_everything() {
        let full = ItemSet::new(
            (0..2_000)
                .map(|n| Item {
                    id: id(n),
                    digest: [1; 16],
                })
                .collect(),
        );
        let empty = ItemSet::default();
        let (found, _) = reconcile(&empty, &full);
        assert_eq!(found.len(), 2_000);
        let (found, _) = reconcile(&full, &empty);
        assert_eq!(found.len(), 2_000);
    }

    /// The catch-up case: 100 entries changed and 100 added, scattered over 10,000. The bytes
    /// per differing entry are the reconciliation's share of a catch-up (recorded in
    /// `docs/benchmarks.md`); prefix bounds keep them near 300.
    #[test]
    fn scattered_differences_cost_few_bytes_each() {
        let id = |n: u32| {
            let mut id = [0u8; 16];
            id.copy_from_slice(&blake3::hash(&n.to_be_bytes()).as_bytes()[..16]);
            id
        };
        let item = |n: u32, digest: u8| Item {
            id: id(n),
            digest: [digest; 16],
        };
        let ahead = ItemSet::new((0..10_100).map(|n| item(n, 1)).collect());
        let behind = ItemSet::new(
            (0..10_000)
                .map(|n| item(n, if n % 100 == 0 { 2 } else { 1 }))
                .collect(),
        );
        let mut message = initiate(&behind);
        let mut sides = [&ahead, &behind];
        let (mut bytes, mut found) = (0, Vec::new());
        while !message.is_empty() {
            bytes += postcard::to_allocvec(&message).unwrap().len();
            let step = respond(sides[0], &message).unwrap();
            found.extend(step.differing);
            message = step.reply;
            sides.swap(0, 1);
        }
        found.sort();
        found.dedup();
        assert_eq!(found.len(), 200);
        assert!(bytes / 200 < 400, "{bytes} B for 200 differences");
    }

    fn item(n: u32, digest: u8) -> Item {
        Item {
            id: id(n),
            digest: [digest; 16],
        }
    }

    /// A range of items longer than any honest node sends is refused, not compared.
    #[test]
    fn too_many_items_in_a_range_are_refused() {
        let theirs: Vec<Item> = (0..=MAX_RANGE_ITEMS as u32).map(|n| item(n, 1)).collect();
        let message = [RangePart {
            upper: None,
            body: RangeBody::Items(theirs),
        }];
        assert_eq!(
            respond(&ItemSet::default(), &message),
            Err(ReconcileError::TooManyItems(MAX_RANGE_ITEMS + 1))
        );
        // Nor does it decode from the wire.
        let bytes = postcard::to_allocvec(&message[..]).unwrap();
        assert!(postcard::from_bytes::<Vec<RangePart>>(&bytes).is_err());
    }

    /// The merge walk needs sorted items inside their range; anything else is malformed.
    #[test]
    fn unsorted_or_misplaced_items_are_refused() {
        let set = ItemSet::new((0..5).map(|n| item(n, 1)).collect());
        let unsorted = [RangePart {
            upper: None,
            body: RangeBody::Items(vec![item(2, 1), item(1, 1)]),
        }];
        assert_eq!(
            respond(&set, &unsorted),
            Err(ReconcileError::UnorderedItems)
        );
        let outside = [RangePart {
            upper: Some(id(3)[..4].to_vec()),
            body: RangeBody::Items(vec![item(1, 1), item(4, 1)]),
        }];
        assert_eq!(respond(&set, &outside), Err(ReconcileError::UnorderedItems));
        let long_bound = [RangePart {
            upper: Some(vec![7; MAX_RANGE_BOUND_BYTES + 1]),
            body: RangeBody::Skip,
        }];
        assert_eq!(
            respond(&set, &long_bound),
            Err(ReconcileError::BoundTooLong(MAX_RANGE_BOUND_BYTES + 1))
        );
    }

    /// Items compared by the merge walk: one only here, one only there, one changed, one equal.
    #[test]
    fn items_are_compared_in_one_walk() {
        let ours = ItemSet::new(vec![item(1, 1), item(2, 1), item(4, 1)]);
        let message = [RangePart {
            upper: None,
            body: RangeBody::Items(vec![item(2, 9), item(3, 1), item(4, 1)]),
        }];
        let step = respond(&ours, &message).unwrap();
        assert_eq!(step.differing, [id(1), id(2), id(3)]);
        assert!(step.they_lack.is_empty(), "it holds others of the range");
        assert!(step.reply.is_empty());
    }

    /// A range the peer holds nothing of: all of ours are lacking, to be sent whole.
    #[test]
    fn a_range_the_peer_holds_none_of_is_lacking_whole() {
        let ours = ItemSet::new(vec![item(1, 1), item(2, 1)]);
        let message = [RangePart {
            upper: None,
            body: RangeBody::Items(Vec::new()),
        }];
        let step = respond(&ours, &message).unwrap();
        assert_eq!(step.differing, [id(1), id(2)]);
        assert_eq!(step.they_lack, [id(1), id(2)]);
    }

    proptest! {
        #[test]
        fn finds_exactly_the_symmetric_difference(
            shared in proptest::collection::btree_map(any::<u16>(), any::<u8>(), 0..600),
            only_a in proptest::collection::btree_map(any::<u16>(), any::<u8>(), 0..20),
            only_b in proptest::collection::btree_map(any::<u16>(), any::<u8>(), 0..20),
        ) {
            let key = |k: &u16| id(u32::from(*k));
            let mut a: BTreeMap<[u8; 16], u8> = shared.iter().map(|(k, v)| (key(k), *v)).collect();
            let mut b = a.clone();
            for (k, v) in &only_a { a.insert(key(k), *v); }
            for (k, v) in &only_b { b.insert(key(k), v.wrapping_add(1)); }
            let mut expected: Vec<[u8; 16]> = a.keys().chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k)).copied().collect();
            expected.sort();
            expected.dedup();
            let (found, _) = reconcile(&items(&a), &items(&b));
            prop_assert_eq!(found, expected);
        }

        /// Updating a set in place leaves the same items and fingerprints as building it anew.
        #[test]
        fn updates_keep_the_cached_fingerprints_true(
            start in proptest::collection::btree_map(any::<u8>(), any::<u8>(), 0..40),
            updates in proptest::collection::vec((any::<u8>(), proptest::option::of(any::<u8>())), 0..40),
        ) {
            let mut model: BTreeMap<[u8; 16], u8> =
                start.iter().map(|(k, v)| (id(u32::from(*k)), *v)).collect();
            let mut set = items(&model);
            for (k, digest) in updates {
                let key = id(u32::from(k));
                match digest {
                    Some(v) => {
                        model.insert(key, v);
                        set.upsert(Item { id: key, digest: [v; 16] });
                    }
                    None => {
                        model.remove(&key);
                        set.remove(&key);
                    }
                }
            }
            let fresh = items(&model);
            prop_assert_eq!(&set, &fresh);
            for end in 0..=set.len() {
                prop_assert_eq!(set.fingerprint(0..end), fingerprint(&fresh.items()[..end]));
            }
        }
    }
}
