//! The daemon's HTTP listener: hyper's HTTP/1 connection driver around the axum router, with
//! the limits a plain `axum::serve` lacks, so that slow or flooding clients cannot exhaust
//! memory or file descriptors and `/healthz` and the webhook keep answering.
//!
//! - **Header-read timeout** (`server.header_read_timeout`): a request head must arrive
//!   within it, else the connection is closed. hyper restarts the timer whenever a kept-alive
//!   connection goes idle, so it is also the idle timeout between requests.
//! - **Body timeout** (`server.body_timeout`): a request body must be complete within it,
//!   counted from the moment the head was read. A trickling body ends in an error that the
//!   handler answers (408 or 400) and the connection is closed.
//! - **Header size**: at most [`MAX_HEAD_BYTES`] are buffered per connection.
//! - **Connection limit** (`server.max_connections`, lowered to the process's file-descriptor
//!   limit less a reserve): a connection takes a slot for its whole life. When every slot is
//!   taken, the oldest connection that is not running a request (it is idle or still sending
//!   its head: what a slow-loris client does) is closed to make room; when every connection
//!   runs a request, the new one gets `503` and is closed at once. Either way the number of
//!   open sockets stays bounded and new clients are not starved by stalled ones.
//! - **Half-close**: a client may shut its sending side once its request is sent and still
//!   get the answer. A running request is not cancelled when its client goes away: it
//!   finishes (each handler is bounded by its own timeouts), and its answer is discarded.
//!   The webhook receiver guarantees as much anyway (its writer task records and triggers
//!   what a request handed it), and the eviction above only ever picks idle connections.
//! - **Graceful shutdown**: when `stop` fires, idle connections close, running requests get
//!   [`SHUTDOWN_GRACE`] to finish, and then the rest are dropped.
//!
//! Counted in `slogate_http_connections` (open), `slogate_http_connections_accepted_total`,
//! `slogate_http_connections_evicted_total`, `slogate_http_connections_refused_total` and
//! `slogate_http_header_timeouts_total`.
//!
//! Only HTTP/1.1 is served (as `axum::serve` did with axum's default features).
//! The body deadline is hand-written ([`DeadlineBody`]): tower-http's `TimeoutBody` restarts
//! its timer at every frame, so a client trickling one byte at a time would never hit it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tower::ServiceExt;

use super::metrics::HttpMetrics;

/// Largest request head (request line and headers) buffered per connection. hyper's
/// minimum buffer is 8 KiB.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How long running requests may take to finish after shutdown was asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// File descriptors kept free for everything else the daemon opens (state files, git,
/// Prometheus and API-server connections) when the connection limit is derived from
/// `RLIMIT_NOFILE`.
pub const FD_RESERVE: usize = 64;

/// The limits of [`serve`] (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_timeout: Duration,
}

impl Limits {
    /// `max_connections` lowered to what the file-descriptor limit allows (less
    /// [`FD_RESERVE`]), never below 1.
    pub fn fitted_to_fd_limit(mut self) -> Self {
        if let Some(n) = fd_limit() {
            let room = n.saturating_sub(FD_RESERVE).max(1);
            if room < self.max_connections {
                tracing::warn!(
                    configured = self.max_connections,
                    used = room,
                    fd_limit = n,
                    "server.max_connections lowered to fit the open-file limit"
                );
                self.max_connections = room;
            }
        }
        self
    }
}

/// The soft `RLIMIT_NOFILE`, when it can be read and is finite.
fn fd_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given, which lives on this stack
        // frame for the whole call.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
        if rc != 0 || rl.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        usize::try_from(rl.rlim_cur).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// One open connection, as the eviction sees it.
struct Slot {
    /// Requests of this connection whose handler is running.
    busy: AtomicUsize,
    /// Chosen for eviction (so that it is not chosen twice).
    evicted: AtomicBool,
    evict: Notify,
}

/// The open connections, oldest first (ids grow).
#[derive(Default)]
struct Slots(Mutex<BTreeMap<u64, Arc<Slot>>>);

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Slot>>> {
        // Every critical section is a single insert, remove or scan: a panic cannot leave
        // the map half-updated, so a poisoned lock is recovered.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ask the oldest connection that runs no request to close. `false`: every one is busy.
    fn evict_oldest_idle(&self) -> bool {
        let slots = self.lock();
        for slot in slots.values() {
            if slot.busy.load(Ordering::Acquire) == 0 && !slot.evicted.swap(true, Ordering::AcqRel)
            {
                slot.evict.notify_one();
                return true;
            }
        }
        false
    }
}

