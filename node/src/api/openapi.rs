//! `GET /api/v1/openapi.json`: the API described for other tools (open data), generated from
//! the `#[utoipa::path]` annotations on the handlers themselves, so it cannot drift from the
//! routes without the test of this module noticing.

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

/// The description of the JSON API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Minga",
        description = "A peer-to-peer knowledge commons: collections of practices, histories and \
                       resources, replicated between nodes. Reads are open; writes from the LAN \
                       need the contributor code (X-Contributor-Code) or a session."
    ),
    paths(
        super::status,
        super::peers,
        super::block,
        super::unblock,
        super::list_collections,
        super::create_collection,
        super::export::collection,
        super::follow,
        super::unfollow,
        super::list_entries,
        super::create_entry,
        super::get_entry,
        super::patch_entry,
        super::delete_entry,
        super::entry_history,
        super::bundles::export,
        super::bundles::import,
        super::blobs::add,
        super::blobs::list,
        super::blobs::get,
        super::metrics,
    )
)]
pub struct ApiDoc;

pub async fn serve() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_lists_the_main_routes() {
        let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3."));
        let paths = json["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/v1/entries", "get"),
            ("/api/v1/entries", "post"),
            ("/api/v1/entries/{id}", "patch"),
            ("/api/v1/entries/{id}/history", "get"),
            ("/api/v1/collections", "post"),
            ("/api/v1/blobs/{hash}", "get"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
    }
}
