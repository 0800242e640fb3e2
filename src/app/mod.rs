//! What answers a hop: the [`App`] interface between the session actor and an application.
//!
//! The actor owns a dialogue's state and hands it to its app for each hop; the app gives back the
//! new state and the reply. Flows ([`flow::FlowApp`]) are the first kind of app; forwarding to an
//! existing Africa's Talking-style app plugs in here too, without touching fronts or sessions.

pub mod flow;
pub mod routes;
pub mod upstream;
pub mod upstream_wire;

use crate::hop::{Front, Reply};
use crate::msisdn::Msisdn;
use crate::text::Limit;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::time::Instant;

pub use routes::{Route, RouteTable};

/// An app's per-dialogue state, persisted with the dialogue after every hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AppState {
    /// A declarative flow's state.
    Flow(crate::flow::FlowState),
    /// An upstream (AT-style) app's state: the inputs sent so far and any paged answer.
    Upstream(upstream::UpstreamState),
}

/// What an app knows about the hop it answers.
#[derive(Debug, Clone)]
pub struct HopEnv {
    /// The gateway's session key (stable for the dialogue).
    pub session_id: Arc<str>,
    /// The subscriber.
    pub msisdn: Msisdn,
    /// The route's service code (`*384*303#`), not the pre-filled dial.
    pub service_code: Arc<str>,
    /// The network code, when the front knows it.
    pub network: Option<Arc<str>>,
    /// The front the dialogue came through.
    pub front: Front,
    /// The effective screen limit: the smaller of the route's and the front's.
    pub limit: Limit,
    /// When the hop must be answered by.
    pub deadline: Instant,
    /// The hop's number in the dialogue (1 for the first): with the session id, the
    /// idempotency key of what the hop changes. The same after a crash, so a retried hop
    /// never applies a transaction twice.
    pub hop: u32,
    /// When the dialogue started (with the session id, what names this dialogue and no later
    /// one under the same key).
    pub started_ms: u64,
    /// The time the flow sees (the fixed clock of demos and tests, else now).
    pub now: jiff::Timestamp,
    /// The hop is answered on the node's copy of the dialogue before the cluster has said it
    /// is the current one (docs/cluster.md, "One round trip for most hops"): the app must
    /// change nothing outside the dialogue's state (no save, transaction, backend call or
    /// resume point). It answers [`AppError::Tentative`] instead, and the hop is answered
    /// again under the dialogue's lease. Reads are allowed.
    pub tentative: bool,
}

/// The outcome of one hop.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The state to keep for the next hop.
    pub state: AppState,
    /// What the subscriber sees.
    pub reply: Reply,
    /// Which of the hop's inputs were typed on a sensitive screen (a PIN): the actor masks
    /// them in everything it keeps of the hop.
    pub sensitive: Sensitive,
    /// Whether the hop ran a transaction (applied or not): the dialogue's end then looks up the
    /// transactions it applied, for its end record.
    pub transacted: bool,
}

/// Which of a hop's inputs were sensitive: bit `i` for the `i`-th input, the last bit for every
/// input from the 64th on (a hop has one input, or the few typed ahead in a dial).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sensitive(u64);

impl Sensitive {
    /// No input was sensitive.
    pub const NONE: Sensitive = Sensitive(0);
    /// Every input counts as sensitive (a hop that failed in a flow that has any).
    pub const ALL: Sensitive = Sensitive(u64::MAX);

    /// Marks the `i`-th input.
    pub fn mark(&mut self, i: usize) {
        self.0 |= 1 << i.min(63);
    }

    /// Whether the `i`-th input is marked.
    pub fn is(self, i: usize) -> bool {
        self.0 & (1 << i.min(63)) != 0
    }

    /// Whether any input is marked.
    pub fn any(self) -> bool {
        self.0 != 0
    }
}

/// Why an app could not answer. The subscriber gets an apology END; the reason is logged.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A persisted state cannot be continued by this app (changed flow, other kind of app).
    #[error("cannot resume: {0}")]
    Incompatible(String),
    /// A hop answered tentatively ([`HopEnv::tentative`]) reached an effect: nothing was
    /// changed, and the hop is answered again under the dialogue's lease.
    #[error("the hop has effects: it is answered under the dialogue's lease")]
    Tentative,
    /// An upstream app did not answer usefully (timeout, bad status, malformed body, saturated,
    /// circuit open); the subscriber gets the route's apology.
    #[error("upstream: {reason}")]
    Upstream {
        /// What went wrong.
        reason: String,
        /// What the subscriber is told.
        apology: String,
    },
}

impl AppError {
    /// The text the subscriber gets, when the app chose one.
    pub fn apology(&self) -> Option<&str> {
        match self {
            AppError::Upstream { apology, .. } => Some(apology),
            _ => None,
        }
    }
}

/// An application answering hops.
pub trait App: Send + Sync + 'static {
    /// A short, fixed name of the kind of app (`flow`), usable as a log field.
    fn kind(&self) -> &'static str;

    /// The version of the definition this app answers with.
    fn version(&self) -> Arc<str>;

    /// The app's screens and transitions, when it has any to show (a flow's; the admin page's
    /// flow view draws it).
    fn graph(&self) -> Option<&crate::flow::Graph> {
        None
    }

    /// Whether an input may be sensitive (a flow with a `sensitive` input screen): when a hop
    /// fails and no [`Turn`] says which of its inputs were, the actor masks them all.
    fn may_take_sensitive(&self) -> bool {
        false
    }

    /// Whether the app can answer a hop tentatively ([`HopEnv::tentative`]): only then does a
    /// node of a cluster answer its hops on a guess.
    fn answers_tentatively(&self) -> bool {
        false
    }

    /// Answers one hop. `state` is `None` on the dialogue's first hop. `inputs` are the
    /// subscriber's new inputs in order: usually one, none on a plain first hop, several when a
    /// pre-filled dial (`*384*303*1#`) is followed by the first screen.
    fn hop(
        self: Arc<Self>,
        state: Option<AppState>,
        inputs: Vec<String>,
        env: HopEnv,
    ) -> BoxFuture<'static, Result<Turn, AppError>>;
}
