//! `fetch` against a local HTTP server on 127.0.0.1 that serves good, truncated, corrupted,
//! HTML and refused responses (feature `fetch`).
#![cfg(feature = "fetch")]

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{bin, gzip, run_err, run_ok};
use mnist_logreg::dataset::sha256_hex;
use mnist_logreg::fetch::{
    AttemptError, FetchError, FetchOptions, FileOutcome, FileSpec, fetch_all, partial_path,
};

/// One request the server saw: the path and the Range header, if any.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A server on 127.0.0.1 whose first path segment picks the behaviour:
/// `good` (Range honoured), `norange` (Range ignored), `nolength` (no Content-Length), `truncated` (announces the full length,
/// sends half, closes), `corrupt` (a byte flipped), `html` (an HTML page, text/html),
/// `html-octet` (an HTML page labelled application/octet-stream), `forbidden` (403).
struct Server {
    base: String,
    seen: Seen,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let files = Arc::new(files);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (files, log) = (files.clone(), log.clone());
                std::thread::spawn(move || handle(stream, &files, &log));
            }
        });
        Self { base, seen }
    }

    fn mirror(&self, mode: &str) -> String {
        format!("{}/{mode}/", self.base)
    }

    fn requests(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}

fn handle(
    stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    seen: &Mutex<Vec<(String, Option<String>)>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    seen.lock().unwrap().push((path.clone(), range.clone()));
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (mode, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut out = stream;
    let respond = |out: &mut TcpStream,
                   status: &str,
                   headers: &[(&str, String)],
                   body: &[u8],
                   announced: usize| {
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        // usize::MAX: no Content-Length, the body ends when the connection closes.
        if announced != usize::MAX {
            head.push_str(&format!("Content-Length: {announced}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(body);
        let _ = out.flush();
    };
    let gz = ("Content-Type", "application/gzip".to_string());
    let html = b"<!DOCTYPE html><html><body>Please sign in</body></html>".as_slice();
    let Some(file) = files.get(name) else {
        respond(&mut out, "404 Not Found", &[], b"", 0);
        return;
    };
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    match mode {
        "good" | "truncated" if start > 0 => {
            if start >= file.len() {
                respond(&mut out, "416 Range Not Satisfiable", &[], b"", 0);
                return;
            }
            let rest = &file[start..];
            let content_range = (
                "Content-Range",
                format!("bytes {start}-{}/{}", file.len() - 1, file.len()),
            );
            let sent = if mode == "good" {
                rest
            } else {
                &rest[..rest.len() / 2]
            };
            respond(
                &mut out,
                "206 Partial Content",
                &[gz, content_range],
                sent,
                rest.len(),
            );
        }
        "good" | "norange" => respond(&mut out, "200 OK", &[gz], file, file.len()),
        "nolength" => respond(&mut out, "200 OK", &[gz], file, usize::MAX),
        "truncated" => respond(
            &mut out,
            "200 OK",
            &[gz],
            &file[..file.len() / 2],
            file.len(),
        ),
        "corrupt" => {
            let mut bad = file.clone();
            let mid = bad.len() / 2;
            bad[mid] ^= 0x55;
            respond(&mut out, "200 OK", &[gz], &bad, bad.len());
        }
        "html" => respond(
            &mut out,
            "200 OK",
            &[("Content-Type", "text/html; charset=utf-8".into())],
            html,
            html.len(),
        ),
        "html-octet" => respond(
            &mut out,
            "200 OK",
            &[("Content-Type", "application/octet-stream".into())],
            html,
            html.len(),
        ),
        "forbidden" => respond(&mut out, "403 Forbidden", &[], b"", 0),
        _ => respond(&mut out, "404 Not Found", &[], b"", 0),
    }
}

/// A 200 KB file of pseudo-random bytes (so its gzip is about as large), its name and spec.
fn sample() -> (FileSpec, Vec<u8>) {
    let mut state = 0x2545_f491_u32;
    let content: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let spec = FileSpec {
        name: "sample-idx1-ubyte.gz".into(),
        sha256: sha256_hex(&content),
    };
    (spec, gzip(&content))
}

fn options(server: &Server, modes: &[&str]) -> FetchOptions {
    FetchOptions {
        mirrors: modes.iter().map(|m| server.mirror(m)).collect(),
        ..FetchOptions::default()
    }
}

fn fetch(
    dir: &Path,
    spec: &FileSpec,
    opts: &FetchOptions,
) -> (Result<Vec<FileOutcome>, FetchError>, Vec<String>) {
    let mut log = Vec::new();
    let result = fetch_all(dir, std::slice::from_ref(spec), opts, |l| {
        log.push(l.to_string())
    });
    (result, log)
}

fn setup() -> (tempfile::TempDir, FileSpec, Vec<u8>, Server) {
    let (spec, gz) = sample();
    let server = Server::start(HashMap::from([(spec.name.clone(), gz.clone())]));
    (tempfile::tempdir().unwrap(), spec, gz, server)
}

#[test]
fn good_mirror_delivers_a_verified_file() {
    let (dir, spec, gz, server) = setup();
    let (result, _) = fetch(dir.path(), &spec, &options(&server, &["good"]));
    assert_eq!(
        result.unwrap(),
        vec![FileOutcome::Downloaded {
            url: format!("{}{}", server.mirror("good"), spec.name),
            resumed: false
        }]
    );
    let target = dir.path().join(&spec.name);
    assert_eq!(std::fs::read(&target).unwrap(), gz);
    assert!(!partial_path(&target).exists());
    // A second run finds the file and asks nothing.
    let before = server.requests().len();
    let (result, _) = fetch(dir.path(), &spec, &options(&server, &["good"]));
    assert_eq!(result.unwrap(), vec![FileOutcome::Present]);
    assert_eq!(server.requests().len(), before);
}

#[test]
fn bad_mirrors_are_explained_and_skipped() {
    let (dir, spec, gz, server) = setup();
    let (result, log) = fetch(
        dir.path(),
        &spec,
        &options(
            &server,
            &["html", "forbidden", "html-octet", "corrupt", "good"],
        ),
    );
    assert!(matches!(result.unwrap()[0], FileOutcome::Downloaded { .. }));
    assert_eq!(std::fs::read(dir.path().join(&spec.name)).unwrap(), gz);
    let log = log.join("\n");
    assert!(
        log.contains(
            "/html/sample-idx1-ubyte.gz: the server sent an HTML page instead of a gzip file"
        ),
        "{log}"
    );
    assert!(
        log.contains("/forbidden/sample-idx1-ubyte.gz: HTTP 403 Forbidden"),
        "{log}"
    );
    assert!(
        log.contains("/html-octet/sample-idx1-ubyte.gz: the server sent an HTML page"),
        "{log}"
    );
    assert!(
        log.contains("/corrupt/sample-idx1-ubyte.gz: corrupt gzip"),
        "{log}"
    );
}

#[test]
fn when_every_mirror_fails_the_error_lists_each_reason() {
    let (dir, spec, _, server) = setup();
    let (result, _) = fetch(
        dir.path(),
        &spec,
        &options(&server, &["html", "forbidden", "corrupt", "missing"]),
    );
    let err = result.unwrap_err();
    let FetchError::AllMirrorsFailed { attempts, .. } = &err else {
        panic!("{err}")
    };
    assert!(matches!(attempts[0].1, AttemptError::Html));
    assert!(matches!(
        attempts[1].1,
        AttemptError::Status { status: 403, .. }
    ));
    assert!(matches!(attempts[2].1, AttemptError::CorruptGzip(_)));
    assert!(matches!(
        attempts[3].1,
        AttemptError::Status { status: 404, .. }
    ));
    let msg = err.to_string();
    assert!(
        msg.starts_with("sample-idx1-ubyte.gz: no mirror delivered a verified file"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 5, "{msg}");
    // Nothing unverified is left under the final name.
    assert!(!dir.path().join(&spec.name).exists());
}

#[test]
fn a_file_with_other_content_fails_the_checksum() {
    let (dir, mut spec, _, server) = setup();
    spec.sha256 = sha256_hex(b"something else");
    let (result, _) = fetch(dir.path(), &spec, &options(&server, &["good"]));
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.contains("SHA-256 of the decompressed bytes is"),
        "{msg}"
    );
    assert!(
        !partial_path(&dir.path().join(&spec.name)).exists(),
        "bad download discarded"
    );
}

#[test]
fn truncated_downloads_resume_with_range_requests() {
    let (dir, spec, gz, server) = setup();
    // The truncating mirror sends half of what is asked three times (1/2, 3/4, 7/8 of the
    // file), then the good mirror is asked for the rest only.
    let (result, log) = fetch(dir.path(), &spec, &options(&server, &["truncated", "good"]));
    let outcome = result.unwrap();
    assert!(
        matches!(&outcome[0], FileOutcome::Downloaded { url, resumed: true } if url.contains("/good/")),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read(dir.path().join(&spec.name)).unwrap(), gz);
    assert!(log[0].contains("truncated: received"), "{log:?}");
    let ranges: Vec<Option<String>> = server.requests().into_iter().map(|(_, r)| r).collect();
    let len = gz.len();
    let half = len / 2;
    let three_quarters = half + (len - half) / 2;
    assert_eq!(ranges[0], None);
    assert_eq!(ranges[1], Some(format!("bytes={half}-")));
    assert_eq!(ranges[2], Some(format!("bytes={three_quarters}-")));
    assert_eq!(ranges.len(), 4);
    assert!(ranges[3].is_some(), "the good mirror resumed: {ranges:?}");
}

#[test]
fn a_stale_partial_file_is_resumed_then_restarted_when_it_fails_verification() {
    let (dir, spec, gz, server) = setup();
    let target = dir.path().join(&spec.name);
    // Garbage from an earlier, different download: resuming it gives a corrupt file, which
    // is discarded, and the download restarts from zero.
    std::fs::write(partial_path(&target), vec![0xAB; 1000]).unwrap();
    let (result, log) = fetch(dir.path(), &spec, &options(&server, &["good"]));
    assert!(matches!(
        result.unwrap()[0],
        FileOutcome::Downloaded { resumed: false, .. }
    ));
    assert_eq!(std::fs::read(&target).unwrap(), gz);
    assert!(
        log.iter().any(|l| l.contains("restarting from zero")),
        "{log:?}"
    );
    let ranges: Vec<Option<String>> = server.requests().into_iter().map(|(_, r)| r).collect();
    assert_eq!(ranges, vec![Some("bytes=1000-".to_string()), None]);

    // A server that ignores Range: the partial file is replaced, not appended to.
    std::fs::remove_file(&target).unwrap();
    std::fs::write(partial_path(&target), &gz[..5000]).unwrap();
    let (result, _) = fetch(dir.path(), &spec, &options(&server, &["norange"]));
    assert!(result.is_ok());
    assert_eq!(std::fs::read(&target).unwrap(), gz);

    // A complete partial file: the server answers 416, the download restarts.
    std::fs::remove_file(&target).unwrap();
    std::fs::write(partial_path(&target), &gz).unwrap();
    let (result, _) = fetch(dir.path(), &spec, &options(&server, &["good"]));
    assert!(result.is_ok());
    assert_eq!(std::fs::read(&target).unwrap(), gz);
}

#[test]
fn oversized_downloads_are_refused() {
    let (dir, spec, _, server) = setup();
    let opts = FetchOptions {
        max_download_bytes: 1000,
        ..options(&server, &["good"])
    };
    let (result, _) = fetch(dir.path(), &spec, &opts);
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("larger than the limit of 1000 bytes"), "{msg}");
    // Without a Content-Length the limit stops the body while it streams.
    let opts = FetchOptions {
        max_download_bytes: 1000,
        ..options(&server, &["nolength"])
    };
    let (result, _) = fetch(dir.path(), &spec, &opts);
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("larger than the limit of 1000 bytes"), "{msg}");
    assert!(!partial_path(&dir.path().join(&spec.name)).exists());
    // And with the default limit, a body without a length downloads until the server closes.
    let (result, _) = fetch(dir.path(), &spec, &options(&server, &["nolength"]));
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn an_invalid_existing_file_is_downloaded_again() {
    let (dir, spec, gz, server) = setup();
    let target = dir.path().join(&spec.name);
    std::fs::write(&target, b"<html>old error page</html>").unwrap();
    let (result, log) = fetch(dir.path(), &spec, &options(&server, &["good"]));
    assert!(matches!(result.unwrap()[0], FileOutcome::Downloaded { .. }));
    assert!(log[0].contains("present but not valid"), "{log:?}");
    assert_eq!(std::fs::read(&target).unwrap(), gz);
}

#[test]
fn the_fetch_binary_downloads_mnist_that_then_trains() {
    // The real MNIST .gz files served locally: names and checksums of the built-in list.
    let files: HashMap<String, Vec<u8>> = std::fs::read_dir(common::mnist_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    assert_eq!(files.len(), 4);
    let server = Server::start(files);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mnist");
    let fetch_cmd = || {
        let mut c = bin(env!("CARGO_BIN_EXE_fetch"));
        c.arg("--dir").arg(&data).args([
            "--mirror",
            &server.mirror("forbidden"),
            "--mirror",
            &server.mirror("good"),
        ]);
        c
    };
    let (stdout, stderr) = run_ok(&mut fetch_cmd());
    assert_eq!(stdout.matches("downloaded from").count(), 4, "{stdout}");
    assert_eq!(stderr.matches("HTTP 403 Forbidden").count(), 4, "{stderr}");
    let (stdout, _) = run_ok(&mut fetch_cmd());
    assert_eq!(stdout.matches("present, verified").count(), 4, "{stdout}");
    let (stdout, _) = run_ok(
        bin(env!("CARGO_BIN_EXE_train"))
            .arg("--data")
            .arg(&data)
            .args(["--steps", "20", "--show", "0", "--checksum", "require"]),
    );
    assert!(stdout.contains("Test Accuracy: "), "{stdout}");
    // Only a refusing mirror: a clear failure.
    let err = run_err(
        bin(env!("CARGO_BIN_EXE_fetch"))
            .arg("--dir")
            .arg(dir.path().join("other"))
            .args(["--mirror", &server.mirror("forbidden")]),
    );
    assert!(
        err.contains("no mirror delivered a verified file") && err.contains("HTTP 403"),
        "{err}"
    );
}
