//! `cargo bench --features serve --bench serve_load`: a load test of the `serve` binary on
//! loopback. 4 clients, each on its own keep-alive connection, send 2 000 `pixels` requests
//! (MNIST test images, in turn) as fast as answers come back; the table gives requests/s over
//! the whole run and the p50/p99/max latency of one request, and fails on any error.
//!
//! The server is the release build that `cargo bench` makes (`--model` is not given: it trains
//! the tutorial model at start-up). `--clients N` and `--requests N` change the load.

#[path = "../tests/cli/common/http.rs"]
mod http;

use std::time::{Duration, Instant};

use mnist_logreg::dataset::Dataset;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("serve_load: run with `cargo bench --features serve --bench serve_load`");
        return;
    }
    let (clients, requests) = (arg(&args, "--clients", 4), arg(&args, "--requests", 2000));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ is a member of the repository")
        .join("data/mnist");
    let test = Dataset::open_test(&dir, &Default::default()).expect("MNIST test files");
    let images: Vec<Vec<u8>> = (0..test.len()).map(|i| test.image(i).to_vec()).collect();
    let (mut server, addr) = http::start_server(env!("CARGO_BIN_EXE_serve"), &[]);
    // One warm-up request per connection, then the clock.
    let start = Instant::now();
    let results: Vec<(Vec<Duration>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (addr, images) = (&addr, &images);
                s.spawn(move || {
                    let mut client = http::Client::connect(addr).expect("connect");
                    client.get("/healthz").expect("warm-up");
                    let (mut latencies, mut errors) = (Vec::with_capacity(requests), 0);
                    for r in 0..requests {
                        let image = &images[(c * requests + r) % images.len()];
                        let t = Instant::now();
                        match client.predict_pixels(image) {
                            Ok(resp) if resp.status == 200 => latencies.push(t.elapsed()),
                            _ => errors += 1,
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    let errors: usize = results.iter().map(|r| r.1).sum();
    let mut all: Vec<Duration> = results.into_iter().flat_map(|r| r.0).collect();
    all.sort();
    let pct = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "| clients | requests | errors | requests/s | p50 µs | p99 µs | max µs |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    println!(
        "| {clients} | {} | {errors} | {:.0} | {:.0} | {:.0} | {:.0} |",
        clients * requests,
        all.len() as f64 / wall.as_secs_f64(),
        us(pct(0.5)),
        us(pct(0.99)),
        us(*all.last().unwrap())
    );
    assert_eq!(errors, 0, "requests failed");
}
