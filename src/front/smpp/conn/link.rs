//! One SMPP connection: a reader, a writer fed by a channel, a window of requests matched to
//! their responses by sequence number, and enquire_link keep-alive.
//!
//! Every role uses it (the gateway's binds, its listener, the operator simulator); what a
//! role does with the peer's requests is its [`Handler`]. The link itself answers what needs
//! no role: enquire_link (in any state), unbind (unbind_resp, then close), unknown command ids
//! (generic_nack ESME_RINVCMDID), bodies that do not decode (generic_nack ESME_RINVCMDLEN, the
//! connection lives on) and lengths out of bounds (generic_nack ESME_RINVCMDLEN, then close).
//! Requests beyond the connection's rate limit (`max_pdus_per_sec`) are answered
//! ESME_RTHROTTLED without reaching the role. A peer that sends nothing for an enquire_link
//! interval is probed; one that does not answer
//! the probe within the response timeout is considered gone and the link closes, so its owner
//! reconnects.

use crate::config::smpp::LinkConfig;
use crate::front::smpp::wire::codec::{Frame, SmppCodec};
use crate::front::smpp::wire::generic_nack::nack;
use futures_util::StreamExt;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::codec::{Encoder, FramedRead};
use tokio_util::sync::CancellationToken;

/// Why a request got no usable response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The connection closed before the response came.
    #[error("connection closed")]
    Closed,
    /// No response within the response timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The response did not decode.
    #[error("malformed response")]
    BadResponse,
    /// The peer stayed throttled (ESME_RTHROTTLED / ESME_RMSGQFUL) through every retry.
    #[error("peer throttled")]
    Throttled,
}

/// What a role does with the peer's requests.
pub trait Handler: Send + Sync + 'static {
    /// A request from the peer other than enquire_link and unbind. Returns the response to
    /// send at once, if the command has one. Work that takes time is spawned, never awaited here.
    fn request(&self, link: &Link, command: Command) -> Option<Command>;

    /// The connection closed.
    fn closed(&self, _link: &Link) {}
}

type Pending = Mutex<HashMap<u32, oneshot::Sender<Result<Command, LinkError>>>>;

struct Inner {
    out: mpsc::Sender<Command>,
    pending: Pending,
    seq: AtomicU32,
    window: Semaphore,
    timeout: Duration,
    closed: CancellationToken,
    last_rx: Mutex<Instant>,
    peer: String,
    /// The bind this connection is counted under in the metrics (unset: not counted).
    metrics: OnceLock<Arc<crate::metrics::SmppCounts>>,
    /// The peer's request rate limit, if any.
    limiter: Option<governor::DefaultDirectRateLimiter>,
}

/// A handle on one connection. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.inner.peer)
            .field("open", &self.is_open())
            .finish()
    }
}

/// How many times a throttled request is retried, and the first pause.
const THROTTLE_RETRIES: u32 = 5;
const THROTTLE_PAUSE: Duration = Duration::from_millis(200);

impl Link {
    /// Starts the reader, writer and keep-alive tasks of `stream`. The returned task ends when
    /// the connection is closed, by either side.
    pub fn spawn(
        stream: TcpStream,
        cfg: &LinkConfig,
        peer: String,
        handler: Arc<dyn Handler>,
    ) -> (Link, tokio::task::JoinHandle<()>) {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Link::spawn_io(rd, wr, cfg, peer, handler)
    }

