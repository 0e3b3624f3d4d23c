//! The producers' HTTP API (Chatter's `/api/v1/jobs` routes and more), the SSE event stream, the
//! OpenAPI document with its docs page, and the dashboard. Served by `run` on `http_addr` beside
//! `/metrics`.
//!
//! - `jobs`: routes over the queues (enqueue, list, show, cancel, retry, stats, cleanup, batch).
//! - `events`: SSE relay of the event log, owner-scoped, with `Last-Event-ID` replay.
//! - `auth`: API keys and Chatter's JWTs; `problem`: RFC 7807 errors and body readers.
//! - `dashboard`: server-rendered HTML pages for operators (admins); `session`: its login.
//! - `intake`: credentials before bodies, body size and time limits.
pub mod auth;
pub mod dashboard;
pub mod events;
pub mod intake;
pub mod jobs;
pub mod problem;
pub mod session;

use crate::backend::{Backend, Queue, QueueOptions};
use crate::config::Settings;
use auth::{Auth, Caller};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use chatter_jobs::Registry;
use chatter_jobs::store::DocumentStore;
use problem::{ApiResult, Problem};
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

pub struct Inner {
    pub backend: Arc<dyn Backend>,
    pub options: QueueOptions,
    pub registry: Registry,
    pub auth: Auth,
    pub hub: Arc<events::Hub>,
    pub store: Option<Arc<dyn DocumentStore>>,
    pub max_batch: usize,
    pub keepalive: Duration,
    /// Kinds users may enqueue (`[api] user_kinds`); admins may enqueue every kind.
    pub user_kinds: Vec<String>,
    /// Tripped at shutdown: SSE streams end, so the server can stop.
    pub stop: tokio_util::sync::CancellationToken,
    /// Dashboard logins (`[http] session_ttl_secs`).
    pub sessions: session::Sessions,
    /// Largest request body (`[api] max_body_mb`) and the time it may take to arrive.
    pub max_body: usize,
    pub body_timeout: Duration,
}

impl std::ops::Deref for ApiState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl ApiState {
    /// Build the state and start the process's event-log tail (stopped by `stop`).
    pub async fn new(
        settings: &Settings,
        registry: Registry,
        backend: Arc<dyn Backend>,
        store: Option<Arc<dyn DocumentStore>>,
        stop: tokio_util::sync::CancellationToken,
    ) -> crate::backend::Result<Self> {
        let hub = events::Hub::start(backend.clone(), stop.clone()).await;
        let auth = Auth::new(&settings.api);
        if auth.is_closed() {
            tracing::info!(
                "api: no [api] jwt_secret / CW_JWT_SECRET and no [[api.keys]]: every API call gets 401"
            );
        }
        Ok(Self(Arc::new(Inner {
            options: settings.queue_options(),
            registry,
            auth,
            hub,
            store,
            max_batch: settings.api.max_batch,
            keepalive: Duration::from_secs_f64(settings.api.keepalive_secs),
            user_kinds: settings.api.user_kinds.clone(),
            stop,
            sessions: session::Sessions {
                store: backend.sessions(),
                ttl: Duration::from_secs_f64(settings.http.session_ttl_secs),
                always_secure: settings.http.secure_cookie,
                trust_forwarded_proto: settings.http.trust_forwarded_proto,
            },
            max_body: settings.api.max_body(),
            body_timeout: Duration::from_secs_f64(settings.http.body_timeout_secs),
            backend,
        })))
    }

    pub fn caller(&self, headers: &HeaderMap) -> ApiResult<Caller> {
        self.auth.caller(headers)
    }

    /// The caller, who must be an admin (403 otherwise).
    pub fn admin(&self, headers: &HeaderMap) -> ApiResult<Caller> {
        let c = self.caller(headers)?;
        if !c.admin {
            return Err(Problem::forbidden("admins only"));
        }
        Ok(c)
    }

    pub fn queue(&self, name: &str) -> Arc<dyn Queue> {
        self.backend.queue(name, self.options.clone())
    }

    /// Every queue producers or workers have used, and every queue a registered kind runs on.
    pub async fn queues(&self) -> ApiResult<Vec<Arc<dyn Queue>>> {
        Ok(self
            .backend
            .all_queues(&self.registry, &self.options)
            .await?)
    }

