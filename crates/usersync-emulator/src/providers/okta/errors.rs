//! Okta error responses.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::facade::json_response;
use crate::paging::PageTokenError;

/// An Okta error response `{errorCode, errorSummary, errorLink, errorId, errorCauses}`.
pub fn okta_error(status: StatusCode, code: &str, summary: &str, causes: Vec<String>) -> Response {
    let causes: Vec<Value> = causes.into_iter().map(|c| json!({ "errorSummary": c })).collect();
    json_response(
        status,
        &json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": error_id(),
            "errorCauses": causes,
        }),
    )
}

fn error_id() -> String {
    use rand::Rng;
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::thread_rng();
    let tail: String = (0..22).map(|_| A[rng.gen_range(0..A.len())] as char).collect();
    format!("oae{tail}")
}

pub(super) fn not_found(id: &str, what: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} ({what})"),
        vec![],
    )
}

pub(super) async fn not_found_path(uri: axum::http::Uri) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000022",
        &format!(
            "The endpoint does not support the provided HTTP method: {}",
            uri.path()
        ),
        vec![],
    )
}

pub(super) fn invalid_token() -> Response {
    okta_error(
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
        vec![],
    )
}

pub(super) fn forbidden() -> Response {
    okta_error(
        StatusCode::FORBIDDEN,
        "E0000006",
        "You do not have permission to perform the requested action",
        vec![],
    )
}

pub(super) fn bad_param(name: &str, why: &str) -> Response {
    okta_error(
        StatusCode::BAD_REQUEST,
        "E0000001",
        &format!("Api validation failed: {name}"),
        vec![format!("{name}: {why}")],
    )
}

pub(super) fn bad_search(why: &str) -> Response {
    okta_error(
        StatusCode::BAD_REQUEST,
        "E0000031",
        "Invalid search criteria.",
        vec![why.to_string()],
    )
}

pub(super) fn page_token_error(e: PageTokenError) -> Response {
    match e {
        PageTokenError::Invalid => bad_param("after", "The cursor is invalid."),
        PageTokenError::Expired => bad_param("after", "The cursor has expired; restart the listing."),
    }
}
