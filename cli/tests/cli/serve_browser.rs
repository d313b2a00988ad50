//! The `serve` page in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver by `tests/browser/draw.py` with Python's selenium): three digits drawn
//! with mouse, pen and touch pointer events, Clear, and the test-digit button.
//!
//! Without Chromium, chromedriver or selenium the test fails and says what to install (`.ci/run`
//! installs them); `MNIST_LOGREG_SKIP_BROWSER=1` skips it on a machine that cannot have them.
#![cfg(feature = "serve")]

use crate::common;

use std::path::Path;
use std::process::Command;

use common::http::start_server;

#[test]
fn drawing_on_the_page_in_chromium() {
    if std::env::var_os("MNIST_LOGREG_SKIP_BROWSER").is_some() {
        eprintln!("skipped: MNIST_LOGREG_SKIP_BROWSER is set");
        return;
    }
    let missing: Vec<&str> = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        missing.is_empty() && selenium,
        "the browser test needs {missing:?}{}: apt-get install chromium chromium-driver; \
         pip install selenium (or set MNIST_LOGREG_SKIP_BROWSER=1)",
        if selenium {
            ""
        } else {
            " and Python's selenium"
        }
    );
    let (mut server, addr) = start_server(env!("CARGO_BIN_EXE_serve"), &[]);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-page.png");
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/draw.py"))
        .arg(format!("http://{addr}/"))
        .arg(&shot)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("browser checks passed"), "{stdout}");
    assert!(shot.exists(), "a screenshot of the page");
}
