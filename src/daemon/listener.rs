//! The HTTP endpoints' listener, bounded: the probes must keep answering whatever clients do.
//!
//! `axum::serve` accepts every connection and keeps an idle one as long as its client likes,
//! so 1,100 idle connections exhausted the process's file descriptors and `/healthz` stopped
//! answering. This listener holds at most [`MAX_CONNECTIONS`] at once: a new connection beyond
//! that closes the oldest one (a probe's exchange lasts milliseconds, a connection that has
//! been open longest is the one least likely to be a probe). A connection also ends when idle
//! for [`IDLE`] and, however it trickles, after [`LIFETIME`].

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Connections served at once. Far above what Prometheus and the probes need, far below the
/// file-descriptor limit the database and HSS connections share.
pub const MAX_CONNECTIONS: usize = 128;
/// A connection with no byte read or written for this long is closed.
pub const IDLE: Duration = Duration::from_secs(5);
/// No connection lives longer than this, however it trickles.
pub const LIFETIME: Duration = Duration::from_secs(60);

/// A TCP listener that serves at most [`MAX_CONNECTIONS`] connections at once.
#[derive(Debug)]
pub struct BoundedListener {
    inner: TcpListener,
    /// The open connections, oldest first.
    open: VecDeque<Weak<Closer>>,
    max_connections: usize,
    idle: Duration,
    lifetime: Duration,
}

impl BoundedListener {
    pub fn new(inner: TcpListener) -> Self {
        Self::with_limits(inner, MAX_CONNECTIONS, IDLE, LIFETIME)
    }

    fn with_limits(
        inner: TcpListener,
        max_connections: usize,
        idle: Duration,
        lifetime: Duration,
    ) -> Self {
        BoundedListener {
            inner,
            open: VecDeque::with_capacity(max_connections + 1),
            max_connections,
            idle,
            lifetime,
        }
    }

    /// Makes room for one more connection: forgets the closed ones, closes the oldest while
    /// there are too many.
    fn make_room(&mut self) {
        self.open.retain(|closer| closer.strong_count() > 0);
        while self.open.len() >= self.max_connections {
            if let Some(closer) = self.open.pop_front().and_then(|weak| weak.upgrade()) {
                closer.close();
            }
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    self.make_room();
                    let closer = Arc::new(Closer::default());
                    self.open.push_back(Arc::downgrade(&closer));
                    let stream = BoundedStream::new(stream, closer, self.idle, self.lifetime);
                    return (stream, address);
                }
                // Out of descriptors, or a connection reset before it was accepted: wait a
                // little rather than spin, and try again.
                Err(err) => {
                    tracing::debug!(error = %err, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// How the listener tells a connection to end: a flag, and the task to wake to see it.
#[derive(Debug, Default)]
struct Closer {
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl Closer {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Registers the task first, so a close between the check and the return is not missed.
    fn is_closed(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.closed.load(Ordering::Acquire)
    }
}

/// An accepted connection: it ends itself when idle for [`IDLE`], older than [`LIFETIME`], or
/// closed by the listener to make room.
#[derive(Debug)]
pub struct BoundedStream {
    stream: TcpStream,
    closer: Arc<Closer>,
    idle_for: Duration,
    idle: Pin<Box<Sleep>>,
    end_of_life: Instant,
}

impl BoundedStream {
    fn new(stream: TcpStream, closer: Arc<Closer>, idle_for: Duration, lifetime: Duration) -> Self {
        BoundedStream {
            stream,
            closer,
            idle_for,
            idle: Box::pin(tokio::time::sleep(idle_for.min(lifetime))),
            end_of_life: Instant::now() + lifetime,
        }
    }

    /// Bytes moved: the idle clock starts again (never past the end of life).
    fn active(&mut self) {
        let deadline = (Instant::now() + self.idle_for).min(self.end_of_life);
        self.idle.as_mut().reset(deadline);
    }

    /// Nothing to read or write yet: an error if the connection has been idle too long or was
    /// closed to make room, else pending.
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.closer.is_closed(cx) {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the HTTP connection was closed to make room for a newer one",
            ));
        }
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the HTTP connection was idle too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.waiting(cx).map(Err),
        }
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                self.active();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => self.waiting(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// More idle clients than slots, idle far longer than the test waits: the probe is answered
    /// at once because the oldest idle connections are closed to make room.
    #[tokio::test]
    async fn idle_connections_make_way_for_a_probe() {
        const SLOTS: usize = 8;
        const IDLE: Duration = Duration::from_secs(600);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move {
            let bounded = BoundedListener::with_limits(listener, SLOTS, IDLE, LIFETIME);
            axum::serve(bounded, app).await.expect("serve");
        });
        let mut idle = Vec::new();
        for _ in 0..SLOTS * 3 {
            idle.push(TcpStream::connect(address).await.expect("connect"));
        }
        let mut probe = TcpStream::connect(address).await.expect("connect");
        probe
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut answer = String::new();
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::AsyncReadExt::read_to_string(&mut probe, &mut answer),
        )
        .await;
        assert!(
            read.is_ok(),
            "the probe was answered while idle connections stayed open"
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
        // The oldest were closed by the server: reading them ends at once.
        let mut byte = [0_u8; 1];
        let oldest = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::AsyncReadExt::read(&mut idle[0], &mut byte),
        )
        .await
        .expect("the oldest idle connection was closed");
        assert!(matches!(oldest, Ok(0) | Err(_)), "{oldest:?}");
    }
}
