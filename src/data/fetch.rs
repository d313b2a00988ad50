//! Download MNIST from the public mirrors (feature `fetch`).
//!
//! For each of the four `.gz` files, mirrors are tried in order. A download goes to
//! `<name>.partial`; an existing partial file is resumed with an HTTP `Range` request, and
//! restarted from zero when the server ignores the range or the resumed file fails
//! verification. A finished download is verified — gzip magic, the whole stream inflates, the
//! SHA-256 of the **decompressed** bytes matches MNIST's (the table in `docs/SEMANTICS.md`) — then fsynced and renamed to
//! its final name, so the final name only ever holds a verified file. Every failure says what
//! the server did: an HTTP error status, an HTML page instead of gzip, a truncated body, a
//! corrupt or different file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::data::dataset::MNIST_SHA256;
use crate::file_error::FileError;

/// The public MNIST mirrors, in the order they are tried (the torchvision list; LeCun's
/// original site last, as it often refuses downloads).
pub const MIRRORS: [&str; 3] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// One file to fetch: its name on the mirrors and the SHA-256 of its decompressed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// File name on the mirror and on disk (`train-images-idx3-ubyte.gz`).
    pub name: String,
    /// Hex SHA-256 of the decompressed content.
    pub sha256: String,
}

/// The four MNIST files.
pub fn mnist_files() -> Vec<FileSpec> {
    let suffix = |stem: &str| {
        if stem.ends_with("images") {
            "idx3-ubyte"
        } else {
            "idx1-ubyte"
        }
    };
    MNIST_SHA256
        .iter()
        .map(|(stem, sha)| FileSpec {
            name: format!("{stem}-{}.gz", suffix(stem)),
            sha256: sha.to_string(),
        })
        .collect()
}

/// Knobs of a download.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Base URLs (ending in `/`), tried in order.
    pub mirrors: Vec<String>,
    /// Largest compressed file accepted (MNIST's largest is 9.9 MB).
    pub max_download_bytes: u64,
    /// Largest decompressed size accepted (MNIST's largest is 47 MB).
    pub max_decompressed_bytes: u64,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Longest wait for any single read.
    pub read_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            mirrors: MIRRORS.iter().map(|m| m.to_string()).collect(),
            max_download_bytes: 64 << 20,
            max_decompressed_bytes: 256 << 20,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// It was already there and verified; nothing was downloaded.
    Present,
    /// Downloaded (or resumed) from this URL and verified.
    Downloaded {
        /// The URL that worked.
        url: String,
        /// Whether a partial file was resumed.
        resumed: bool,
    },
}