/// The answer to a connection over the limit, written without waiting.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 57\r\nconnection: close\r\n\r\n{\"error\":\"too many connections; retry in a few seconds\"}\n";

/// Serve `router` on `listener` until `stop` turns true, then shut down gracefully.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: HttpMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let slots = Arc::new(Slots::default());
    let mut next_id: u64 = 0;
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE/ENFILE and aborted handshakes: wait a little instead of spinning.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = stop.changed() => break,
                    }
                }
            },
            _ = stop.changed() => break,
        };
        metrics.connections_total.inc();
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if slots.evict_oldest_idle() => {
                metrics.connections_evicted.inc();
                // The evicted connection drops its permit as soon as its task runs.
                match tokio::time::timeout(Duration::from_secs(1), permits.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(p)) => p,
                    _ => {
                        refuse(stream, &metrics);
                        continue;
                    }
                }
            }
            Err(_) => {
                refuse(stream, &metrics);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let slot = Arc::new(Slot {
            busy: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        slots.lock().insert(id, slot.clone());
        let router = router.clone();
        let metrics = metrics.clone();
        let slots = slots.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            metrics.connections_open.inc();
            connection(stream, router, limits, slot, &metrics, stop).await;
            slots.lock().remove(&id);
            metrics.connections_open.dec();
            drop(permit);
        });
    }
    // Wait for the open connections (each holds a permit) to finish their requests.
    drop(listener);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still running after the shutdown grace period; closing them");
    }
}

fn refuse(stream: TcpStream, metrics: &HttpMetrics) {
    metrics.connections_refused.inc();
    // Best effort: a socket's send buffer always takes this much; then the socket closes.
    let _ = stream.try_write(BUSY_RESPONSE);
}

/// Drive one connection until it ends, is evicted, or shutdown's grace period is over.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    slot: Arc<Slot>,
    metrics: &HttpMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let busy_slot = slot.clone();
    let body_timeout = limits.body_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        let busy = Busy::enter(busy_slot.clone());
        async move {
            let _busy = busy;
            let req = req.map(|b| Body::new(DeadlineBody::new(b, body_timeout)));
            router.oneshot(req).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        // A request runs to its end even when the client shuts its sending side (see the
        // module docs): hyper then does not read ahead on the socket while the handler
        // runs, a read that found nothing and, with the body still held by the handler,
        // made it allocate a new read buffer for every request.
        .half_close(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        metrics.header_timeouts.inc();
                    }
                    tracing::debug!("HTTP connection ended: {e}");
                }
                return;
            }
            _ = slot.evict.notified() => return,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(SHUTDOWN_GRACE), if stopping => return,
        }
    }
}

/// Marks a connection busy while one of its requests' handler runs.
struct Busy(Arc<Slot>);

