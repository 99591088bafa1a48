//! Where a command's operation runs: through a running node's HTTP API, or, when no node holds
//! the data dir, on the store opened here. Both answer with the same JSON.

use std::time::Duration;

use anyhow::{Context, anyhow};
use minga_node::bundle::{ExportRequest, ImportRequest, Progress};
use minga_node::queries::{self, ListParams, Visibility};
use minga_node::{Commons, DataDir, SearchIndex};
use minga_protocol::NewCollection;
use minga_protocol::entry::{EntryPatch, NewEntry};
use serde::Serialize;
use serde_json::{Value, json};

/// One operation of the API contract.
#[derive(Debug)]
pub enum Op {
    Status,
    ListCollections { available: bool },
    CreateCollection(NewCollection),
    Follow { id: String, follow: bool },
    Add(Box<NewEntry>),
    Edit { id: String, patch: Box<EntryPatch> },
    Delete { id: String, reason: String },
    List(ListParams),
    Show { id: String },
    Peers,
    Block { peer: String, block: bool },
    Export(ExportRequest),
    Import(ImportRequest),
}

/// A bundle of several GiB takes a while to write or verify.
const BUNDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub enum Backend {
    /// A node is running: talk to its API.
    Remote {
        base: String,
        agent: ureq::Agent,
        /// The data dir's API token, sent with every request (writes need it on a LAN).
        token: Option<String>,
    },
    /// No node: the commons, opened (and locked) by this process.
    Local(Box<Commons>),
}

impl Backend {
    /// The running node if `api.addr` names one that answers, else the store itself.
    pub fn connect(dir: &DataDir) -> anyhow::Result<Backend> {
        if let Some(addr) = dir.read_api_addr() {
            let agent = ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(2))
                .timeout(Duration::from_secs(120))
                .build();
            let base = format!("http://{addr}");
            if agent.get(&format!("{base}/api/v1/status")).call().is_ok() {
                let token = dir.read_api_token();
                return Ok(Backend::Remote { base, agent, token });
            }
            tracing::debug!("no node answers at {addr}; opening the store directly");
        }
        let commons = Commons::open(dir, crate::config_file::load(dir.root())?.cache_bytes(None))?;
        Ok(Backend::Local(Box::new(commons)))
    }

    pub fn run(&mut self, op: Op) -> anyhow::Result<Value> {
        self.run_with_progress(op, &mut |_| {})
    }

    /// [`Self::run`], reporting the progress of a long operation run here (an export or an
    /// import without a node).
    pub fn run_with_progress(
        &mut self,
        op: Op,
        progress: &mut dyn FnMut(&Progress),
    ) -> anyhow::Result<Value> {
        match self {
            Backend::Remote { base, agent, token } => remote(agent, base, token.as_deref(), op),
            Backend::Local(commons) => local(commons, op, progress),
        }
    }
}

fn remote(agent: &ureq::Agent, base: &str, token: Option<&str>, op: Op) -> anyhow::Result<Value> {
    let path = |p: &str| format!("{base}/api/v1/{p}");
    let request = |method: &str, url: String| authorized(agent.request(method, &url), token);
    let response = match op {
        Op::Status => request("GET", path("status")).call(),
        Op::ListCollections { available } => {
            request("GET", path(&format!("collections?available={available}"))).call()
        }
        Op::CreateCollection(new) => request("POST", path("collections")).send_json(new),
        Op::Follow { id, follow } => {
            let method = if follow { "POST" } else { "DELETE" };
            request(
                method,
                path(&format!("collections/{}/follow", segment(&id))),
            )
            .call()
        }
        Op::Add(new) => request("POST", path("entries")).send_json(new),
        Op::Edit { id, patch } => {
            request("PATCH", path(&format!("entries/{}", segment(&id)))).send_json(patch)
        }
        Op::Delete { id, reason } => request("DELETE", path(&format!("entries/{}", segment(&id))))
            .send_json(json!({"reason": reason})),
        Op::List(params) => {
            let query = serde_urlencoded::to_string(&params).context("encoding the query")?;
            request("GET", path(&format!("entries?{query}"))).call()
        }
        Op::Show { id } => request("GET", path(&format!("entries/{}", segment(&id)))).call(),
        Op::Peers => request("GET", path("peers")).call(),
        Op::Block { peer, block } => {
            let method = if block { "POST" } else { "DELETE" };
            request(method, path(&format!("peers/{}/block", segment(&peer)))).call()
        }
        Op::Export(export) => request("POST", path("bundles/export"))
            .timeout(BUNDLE_TIMEOUT)
            .send_json(export),
        Op::Import(import) => request("POST", path("bundles/import"))
            .timeout(BUNDLE_TIMEOUT)
            .send_json(import),
    };
    match response {
        Ok(response) => response.into_json().context("reading the node's answer"),
        Err(ureq::Error::Status(_, response)) => {
            let body: Value = response.into_json().unwrap_or(Value::Null);
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("the node refused");
            Err(anyhow!("{message}"))
        }
        Err(error) => Err(anyhow!("the node did not answer: {error}")),
    }
}

