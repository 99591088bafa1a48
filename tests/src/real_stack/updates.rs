//! Updates made on a cluster's nodes through their HTTP API, and when each node came to hold
//! each one: a node holds an update once its store has the update's change (by hash), which
//! stays true whatever merges follow.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use minga_protocol::DocumentId;
use minga_simulations::metrics::time_to_fraction;
use serde_json::json;

use super::LocalNode;
use crate::content;

/// One change made on one node.
#[derive(Debug, Clone)]
pub struct Update {
    pub entry: DocumentId,
    /// The change's hash (hex): the entry's only head right after it was made.
    pub change: String,
    /// Index of the node it was made on.
    pub origin: usize,
    /// An edit of an existing entry, or a new entry.
    pub edit: bool,
    /// Text the update added (title and body of a new entry, the sentence of an edit), bytes.
    pub text_bytes: usize,
    pub made: Instant,
    /// For each node, how long after `made` it was first seen holding the change.
    pub held_after: Vec<Option<Duration>>,
}

impl Update {
    /// Creates practice `i` of `seed` in `collection` on node `origin`.
    pub fn create(
        nodes: &[LocalNode],
        origin: usize,
        collection: &str,
        seed: u64,
        i: u64,
    ) -> Result<Update> {
        let node = &nodes[origin];
        let new = content::practice(seed, i, collection);
        let (status, answer) = node.post("/api/v1/entries", &new.to_string());
        ensure!(
            status == 201,
            "creating entry {i} answered {status}: {answer}"
        );
        let entry: DocumentId = answer["id"].as_str().context("the new id")?.parse()?;
        let made = Instant::now();
        let view = node
            .store()?
            .entry(&entry)?
            .context("the new entry in its store")?;
        let text_bytes = view.title.len() + view.body.len();
        Update::made(
            nodes.len(),
            entry,
            &view.heads,
            origin,
            false,
            text_bytes,
            made,
        )
    }

    /// Appends one sentence (edit `k` of `seed`) to `entry`'s body on node `origin`.
    pub fn edit(
        nodes: &[LocalNode],
        origin: usize,
        entry: DocumentId,
        seed: u64,
        k: u64,
    ) -> Result<Update> {
        let node = &nodes[origin];
        let before = node.store()?.entry(&entry)?.context("the edited entry")?;
        let body = content::small_edit(seed, k, &before.body);
        let text_bytes = body.len() - before.body.len();
        let path = format!("/api/v1/entries/{entry}");
        let (status, answer) = node.patch(&path, &json!({ "body": body }).to_string());
        ensure!(status == 200, "PATCH {entry} answered {status}: {answer}");
        let made = Instant::now();
        let heads: Vec<String> = answer["heads"]
            .as_array()
            .context("the edited entry's heads")?
            .iter()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect();
        Update::made(nodes.len(), entry, &heads, origin, true, text_bytes, made)
    }

    fn made(
        nodes: usize,
        entry: DocumentId,
        heads: &[String],
        origin: usize,
        edit: bool,
        text_bytes: usize,
        made: Instant,
    ) -> Result<Update> {
        ensure!(
            heads.len() == 1,
            "a local change is the entry's only head, not {heads:?}"
        );
        let mut held_after = vec![None; nodes];
        held_after[origin] = Some(Duration::ZERO);
        Ok(Update {
            entry,
            change: heads[0].clone(),
            origin,
            edit,
            text_bytes,
            made,
            held_after,
        })
    }

    /// Whether `node`'s store holds this update's change (a stopped node is not read: it
    /// holds what it held when it stopped, and is read again once it runs).
    pub fn held_by(&self, node: &LocalNode) -> Result<bool> {
        if !node.online() {
            return Ok(false);
        }
        Ok(node
            .store()?
            .signatures(&self.entry)?
            .iter()
            .any(|(hash, _)| hash.to_string() == self.change))
    }

    pub fn holders(&self) -> usize {
        self.held_after.iter().flatten().count()
    }

    /// Time until `fraction` of the nodes held it (`None` if they never did).
    pub fn time_to(&self, fraction: f64) -> Option<Duration> {
        self.time_to_among(fraction, |_| true)
    }

    /// Time until `fraction` of the nodes `among` picks held it: an update made during a
    /// partition spreads within its side, and is measured there.
    pub fn time_to_among(&self, fraction: f64, among: impl Fn(usize) -> bool) -> Option<Duration> {
        let counted: Vec<Option<Duration>> = (0..self.held_after.len())
            .filter(|&i| among(i))
            .map(|i| self.held_after[i])
            .collect();
        let times: Vec<Duration> = counted.iter().flatten().copied().collect();
        time_to_fraction(times, counted.len(), fraction)
    }

    /// When the last node came to hold it (`None` while some node lacks it).
    pub fn everywhere_at(&self) -> Option<Instant> {
        let last = self
            .held_after
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()?;
        Some(self.made + last.into_iter().max().unwrap_or_default())
    }

    /// Fraction of the nodes holding it `after` it was made.
    pub fn fraction_at(&self, after: Duration) -> f64 {
        let held = self.held_after.iter().flatten().filter(|t| **t <= after);
        held.count() as f64 / self.held_after.len() as f64
    }
}

/// Checks every node for every update not yet held everywhere; answers how many are.
pub fn poll(nodes: &[LocalNode], updates: &mut [Update]) -> Result<usize> {
    poll_where(nodes, updates, |_, _| true)
}

/// [`poll`], looking only at the nodes `watch` picks for each update (during a partition the
/// other side need not be read every few milliseconds: a leak stays held, and is found by a
/// full poll at the heal).
pub fn poll_where(
    nodes: &[LocalNode],
    updates: &mut [Update],
    watch: impl Fn(&Update, usize) -> bool,
) -> Result<usize> {
    let mut complete = 0;
    for update in updates.iter_mut() {
        for (i, node) in nodes.iter().enumerate() {
            if update.held_after[i].is_none() && watch(update, i) && update.held_by(node)? {
                update.held_after[i] = Some(update.made.elapsed());
            }
        }
        complete += usize::from(update.holders() == nodes.len());
    }
    Ok(complete)
}

/// Waits until every node holds every update, polling every 50 ms.
pub fn wait_all_held(nodes: &[LocalNode], updates: &mut [Update], timeout: Duration) -> Result<()> {
    let total = updates.len();
    let complete = Cell::new(0);
    let fewest = Cell::new(0);
    crate::measure::wait_for(
        timeout,
        "every node to hold every update",
        Duration::from_millis(50),
        || {
            complete.set(poll(nodes, updates)?);
            fewest.set(updates.iter().map(Update::holders).min().unwrap_or(0));
            Ok(complete.get() == total)
        },
        || {
            Ok(format!(
                "{} of {total} updates everywhere, the least spread on {} of {} nodes",
                complete.get(),
                fewest.get(),
                nodes.len()
            ))
        },
    )
}

/// The entries whose heads differ between nodes (every entry an update touched).
pub fn differing_heads(nodes: &[LocalNode], updates: &[Update]) -> Result<Vec<DocumentId>> {
    let entries: BTreeSet<DocumentId> = updates.iter().map(|u| u.entry).collect();
    let mut differing = Vec::new();
    for entry in entries {
        let mut seen = BTreeSet::new();
        for node in nodes {
            seen.insert(node.store()?.entry(&entry)?.map(|e| e.heads));
        }
        if seen.len() != 1 {
            differing.push(entry);
        }
    }
    Ok(differing)
}
