//! The drawing page and its JSON API (feature `serve`): a model behind HTTP.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the page: a drawing pad, live probabilities, the 28×28 input the model sees |
//! | `POST /api/predict` | `{"pixels": [784 integers 0–255]}` (MNIST polarity, used as given), or an image body (`image/png`, `image/jpeg`, `image/x-portable-graymap`) prepared like `predict` |
//! | `GET /api/model` | features, classes, class names, test accuracy, kernel, SIMD path |
//! | `GET /api/test-digit` | a random MNIST test image (or `?index=N`), its label and the model's answer |
//! | `GET /healthz` | `{"status": "ok"}` |
//!
//! Every error is a 4xx (or 5xx) with `{"error": "…"}` saying what is wrong; bodies over
//! [`MAX_BODY_BYTES`] get 413. The predicted class comes from the same fused u8 kernel that
//! `train` evaluates with, on the same SIMD path, so the page and `train` agree image for image;
//! the probabilities shown are the scalar reference's.
//!
//! The server is axum on tokio, with hyper's connection builder used directly so that a client
//! that sends its headers too slowly is cut off (`header_read_timeout`), and every request has a
//! deadline ([`ServeOptions::timeout`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::classes::ClassNames;
use crate::dataset::Split;
use crate::kernels::{Batch, Isa, Kernel, KernelKind, Pixels, reference};
use crate::model::Model;
use crate::preprocess::{self, Invert, SIDE};

/// Largest request body accepted (1 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The page, every asset inline: nothing is fetched from elsewhere.
pub const PAGE: &str = include_str!("page.html");

/// Everything a request needs: the model, its names, the test split for sample digits.
pub struct App {
    model: Model,
    names: ClassNames,
    kernel: Box<dyn Kernel>,
    kernel_kind: KernelKind,
    test: Option<Split>,
    test_accuracy: Option<f64>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("features", &self.model.features())
            .field("classes", &self.model.classes())
            .field("test_accuracy", &self.test_accuracy)
            .finish_non_exhaustive()
    }
}

/// One answer of the model.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Prediction {
    /// The predicted class (the kernel's argmax, first index on ties).
    pub class: usize,
    /// Its name.
    pub label: String,
    /// `softmax(x·W + b)` per class.
    pub probabilities: Vec<f32>,
    /// The 28×28 input the model saw, row-major (for image bodies: after preprocessing).
    pub prepared: Vec<u8>,
    /// How an image body is unlike an MNIST digit (empty for pixels).
    pub warnings: Vec<String>,
}

impl App {
    /// An app serving `model` (784 features) on the fused u8 kernel of `isa`. `test` (the
    /// test split) enables `/api/test-digit`; `test_accuracy` is reported by `/api/model`.
    pub fn new(
        model: Model,
        names: ClassNames,
        isa: Isa,
        test: Option<Split>,
        test_accuracy: Option<f64>,
    ) -> Self {
        assert_eq!(model.features(), SIDE * SIDE, "the page draws 28×28 digits");
        let kernel_kind = KernelKind::FusedU8;
        Self {
            kernel: kernel_kind.build_on(isa, 1),
            kernel_kind,
            model,
            names,
            test,
            test_accuracy,
        }
    }

    /// The model's answer for 784 pixels (MNIST polarity, 0 = background).
    pub fn predict_pixels(&self, pixels: &[u8], warnings: Vec<String>) -> Prediction {
        assert_eq!(pixels.len(), self.model.features());
        let (labels, rows) = ([0u8], [0usize]);
        // Label 0 is below every class count; only the prediction is used.
        let batch = Batch::new(Pixels::U8(pixels), self.model.features(), &labels, &rows, 1)
            .expect("one row of 784 pixels with label 0");
        let mut predicted = [0u8];
        self.kernel
            .forward(&self.model, &batch, Some(&mut predicted));
        let class = predicted[0] as usize;
        Prediction {
            class,
            label: self.names.label(class),
            probabilities: reference::probabilities(&self.model, pixels),
            prepared: pixels.to_vec(),
            warnings,
        }
    }

    /// The model's answer for an image file's bytes, prepared like `predict` does.
    pub fn predict_image(&self, bytes: &[u8]) -> Result<Prediction, ApiError> {
        let gray = preprocess::decode_gray(bytes, preprocess::MAX_PIXELS).map_err(|e| match e {
            preprocess::DecodeError::Image(reason) => {
                ApiError::unprocessable(format!("the image cannot be decoded: {reason}"))
            }
            preprocess::DecodeError::TooLarge { width, height } => {
                ApiError::unprocessable(format!(
                    "the image is {width}×{height}, over the limit of {} pixels",
                    preprocess::MAX_PIXELS
                ))
            }
        })?;
        let prepared = preprocess::to_mnist(&gray, Invert::Auto)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let warnings = prepared.unlike.iter().map(|u| u.to_string()).collect();
        Ok(self.predict_pixels(&prepared.pixels, warnings))
    }

    /// What `/api/model` reports.
    pub fn describe(&self) -> Value {
        json!({
            "features": self.model.features(),
            "classes": self.model.classes(),
            "class_names": (0..self.model.classes()).map(|c| self.names.label(c)).collect::<Vec<_>>(),
            "test_accuracy": self.test_accuracy,
            "kernel": self.kernel_kind.to_string(),
            "simd": self.kernel.simd(),
            "test_images": self.test.as_ref().map_or(0, |t| t.len()),
        })
    }
}

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
        return Err(ApiError::bad_request(format!(
            "\"pixels\" has {} values: {expected}",
            pixels.len()
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
) -> Result<axum::Json<Prediction>, ApiError> {
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
            Ok(axum::Json(app.predict_pixels(&pixels, Vec::new())))
        }
        "image/png" | "image/jpeg" | "image/x-portable-graymap" => {
            let bytes = body.to_vec();
            // Decoding a large image takes milliseconds: off the async workers.
            let answer = tokio::task::spawn_blocking(move || app.predict_image(&bytes))
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            answer.map(axum::Json)
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
    let answer = app.predict_pixels(test.image(index), Vec::new());
    Ok(axum::Json(json!({
        "index": index,
        "truth": truth,
        "truth_label": app.names.label(truth),
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

/// Serving options.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Deadline for reading a request's headers, and for a whole request.
    pub timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
        }
    }
}

/// Accept connections on `listener` until `shutdown` resolves, then let the requests in flight
/// finish. Each connection is HTTP/1.1 with keep-alive; headers must arrive within
/// `options.timeout`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let router = router(app, options.timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                // Out of file descriptors and the like: wait a moment, keep serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    // Requests in flight get the request deadline to finish.
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.timeout) => {}
    }
    Ok(())
}