    /// [`Link::spawn`] over the two halves of any byte stream instead of a socket: the fuzz
    /// targets and replay tests drive the connection through an in-memory pipe with it.
    #[doc(hidden)]
    pub fn spawn_io<R, W>(
        rd: R,
        wr: W,
        cfg: &LinkConfig,
        peer: String,
        handler: Arc<dyn Handler>,
    ) -> (Link, tokio::task::JoinHandle<()>)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(256);
        let link = Link {
            inner: Arc::new(Inner {
                out: tx,
                pending: Mutex::new(HashMap::new()),
                seq: AtomicU32::new(1),
                window: Semaphore::new(cfg.window.max(1)),
                timeout: cfg.response_timeout(),
                closed: CancellationToken::new(),
                last_rx: Mutex::new(Instant::now()),
                peer,
                metrics: OnceLock::new(),
                limiter: std::num::NonZeroU32::new(cfg.max_pdus_per_sec)
                    .map(|n| governor::RateLimiter::direct(governor::Quota::per_second(n))),
            }),
        };
        let writer = tokio::spawn(write_loop(
            wr,
            SmppCodec::new(cfg.max_pdu_bytes),
            rx,
            link.inner.closed.clone(),
        ));
        let keepalive = tokio::spawn(keepalive(link.clone(), cfg.enquire_link()));
        let reader = FramedRead::new(rd, SmppCodec::new(cfg.max_pdu_bytes));
        let task = {
            let link = link.clone();
            tokio::spawn(async move {
                read_loop(&link, reader, handler.as_ref()).await;
                link.close();
                keepalive.abort();
                let _ = writer.await;
                link.fail_pending();
                handler.closed(&link);
            })
        };
        (link, task)
    }

    /// The peer's address, for logs.
    pub fn peer(&self) -> &str {
        &self.inner.peer
    }

    /// Counts this connection's PDUs and window under `bind` in the metrics from now on
    /// (the gateway's own links; the simulator's are not counted).
    pub fn count_as(&self, bind: &str) {
        let _ = self
            .inner
            .metrics
            .set(Arc::new(crate::metrics::SmppCounts::new(bind)));
    }

    fn count(&self, direction: &'static str, command: &Command) {
        if let Some(counts) = self.inner.metrics.get() {
            counts.pdu(direction, command.id(), command.status());
        }
    }

    /// True until the connection closes.
    pub fn is_open(&self) -> bool {
        !self.inner.closed.is_cancelled()
    }

    /// Closes the connection (what is queued is still written).
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Whether both handles are on the same connection.
    pub fn same(&self, other: &Link) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Resolves when the connection has closed.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
    }

    /// The next sequence number: 1 to 0x7FFFFFFF, then around again.
    pub fn next_sequence(&self) -> u32 {
        self.inner.seq.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF + 1
    }

    /// Queues `command` for writing (responses, or requests whose response is not awaited).
    pub async fn send(&self, command: Command) -> Result<(), LinkError> {
        if !self.is_open() {
            return Err(LinkError::Closed);
        }
        self.count("out", &command);
        self.inner
            .out
            .send(command)
            .await
            .map_err(|_| LinkError::Closed)
    }

    /// Sends one request and waits for its response, within the window and the timeout.
    pub async fn request(&self, pdu: impl Into<Pdu>) -> Result<Command, LinkError> {
        let timeout = self.inner.timeout;
        let _permit = tokio::select! {
            p = self.inner.window.acquire() => p.map_err(|_| LinkError::Closed)?,
            () = self.closed() => return Err(LinkError::Closed),
            () = tokio::time::sleep(timeout) => return Err(LinkError::Timeout(timeout)),
        };
        let _in_window = WindowGauge::enter(self.inner.metrics.get());
        let seq = self.next_sequence();
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(seq, tx);
        if let Err(e) = self
            .send(Command::new(CommandStatus::EsmeRok, seq, pdu))
            .await
        {
            self.lock_pending().remove(&seq);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => {
                self.lock_pending().remove(&seq);
                Err(LinkError::Timeout(timeout))
            }
        }
    }

    /// [`Link::request`], retried with growing pauses while the peer answers ESME_RTHROTTLED
    /// or ESME_RMSGQFUL.
    pub async fn request_retrying(&self, pdu: Pdu) -> Result<Command, LinkError> {
        let mut pause = THROTTLE_PAUSE;
        for _ in 0..THROTTLE_RETRIES {
            let resp = self.request(pdu.clone()).await?;
            if !matches!(
                resp.status(),
                CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful
            ) {
                return Ok(resp);
            }
            tracing::debug!(peer = %self.peer(), status = ?resp.status(), "peer throttled, backing off");
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.closed() => return Err(LinkError::Closed),
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
        Err(LinkError::Throttled)
    }

    /// Unbinds cleanly: unbind, wait (bounded) for unbind_resp, close.
    pub async fn unbind(&self) {
        if self.is_open() {
            let _ = self.request(Pdu::Unbind).await;
        }
        self.close();
    }

    fn lock_pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u32, oneshot::Sender<Result<Command, LinkError>>>> {
        // A poisoned map only means a panic elsewhere; the map itself is still consistent.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fail_pending(&self) {
        for (_, tx) in self.lock_pending().drain() {
            let _ = tx.send(Err(LinkError::Closed));
        }
    }

    fn complete(&self, seq: u32, result: Result<Command, LinkError>) {
        if let Some(tx) = self.lock_pending().remove(&seq) {
            let _ = tx.send(result);
        } else {
            tracing::debug!(peer = %self.peer(), seq, "response to no request in flight, dropped");
        }
    }

    fn touch(&self) {
        if let Ok(mut t) = self.inner.last_rx.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.inner
            .last_rx
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }
}

/// Counts one request in a bind's window for as long as it lives.
struct WindowGauge(Option<Arc<crate::metrics::SmppCounts>>);

impl WindowGauge {
    fn enter(counts: Option<&Arc<crate::metrics::SmppCounts>>) -> WindowGauge {
        if let Some(c) = counts {
            c.window(1.0);
        }
        WindowGauge(counts.cloned())
    }
}

impl Drop for WindowGauge {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.window(-1.0);
        }
    }
}

