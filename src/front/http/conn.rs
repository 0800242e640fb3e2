//! What a client may do with a connection: deadlines for requests and idle keep-alive.
//!
//! hyper bounds the reading of request headers, not of bodies: a client that sent complete
//! headers and `Content-Length: 100`, then two bytes, held its connection for as long as it
//! liked, and `max_connections` such clients took the whole front. Each connection now has a
//! watchdog that closes it when
//!
//! - one request (headers and body) has not been received `request_timeout` after its first
//!   byte (or after the connection opened, for its first request), or
//! - a keep-alive connection has waited `idle_timeout` for its next request.
//!
//! The time a handler takes once the request is in (a hop, bounded by its own deadline) is not
//! counted. The watchdog learns where the connection is from its socket reads ([`Watched`]) and
//! from the service (a request handed to a handler, its body read, its answer sent): a few
//! atomic operations per request, no timer per request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The deadlines of a listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From a request's first byte to its last.
    pub request: Duration,
    /// From one answer to the next request's first byte.
    pub idle: Duration,
}

/// Why a watchdog closed its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A request was not received in time (a slow or stalled client).
    Request,
    /// A keep-alive connection stayed idle too long.
    Idle,
}

/// Where one connection is, shared by its socket, its service and its watchdog.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    /// When the request being received started (milliseconds since `base`, plus one; 0: none).
    started: AtomicU64,
    /// When the connection last became idle (milliseconds since `base`).
    idle_since: AtomicU64,
    /// Requests handed to a handler and not yet answered.
    in_handler: AtomicU32,
    /// Whether the body of the request in the handler has been read whole.
    received: AtomicBool,
    /// The deadlines.
    deadlines: Deadlines,
    /// Until when the watchdog sleeps (milliseconds since `base`).
    sleeping_until: AtomicU64,
    /// Wakes the watchdog when a deadline comes before the one it sleeps until (an answer
    /// with an idle timeout shorter than the request's).
    wake: tokio::sync::Notify,
}

impl Activity {
    /// A connection just opened: its first request is timed from now.
    pub fn opened(deadlines: Deadlines) -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            started: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
            in_handler: AtomicU32::new(0),
            received: AtomicBool::new(false),
            deadlines,
            sleeping_until: AtomicU64::new(u64::MAX),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Bytes arrived: a request starts if none was under way.
    fn read_some(&self) {
        if self.in_handler.load(Ordering::Relaxed) == 0 && self.started.load(Ordering::Relaxed) == 0
        {
            self.started.store(self.now_ms() + 1, Ordering::Relaxed);
        }
    }

    /// A request's head was parsed and handed to the handler; `whole` when it has no body.
    pub fn handed(&self, whole: bool) {
        if self.started.load(Ordering::Relaxed) == 0 {
            self.started.store(self.now_ms() + 1, Ordering::Relaxed);
        }
        self.received.store(whole, Ordering::Relaxed);
        self.in_handler.fetch_add(1, Ordering::Relaxed);
    }

    /// The handler has read the whole body: the request is in.
    pub fn body_read(&self) {
        self.received.store(true, Ordering::Relaxed);
    }

    /// The handler answered: the connection waits for the next request.
    pub fn answered(&self) {
        let now = self.now_ms();
        self.idle_since.store(now, Ordering::Relaxed);
        self.started.store(0, Ordering::Relaxed);
        self.received.store(false, Ordering::Relaxed);
        self.in_handler.fetch_sub(1, Ordering::Relaxed);
        if now + (self.deadlines.idle.as_millis() as u64)
            < self.sleeping_until.load(Ordering::Relaxed)
        {
            self.wake.notify_one();
        }
    }

    /// The next deadline (milliseconds since `base`) and what it is for; `None` while a
    /// handler works on a request received whole.
    fn deadline(&self) -> Option<(u64, Expired)> {
        let d = &self.deadlines;
        let started = self.started.load(Ordering::Relaxed);
        let request =
            |started: u64| Some((started - 1 + d.request.as_millis() as u64, Expired::Request));
        if self.in_handler.load(Ordering::Relaxed) > 0 {
            if self.received.load(Ordering::Relaxed) || started == 0 {
                return None;
            }
            return request(started);
        }
        if started != 0 {
            return request(started);
        }
        Some((
            self.idle_since.load(Ordering::Relaxed) + d.idle.as_millis() as u64,
            Expired::Idle,
        ))
    }

    /// Resolves when the connection has passed one of its deadlines.
    pub async fn expired(&self) -> Expired {
        loop {
            let now = self.now_ms();
            let at = match self.deadline() {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => at,
                // A handler at work: look again later (it has its own deadline).
                None => now + self.deadlines.request.as_millis() as u64,
            };
            self.sleeping_until.store(at, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(at - now)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

/// A socket that tells its connection's [`Activity`] when bytes arrive.
#[derive(Debug)]
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// Wraps `io`.
    pub fn new(io: T, activity: Arc<Activity>) -> Watched<T> {
        Watched { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A warning logged at most once per interval, with how many times it happened meanwhile:
/// an attacker's thousand refused connections make one line, not a thousand.
#[derive(Debug)]
pub struct Throttled {
    every_ms: u64,
    last_ms: AtomicU64,
    since: AtomicU64,
}

impl Throttled {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Throttled {
        Throttled {
            every_ms: every.as_millis() as u64,
            last_ms: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; returns how many to report when a line is due now.
    pub fn due(&self) -> Option<u64> {
        self.since.fetch_add(1, Ordering::Relaxed);
        let now = crate::clock::now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.every_ms {
            return None;
        }
        if self
            .last_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        Some(self.since.swap(0, Ordering::Relaxed).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Deadlines = Deadlines {
        request: Duration::from_secs(10),
        idle: Duration::from_secs(30),
    };

    #[test]
    fn a_new_connection_has_the_request_deadline() {
        let a = Activity::opened(D);
        assert_eq!(a.deadline(), Some((10_000, Expired::Request)));
    }

    #[test]
    fn a_handler_at_work_on_a_whole_request_has_no_deadline() {
        let a = Activity::opened(D);
        a.handed(true);
        assert_eq!(a.deadline(), None);
    }

    #[test]
    fn a_body_not_read_keeps_the_request_deadline() {
        let a = Activity::opened(D);
        a.handed(false);
        assert_eq!(a.deadline(), Some((10_000, Expired::Request)));
        a.body_read();
        assert_eq!(a.deadline(), None);
    }

    #[test]
    fn an_answered_connection_waits_idle_then_times_its_next_request() {
        let a = Activity::opened(D);
        a.handed(true);
        a.answered();
        let (at, why) = a.deadline().unwrap();
        assert_eq!(why, Expired::Idle);
        assert!((30_000..31_000).contains(&at), "{at}");
        a.read_some();
        let (at, why) = a.deadline().unwrap();
        assert_eq!(why, Expired::Request);
        assert!((10_000..11_000).contains(&at), "{at}");
    }

    #[test]
    fn throttled_lines_carry_the_count() {
        let t = Throttled::new(Duration::from_secs(3600));
        assert_eq!(t.due(), Some(1));
        assert_eq!(t.due(), None);
        assert_eq!(t.due(), None);
    }
}
