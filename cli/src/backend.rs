//! Where a command's operation runs: through a running node's HTTP API, or, when no node holds
//! the data dir, on the store opened here. Both answer with the same typed views (the API's
//! own types, read back from its JSON), so `--json` prints the same JSON either way.

use std::time::Duration;

use anyhow::{Context, anyhow};
use minga_node::bundle::{ExportRequest, ExportSummary, ImportRequest, ImportSummary, Progress};
use minga_node::queries::{self, CollectionList, ListParams, Listing, Status, Visibility};
use minga_node::views::{Blocked, Created, Deleted, Followed, PeerList};
use minga_node::{Commons, DataDir, SearchIndex};
use minga_protocol::entry::{EntryPatch, NewEntry};
use minga_protocol::{Entry, NewCollection};
use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// What an operation answers: the API's view of it. Each [`Op`] has one kind of answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Status(Box<Status>),
    Peers(PeerList),
    Blocked(Blocked),
    Collections(CollectionList),
    Created(Created),
    Followed(Followed),
    /// The entry as an edit left it.
    Edited(Box<Entry>),
    Deleted(Box<Deleted>),
    Entries(Listing),
    Entry(Box<Entry>),
    Exported(ExportSummary),
    Imported(Box<ImportSummary>),
}

impl Op {
    /// Reads the node's JSON answer to this operation as its view.
    fn read(&self, response: ureq::Response) -> std::io::Result<Answer> {
        fn view<T: DeserializeOwned>(response: ureq::Response) -> std::io::Result<T> {
            response.into_json()
        }
        Ok(match self {
            Op::Status => Answer::Status(view(response)?),
            Op::ListCollections { .. } => Answer::Collections(view(response)?),
            Op::CreateCollection(_) | Op::Add(_) => Answer::Created(view(response)?),
            Op::Follow { .. } => Answer::Followed(view(response)?),
            Op::Edit { .. } => Answer::Edited(view(response)?),
            Op::Delete { .. } => Answer::Deleted(view(response)?),
            Op::List(_) => Answer::Entries(view(response)?),
            Op::Show { .. } => Answer::Entry(view(response)?),
            Op::Peers => Answer::Peers(view(response)?),
            Op::Block { .. } => Answer::Blocked(view(response)?),
            Op::Export(_) => Answer::Exported(view(response)?),
            Op::Import(_) => Answer::Imported(view(response)?),
        })
    }
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
            let node = Backend::remote(&format!("http://{addr}"), dir.read_api_token());
            if node.answers() {
                return Ok(node);
            }
            tracing::debug!("no node answers at {addr}; opening the store directly");
        }
        let commons = Commons::open(dir, crate::config_file::load(dir.root())?.cache_bytes(None))?;
        Ok(Backend::Local(Box::new(commons)))
    }

    /// The node whose API is at `url` (`http://host:port`; the scheme may be left out).
    pub fn remote(url: &str, token: Option<String>) -> Backend {
        let url = url.trim_end_matches('/');
        let base = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(Duration::from_secs(120))
            .build();
        Backend::Remote { base, agent, token }
    }

    fn answers(&self) -> bool {
        match self {
            Backend::Remote { base, agent, .. } => {
                agent.get(&format!("{base}/api/v1/status")).call().is_ok()
            }
            Backend::Local(_) => true,
        }
    }

    pub fn run(&mut self, op: Op) -> anyhow::Result<Answer> {
        self.run_with_progress(op, &mut |_| {})
    }

    /// [`Self::run`], reporting the progress of a long operation run here (an export or an
    /// import without a node).
    pub fn run_with_progress(
        &mut self,
        op: Op,
        progress: &mut dyn FnMut(&Progress),
    ) -> anyhow::Result<Answer> {
        match self {
            Backend::Remote { base, agent, token } => remote(agent, base, token.as_deref(), op),
            Backend::Local(commons) => local(commons, op, progress),
        }
    }
}

