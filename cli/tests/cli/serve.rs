//! The `serve` binary over real HTTP on loopback: every test image through the API agrees with
//! `train`'s predictions, every bad input gets its status and message, slow clients time out
//! without holding up others, and SIGTERM stops the server cleanly.
#![cfg(feature = "serve")]

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::{Client, start_server};
use mnist_logreg::kernels::KernelKind;
use mnist_logreg_cli::run::{self, DataSource, LoadedData};

const SERVE: &str = env!("CARGO_BIN_EXE_serve");

/// A model saved by `train` (300 steps), in `dir`.
fn saved_model(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("model.safetensors");
    common::run_ok(
        common::train_cmd()
            .args(["--steps", "300", "--quiet", "--save"])
            .arg(&path),
    );
    path
}

/// Stops the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_test_image_agrees_with_train() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = saved_model(dir.path());
    let (child, addr) = start_server(SERVE, &["--model", model_path.to_str().unwrap()]);
    let _server = Server(child);

    // What `train` computes for this model: its default kernel over the test split.
    let data = LoadedData::open(
        &DataSource::new(common::mnist_dir()),
        KernelKind::ParallelU8.input(),
        false,
    )
    .unwrap();
    let model = run::initial_model(Some(&model_path), 784, 10).unwrap();
    let kernel = KernelKind::ParallelU8.build(0);
    let want = run::evaluate_test(kernel.as_ref(), &model, &data).unwrap();

    let mut client = Client::connect(&addr).unwrap();
    let test = &data.dataset().unwrap().test;
    let mut disagree = Vec::new();
    let mut doubted = 0;
    let mut worst_difference = 0.0f64;
    for i in 0..test.len() {
        let answer = client.predict_pixels(test.image(i)).unwrap();
        assert_eq!(answer.status, 200);
        let json = answer.json();
        doubted += usize::from(!json["warnings"].as_array().unwrap().is_empty());
        let class = json["class"].as_u64().unwrap() as u32;
        if class != want.predictions[i] {
            disagree.push((i, class, want.predictions[i]));
        }
        // The SIMD kernel's probabilities are the scalar reference's, up to f32 rounding
        // (measured: at most 4.7e-5 apart over the 10 000 test digits, avx512).
        let p: Vec<f64> = json["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let reference = model.predict(test.image(i)).unwrap().probabilities;
        let worst = p
            .iter()
            .zip(&reference)
            .map(|(a, &b)| (a - f64::from(b)).abs())
            .fold(0.0, f64::max);
        worst_difference = worst_difference.max(worst);
        if i == 0 {
            assert_eq!(p.len(), 10);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5);
            assert_eq!(json["label"], class.to_string());
        }
    }
    assert!(
        worst_difference < 1e-4,
        "probabilities differ from the reference by {worst_difference}"
    );
    assert_eq!(disagree, [], "images where the API and train disagree");
    // The pixels path doubts the test digits at the rate the score was calibrated to.
    let (_, novelty, _) = mnist_logreg_cli::novelty::load_with_novelty(&model_path).unwrap();
    let share = novelty
        .expect("train --save stores a novelty score")
        .flagged_share();
    assert_eq!(doubted, (share * test.len() as f32).round() as usize);
}