/// A request carrying the data dir's token, when there is one.
pub fn authorized(request: ureq::Request, token: Option<&str>) -> ureq::Request {
    match token {
        Some(token) => request.set("Authorization", &format!("Bearer {token}")),
        None => request,
    }
}

fn local(
    commons: &mut Commons,
    op: Op,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Value> {
    let store = commons.store().clone();
    let value = match op {
        Op::Status => to_json(queries::status(
            &store,
            &commons.peer_id(),
            Default::default(),
            commons.blobs(),
        )?),
        Op::Peers => json!({"peers": []}),
        Op::Block { peer, block } => {
            // Offline, the node has not heard which author the peer speaks for.
            commons.set_blocked(&peer, block, None)?;
            json!({"blocked": block})
        }
        Op::ListCollections { available: true } => json!({"collections": []}),
        Op::ListCollections { available: false } => to_json(queries::list_collections(&store)?),
        Op::CreateCollection(new) => json!({"id": commons.create_collection(&new)?.value}),
        Op::Follow { id, follow } => {
            commons.set_followed(&queries::parse_id(&id)?, follow)?;
            json!({"followed": follow})
        }
        Op::Add(new) => json!({"id": commons.create_entry(&new)?.value}),
        Op::Edit { id, patch } => {
            to_json(commons.patch_entry(&queries::parse_id(&id)?, &patch)?.value)
        }
        Op::Delete { id, reason } => {
            let stone = commons
                .delete_entry(&queries::parse_id(&id)?, &reason)?
                .value;
            json!({"deleted": stone.entry, "tombstone": stone})
        }
        Op::List(params) => {
            // The index is only opened (and brought up to date) for a search.
            let search = match params.q.as_deref().is_some_and(|q| !q.trim().is_empty()) {
                true => Some(open_search(commons)?),
                false => None,
            };
            to_json(queries::list_entries(
                &store,
                search.as_ref(),
                &params,
                Visibility::All,
            )?)
        }
        Op::Show { id } => to_json(queries::entry(
            &store,
            &queries::parse_id(&id)?,
            Visibility::All,
        )?),
        Op::Export(request) => to_json(commons.export_bundle(&request, progress)?),
        Op::Import(request) => to_json(commons.import_bundle(&request, progress)?.value),
    };
    // Acknowledge only what is on disk.
    commons.flush()?;
    Ok(value)
}

/// The data dir's search index, caught up with the store (writes made while no node ran).
fn open_search(commons: &Commons) -> anyhow::Result<SearchIndex> {
    let dir = DataDir::new(commons.root());
    let store = commons.store();
    let index = SearchIndex::open(
        &dir.search_dir(),
        minga_node::search::DEFAULT_WRITER_BYTES,
        store,
    )?;
    index.catch_up(store, store.logged_seq()?)?;
    Ok(index)
}

fn to_json(value: impl Serialize) -> Value {
    serde_json::to_value(value).expect("API views serialise to JSON")
}

/// An id as one URL path segment: ids are bs58, anything else is escaped so the node can answer
/// that it does not decode.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
