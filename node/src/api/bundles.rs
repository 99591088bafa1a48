//! The bundle routes: the node writes and reads files on its own machine for whoever calls
//! them, so only the operator may (a loopback-only API, or the data dir's `api.token`; a
//! contributor's code or session is not enough), and only inside the directories meant for
//! bundles: `<data dir>/bundles/` (a relative path is taken from there) and the ones the
//! operator lists (`bundle_dirs`, `--bundle-dir`, e.g. a removable drive's mount point). A path
//! that escapes them with `..`, leaves them through a symlinked directory, or names a symlink
//! is refused with 422 `path_not_allowed`. Exports never replace a file (409 `conflict`) and
//! every part is opened without following a symlink (`bundle::parts`).

use std::io;
use std::path::{Component, Path, PathBuf};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::body::JsonBody;
use super::{ApiResult, AppState};
use crate::Error;
use crate::bundle::{ExportRequest, ImportRequest};

/// The directories bundle paths must stay in.
#[derive(Debug, Clone)]
pub struct BundleDirs {
    /// `<data dir>/bundles/`: where relative paths start.
    home: PathBuf,
    /// The operator's further directories.
    others: Vec<PathBuf>,
}

impl BundleDirs {
    /// Creates `home` if needed. The others are looked at on each request: a drive may be
    /// mounted after the node started.
    pub fn open(home: PathBuf, others: Vec<PathBuf>) -> io::Result<BundleDirs> {
        std::fs::create_dir_all(&home)?;
        Ok(BundleDirs { home, others })
    }

    /// The path a client gave, resolved and checked: where the bundle file is, inside one of
    /// the directories, not a symlink.
    pub fn confine(&self, given: &Path) -> Result<PathBuf, Error> {
        let refuse = |why: &str| {
            Error::PathNotAllowed(format!(
                "{}: {why}; bundles go in the node's bundles directory or one the operator lists",
                given.display()
            ))
        };
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(refuse("\"..\" is not allowed"));
        }
        let full = self.home.join(given);
        let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
            return Err(refuse("not a file name"));
        };
        let parent = parent
            .canonicalize()
            .map_err(|_| refuse("its directory does not exist"))?;
        let inside = std::iter::once(&self.home)
            .chain(&self.others)
            .filter_map(|dir| dir.canonicalize().ok())
            .any(|dir| parent.starts_with(dir));
        if !inside {
            return Err(refuse("outside the bundle directories"));
        }
        let path = parent.join(name);
        if path.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
            return Err(refuse("a symbolic link"));
        }
        Ok(path)
    }
}

/// Refuses whoever is not the operator.
fn operator_only(state: &AppState, headers: &HeaderMap) -> Result<(), Error> {
    if state.access.is_operator(headers) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "bundles read and write files on this machine: they need the operator's api.token"
                .into(),
        ))
    }
}

/// Writes a bundle into a bundle directory.
#[utoipa::path(post, path = "/api/v1/bundles/export", tag = "bundles", request_body(content = Object, description = "{collection? | all, out: a path in a bundle directory (relative: in <data dir>/bundles/)}", content_type = "application/json"), responses((status = 200, description = "the bundle's summary"), (status = 403, description = "forbidden: not the operator"), (status = 409, description = "conflict: the file exists"), (status = 422, description = "path_not_allowed")))]
pub(super) async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(mut request): JsonBody<ExportRequest>,
) -> ApiResult<Response> {
    operator_only(&state, &headers)?;
    request.out = state.bundle_dirs.confine(&request.out)?;
    if let Some(since) = &request.since {
        request.since = Some(state.bundle_dirs.confine(since)?);
    }
    let summary = state
        .handle
        .export_bundle(request, Box::new(|_| {}))
        .await?;
    Ok(Json(summary).into_response())
}

/// Imports a bundle from a bundle directory.
#[utoipa::path(post, path = "/api/v1/bundles/import", tag = "bundles", request_body(content = Object, description = "{file: a path in a bundle directory (relative: in <data dir>/bundles/)}", content_type = "application/json"), responses((status = 200, description = "the import's summary"), (status = 403, description = "forbidden: not the operator"), (status = 422, description = "path_not_allowed, bad_bundle")))]
pub(super) async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(mut request): JsonBody<ImportRequest>,
) -> ApiResult<Response> {
    operator_only(&state, &headers)?;
    request.file = state.bundle_dirs.confine(&request.file)?;
    let summary = state
        .handle
        .import_bundle(request, Box::new(|_| {}))
        .await?;
    Ok(Json(summary).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_bundle_directories() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("bundles");
        let drive = root.path().join("drive");
        std::fs::create_dir(&drive).unwrap();
        let dirs = BundleDirs::open(home.clone(), vec![drive.clone()]).unwrap();
        let home = home.canonicalize().unwrap();
        assert_eq!(
            dirs.confine(Path::new("a.mbundle")).unwrap(),
            home.join("a.mbundle")
        );
        assert_eq!(
            dirs.confine(&drive.join("b")).unwrap(),
            drive.canonicalize().unwrap().join("b")
        );
        let outside = root.path().join("elsewhere");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, home.join("link-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), home.join("link-file")).unwrap();
        for bad in [
            PathBuf::from("../a"),
            home.join("../elsewhere/a"),
            outside.join("a"),
            PathBuf::from("link-dir/a"),
            PathBuf::from("link-file"),
            PathBuf::from("missing-dir/a"),
            PathBuf::from("/"),
        ] {
            let refused = dirs.confine(&bad).unwrap_err();
            assert!(matches!(refused, Error::PathNotAllowed(_)), "{bad:?}");
        }
    }
}
