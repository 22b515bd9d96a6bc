//! One accepted connection, from its first request to its close: HTTP/1.1 (what osquery
//! speaks) with its HTTP state released while the connection is quiet, HTTP/2, or either on
//! plain HTTP behind a balancer. Closes idle connections and drains when the server stops.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

/// A kept-alive HTTP/1.1 connection with no request in flight for this long gives back its
/// HTTP state (hyper's read and write buffers, 16 KiB) and holds only its stream until the
/// client sends again. osquery polls every 10 s or more, so its connections spend nearly all
/// their time released; a client sending requests back to back never is.
pub(super) const RELEASE_QUIET_CONNECTIONS_AFTER: Duration = Duration::from_secs(1);

/// When a connection with no request in flight is closed (from
/// the listener's `ConnectionLimits::handshake_timeout` and `idle_timeout`).
#[derive(Debug, Clone, Copy)]
pub(super) struct IdleTimeouts {
    /// After the connection became ready, when no request has begun yet.
    pub(super) before_first_request: Duration,
    /// After the last request ended.
    pub(super) after_last_request: Duration,
}

/// The error a connection ended with, for the log.
pub(super) type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

/// The server's stop signal as a connection sees it: `true` once the server drains.
pub(super) type StopSignal = watch::Receiver<bool>;

/// Serves HTTP/1.1 on `io` until the client closes it, it idles out or the server stops.
/// While no request is in flight for [`RELEASE_QUIET_CONNECTIONS_AFTER`], hyper's state for
/// it is dropped; the next bytes the client sends start it again, in order, unread bytes
/// first.
pub(super) async fn serve_http1<I, S>(
    io: I,
    service: S,
    activity: &ConnectionActivity,
    limits: IdleTimeouts,
    stop: &mut StopSignal,
) -> Result<(), ConnectionError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming> + Clone + Unpin,
    S::Future: Unpin,
    S::Error: Into<ConnectionError>,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<ConnectionError>,
{
    let mut io = Prefixed::new(io);
    loop {
        let requests_before = activity.requests_begun();
        // Boxed: while released, the connection's task holds only the stream.
        // No header timer of hyper's: `activity` closes a connection whose request headers
        // do not complete, as any other idle one.
        let mut connection = Box::new(
            hyper::server::conn::http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(TokioIo::new(io), service.clone()),
        );
        let mut releasing = false;
        let mut stopping = false;
        loop {
            // The connection's timers and the stop signal, looked at only when one of them
            // wakes the task: not on each of the many wake-ups a request makes.
            let events = PolledWhenWoken::new(async {
                tokio::select! {
                    () = activity.idle(limits) => Event::Idle,
                    () = activity.quiet_after_a_request(requests_before, RELEASE_QUIET_CONNECTIONS_AFTER),
                        if !releasing && !stopping => Event::Quiet,
                    _ = stop.changed(), if !stopping => Event::Stop,
                }
            });
            let event = tokio::select! {
                biased;
                served = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => {
                    served?;
                    break;
                }
                event = events => event,
            };
            match event {
                Event::Idle => {
                    tracing::debug!("closing an idle connection");
                    return Ok(());
                }
                Event::Quiet => releasing = true,
                Event::Stop => stopping = true,
            }
            Pin::new(&mut *connection).graceful_shutdown();
        }
        let parts = (*connection).into_parts();
        let mut stream = parts.io.into_inner();
        if stopping || !releasing {
            // The client closed its side or asked to close, or the server is stopping.
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
            return Ok(());
        }
        stream.unread(&parts.read_buf);
        if !stream.has_unread() {
            // Released: wait for the client's next bytes holding only the stream.
            let mut first = [0u8; 64];
            let read = tokio::select! {
                read = stream.read(&mut first) => read,
                () = activity.idle(limits) => {
                    tracing::debug!("closing an idle connection");
                    return Ok(());
                }
                _ = stop.changed() => return Ok(()),
            };
            match read {
                Ok(0) => return Ok(()),
                Ok(n) => stream.unread(&first[..n]),
                Err(e) => return Err(e.into()),
            }
        }
        io = stream;
    }
}

/// What ends or changes an HTTP/1.1 connection's service, besides the connection itself.
enum Event {
    /// No request for the idle timeout: close.
    Idle,
    /// No request in flight for a while: release the HTTP state.
    Quiet,
    /// The server stops: finish the request in flight, then close.
    Stop,
}

/// A future polled only after its own waker was woken (and on its first poll): a task that
/// waits on it beside a busier future does not poll it on every wake-up of the other.
struct PolledWhenWoken<F> {
    inner: Pin<Box<F>>,
    wake: Arc<WakeFlag>,
    waker: std::task::Waker,
}

/// Set when the inner future's waker fires; wakes the task that polls the wrapper.
struct WakeFlag {
    woken: std::sync::atomic::AtomicBool,
    task: futures_util::task::AtomicWaker,
}

impl std::task::Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: std::future::Future> PolledWhenWoken<F> {
    fn new(inner: F) -> Self {
        let wake = Arc::new(WakeFlag {
            woken: std::sync::atomic::AtomicBool::new(true),
            task: futures_util::task::AtomicWaker::new(),
        });
        PolledWhenWoken {
            inner: Box::pin(inner),
            waker: std::task::Waker::from(Arc::clone(&wake)),
            wake,
        }
    }
}

