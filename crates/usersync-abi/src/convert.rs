//! Conversions between the SDK's HTTP values and their StableAbi mirrors.

use abi_stable::std_types::{RString, RVec, Tuple2};
use usersync_sdk::{ConnectorError, HttpRequest, HttpResponse, Method};

use crate::ffi::{FfiHeaders, FfiHttpRequest, FfiHttpResponse};

fn headers_to_ffi(headers: &[(String, String)]) -> FfiHeaders {
    headers
        .iter()
        .map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str())))
        .collect()
}

fn headers_from_ffi(headers: FfiHeaders) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|Tuple2(k, v)| (k.into(), v.into()))
        .collect()
}

/// SDK request -> mirror.
pub fn request_to_ffi(r: &HttpRequest) -> FfiHttpRequest {
    FfiHttpRequest {
        method: r.method.as_str().into(),
        url: r.url.as_str().into(),
        headers: headers_to_ffi(&r.headers),
        body: r.body.as_ref().map(|b| RVec::from(b.as_slice())).into(),
    }
}

/// Mirror -> SDK request of a source cursor: `GET` or `POST` only (a source never writes).
pub fn request_from_ffi(r: FfiHttpRequest) -> Result<HttpRequest, ConnectorError> {
    request_with_methods(r, &[Method::Get, Method::Post])
}

/// Mirror -> SDK request of a target session: every method the SDK knows (`PUT`, `PATCH`,
/// `DELETE` included).
pub fn target_request_from_ffi(r: FfiHttpRequest) -> Result<HttpRequest, ConnectorError> {
    request_with_methods(
        r,
        &[
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
        ],
    )
}

fn request_with_methods(r: FfiHttpRequest, allowed: &[Method]) -> Result<HttpRequest, ConnectorError> {
    let method = allowed
        .iter()
        .copied()
        .find(|m| m.as_str() == r.method.as_str())
        .ok_or_else(|| ConnectorError::Plugin {
            detail: format!(
                "plugin asked for an unsupported HTTP method `{}`",
                r.method.as_str()
            ),
        })?;
    Ok(HttpRequest {
        method,
        url: r.url.into(),
        headers: headers_from_ffi(r.headers),
        body: r.body.into_option().map(RVec::into_vec),
    })
}

/// SDK response -> mirror.
pub fn response_to_ffi(r: HttpResponse) -> FfiHttpResponse {
    FfiHttpResponse {
        status: r.status,
        headers: headers_to_ffi(&r.headers),
        body: r.body.into(),
    }
}

/// Mirror -> SDK response.
pub fn response_from_ffi(r: FfiHttpResponse) -> Result<HttpResponse, ConnectorError> {
    Ok(HttpResponse {
        status: r.status,
        headers: headers_from_ffi(r.headers),
        body: r.body.into_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_round_trip() {
        let req = HttpRequest::get("https://x.test/a?b=1")
            .with_header("ConsistencyLevel", "eventual")
            .with_header("Link", "a")
            .with_header("Link", "b");
        assert_eq!(request_from_ffi(request_to_ffi(&req)).expect("round trip"), req);
        let mut post = HttpRequest::get("https://x.test/token");
        post.method = Method::Post;
        post.body = Some(b"grant_type=x".to_vec());
        assert_eq!(request_from_ffi(request_to_ffi(&post)).expect("round trip"), post);
        let resp = HttpResponse::new(429, b"{}".to_vec()).with_header("Retry-After", "3");
        assert_eq!(
            response_from_ffi(response_to_ffi(resp.clone())).expect("round trip"),
            resp
        );
    }

    #[test]
    fn unknown_method_is_a_plugin_error() {
        let mut r = request_to_ffi(&HttpRequest::get("https://x.test"));
        r.method = "DELETE".into();
        let e = request_from_ffi(r.clone()).expect_err("DELETE is refused");
        assert!(matches!(e, ConnectorError::Plugin { .. }), "{e}");
        // A target may delete; nobody may invent a method.
        assert_eq!(
            target_request_from_ffi(r.clone()).expect("DELETE").method,
            Method::Delete
        );
        r.method = "BREW".into();
        assert!(target_request_from_ffi(r).is_err());
    }
}