/// Why one attempt at one URL failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// The connection failed or timed out.
    #[error("network error: {0}")]
    Network(String),
    /// An HTTP error status.
    #[error("HTTP {status}{}", if .reason.is_empty() { String::new() } else { format!(" {}", .reason) })]
    Status {
        /// The status code.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The server sent a web page (an error or login page) instead of the file.
    #[error("the server sent an HTML page instead of a gzip file")]
    Html,
    /// The body ended before its announced length.
    #[error("truncated: received {received} of {expected} bytes (kept as .partial to resume)")]
    Truncated {
        /// Bytes in the partial file.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The body was larger than [`FetchOptions::max_download_bytes`].
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Not a gzip file.
    #[error("not a gzip file (starts with {0})")]
    NotGzip(String),
    /// gzip that does not inflate.
    #[error("corrupt gzip: {0}")]
    CorruptGzip(String),
    /// A valid gzip file with other content.
    #[error("SHA-256 of the decompressed bytes is {found}, expected {expected}")]
    Checksum {
        /// Computed.
        found: String,
        /// Expected.
        expected: String,
    },
    /// Writing to disk failed.
    #[error("{0}")]
    Io(String),
}

/// Everything that can stop a fetch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Local file system trouble.
    #[error(transparent)]
    Io(#[from] FileError),
    /// No mirror delivered a verified file.
    #[error("{name}: no mirror delivered a verified file:{}", .attempts.iter().map(|(u, e)| format!("\n  {u}: {e}")).collect::<String>())]
    AllMirrorsFailed {
        /// The file.
        name: String,
        /// Each URL tried and why it failed.
        attempts: Vec<(String, AttemptError)>,
    },
}

/// Fetch every file of `files` into `dir` (created if missing). `log` receives one line per
/// event (attempt failed, resumed, done) for the user.
pub fn fetch_all(
    dir: &Path,
    files: &[FileSpec],
    opts: &FetchOptions,
    mut log: impl FnMut(&str),
) -> Result<Vec<FileOutcome>, FetchError> {
    std::fs::create_dir_all(dir).map_err(FileError::on(dir, "cannot create the directory"))?;
    let agent = agent(opts);
    files
        .iter()
        .map(|spec| fetch_file(&agent, dir, spec, opts, &mut log))
        .collect()
}

fn agent(opts: &FetchOptions) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .user_agent(concat!("mnist-logreg/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The partial-download path of `target`.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

fn fetch_file(
    agent: &ureq::Agent,
    dir: &Path,
    spec: &FileSpec,
    opts: &FetchOptions,
    log: &mut impl FnMut(&str),
) -> Result<FileOutcome, FetchError> {
    let target = dir.join(&spec.name);
    let partial = partial_path(&target);
    if target.exists() {
        match verify(&target, spec, opts) {
            Ok(()) => return Ok(FileOutcome::Present),
            Err(e) => log(&format!(
                "{}: present but not valid ({e}); downloading it again",
                spec.name
            )),
        }
    }
    let mut attempts = Vec::new();
    for mirror in &opts.mirrors {
        let url = format!("{}{}", mirror, spec.name);
        // At most three tries per mirror: resume a partial file, continue after a truncation,
        // restart from zero after a resumed file failed verification.
        let mut tries = 0;
        loop {
            tries += 1;
            let resumed = file_len(&partial) > 0;
            match download(agent, &url, &partial, opts) {
                Err(e) => {
                    log(&format!("{url}: {e}"));
                    let retry = matches!(e, AttemptError::Truncated { .. }) && tries < 3;
                    attempts.push((url.clone(), e));
                    if !retry {
                        break;
                    }
                }
                Ok(()) => match verify(&partial, spec, opts) {
                    Ok(()) => {
                        sync_and_rename(&partial, &target)?;
                        return Ok(FileOutcome::Downloaded { url, resumed });
                    }
                    Err(e) => {
                        log(&format!("{url}: {e}; discarding the download"));
                        remove_if_exists(&partial)?;
                        attempts.push((url.clone(), e));
                        if !resumed || tries >= 3 {
                            break;
                        }
                        log(&format!("{url}: restarting from zero"));
                    }
                },
            }
        }
    }
    Err(FetchError::AllMirrorsFailed {
        name: spec.name.clone(),
        attempts,
    })
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn remove_if_exists(path: &Path) -> Result<(), FetchError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(FileError::on(path, "cannot remove")(e).into())
        }
        _ => Ok(()),
    }
}

fn sync_and_rename(partial: &Path, target: &Path) -> Result<(), FetchError> {
    File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(FileError::on(partial, "cannot sync"))?;
    Ok(std::fs::rename(partial, target)
        .map_err(FileError::on(target, "cannot rename the download"))?)
}

/// The start offset of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(value: &str) -> Option<u64> {
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// One GET of `url` into `partial`, resuming from its current length when it is not empty.
fn download(
    agent: &ureq::Agent,
    url: &str,
    partial: &Path,
    opts: &FetchOptions,
) -> Result<(), AttemptError> {
    let have = file_len(partial);
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request
        .call()
        .map_err(|e| AttemptError::Network(e.to_string()))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let announced: Option<u64> = header("content-length").and_then(|v| v.trim().parse().ok());
    let resumed = header("content-range").and_then(|v| content_range_start(&v)) == Some(have);
    let append = match response.status().as_u16() {
        206 if have > 0 && resumed => true,
        200 | 206 => false,
        // The partial file is already complete (or longer than the file): start over.
        416 if have > 0 => {
            std::fs::remove_file(partial).map_err(|e| AttemptError::Io(e.to_string()))?;
            return download(agent, url, partial, opts);
        }
        code => {
            return Err(AttemptError::Status {
                status: code,
                reason: response
                    .status()
                    .canonical_reason()
                    .unwrap_or("")
                    .to_string(),
            });
        }
    };
    if content_type.to_ascii_lowercase().contains("text/html") {
        return Err(AttemptError::Html);
    }
    let start = if append { have } else { 0 };
    if let Some(len) = announced
        && start + len > opts.max_download_bytes
    {
        return Err(AttemptError::TooLarge {
            limit: opts.max_download_bytes,
        });
    }
    let body = response
        .into_body()
        .into_with_config()
        .limit(opts.max_download_bytes - start)
        .reader();
    let received = write_body(body, partial, start, announced, opts)?;
    if let Some(len) = announced
        && received < len
    {
        return Err(AttemptError::Truncated {
            received: start + received,
            expected: start + len,
        });
    }
    Ok(())
}

/// Copy a response body into `partial`: appended when `start` > 0 (a resumed download), from
/// scratch otherwise; `announced` is the length the server announced. Returns the bytes
/// received; an HTML page or a body over the size limit removes the file, a broken connection
/// leaves it for the next attempt to resume.
fn write_body(
    mut body: impl Read,
    partial: &Path,
    start: u64,
    announced: Option<u64>,
    opts: &FetchOptions,
) -> Result<u64, AttemptError> {
    let append = start > 0;
    let io_error = |e: std::io::Error| AttemptError::Io(format!("{}: {e}", partial.display()));
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .map_err(io_error)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut received = 0u64;
    loop {
        match body.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => {
                if start == 0 && received == 0 && looks_like_html(&buf[..n]) {
                    drop(file);
                    let _ = std::fs::remove_file(partial);
                    return Err(AttemptError::Html);
                }
                file.write_all(&buf[..n]).map_err(io_error)?;
                received += n as u64;
            }
            Err(e) => {
                file.flush().ok();
                let over_limit = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                    .is_some_and(|u| matches!(u, ureq::Error::BodyExceedsLimit(_)));
                if over_limit {
                    drop(file);
                    let _ = std::fs::remove_file(partial);
                    return Err(AttemptError::TooLarge {
                        limit: opts.max_download_bytes,
                    });
                }
                return Err(AttemptError::Truncated {
                    received: start + received,
                    expected: start + announced.unwrap_or(received),
                });
            }
        }
    }
}