fn remote(agent: &ureq::Agent, base: &str, token: Option<&str>, op: Op) -> anyhow::Result<Answer> {
    let path = |p: &str| format!("{base}/api/v1/{p}");
    let request = |method: &str, url: String| authorized(agent.request(method, &url), token);
    let response = match &op {
        Op::Status => request("GET", path("status")).call(),
        Op::ListCollections { available } => {
            request("GET", path(&format!("collections?available={available}"))).call()
        }
        Op::CreateCollection(new) => request("POST", path("collections")).send_json(new),
        Op::Follow { id, follow } => {
            let method = if *follow { "POST" } else { "DELETE" };
            request(method, path(&format!("collections/{}/follow", segment(id)))).call()
        }
        Op::Add(new) => request("POST", path("entries")).send_json(new),
        Op::Edit { id, patch } => {
            request("PATCH", path(&format!("entries/{}", segment(id)))).send_json(patch)
        }
        Op::Delete { id, reason } => request("DELETE", path(&format!("entries/{}", segment(id))))
            .send_json(serde_json::json!({"reason": reason})),
        Op::List(params) => {
            let query = serde_urlencoded::to_string(params).context("encoding the query")?;
            request("GET", path(&format!("entries?{query}"))).call()
        }
        Op::Show { id } => request("GET", path(&format!("entries/{}", segment(id)))).call(),
        Op::Peers => request("GET", path("peers")).call(),
        Op::Block { peer, block } => {
            let method = if *block { "POST" } else { "DELETE" };
            request(method, path(&format!("peers/{}/block", segment(peer)))).call()
        }
        Op::Export(export) => request("POST", path("bundles/export"))
            .timeout(BUNDLE_TIMEOUT)
            .send_json(export),
        Op::Import(import) => request("POST", path("bundles/import"))
            .timeout(BUNDLE_TIMEOUT)
            .send_json(import),
    };
    match response {
        Ok(response) => op.read(response).context("reading the node's answer"),
        Err(ureq::Error::Status(_, response)) => Err(refusal(response)),
        Err(error) => Err(anyhow!("the node did not answer: {error}")),
    }
}

/// The message of the node's `{"error": {code, message}}` answer.
pub fn refusal(response: ureq::Response) -> anyhow::Error {
    #[derive(serde::Deserialize)]
    struct Refused {
        error: ApiError,
    }
    #[derive(serde::Deserialize)]
    struct ApiError {
        message: String,
    }
    match response.into_json::<Refused>() {
        Ok(refused) => anyhow!("{}", refused.error.message),
        Err(_) => anyhow!("the node refused"),
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
) -> anyhow::Result<Answer> {
    let store = commons.store().clone();
    let answer = match op {
        Op::Status => Answer::Status(Box::new(queries::status(
            &store,
            &commons.peer_id(),
            Default::default(),
            commons.blobs(),
        )?)),
        Op::Peers => Answer::Peers(PeerList::default()),
        Op::Block { peer, block } => {
            // Offline, the node has not heard which author the peer speaks for.
            commons.set_blocked(&peer, block, None)?;
            Answer::Blocked(Blocked { blocked: block })
        }
        Op::ListCollections { available: true } => Answer::Collections(CollectionList {
            collections: Vec::new(),
        }),
        Op::ListCollections { available: false } => {
            Answer::Collections(queries::list_collections(&store)?)
        }
        Op::CreateCollection(new) => Answer::Created(Created {
            id: commons.create_collection(&new)?.value,
        }),
        Op::Follow { id, follow } => {
            commons.set_followed(&queries::parse_id(&id)?, follow)?;
            Answer::Followed(Followed { followed: follow })
        }
        Op::Add(new) => Answer::Created(Created {
            id: commons.create_entry(&new)?.value,
        }),
        Op::Edit { id, patch } => Answer::Edited(Box::new(
            commons.patch_entry(&queries::parse_id(&id)?, &patch)?.value,
        )),
        Op::Delete { id, reason } => {
            let stone = commons
                .delete_entry(&queries::parse_id(&id)?, &reason)?
                .value;
            Answer::Deleted(Box::new(Deleted::from(stone)))
        }
        Op::List(params) => {
            // The index is only opened (and brought up to date) for a search.
            let search = match params.q.as_deref().is_some_and(|q| !q.trim().is_empty()) {
                true => Some(open_search(commons)?),
                false => None,
            };
            Answer::Entries(queries::list_entries(
                &store,
                search.as_ref(),
                &params,
                Visibility::All,
            )?)
        }
        Op::Show { id } => Answer::Entry(Box::new(queries::entry(
            &store,
            &queries::parse_id(&id)?,
            Visibility::All,
        )?)),
        Op::Export(request) => Answer::Exported(commons.export_bundle(&request, progress)?),
        Op::Import(request) => {
            Answer::Imported(Box::new(commons.import_bundle(&request, progress)?.value))
        }
    };
    // Acknowledge only what is on disk.
    commons.flush()?;
    Ok(answer)
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
