//! API microversions (ironic-inspector's 1.0–1.18): the version a request
//! asks for, version discovery (`GET /`, `GET /v1`), and the minimum and
//! maximum version headers every answer carries, errors included.
//!
//! A request names its version in `X-OpenStack-Ironic-Inspector-API-Version`
//! (`X.Y` or `latest`), or in the standard `OpenStack-API-Version:
//! baremetal-introspection X.Y` (which ironic-inspector ignores). Without
//! either it gets the newest version, as with the inspector. A malformed
//! version is a `400`, one outside the range a `406`.

use std::fmt;

use axum::extract::{FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;

/// An API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion(pub u16, pub u16);

impl ApiVersion {
    pub const MIN: ApiVersion = ApiVersion(1, 0);
    pub const MAX: ApiVersion = ApiVersion(1, 18);
    /// `POST /v1/rules` answers 201 instead of 200.
    pub const RULE_CREATED: ApiVersion = ApiVersion(1, 6);
    /// `manage_boot` on start.
    pub const MANAGE_BOOT: ApiVersion = ApiVersion(1, 13);
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The inspector's header names.
pub const VERSION_HEADER: &str = "X-OpenStack-Ironic-Inspector-API-Version";
pub const MIN_HEADER: &str = "X-OpenStack-Ironic-Inspector-API-Minimum-Version";
pub const MAX_HEADER: &str = "X-OpenStack-Ironic-Inspector-API-Maximum-Version";
/// The standard header (`service-type version`).
pub const STANDARD_HEADER: &str = "OpenStack-API-Version";
/// Our service type in the standard header.
pub const SERVICE_TYPE: &str = "baremetal-introspection";

/// [`ApiVersion::MIN`] and [`ApiVersion::MAX`] as header values.
pub const MIN_VERSION: &str = "1.0";
pub const MAX_VERSION: &str = "1.18";

/// Longest version header value looked at.
const MAX_HEADER_LEN: usize = 256;

fn malformed() -> ApiError {
    ApiError::bad_request("Malformed API version: expected string in form of X.Y or latest")
}

/// The 406 for a well-formed version outside the supported range.
fn unsupported(v: impl fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        format!(
            "Unsupported API version {v}, supported range is {} to {}",
            ApiVersion::MIN,
            ApiVersion::MAX
        ),
    )
}

/// `X.Y` (digits only) or `latest`; empty means the default.
fn parse_version(s: &str) -> Result<Option<ApiVersion>, ApiError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.eq_ignore_ascii_case("latest") {
        return Ok(Some(ApiVersion::MAX));
    }
    let (major, minor) = s.split_once('.').ok_or_else(malformed)?;
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(malformed());
    }
    // Well formed but past any u16 (`99999999999.1`): out of range, a
    // 406 as ironic-inspector answers, not a malformed 400.
    match (major.parse::<u16>(), minor.parse::<u16>()) {
        (Ok(a), Ok(b)) => Ok(Some(ApiVersion(a, b))),
        _ => Err(unsupported(s)),
    }
}

/// The version a request asks for: the inspector's header first, then
/// the standard one's `baremetal-introspection` entry, else the newest.
pub fn requested(headers: &HeaderMap) -> Result<ApiVersion, ApiError> {
    let text = |v: &HeaderValue| -> Result<String, ApiError> {
        if v.len() > MAX_HEADER_LEN {
            return Err(malformed());
        }
        v.to_str().map(str::to_owned).map_err(|_| malformed())
    };
    if let Some(v) = headers.get(VERSION_HEADER) {
        return Ok(parse_version(&text(v)?)?.unwrap_or(ApiVersion::MAX));
    }
    for v in headers.get_all(STANDARD_HEADER) {
        for entry in text(v)?.split(',') {
            let mut words = entry.split_whitespace();
            if words.next().is_some_and(|w| w.eq_ignore_ascii_case(SERVICE_TYPE)) {
                let version = words.next().ok_or_else(malformed)?;
                if words.next().is_some() {
                    return Err(malformed());
                }
                return Ok(parse_version(version)?.unwrap_or(ApiVersion::MAX));
            }
        }
    }
    Ok(ApiVersion::MAX)
}

