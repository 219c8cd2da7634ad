//! The HTTP control plane (axum, named only here): zones, record sets, pools and endpoints
//! changed at run time, health and explain views, reload. JSON in and out under `/api/v1`;
//! the JSON model is the zone model of the TOML files (`zone::spec`). Every change goes
//! through `Control::update_zone`: validated by the start-up build, written durably, then
//! swapped into the answers, before the response.

mod auth;
mod ops;
mod registrations;
mod simulate;
mod status;
mod zones;

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use auth::{Tokens, hash_token};

use crate::config::ApiConfig;
use crate::control::{Control, UpdateError};
use crate::zone::ZoneError;

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    control: Arc<Control>,
    tokens: Arc<Tokens>,
}

/// An error answer: a status and a JSON body `{ "error": …, "field": …, "file": …, "line": … }`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
        }
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    /// 422 for a value that is well-formed JSON (or a path segment) but not valid: the field
    /// named, as zone errors name theirs.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({ "error": format!("{field}: {reason}"), "field": field, "reason": reason }),
        }
    }
    /// A JSON body that could not be taken: 400 if it does not parse, 413 if too large, 415
    /// without a JSON content type, 422 with the field for a value of the wrong shape.
    pub fn rejected(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection;
        let text = rejection.body_text();
        if let JsonRejection::JsonDataError(_) = rejection {
            // "Failed to deserialize the JSON body into the target type: data[0]: invalid …"
            let detail = text.split_once("target type: ").map_or(&*text, |(_, d)| d);
            if let Some((field, reason)) = detail.split_once(": ")
                && !field.contains(' ')
            {
                return Self::invalid(field, reason);
            }
        }
        Self::new(rejection.status(), text)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn precondition_failed(m: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::Invalid(ZoneError::Invalid { at, field, message }) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: json!({
                    "error": format!("{field}: {message}"),
                    "field": field,
                    "reason": message,
                    "file": at.file.display().to_string(),
                    "line": at.line,
                }),
            },
            UpdateError::Invalid(other) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string())
            }
            UpdateError::Io(e) if is_out_of_space(&e) => Self {
                status: StatusCode::INSUFFICIENT_STORAGE,
                body: json!({
                    "error": format!("not written: no room on disk for the change: {e}"),
                    "reason": "disk full",
                }),
            },
            UpdateError::Io(e) => Self::internal(format!("not written: {e}")),
            UpdateError::Unavailable(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, m),
            UpdateError::OutcomeUnknown(id) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: json!({
                    "error": format!(
                        "etcd did not answer whether this change was committed; \
                         GET /api/v1/writes/{id} tells"
                    ),
                    "outcome": "unknown",
                    "id": id,
                }),
            },
        }
    }
}

/// A full disk, a quota, or a file size limit: the change did not fit (RFC 4918 §11.5: 507).
fn is_out_of_space(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    matches!(e.kind(), StorageFull | QuotaExceeded | FileTooLarge)
}

impl From<crate::store::edit::EditError> for ApiError {
    fn from(e: crate::store::edit::EditError) -> Self {
        use crate::store::edit::EditError;
        match e {
            EditError::NotFound(what) => Self::not_found(format!("{what} not found")),
            EditError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The router of every endpoint, for `serve` and for tests.
pub fn router(control: Arc<Control>, tokens: Tokens) -> axum::Router {
    let api = Api {
        control,
        tokens: Arc::new(tokens),
    };
    let v1 = axum::Router::new()
        .route("/zones", get(zones::list))
        .route(
            "/zones/{zone}",
            get(zones::get_zone)
                .put(zones::put_zone)
                .delete(zones::delete_zone),
        )
        .route(
            "/zones/{zone}/records/{name}/{rtype}",
            get(zones::get_records)
                .put(zones::put_records)
                .delete(zones::delete_records),
        )
        .route(
            "/zones/{zone}/pools/{name}",
            get(zones::get_pool)
                .put(zones::put_pool)
                .delete(zones::delete_pool),
        )
        .route(
            "/zones/{zone}/pools/{name}/endpoints/{address}",
            patch(zones::patch_endpoint),
        )
        .route(
            "/zones/{zone}/pools/{name}/registrations/{address}",
            put(registrations::put).delete(registrations::delete),
        )
        .route("/zones/{zone}/registrations", get(registrations::list))
        .route("/health", get(status::health))
        .route("/explain", get(status::explain))
        .route("/simulate", get(simulate::get).post(simulate::post))
        .route("/reload", post(status::reload))
        .route("/writes/{id}", get(status::write_outcome))
        .route("/openapi.json", get(status::openapi));
    axum::Router::new()
        .nest("/api/v1", v1)
        .route("/", get(ops::page))
        .route("/status.js", get(ops::script))
        .route("/status.css", get(ops::style))
        .route("/status.json", get(ops::status))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(|| async { ApiError::not_found("no such endpoint (the API is under /api/v1)") })
        .layer(axum::middleware::from_fn(count_request))
        .with_state(api)
}

/// Counts every request by route (the pattern, not the path: bounded labels), method and status.
async fn count_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    crate::metrics::global().record_api_request(&route, &method, response.status().as_u16());
    response
}

/// Serves the API until `shutdown`.
pub async fn serve(
    config: ApiConfig,
    control: Arc<Control>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let bound = bind(&config).await?;
    serve_bound(bound, control, shutdown).await
}

/// The API's tokens and its bound listening socket: what `serve` refuses, refused before
/// anything is served (and by `meridian check`, for the tokens).
pub struct Bound {
    tokens: Tokens,
    listener: tokio::net::TcpListener,
}

/// Reads the tokens (their environment variables too) and binds the API's address.
pub async fn bind(config: &ApiConfig) -> std::io::Result<Bound> {
    let tokens = check_tokens(config).map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("API on {}: {e}", config.listen)))?;
    Ok(Bound { tokens, listener })
}

/// The configured tokens, read and checked as `serve` reads them.
pub fn check_tokens(config: &ApiConfig) -> Result<Tokens, String> {
    Tokens::from_config(&config.tokens)
}

/// Serves the API on its bound socket until `shutdown`.
pub async fn serve_bound(
    bound: Bound,
    control: Arc<Control>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!("API listening on {}", bound.listener.local_addr()?);
    axum::serve(bound.listener, router(control, bound.tokens))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
