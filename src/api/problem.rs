//! RFC 7807 problem documents, and the body and query readers whose errors are problems that
//! name the field.
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// One field's error in a problem document.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// The field, as a path into the request (`function_name`, `jobs[3].priority`, `limit`).
    pub field: String,
    pub message: String,
}

/// An RFC 7807 problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Field errors, when the request was invalid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let slug = title.to_lowercase().replace(' ', "-");
        Self {
            kind: format!("https://chatter-worker.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
    /// 422 naming the field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {message}"),
        );
        p.errors.push(FieldError { field, message });
        p
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(&self)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// A backend failure is the server's dependency being away: 503, retryable.
impl From<crate::backend::QueueError> for Problem {
    fn from(e: crate::backend::QueueError) -> Self {
        tracing::warn!(error = %e, "api: queue error");
        Self::unavailable(format!("the queue is unavailable: {e}"))
    }
}

pub type ApiResult<T> = Result<T, Problem>;

/// A JSON body whose errors name the field (`jobs[2].priority: unknown variant ...`).
pub fn json_body<T: DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &Bytes,
) -> ApiResult<T> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(ct) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be application/json, got {ct:?}"),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // Unknown and missing fields name themselves in serde's message.
        let field = if path == "." {
            quoted_field(&msg).unwrap_or_else(|| "body".into())
        } else {
            path
        };
        Problem::field(field, msg)
    })
}

/// `application/json`, any case, optionally with parameters (`; charset=utf-8`); not
/// `application/jsonp` nor `application/json-seq`.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// The field serde names in backquotes (`missing field `x``, `unknown field `x``).
fn quoted_field(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(msg[start..start + len].to_string())
}

/// Query parameters as (name, value) pairs, repeated names kept (`tags=a&tags=b`).
pub fn query_pairs(query: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| Problem::field("query", e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_json_is_json() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
        ] {
            assert!(super::is_json(ok), "{ok}");
        }
        for bad in [
            "application/jsonp",
            "application/json-foo",
            "application/json-seq",
            "text/json",
            "",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!super::is_json(bad), "{bad}");
        }
    }
}
