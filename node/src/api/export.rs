//! Open-data exports of a collection: every entry it holds, as JSON (the API's entry shape) or
//! as CSV for spreadsheets (one row per entry; lists joined with `; `; cells that a spreadsheet
//! would run as a formula are prefixed with `'`). An export is open data: it holds only what
//! may leave the node ([`Visibility::Shareable`]), whoever asks.

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use minga_protocol::Entry;
use serde::Deserialize;

use super::{ApiResult, AppState, query};
use crate::Error;
use crate::queries::{self, ListParams, Listing, MAX_LIMIT, Visibility};

#[derive(Deserialize)]
struct ExportParams {
    format: Option<String>,
}

/// `GET /api/v1/collections/{id}/export?format=json|csv`.
#[utoipa::path(get, path = "/api/v1/collections/{id}/export", tag = "collections", params(("id" = String, Path, description = "a collection id or name"), ("format" = Option<String>, Query, description = "json (default) or csv")), responses((status = 200, description = "the collection and its entries as JSON, or its entries as CSV"), (status = 400, description = "an unknown format")))]
pub async fn collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    raw: RawQuery,
) -> ApiResult<Response> {
    let params: ExportParams = query(raw.0.as_deref())?;
    let id = queries::resolve_collection(&state.store, &id)?;
    let collection = state
        .store
        .collection(&id)
        .map_err(Error::from)?
        .ok_or_else(|| Error::NotFound(format!("no collection {id}")))?;
    let entries = all_entries(&state, &id.to_string())?;
    let name = collection
        .name
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_");
    match params.format.as_deref().unwrap_or("json") {
        "json" => {
            let body = serde_json::json!({"collection": collection, "entries": entries});
            Ok(download(
                "application/json",
                &format!("{name}.json"),
                body.to_string(),
            ))
        }
        "csv" => Ok(download(
            "text/csv; charset=utf-8",
            &format!("{name}.csv"),
            csv(&entries),
        )),
        other => {
            Err(Error::BadRequest(format!("format must be json or csv, not {other:?}")).into())
        }
    }
}

fn all_entries(state: &AppState, collection: &str) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    let mut cursor = None;
    loop {
        let params = ListParams {
            collection: Some(collection.to_owned()),
            limit: Some(MAX_LIMIT.to_string()),
            cursor,
            ..ListParams::default()
        };
        let Listing::Entries(page) =
            queries::list_entries(&state.store, None, &params, Visibility::Shareable)?
        else {
            unreachable!("a listing without q answers entries");
        };
        entries.extend(page.entries);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(entries),
        }
    }
}

fn download(mime: &'static str, file: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The entries as CSV (RFC 4180, CRLF line ends).
pub fn csv(entries: &[Entry]) -> String {
    let mut out = String::from(
        "id,kind,title,lang,license,tags,place,authors,created,updated,attachments,body\r\n",
    );
    for e in entries {
        let row = [
            e.id.to_string(),
            e.kind.clone(),
            e.title.clone(),
            e.lang.clone(),
            e.license.clone(),
            e.tags.join("; "),
            e.place.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            e.authors
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            e.created.to_string(),
            e.updated.to_string(),
            e.attachments
                .iter()
                .map(|a| a.hash.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            e.body.clone(),
        ];
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a, \"b\"\nc"), "\"a, \"\"b\"\"\nc\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-5"), "'-5");
    }
}