fn looks_like_html(first: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&first[..first.len().min(256)]).to_ascii_lowercase();
    let text = text.trim_start();
    text.starts_with("<!doctype html") || text.starts_with("<html") || text.starts_with("<?xml")
}

/// Check that `path` is a gzip file whose decompressed bytes have the expected SHA-256.
fn verify(path: &Path, spec: &FileSpec, opts: &FetchOptions) -> Result<(), AttemptError> {
    let io = |e: std::io::Error| AttemptError::Io(format!("{}: {e}", path.display()));
    let mut head = Vec::with_capacity(16);
    File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(io)?;
    if !head.starts_with(&crate::data::idx::GZIP_MAGIC) {
        if looks_like_html(&head) {
            return Err(AttemptError::Html);
        }
        return Err(AttemptError::NotGzip(format!("{head:02x?}")));
    }
    let file = File::open(path).map_err(io)?;
    let limit = opts.max_decompressed_bytes;
    let (found, total) = crate::data::checksum::gunzipped_sha256(file, limit)
        .map_err(|e| AttemptError::CorruptGzip(e.to_string()))?;
    if total > limit {
        return Err(AttemptError::CorruptGzip(format!(
            "inflates to more than {limit} bytes"
        )));
    }
    if found != spec.sha256 {
        return Err(AttemptError::Checksum {
            found,
            expected: spec.sha256.clone(),
        });
    }
    Ok(())
}