impl Busy {
    fn enter(slot: Arc<Slot>) -> Self {
        slot.busy.fetch_add(1, Ordering::AcqRel);
        Busy(slot)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The request body ran past `server.body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?}")]
pub struct BodyTimeout(Duration);

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyTimeout`] once its deadline has passed.
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: tokio::time::Sleep,
        timeout: Duration,
    }
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: tokio::time::sleep(timeout),
            timeout,
        }
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(r) = this.inner.poll_frame(cx) {
            return Poll::Ready(r.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Why [`read_body`] gave up. Print it with [`error_chain`](crate::ports::error_chain):
/// `Read` keeps its cause as the source.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the request body was not received within server.body_timeout")]
    Timeout,
    #[error("cannot read the request body")]
    Read(#[source] crate::ports::BoxError),
}

impl BodyError {
    /// The status to answer: 413, 408 or 400.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Read a request body of at most `limit` bytes: refused on its `Content-Length` before
/// anything is read, and again while reading (chunked bodies). Call it only once the
/// request is authenticated.
pub async fn read_body(
    headers: &axum::http::HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    // A body that arrives as one chunk (the usual case: hyper reads a small body with its
    // head) is returned as that chunk, without a copy; the chunks of a longer one are joined.
    let mut whole: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut len = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            let inner = e.into_inner();
            if inner.is::<BodyTimeout>() {
                BodyError::Timeout
            } else {
                BodyError::Read(inner)
            }
        })?;
        if len + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        len += chunk.len();
        if chunk.is_empty() {
            continue;
        }
        match whole.take() {
            None if joined.is_empty() => whole = Some(chunk),
            None => joined.extend_from_slice(&chunk),
            Some(first) => {
                joined.reserve(declared.map_or(0, |n| n as usize).max(len));
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(whole.unwrap_or_else(|| Bytes::from(joined)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_fails_at_its_deadline_and_a_complete_one_passes() {
        // One byte a second, for ever.
        let trickle = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
        });
        let mut b = std::pin::pin!(DeadlineBody::new(
            Body::from_stream(trickle),
            Duration::from_secs(5)
        ));
        let mut got = 0;
        let err = loop {
            match b.frame().await {
                Some(Ok(_)) => got += 1,
                Some(Err(e)) => break e,
                None => panic!("the body ended instead of timing out"),
            }
        };
        assert!(err.is::<BodyTimeout>(), "{err}");
        assert!((4..=6).contains(&got), "{got} frames before the deadline");

        let full = DeadlineBody::new(Body::from("complete"), Duration::from_secs(5));
        let bytes = full.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"complete");
    }

    #[tokio::test]
    async fn read_body_joins_chunks_and_keeps_its_limit() {
        let chunked = |parts: Vec<&'static [u8]>| {
            Body::from_stream(futures::stream::iter(
                parts
                    .into_iter()
                    .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
            ))
        };
        let h = axum::http::HeaderMap::new();
        let cases: Vec<(Vec<&'static [u8]>, &[u8])> = vec![
            (vec![], b""),
            (vec![b""], b""),
            (vec![b"one"], b"one"),
            (vec![b"", b"one"], b"one"),
            (vec![b"one", b"", b"two"], b"onetwo"),
            (vec![b"a", b"b", b"c", b"d"], b"abcd"),
        ];
        for (parts, want) in cases {
            let got = read_body(&h, chunked(parts.clone()), 16).await.unwrap();
            assert_eq!(&got[..], want, "{parts:?}");
        }
        for parts in [
            vec![&b"0123456789abcdefg"[..]],
            vec![b"0123456789", b"abcdefg"],
        ] {
            assert!(matches!(
                read_body(&h, chunked(parts), 16).await,
                Err(BodyError::TooLarge(16))
            ));
        }
        assert_eq!(
            &read_body(&h, chunked(vec![b"0123456789", b"abcdef"]), 16)
                .await
                .unwrap()[..],
            b"0123456789abcdef",
            "exactly the limit"
        );
        // A body of one chunk is that chunk, not a copy.
        let one: &'static [u8] = b"the whole body";
        let got = read_body(&h, chunked(vec![one]), 16).await.unwrap();
        assert_eq!(got.as_ptr(), one.as_ptr(), "returned without a copy");
    }

    /// A client that shuts its sending side right after its request still gets the answer
    /// of a handler that takes a while: the connection is not torn down at its EOF.
    #[tokio::test]
    async fn a_half_closed_client_gets_its_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let router = Router::new().route(
            "/slow",
            axum::routing::post(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: 8,
            header_read_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
        };
        let (_stop_tx, stop) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            router,
            limits,
            HttpMetrics::default(),
            stop,
        ));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("the server answers and closes within 5 s")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
        assert!(text.ends_with("done"), "{text:?}");
    }

    #[test]
    fn eviction_picks_the_oldest_idle_connection_once() {
        let slots = Slots::default();
        let mk = |busy| {
            Arc::new(Slot {
                busy: AtomicUsize::new(busy),
                evicted: AtomicBool::new(false),
                evict: Notify::new(),
            })
        };
        let (a, b, c) = (mk(1), mk(0), mk(0));
        slots
            .lock()
            .extend([(1, a.clone()), (2, b.clone()), (3, c.clone())]);
        assert!(slots.evict_oldest_idle());
        assert!(
            !a.evicted.load(Ordering::Acquire),
            "a busy connection is kept"
        );
        assert!(b.evicted.load(Ordering::Acquire));
        assert!(slots.evict_oldest_idle());
        assert!(c.evicted.load(Ordering::Acquire));
        assert!(!slots.evict_oldest_idle(), "only busy ones are left");
    }
}