    /// The queue holding job `id` (asking every queue at once).
    pub async fn find(&self, id: &str) -> ApiResult<Option<Arc<dyn Queue>>> {
        Ok(self
            .backend
            .find_job(&self.registry, &self.options, id)
            .await?)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatter-worker",
        description = "Chatter's job API: enqueue and inspect jobs, live job and document events.",
        version = env!("CARGO_PKG_VERSION")
    ),
    paths(
        jobs::create, jobs::list, jobs::batch, jobs::show, jobs::cancel, jobs::retry,
        jobs::overview, jobs::queue_stats, jobs::cleanup, jobs::process_document,
        jobs::run_workflow, events::stream
    ),
    components(schemas(problem::Problem, problem::FieldError, jobs::JobStatus, jobs::JobPriority)),
    modifiers(&Security),
    tags(
        (name = "jobs", description = "Chatter's /api/v1/jobs routes"),
        (name = "documents", description = "Document processing"),
        (name = "workflows", description = "Workflow runs"),
        (name = "events", description = "Server-sent events")
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// A job id as the routes take it: a ULID in Crockford base32.
pub const ULID_PATTERN: &str = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$";

/// The generated document, completed with what only the running process knows: the registered
/// job kinds (`function_name`'s enum) and the ULID pattern of path ids.
pub fn openapi_document(registry: &Registry) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let kinds: Vec<&str> = registry.names().collect();
    if let Some(f) = doc.pointer_mut("/components/schemas/JobCreate/properties/function_name") {
        f["enum"] = serde_json::json!(kinds);
    }
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            if !path.starts_with("/api/v1/jobs/{id}") {
                continue;
            }
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                for p in op["parameters"].as_array_mut().into_iter().flatten() {
                    if p["name"] == "id" && p["in"] == "path" {
                        p["schema"]["pattern"] = ULID_PATTERN.into();
                    }
                }
            }
        }
    }
    doc
}

async fn openapi_json(
    axum::extract::State(s): axum::extract::State<ApiState>,
) -> impl IntoResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOC.get_or_init(|| {
        serde_json::to_string_pretty(&openapi_document(&s.registry)).unwrap_or_default()
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone())
}

/// The docs page (docs.html) is one inline script and style that talk to this server only:
/// nothing loaded or sent elsewhere, never framed.
const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async fn docs_page() -> impl IntoResponse {
    (
        [
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, DOCS_CSP),
        ],
        Html(include_str!("docs.html")),
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method",
    )
}

/// axum's own rejections (a body over the limit, a malformed request) as problem documents.
async fn problems_only(r: axum::response::Response) -> axum::response::Response {
    let status = r.status();
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    if (status.is_client_error() || status.is_server_error()) && plain {
        let detail = axum::body::to_bytes(r.into_body(), 64 * 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        return Problem::new(status, detail).into_response();
    }
    r
}

/// Unknown routes under /api answer with a problem document too.
async fn api_not_found() -> Problem {
    Problem::not_found("no such route")
}

pub fn router(state: ApiState, max_body: usize) -> Router {
    let api = Router::new()
        .route("/api/v1/jobs", post(jobs::create).get(jobs::list))
        // FastAPI's routes under the prefix end with a slash: both are served.
        .route("/api/v1/jobs/", post(jobs::create).get(jobs::list))
        .route("/api/v1/jobs/batch", post(jobs::batch))
        .route("/api/v1/jobs/stats/overview", get(jobs::overview))
        .route("/api/v1/jobs/stats/queues", get(jobs::queue_stats))
        .route("/api/v1/jobs/cleanup", post(jobs::cleanup))
        .route("/api/v1/jobs/{id}", get(jobs::show))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/jobs/{id}/retry", post(jobs::retry))
        .route(
            "/api/v1/documents/{id}/process",
            post(jobs::process_document),
        )
        .route("/api/v1/workflows/run", post(jobs::run_workflow))
        .route("/api/v1/events/stream", get(events::stream))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/docs", get(docs_page))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(problems_only))
        .layer(DefaultBodyLimit::max(max_body));
    api.merge(dashboard::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            intake::guard,
        ))
        .with_state(state)
}
