//! The bundle routes: the node writes and reads files on its own machine for whoever calls
//! them, so only the operator may (a loopback-only API, or the data dir's `api.token`; a
//! contributor's code or session is not enough), and only inside the directories meant for
//! bundles: `<data dir>/bundles/` (a relative path is taken from there) and the ones the
//! operator lists (`bundle_dirs`, `--bundle-dir`, e.g. a removable drive's mount point). A path
//! that escapes them with `..`, leaves them through a symlinked directory, or names a symlink
//! is refused with 422 `path_not_allowed`. Exports never replace a file (409 `conflict`) and
//! every part is opened without following a symlink (`bundle::parts`).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::Error;
use crate::bundle::{ExportRequest, ImportRequest};
use crate::http::body::JsonBody;
use crate::http::operations::{export_bundle, import_bundle};
use crate::http::{ApiResult, AppState};

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
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ExportRequest>,
) -> ApiResult<Response> {
    operator_only(&state, &headers)?;
    Ok(Json(export_bundle(&state, request).await?).into_response())
}

/// Imports a bundle from a bundle directory.
#[utoipa::path(post, path = "/api/v1/bundles/import", tag = "bundles", request_body(content = Object, description = "{file: a path in a bundle directory (relative: in <data dir>/bundles/)}", content_type = "application/json"), responses((status = 200, description = "the import's summary"), (status = 403, description = "forbidden: not the operator"), (status = 422, description = "path_not_allowed, bad_bundle")))]
pub async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ImportRequest>,
) -> ApiResult<Response> {
    operator_only(&state, &headers)?;
    Ok(Json(import_bundle(&state, request).await?).into_response())
}
