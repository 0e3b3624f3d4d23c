//! The dashboard's login: a server-side session per login, so the browser never holds a
//! credential. Logging in with an admin API key or token creates a random session id, stored
//! hashed by the backend's `Sessions` (Redis: `{prefix}:session:{sha256(id)}`) for `[http]
//! session_ttl_secs`, so every API process shares it; the cookie holds only the id (HttpOnly,
//! SameSite=Strict, `Secure` over TLS). Logging out deletes the session; an expired or unknown
//! one lands on the login page. Also the dashboard's gate (`admin`) and its same-origin check.
use super::ApiState;
use super::auth::{COOKIE, Caller, cookie};
use crate::backend::Session;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where sessions live and how long; built from `[http]`.
pub struct Sessions {
    pub store: Arc<dyn crate::backend::Sessions>,
    pub ttl: Duration,
    /// `Secure` on every cookie (`[http] secure_cookie`).
    pub always_secure: bool,
    /// `Secure` when a trusted proxy says `X-Forwarded-Proto: https`.
    pub trust_forwarded_proto: bool,
}

impl Sessions {
    /// The session's key in the store. The id is stored hashed: a read of the store gives no
    /// usable cookie.
    fn key(id: &str) -> String {
        hex::encode(Sha256::digest(id))
    }

    /// A new session for `caller`, living `ttl` (or until the caller's token expires).
    pub async fn create(&self, caller: &Caller) -> crate::backend::Result<(String, Duration)> {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let mut ttl = self.ttl;
        if let Some(exp) = caller.expires_at {
            let left = exp.saturating_sub(chrono::Utc::now().timestamp().max(0) as u64);
            ttl = ttl.min(Duration::from_secs(left.max(1)));
        }
        let session = Session {
            user: caller.user.clone(),
            admin: caller.admin,
        };
        self.store.create(&Self::key(&id), &session, ttl).await?;
        Ok((id, ttl))
    }

    /// The session's caller; None when it is unknown or expired.
    pub async fn get(&self, id: &str) -> crate::backend::Result<Option<Caller>> {
        Ok(self.store.get(&Self::key(id)).await?.map(|s| Caller {
            user: s.user,
            admin: s.admin,
            expires_at: None,
        }))
    }

    pub async fn delete(&self, id: &str) -> crate::backend::Result<()> {
        self.store.delete(&Self::key(id)).await
    }

    /// Was this request made over TLS, as far as the server can know?
    fn secure(&self, headers: &HeaderMap) -> bool {
        self.always_secure
            || (self.trust_forwarded_proto
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
    }

    fn cookie(&self, headers: &HeaderMap, value: &str, max_age: Duration) -> String {
        let secure = if self.secure(headers) { "; Secure" } else { "" };
        format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        )
    }
}

/// A state-changing form post must come from a dashboard page: browsers say where a request
/// comes from (`Sec-Fetch-Site`, `Origin`); requests without either (curl) are not from a
/// browser page and carry their own credentials.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

pub fn cross_site() -> Response {
    (
        StatusCode::FORBIDDEN,
        super::dashboard::page("Forbidden", "<h1>Cross-site form posts are refused</h1>"),
    )
        .into_response()
}

/// The admin behind a bearer header or the session cookie, or where to send the browser.
pub async fn admin(s: &ApiState, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    let caller = if headers.contains_key(header::AUTHORIZATION) {
        s.auth.caller(headers).ok()
    } else {
        match cookie(headers, COOKIE) {
            Some(id) => match s.sessions.get(&id).await {
                Ok(c) => c,
                Err(e) => return Err(Box::new(super::dashboard::failed(e))),
            },
            None => None,
        }
    };
    match caller {
        Some(c) if c.admin => Ok(c),
        Some(_) => Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                super::dashboard::page("Forbidden", "<h1>Admins only</h1>"),
            )
                .into_response(),
        )),
        None => Err(Box::new(Redirect::to("/dashboard/login").into_response())),
    }
}

fn login_form(error: &str) -> String {
    format!(
        "<h1>Log in</h1>{}<form method=\"post\" action=\"/dashboard/login\">\
         <label>Admin API key or token <input id=\"token\" name=\"token\" type=\"password\" size=\"70\" autocomplete=\"off\"></label> \
         <button id=\"login\" type=\"submit\">Log in</button></form>",
        if error.is_empty() {
            String::new()
        } else {
            format!("<p class=\"err\">{}</p>", super::dashboard::esc(error))
        }
    )
}

fn login_page_with(status: StatusCode, error: &str) -> Response {
    (status, super::dashboard::page("Log in", &login_form(error))).into_response()
}

pub async fn login_page() -> Html<String> {
    super::dashboard::page("Log in", &login_form(""))
}

pub async fn login(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = form.get("token").map(|t| t.trim()).unwrap_or("");
    match s.auth.verify(token) {
        Ok(c) if c.admin => match s.sessions.create(&c).await {
            Ok((id, ttl)) => (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/dashboard".to_string()),
                    (header::SET_COOKIE, s.sessions.cookie(&headers, &id, ttl)),
                ],
            )
                .into_response(),
            Err(e) => super::dashboard::failed(e),
        },
        Ok(_) => login_page_with(StatusCode::FORBIDDEN, "admins only"),
        Err(p) => login_page_with(StatusCode::UNAUTHORIZED, &p.detail),
    }
}

pub async fn logout(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        if let Err(e) = s.sessions.delete(&id).await {
            return super::dashboard::failed(e);
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/dashboard/login".to_string()),
            (
                header::SET_COOKIE,
                s.sessions.cookie(&headers, "", Duration::ZERO),
            ),
        ],
    )
        .into_response()
}
