//! Runs a declarative flow for the session actor: the pure engine decides, this runs its effects.
//!
//! The engine ([`crate::flow`]) never does I/O. It answers with a reply, or with an effect to run
//! first (load a record, save records). Saves are one transaction, durable (flushed to disk,
//! or committed in the cluster's Redis) before the engine is resumed, so the reply that
//! confirms a save is never sent before the save is kept.
//!
//! The `http` screens' backend calls run here too (the `backend` submodule), against the
//! hop's deadline less a margin kept for the flow's fallback screen, and so do resume points
//! ([`resume`]) for flows that opted in to continuing cut dialogues.

mod backend;
pub mod resume;

use super::{App, AppError, AppState, HopEnv, Sensitive, Turn};
use crate::flow::{self, Ctx, Effect, EffectOutcome, Flow, FlowState, Step};
use crate::hop::Reply;
use crate::store::Store;
use crate::store::records::RecordWrite;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The least time kept back from backend calls for rendering the fallback and answering.
const MIN_MARGIN: Duration = Duration::from_millis(50);
/// The most time kept back.
const MAX_MARGIN: Duration = Duration::from_millis(500);

/// When a hop's backend calls must have given up: the hop's deadline less a tenth of what is
/// left of it (at least 50 ms, at most 500 ms, never more than half), so the flow's fallback
/// screen still goes out before the actor's hard cap.
fn calls_deadline(deadline: Instant) -> Instant {
    let now = Instant::now();
    let left = deadline.saturating_duration_since(now);
    let margin = (left / 10).clamp(MIN_MARGIN, MAX_MARGIN).min(left / 2);
    deadline.checked_sub(margin).unwrap_or(now)
}

/// Idempotency keys of the transactions of one hop: `session#hop#n`.
struct TxKeys<'a> {
    session: &'a str,
    /// When the dialogue started: recorded with what it applies.
    started_ms: u64,
    hop: u32,
    n: u32,
}

impl TxKeys<'_> {
    fn next(&mut self) -> String {
        self.n += 1;
        format!("{}#{}#{}", self.session, self.hop, self.n)
    }
}

/// What the effects of one hop share besides the engine context.
struct HopRun<'a> {
    tx: TxKeys<'a>,
    /// Answered tentatively: only reads may run ([`HopEnv::tentative`]).
    tentative: bool,
    /// When backend calls must have given up.
    calls_deadline: Instant,
    /// The route's service code (metric label).
    route: &'a str,
}

/// A flow, bound to the store its effects run against.
#[derive(Debug)]
pub struct FlowApp {
    flow: Arc<Flow>,
    store: Store,
    backend: backend::Backend,
    /// Resume points, when the flow opted in.
    points: Option<resume::Points>,
    /// A dialogue that started on another version of the flow ends with the apology instead
    /// of going on (cluster mode: during a rolling upgrade its hops reach nodes of both
    /// versions, and it must never run on the other one).
    same_version_only: bool,
}

impl FlowApp {
    /// Binds `flow` to `store`; its backend calls go through `client` (the gateway's shared
    /// one).
    pub fn new(flow: Arc<Flow>, store: Store, client: reqwest::Client) -> FlowApp {
        crate::metrics::describe_flow_extras();
        let points = flow
            .resume_window()
            .and_then(|window| match store.resume_points() {
                Ok(tree) => Some(resume::Points::new(tree, window)),
                Err(e) => {
                    tracing::error!(flow = flow.name(), error = %e, "resume points unavailable");
                    None
                }
            });
        FlowApp {
            backend: backend::Backend::new(flow.secrets(), client),
            same_version_only: store.shared_records().is_some(),
            flow,
            store,
            points,
        }
    }

    /// Ends dialogues that started on another version of the flow (see the field); on by
    /// default when the store is a cluster's.
    pub fn same_version_only(mut self, on: bool) -> FlowApp {
        self.same_version_only = on;
        self
    }

