//! The HTTP API over [`App`]: routes, JSON bodies, errors as `{"error": "…"}` with a 4xx
//! (or 5xx) status.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::preprocess::SIDE;

use super::app::{App, ImageError};
use super::{MAX_BODY_BYTES, PAGE};
use crate::answer::Answer;

/// An error answer: a status and `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong, for a person.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        ApiError::unprocessable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// The 784 pixels of a `{"pixels": [...]}` body, or what is wrong with it.
pub fn parse_pixels(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let expected = "expected {\"pixels\": [784 integers 0–255]} (28×28, row-major, 0 = background)";
    let pixels = value
        .get("pixels")
        .ok_or_else(|| ApiError::bad_request(format!("no \"pixels\" field: {expected}")))?
        .as_array()
        .ok_or_else(|| ApiError::bad_request(format!("\"pixels\" is not an array: {expected}")))?;
    if pixels.len() != SIDE * SIDE {
        let n = pixels.len();
        return Err(ApiError::bad_request(format!(
            "\"pixels\" has {n} value{}: {expected}",
            if n == 1 { "" } else { "s" }
        )));
    }
    pixels
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .filter(|&p| p <= 255)
                .map(|p| p as u8)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("pixels[{i}] = {v} is not an integer in 0–255"))
                })
        })
        .collect()
}

type Shared = Arc<App>;

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn model(State(app): State<Shared>) -> impl IntoResponse {
    axum::Json(app.describe())
}

async fn predict(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Answer>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" | "" => {
            let pixels = parse_pixels(&body)?;
            Ok(axum::Json(app.predict_pixels(&pixels)?))
        }
        "image/png" | "image/jpeg" | "image/x-portable-graymap" => {
            let bytes = body.to_vec();
            // Decoding a large image takes milliseconds: off the async workers.
            let answer = tokio::task::spawn_blocking(move || app.predict_image(&bytes))
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            answer.map(axum::Json).map_err(ApiError::from)
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {other:?} is not accepted: send application/json with \
                 {{\"pixels\": [...]}}, or image/png, image/jpeg or image/x-portable-graymap"
            ),
        )),
    }
}

#[derive(Deserialize)]
struct TestDigitQuery {
    index: Option<String>,
}

async fn test_digit(
    State(app): State<Shared>,
    Query(q): Query<TestDigitQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let test = app.test.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no test data was loaded (start serve with --data DIR)",
        )
    })?;
    let index = match q.index {
        None => rand::random_range(0..test.len()),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|&i| i < test.len())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "index {s:?} is not a test image: give 0 to {}",
                    test.len() - 1
                ))
            })?,
    };
    let truth = test.labels()[index] as usize;
    let answer = app.predict_test_digit(test.image(index));
    Ok(axum::Json(json!({
        "index": index,
        "truth": truth,
        "truth_label": app.names().label(truth),
        "prediction": answer,
    })))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such page: the routes are GET /, POST /api/predict, GET /api/model, GET /api/test-digit, GET /healthz",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "wrong method for this path: GET /, POST /api/predict, GET /api/model, GET /api/test-digit, GET /healthz",
    )
}

/// The routes, with the body limit (413 as JSON) and the request deadline.
pub fn router(app: Arc<App>, timeout: Duration) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(health))
        .route("/api/model", get(model))
        .route("/api/predict", post(predict))
        .route("/api/test-digit", get(test_digit))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_body_errors))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(app)
}

/// axum answers an oversized body (413) and a few extractor failures in plain text; give them
/// the same `{"error": …}` shape as every other error.
async fn json_body_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body is over the limit of {MAX_BODY_BYTES} bytes (1 MiB)")
        }
        StatusCode::REQUEST_TIMEOUT => "the request took too long (slow client?)".to_string(),
        _ => {
            let bytes = axum::body::to_bytes(response.into_body(), 64 << 10)
                .await
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    ApiError::new(status, message).into_response()
}