impl<F: std::future::Future> std::future::Future for PolledWhenWoken<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.wake.task.register(cx.waker());
        if !self.wake.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let this = &mut *self;
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

/// Serves `connection` (HTTP/2, or either protocol on plain HTTP) until it ends, it idles
/// out, or the server stops (then it finishes its requests in flight first).
pub(super) async fn serve_until_done<C>(
    connection: C,
    activity: &ConnectionActivity,
    limits: IdleTimeouts,
    stop: &mut StopSignal,
) -> Result<(), ConnectionError>
where
    C: GracefulConnection,
    C::Error: Into<ConnectionError>,
{
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => return served.map_err(Into::into),
            () = activity.idle(limits) => {
                tracing::debug!("closing an idle connection");
                return Ok(());
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A stream with bytes already read from it put back in front.
pub(super) struct Prefixed<I> {
    unread: Bytes,
    inner: I,
}

impl<I> Prefixed<I> {
    fn new(inner: I) -> Self {
        Prefixed {
            unread: Bytes::new(),
            inner,
        }
    }

    /// Puts `bytes` back in front of what is still unread.
    fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut joined = BytesMut::with_capacity(bytes.len() + self.unread.len());
        joined.extend_from_slice(bytes);
        joined.extend_from_slice(&self.unread);
        self.unread = joined.freeze();
    }

    fn has_unread(&self) -> bool {
        !self.unread.is_empty()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.unread.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.unread.len().min(buf.remaining());
        let taken = self.unread.split_to(n);
        buf.put_slice(&taken);
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What one connection is doing, to close it once idle and release it once quiet: how many
/// of its requests are in flight, how many have begun, and when one last began or ended.
/// Lock-free: it is touched twice by every request.
#[derive(Debug)]
pub(super) struct ConnectionActivity {
    /// When the connection was accepted; the times below count from it.
    accepted_at: Instant,
    /// Milliseconds from `accepted_at` to when it became ready for requests (after the TLS
    /// handshake).
    ready_ms: AtomicU64,
    in_flight: AtomicUsize,
    begun: AtomicU64,
    /// Milliseconds from `accepted_at` to the last time a request began or ended;
    /// `u64::MAX` before the first request.
    last_change_ms: AtomicU64,
}

/// A request counted in flight on its connection until dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<ConnectionActivity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionActivity {
    pub(super) fn new() -> Self {
        ConnectionActivity {
            accepted_at: Instant::now(),
            ready_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            begun: AtomicU64::new(0),
            last_change_ms: AtomicU64::new(u64::MAX),
        }
    }

    fn ms_since_accepted(&self) -> u64 {
        u64::try_from(self.accepted_at.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// The connection is ready for requests from now (the TLS handshake is done).
    pub(super) fn ready(&self) {
        self.ready_ms
            .store(self.ms_since_accepted(), Ordering::Release);
    }

    fn touch(&self) {
        self.last_change_ms
            .store(self.ms_since_accepted(), Ordering::Release);
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub(super) fn request_began(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.begun.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(Arc::clone(self))
    }

    fn requests_begun(&self) -> u64 {
        self.begun.load(Ordering::Acquire)
    }

    /// Completes once the connection is idle: no request began within
    /// `before_first_request` of its being ready, or none has been in flight for
    /// `after_last_request`.
    pub(super) async fn idle(&self, limits: IdleTimeouts) {
        self.until_quiet(limits.before_first_request, limits.after_last_request)
            .await;
    }

    /// Completes once more than `begun_before` requests have begun on the connection and
    /// none has been in flight for `quiet`. Only HTTP state that began a request is released:
    /// bytes that have not yet made one are never set aside and read again in a loop.
    async fn quiet_after_a_request(&self, begun_before: u64, quiet: Duration) {
        while self.requests_begun() <= begun_before {
            tokio::time::sleep(quiet).await;
        }
        self.until_quiet(quiet, quiet).await;
    }

    async fn until_quiet(&self, before_first: Duration, after_last: Duration) {
        loop {
            let last_change = self.last_change_ms.load(Ordering::Acquire);
            let deadline = if last_change == u64::MAX {
                let ready_ms = self.ready_ms.load(Ordering::Acquire);
                self.accepted_at + Duration::from_millis(ready_ms) + before_first
            } else {
                self.accepted_at + Duration::from_millis(last_change) + after_last
            };
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !busy && Instant::now() >= deadline {
                return;
            }
            if busy {
                // Look again once a request that ends now would have gone quiet.
                tokio::time::sleep(after_last).await;
            } else {
                tokio::time::sleep_until(deadline.into()).await;
            }
        }
    }
}

/// An answer's body that keeps its request counted in flight until it is sent or dropped.
#[derive(Debug)]
pub(super) struct InFlightBody<B> {
    pub(super) body: B,
    pub(super) _in_flight: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::Prefixed;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn put_back_bytes_are_read_first_and_in_order() {
        let mut stream = Prefixed::new(&b" world"[..]);
        stream.unread(b"lo");
        stream.unread(b"hel");
        stream.unread(b"");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