    /// The flow this app runs.
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    async fn run_effects(
        &self,
        mut step: Step,
        ctx: &Ctx<'_>,
        run: &mut HopRun<'_>,
    ) -> Result<(FlowState, Reply), AppError> {
        loop {
            match step {
                Step::Reply { state, reply } => return Ok((state, reply)),
                Step::Effect { state, effect } => {
                    if run.tentative && !matches!(effect, Effect::Load { .. } | Effect::List { .. })
                    {
                        return Err(AppError::Tentative);
                    }
                    let outcome = self.effect(effect, run).await;
                    step = flow::resume(&self.flow, state, outcome, ctx);
                }
            }
        }
    }

    async fn effect(&self, effect: Effect, run: &mut HopRun<'_>) -> EffectOutcome {
        let tx = &mut run.tx;
        match effect {
            Effect::Http(req) => {
                EffectOutcome::Http(self.backend.call(req, run.calls_deadline, run.route).await)
            }
            Effect::Transact { ops } => {
                let key = tx.next();
                let t = std::time::Instant::now();
                let dialogue = crate::store::ledger::TxDialogue {
                    session: tx.session,
                    started_ms: tx.started_ms,
                    hop: tx.hop,
                };
                // Durable before the engine goes on to the reply that confirms it.
                let result = self
                    .store
                    .transact_confirmed(&key, &ops, Some(dialogue))
                    .await;
                crate::metrics::store_write("transact", t.elapsed(), result.is_ok());
                match result {
                    Ok(o) => EffectOutcome::Transacted {
                        failed_op: o.failed_op,
                        txn: o.txn,
                    },
                    Err(e) => {
                        tracing::error!(flow = self.flow.name(), error = %e, "transaction failed");
                        EffectOutcome::Failed(e.to_string())
                    }
                }
            }
            Effect::List { collection } => match self.store.list_records(&collection).await {
                Ok(records) => EffectOutcome::Loaded(Some(serde_json::Value::Array(
                    records
                        .into_iter()
                        .map(|(id, mut doc)| {
                            if let Some(obj) = doc.as_object_mut() {
                                obj.insert("id".into(), serde_json::Value::String(id));
                            }
                            doc
                        })
                        .collect(),
                ))),
                Err(e) => {
                    tracing::error!(flow = self.flow.name(), error = %e, "record list failed");
                    EffectOutcome::Failed(e.to_string())
                }
            },
            Effect::Load { collection, id } => match self.store.load_record(&collection, &id).await
            {
                Ok(found) => EffectOutcome::Record(found),
                Err(e) => {
                    tracing::error!(flow = self.flow.name(), error = %e, "record load failed");
                    EffectOutcome::Failed(e.to_string())
                }
            },
            Effect::Save { writes } => {
                let writes: Vec<RecordWrite> = writes
                    .into_iter()
                    .map(|w| RecordWrite {
                        collection: w.collection,
                        id: w.id,
                        value: w.value,
                        merge: w.merge,
                    })
                    .collect();
                let t = std::time::Instant::now();
                let result = self.store.save_records(&writes).await;
                crate::metrics::store_write("records", t.elapsed(), result.is_ok());
                match result {
                    Ok(()) => EffectOutcome::Saved,
                    Err(e) => {
                        tracing::error!(flow = self.flow.name(), error = %e, "record save failed");
                        EffectOutcome::Failed(e.to_string())
                    }
                }
            }
        }
    }
}