/// Checks a request's version and remembers it for the handlers (the
/// [`ApiVersion`] extractor); adds the version headers to every answer.
pub async fn negotiate(mut req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = match requested(req.headers()) {
        Err(e) => e.into_response(),
        Ok(v) if v < ApiVersion::MIN || v > ApiVersion::MAX => unsupported(v).into_response(),
        Ok(v) => {
            req.extensions_mut().insert(v);
            next.run(req).await
        }
    };
    let h = resp.headers_mut();
    h.insert(MIN_HEADER, HeaderValue::from_static(MIN_VERSION));
    h.insert(MAX_HEADER, HeaderValue::from_static(MAX_VERSION));
    resp
}

/// The handlers' view of the negotiated version (the newest when the
/// middleware did not run).
impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ApiVersion>()
            .copied()
            .unwrap_or(ApiVersion::MAX))
    }
}

fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.len() <= 255)
        .unwrap_or("localhost")
}

/// The host the client addressed, for links.
pub fn request_host(headers: &HeaderMap) -> &str {
    host(headers)
}

/// `GET /`.
pub async fn root(headers: HeaderMap) -> Response {
    axum::Json(json!({"versions": [{
        "id": MAX_VERSION, "status": "CURRENT",
        "links": [{"href": format!("http://{}/v1", host(&headers)), "rel": "self"}]
    }]}))
    .into_response()
}

/// The resources `GET /v1` lists: the inspector's three, then ours.
const RESOURCES: &[&str] = &["continue", "introspection", "rules", "events"];

/// `GET /v1`.
pub async fn v1(headers: HeaderMap) -> Response {
    let host = host(&headers);
    let resources: Vec<_> = RESOURCES
        .iter()
        .map(|name| json!({"name": name, "links": [{"href": format!("http://{host}/v1/{name}"), "rel": "self"}]}))
        .collect();
    axum::Json(json!({ "resources": resources })).into_response()
}

/// `GET /<version>` for any other version: 404, as the inspector answers.
pub async fn other_version(Path(version): Path<String>) -> ApiError {
    let shown: String = version.chars().take(40).collect();
    ApiError::not_found(format!("Version {shown} not found."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
        h
    }

    #[test]
    fn versions_are_read_from_either_header() {
        assert_eq!(requested(&HeaderMap::new()).ok(), Some(ApiVersion::MAX));
        assert_eq!(
            requested(&with(VERSION_HEADER, "1.5")).ok(),
            Some(ApiVersion(1, 5))
        );
        assert_eq!(
            requested(&with(VERSION_HEADER, "LATEST")).ok(),
            Some(ApiVersion::MAX)
        );
        assert_eq!(requested(&with(VERSION_HEADER, "")).ok(), Some(ApiVersion::MAX));
        assert_eq!(
            requested(&with(
                STANDARD_HEADER,
                "baremetal 1.80, baremetal-introspection 1.3"
            ))
            .ok(),
            Some(ApiVersion(1, 3))
        );
        assert_eq!(
            requested(&with(STANDARD_HEADER, "baremetal 1.80")).ok(),
            Some(ApiVersion::MAX)
        );
        assert_eq!(
            requested(&with(VERSION_HEADER, "2.0")).ok(),
            Some(ApiVersion(2, 0))
        );
    }

    #[test]
    fn malformed_versions_are_refused() {
        for bad in ["1", "1.", ".1", "1.2.3", "a.b", "1.-1", "+1.2", "1.5 x"] {
            let e = requested(&with(VERSION_HEADER, bad)).err();
            assert_eq!(e.map(|e| e.status), Some(StatusCode::BAD_REQUEST), "{bad}");
        }
        // Well formed, past any version: out of range (406), as the inspector.
        for big in ["99999.1", "1.99999999999", "99999999999999999999999.0"] {
            let e = requested(&with(VERSION_HEADER, big)).err();
            assert_eq!(e.map(|e| e.status), Some(StatusCode::NOT_ACCEPTABLE), "{big}");
        }
        assert!(requested(&with(STANDARD_HEADER, "baremetal-introspection")).is_err());
        assert!(requested(&with(STANDARD_HEADER, "baremetal-introspection 1.x")).is_err());
    }
}
