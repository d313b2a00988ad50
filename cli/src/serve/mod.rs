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
//! [`MAX_BODY_BYTES`] get 413. The answer is [`Model::predict`](mnist_logreg::model::Model::predict)'s
//! (the scalar reference's probabilities and their argmax); a test checks that it agrees with
//! `train`'s evaluation on every test image.
//!
//! | file | what |
//! | --- | --- |
//! | `app.rs` | [`App`]: the model, its names and the test digits; answers without HTTP |
//! | `api.rs` | routes, JSON bodies and errors ([`ApiError`]) over an `App` |
//! | `server.rs` | [`serve`]: connections, deadlines, graceful shutdown |
//!
//! The server is axum on tokio, with hyper's connection builder used directly so that a client
//! that sends its headers too slowly is cut off (`header_read_timeout`), and every request has a
//! deadline ([`ServeOptions::timeout`]).

mod api;
mod app;
mod server;

pub use api::{ApiError, router};
pub use app::{App, ImageError};
pub use server::{ServeOptions, serve};

/// Largest request body accepted (1 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The page, every asset inline: nothing is fetched from elsewhere.
pub(crate) const PAGE: &str = include_str!("page.html");
