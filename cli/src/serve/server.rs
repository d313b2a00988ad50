//! The server loop: hyper's HTTP/1 connections with header and request deadlines, and a
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::api::router;
use super::app::App;

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
