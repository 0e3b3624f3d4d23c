//! Request bodies, read only once the request may have one: middleware in front of every API
//! and dashboard route. An API request with a body must carry valid credentials first (401
//! before a byte of the body is read, so anonymous clients cannot make the server buffer
//! anything); the body is then read within `[http] body_timeout_secs` (408 after) and at most
//! the route's limit (413 as soon as `Content-Length` or the bytes received pass it, without
//! buffering the rest). Handlers get the body already read.
use super::ApiState;
use super::problem::Problem;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Largest dashboard form (the login form; the other posts carry nothing).
pub const DASHBOARD_FORM_MAX: usize = 16 * 1024;

/// A refusal that also closes the connection: the unread body must not be parsed as the next
/// request, and reading it just to skip it is what this avoids.
fn refuse(p: Problem) -> Response {
    let mut r = p.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub async fn guard(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let has_body = length.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(req).await;
    }
    let limit = if req.uri().path().starts_with("/api/") {
        if let Err(p) = s.caller(headers) {
            return refuse(p);
        }
        // Only the batch route carries more than one job: every other one is refused by its
        // announced length before a byte is read (a client waiting on `Expect: 100-continue`
        // gets its 413 at once), and read at most to the largest job.
        if req.uri().path().starts_with("/api/v1/jobs/batch") {
            s.max_body
        } else {
            if let Err(p) = super::jobs::submit::check_length(&s, headers) {
                return refuse(p);
            }
            s.max_body
                .min(super::jobs::submit::single_job_body_limit(&s))
        }
    } else {
        DASHBOARD_FORM_MAX
    };
    if let Some(n) = length.filter(|n| *n > limit as u64) {
        return refuse(too_large(n.to_string(), limit));
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, limit).collect();
    let bytes = match tokio::time::timeout(s.body_timeout, read).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return refuse(too_large(format!("more than {limit}"), limit));
        }
        Ok(Err(e)) => {
            return refuse(Problem::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            ));
        }
        Err(_) => {
            return refuse(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s ([http] body_timeout_secs)",
                    s.body_timeout.as_secs_f64()
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(got: String, limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is {got} bytes; this route takes at most {limit}"),
    )
}