#[test]
fn bad_requests_get_their_status_and_message() {
    let (child, addr) = start_server(SERVE, &[]);
    let _server = Server(child);
    let mut c = Client::connect(&addr).unwrap();
    let json = Some("application/json");
    let pixels = |values: &str| format!("{{\"pixels\": [{values}]}}");
    let zeros = |n: usize| vec!["0"; n].join(",");
    let with_value = |v: &str| {
        let mut values = vec!["0".to_string(); 784];
        values[5] = v.to_string();
        pixels(&values.join(","))
    };
    let big = vec![0u8; (1 << 20) + 1];
    let blank = {
        let mut png = Vec::new();
        image::DynamicImage::ImageLuma8(image::GrayImage::new(40, 40))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    };
    // (method, path, content type, body, status, message)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/predict",
            json,
            b"{not json".to_vec(),
            400,
            "the body is not JSON",
        ),
        (
            "POST",
            "/api/predict",
            json,
            b"{\"pix\": []}".to_vec(),
            400,
            "no \"pixels\" field",
        ),
        (
            "POST",
            "/api/predict",
            json,
            b"{\"pixels\": 7}".to_vec(),
            400,
            "\"pixels\" is not an array",
        ),
        (
            "POST",
            "/api/predict",
            json,
            pixels(&zeros(783)).into_bytes(),
            400,
            "\"pixels\" has 783 values",
        ),
        (
            "POST",
            "/api/predict",
            json,
            pixels("0").into_bytes(),
            400,
            "\"pixels\" has 1 value:",
        ),
        (
            "POST",
            "/api/predict",
            json,
            with_value("256").into_bytes(),
            400,
            "pixels[5] = 256 is not an integer in 0–255",
        ),
        (
            "POST",
            "/api/predict",
            json,
            with_value("-1").into_bytes(),
            400,
            "pixels[5] = -1 is not an integer",
        ),
        (
            "POST",
            "/api/predict",
            json,
            with_value("1.5").into_bytes(),
            400,
            "pixels[5] = 1.5 is not an integer",
        ),
        (
            "POST",
            "/api/predict",
            json,
            with_value("\"7\"").into_bytes(),
            400,
            "pixels[5] = \"7\" is not an integer",
        ),
        (
            "POST",
            "/api/predict",
            Some("image/png"),
            b"not a png".to_vec(),
            422,
            "the image cannot be decoded",
        ),
        (
            "POST",
            "/api/predict",
            Some("image/png"),
            blank,
            422,
            "the image is blank",
        ),
        // The same rule for pixels: a cleared pad, or all ink.
        (
            "POST",
            "/api/predict",
            json,
            pixels(&zeros(784)).into_bytes(),
            422,
            "the image is blank",
        ),
        (
            "POST",
            "/api/predict",
            json,
            pixels(&vec!["255"; 784].join(",")).into_bytes(),
            422,
            "the image is blank",
        ),
        (
            "POST",
            "/api/predict",
            Some("image/png"),
            big,
            413,
            "over the limit of 1048576 bytes",
        ),
        (
            "POST",
            "/api/predict",
            Some("text/plain"),
            b"7".to_vec(),
            415,
            "is not accepted",
        ),
        ("GET", "/nowhere", None, Vec::new(), 404, "no such page"),
        ("GET", "/api/predict", None, Vec::new(), 405, "wrong method"),
        ("DELETE", "/healthz", None, Vec::new(), 405, "wrong method"),
        (
            "GET",
            "/api/test-digit?index=10000",
            None,
            Vec::new(),
            400,
            "is not a test image",
        ),
        (
            "GET",
            "/api/test-digit?index=x",
            None,
            Vec::new(),
            400,
            "is not a test image",
        ),
    ];
    for (method, path, ct, body, status, message) in cases {
        let r = c.request(method, path, ct, &body).unwrap();
        let err = r.json();
        assert_eq!(r.status, status, "{method} {path}: {err}");
        let text = err["error"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{method} {path}: {text}");
        // The connection survives every error (except when the server must close it).
        if status == 413 {
            c = Client::connect(&addr).unwrap();
        }
    }
    // And the server still answers.
    assert_eq!(c.get("/healthz").unwrap().json()["status"], "ok");
}

#[test]
fn simd_is_honoured_with_a_model_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = saved_model(dir.path());
    let (child, addr) = start_server(
        SERVE,
        &["--model", model_path.to_str().unwrap(), "--simd", "scalar"],
    );
    let _server = Server(child);
    let mut c = Client::connect(&addr).unwrap();
    let model = c.get("/api/model").unwrap().json();
    assert_eq!(model["kernel"], "fused_u8");
    assert_eq!(model["simd"], "scalar (1 lane)");
    let answer = c.get("/api/test-digit?index=0").unwrap().json();
    assert_eq!(answer["prediction"]["class"], 7);
}

#[test]
fn page_model_health_and_test_digits() {
    let (child, addr) = start_server(SERVE, &[]);
    let _server = Server(child);
    let mut c = Client::connect(&addr).unwrap();
    let page = c.get("/").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    let html = String::from_utf8(page.body).unwrap();
    for id in [
        "pad",
        "prediction",
        "probabilities",
        "prepared",
        "clear",
        "test-digit",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "#{id}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched from elsewhere"
    );
    let model = c.get("/api/model").unwrap().json();
    assert_eq!(model["features"], 784);
    assert_eq!(model["classes"], 10);
    assert_eq!(model["class_names"].as_array().unwrap().len(), 10);
    assert!(model["test_accuracy"].as_f64().unwrap() > 0.9);
    // The kernel that answers, on the instruction set MNIST_LOGREG_SIMD names (else the widest).
    assert_eq!(model["kernel"], "fused_u8");
    let best = mnist_logreg::kernels::Isa::from_env().unwrap();
    assert_eq!(
        model["simd"].as_str().unwrap().split(' ').next(),
        Some(best.name())
    );
    let digit = c.get("/api/test-digit?index=0").unwrap().json();
    assert_eq!(digit["truth"], 7);
    assert_eq!(
        digit["prediction"]["prepared"].as_array().unwrap().len(),
        784
    );
    let random = c.get("/api/test-digit").unwrap().json();
    assert!(random["index"].as_u64().unwrap() < 10_000);
}

#[test]
fn a_slow_client_times_out_without_holding_up_others() {
    let (child, addr) = start_server(SERVE, &["--timeout", "1"]);
    let _server = Server(child);
    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Meanwhile others are served at once.
    let start = Instant::now();
    let mut c = Client::connect(&addr).unwrap();
    let mut stroke = [0u8; 784];
    stroke[14 * 28 + 14] = 255;
    assert_eq!(c.predict_pixels(&stroke).unwrap().status, 200);
    assert!(start.elapsed() < Duration::from_millis(900));
    // The slow one is cut off after about a second.
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // A body that never arrives completes with 408 after the deadline.
    let mut slow_body = TcpStream::connect(&addr).unwrap();
    slow_body
        .write_all(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    slow_body
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = vec![0; 12];
    slow_body.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 408");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let (mut child, addr) = start_server(SERVE, &[]);
    let mut c = Client::connect(&addr).unwrap();
    assert_eq!(c.get("/healthz").unwrap().status, 200);
    drop(c);
    // SAFETY: `kill` sends a signal to our own child process, which has not been waited on.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