impl App for FlowApp {
    fn kind(&self) -> &'static str {
        "flow"
    }

    fn version(&self) -> Arc<str> {
        self.flow.version_arc()
    }

    fn may_take_sensitive(&self) -> bool {
        self.flow.has_sensitive_inputs()
    }

    fn graph(&self) -> Option<&crate::flow::Graph> {
        Some(self.flow.graph())
    }

    fn answers_tentatively(&self) -> bool {
        // A flow keeping resume points writes one on every hop.
        self.points.is_none()
    }

    fn hop(
        self: Arc<Self>,
        state: Option<AppState>,
        inputs: Vec<String>,
        env: HopEnv,
    ) -> BoxFuture<'static, Result<Turn, AppError>> {
        Box::pin(async move {
            let ctx = Ctx {
                phone: env.msisdn.as_str(),
                service_code: &env.service_code,
                network: env.network.as_deref(),
                session_id: &env.session_id,
                limit: env.limit,
                now: env.now,
            };
            let mut run = HopRun {
                tx: TxKeys {
                    session: &env.session_id,
                    started_ms: env.started_ms,
                    hop: env.hop,
                    n: 0,
                },
                tentative: env.tentative,
                calls_deadline: calls_deadline(env.deadline),
                route: &env.service_code,
            };
            if env.tentative && self.points.is_some() {
                return Err(AppError::Tentative);
            }
            let point_key = resume::key(env.msisdn.as_str(), &env.service_code);
            // Which inputs are typed on a sensitive screen: known from the screen each one
            // reaches, before it is handed in.
            let mut sensitive = Sensitive::NONE;
            let mut fed = 0;
            let mut inputs = inputs.into_iter();
            let first = match state {
                // A dial with inputs typed ahead asks for something specific: no resume.
                None if inputs.len() == 0 => {
                    let saved = match &self.points {
                        Some(p) => p.find(&point_key).await,
                        None => None,
                    };
                    saved
                        .and_then(|saved| flow::restore(&self.flow, saved, &ctx))
                        .unwrap_or_else(|| flow::start(&self.flow, &ctx))
                }
                None => flow::start(&self.flow, &ctx),
                Some(AppState::Upstream(_)) => {
                    return Err(AppError::Incompatible("not a flow dialogue".into()));
                }
                Some(AppState::Flow(state)) => {
                    if state.version() != self.flow.version() && self.same_version_only {
                        if env.tentative {
                            // Counted, and ended, once it is known to be the current state.
                            return Err(AppError::Tentative);
                        }
                        crate::metrics::flow_version_mismatch(&env.service_code);
                        return Err(AppError::Incompatible(format!(
                            "flow {} is version {} on this node and the dialogue started on \
                             version {} (a rolling upgrade)",
                            self.flow.name(),
                            self.flow.version(),
                            state.version()
                        )));
                    }
                    if state.version() != self.flow.version()
                        && !self.flow.has_screen(state.screen())
                    {
                        return Err(AppError::Incompatible(format!(
                            "flow {} changed and screen `{}` is gone",
                            self.flow.name(),
                            state.screen()
                        )));
                    }
                    let Some(input) = inputs.next() else {
                        return Err(AppError::Incompatible(
                            "a continued dialogue needs an input".into(),
                        ));
                    };
                    if flow::sensitive_input(&self.flow, &state) {
                        sensitive.mark(fed);
                    }
                    fed += 1;
                    flow::input(&self.flow, state, &input, &ctx)
                }
            };
            let (mut state, mut reply) = self.run_effects(first, &ctx, &mut run).await?;
            for input in inputs {
                if reply.end {
                    break;
                }
                if flow::sensitive_input(&self.flow, &state) {
                    sensitive.mark(fed);
                }
                fed += 1;
                let step = flow::input(&self.flow, state, &input, &ctx);
                (state, reply) = self.run_effects(step, &ctx, &mut run).await?;
            }
            if let Some(event) = state.take_resume_event() {
                crate::metrics::flow_resume(&env.service_code, event);
            }
            if let Some(points) = &self.points {
                if state.is_resume_point() && !reply.end {
                    // Never with a sensitive input's variable: such a point goes back to the
                    // screen that asked for it, or is not kept.
                    match flow::resume_point(&self.flow, &state) {
                        Some(point) if point.is_resume_point() => {
                            points.save(&point_key, &point).await;
                        }
                        _ => points.clear(&point_key).await,
                    }
                } else if !state.is_resume_offer() {
                    // Ended, or back at a first screen (started afresh): nothing to come back to.
                    points.clear(&point_key).await;
                }
            }
            Ok(Turn {
                state: AppState::Flow(state),
                reply,
                sensitive,
                transacted: run.tx.n > 0,
            })
        })
    }
}
