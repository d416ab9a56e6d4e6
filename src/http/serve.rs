//! The HTTP server loop: hyper's HTTP/1.1 server with the limits
//! `axum::serve` does not offer. A cap on open connections, a deadline for
//! each request's headers (against slowloris clients; it also closes idle
//! connections, new or kept alive), a bound on the request head's size (431
//! beyond it), and graceful shutdown that lets requests in flight finish.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::Limits;

/// hyper refuses read buffers under 8 KiB.
const SMALLEST_HEAD_LIMIT: usize = 8 * 1024;
/// A failed `accept` (out of file descriptors, say) is retried after this pause.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// One of the `max_connections` slots. Every request carries its
/// connection's slot in its extensions, so a connection upgraded to a
/// WebSocket keeps holding it for as long as the socket lives.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Serves `router` on `listener` until `stop`, then waits for the requests
/// in flight (long-lived ones end on `stop` themselves).
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, stop: CancellationToken) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs.max(1)))
        .max_buf_size(limits.max_header_bytes.max(SMALLEST_HEAD_LIMIT));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::counter!("chat_http_connections_refused_total").increment(1);
            tracing::warn!(%peer, limit = limits.max_connections, "connection refused: too many open connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let slot = ConnectionSlot(Arc::new(permit));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(slot.clone());
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            metrics::gauge!("chat_http_connections_open").increment(1.0);
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stop.cancelled() => {
                    // Finish the request in flight, if any, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            metrics::gauge!("chat_http_connections_open").decrement(1.0);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