/// Bytes of PDUs gathered into one write.
const WRITE_BATCH: usize = 16 * 1024;

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut codec: SmppCodec,
    mut rx: mpsc::Receiver<Command>,
    closed: CancellationToken,
) {
    use tokio::io::AsyncWriteExt;
    let mut buf = bytes::BytesMut::with_capacity(1024);
    loop {
        tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(cmd) => {
                    // Under load many PDUs wait: one write carries them all (a syscall and a
                    // TCP segment each would cost more than the rest of a hop's SMPP work).
                    // A hop's task that queues a PDU wakes this task at once, ahead of the other
                    // hops ready to run: yielding once lets them queue theirs first.
                    buf.clear();
                    let mut encoded = encode_whole(&mut codec, cmd, &mut buf);
                    let mut yielded = false;
                    while encoded.is_ok() && buf.len() < WRITE_BATCH {
                        match rx.try_recv() {
                            Ok(cmd) => encoded = encode_whole(&mut codec, cmd, &mut buf),
                            Err(_) if !yielded => {
                                yielded = true;
                                tokio::task::yield_now().await;
                            }
                            Err(_) => break,
                        }
                    }
                    // What encoded before a failure still goes out; then the link closes.
                    let written = wr.write_all(&buf).await.and(encoded);
                    if let Err(e) = written {
                        tracing::debug!(error = %e, "SMPP write failed");
                        closed.cancel();
                        return;
                    }
                }
                None => break,
            },
            () = closed.cancelled() => break,
        }
    }
    // What was queued before the close (an unbind_resp, a last nack) still goes out.
    while let Ok(cmd) = rx.try_recv() {
        buf.clear();
        if encode_whole(&mut codec, cmd, &mut buf).is_err() {
            break;
        }
        let write = wr.write_all(&buf);
        if !matches!(
            tokio::time::timeout(Duration::from_secs(1), write).await,
            Ok(Ok(()))
        ) {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// Appends `cmd` to `buf`, or nothing of it.
fn encode_whole(
    codec: &mut SmppCodec,
    cmd: Command,
    buf: &mut bytes::BytesMut,
) -> std::io::Result<()> {
    let before = buf.len();
    codec.encode(cmd, buf).inspect_err(|_| buf.truncate(before))
}

async fn read_loop<R: AsyncRead + Unpin>(
    link: &Link,
    mut frames: FramedRead<R, SmppCodec>,
    handler: &dyn Handler,
) {
    loop {
        // Closed first: after an unbind (or a close by the owner) nothing more that the peer
        // had already sent is read and answered.
        let frame = tokio::select! {
            biased;
            () = link.closed() => return,
            f = frames.next() => f,
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::info!(peer = %link.peer(), error = %e, "SMPP connection failed");
                return;
            }
            None => {
                tracing::info!(peer = %link.peer(), "SMPP peer closed the connection");
                return;
            }
        };
        link.touch();
        match frame {
            Frame::Command(cmd) => {
                link.count("in", &cmd);
                on_command(link, *cmd, handler).await;
            }
            Frame::Malformed {
                command_id,
                sequence_number,
                reason,
            } => {
                tracing::warn!(peer = %link.peer(), command_id = format_args!("{command_id:#010x}"), sequence_number, %reason, "malformed PDU");
                if command_id & 0x8000_0000 != 0 {
                    link.complete(sequence_number, Err(LinkError::BadResponse));
                } else {
                    let _ = link
                        .send(nack(CommandStatus::EsmeRinvcmdlen, sequence_number))
                        .await;
                }
            }
            Frame::BadLength {
                sequence_number,
                length,
            } => {
                tracing::warn!(peer = %link.peer(), length, "PDU length out of bounds; closing");
                let _ = link
                    .send(nack(CommandStatus::EsmeRinvcmdlen, sequence_number))
                    .await;
                return;
            }
        }
    }
}

async fn on_command(link: &Link, cmd: Command, handler: &dyn Handler) {
    let id = cmd.id();
    let seq = cmd.sequence_number();
    if let CommandId::Other(raw) = id {
        if raw & 0x8000_0000 == 0 {
            tracing::warn!(peer = %link.peer(), command_id = format_args!("{raw:#010x}"), "unknown command id");
            let _ = link.send(nack(CommandStatus::EsmeRinvcmdid, seq)).await;
        }
        return;
    }
    if id.is_response() {
        link.complete(seq, Ok(cmd));
        return;
    }
    match id {
        CommandId::EnquireLink => {
            let _ = link
                .send(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    Pdu::EnquireLinkResp,
                ))
                .await;
        }
        CommandId::Unbind => {
            tracing::info!(peer = %link.peer(), "peer unbound");
            let _ = link
                .send(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp))
                .await;
            link.close();
        }
        _ if link
            .inner
            .limiter
            .as_ref()
            .is_some_and(|l| l.check().is_err()) =>
        {
            tracing::debug!(peer = %link.peer(), "request rate limit reached; throttled");
            if let Some(resp) = crate::front::smpp::wire::generic_nack::error_response(
                &cmd,
                CommandStatus::EsmeRthrottled,
            ) {
                let _ = link.send(resp).await;
            }
        }
        _ => {
            if let Some(resp) = handler.request(link, cmd) {
                let _ = link.send(resp).await;
            }
        }
    }
}

async fn keepalive(link: Link, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if link.idle_for() < every {
            continue;
        }
        match link.request(Pdu::EnquireLink).await {
            Ok(_) => {}
            Err(LinkError::Closed) => return,
            Err(e) => {
                tracing::warn!(peer = %link.peer(), error = %e, "enquire_link unanswered; dropping the connection");
                link.close();
                return;
            }
        }
    }
}
