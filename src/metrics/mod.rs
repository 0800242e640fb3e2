//! Every metric the gateway exports, registered once, with fixed label sets.
//!
//! Served in Prometheus text format at `/metrics` on the admin listener. Histograms are real
//! histograms (buckets chosen for USSD latencies) so that `histogram_quantile` works. Labels are
//! always from small fixed sets (front, route service code, outcome, reason): never an MSISDN or
//! a session id.

mod journey;
mod smpp;
pub use journey::{SCREEN_ARRIVALS, SCREEN_EXITS, screen_arrival, screen_exit, screens};
pub use smpp::*;

use dashmap::DashMap;
use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::hash::Hash;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

/// Hops by front, route and outcome.
pub const HOPS: &str = "ussd_hops_total";
/// Hop latency by front and route, seconds.
pub const HOP_SECONDS: &str = "ussd_hop_duration_seconds";
/// Dialogues with an actor in memory.
pub const LIVE: &str = "ussd_dialogues_live";
/// Live dialogues whose actor is passivated (their state in the store, their deadline kept).
pub const PASSIVATED: &str = "ussd_dialogues_passivated";
/// Dialogues ended, by reason.
pub const ENDED: &str = "ussd_dialogues_ended_total";
/// Dialogue duration by end reason, seconds.
pub const DIALOGUE_SECONDS: &str = "ussd_dialogue_duration_seconds";
/// Store write latency by operation, seconds.
pub const STORE_WRITE_SECONDS: &str = "ussd_store_write_duration_seconds";
/// Store operations that failed, by operation.
pub const STORE_ERRORS: &str = "ussd_store_errors_total";
/// Requests refused at the HTTP edge, by reason.
pub const HTTP_REJECTED: &str = "ussd_http_rejected_total";
/// Config reloads by result.
pub const RELOADS: &str = "ussd_config_reloads_total";
/// Voice callbacks by kind (active, final).
pub const VOICE_CALLBACKS: &str = "ussd_voice_callbacks_total";
/// Cost of finished calls as AT reports it, by currency.
pub const VOICE_COST: &str = "ussd_voice_call_cost_cents_total";
/// Outbox items waiting to be sent.
pub const OUTBOX_PENDING: &str = "ussd_outbox_pending";
/// Outbox delivery attempts by kind (sms, airtime, call) and outcome.
pub const OUTBOX_DELIVERIES: &str = "ussd_outbox_deliveries_total";
/// Time of one AT request made by the outbox sender, by kind, seconds.
pub const OUTBOX_DELIVERY_SECONDS: &str = "ussd_outbox_delivery_duration_seconds";
/// Upstream app calls by route and outcome.
pub const UPSTREAM_REQUESTS: &str = "ussd_upstream_requests_total";
/// Upstream app latency by route, seconds.
pub const UPSTREAM_SECONDS: &str = "ussd_upstream_duration_seconds";
/// Upstream screens cut to the limit, by route.
pub const UPSTREAM_CUT: &str = "ussd_upstream_screens_cut_total";
/// Dialogues ended because the same number dialled the same code again.
pub const ENDED_SUPERSEDED: &str = "ussd_dialogues_superseded_total";
/// Hops refused because they named another subscriber's or service's dialogue, by front and
/// whether that dialogue was live or ended.
pub const SESSION_MISMATCH: &str = "ussd_session_mismatch_total";
/// Redis calls (cluster mode) by operation, seconds.
pub const REDIS_SECONDS: &str = "ussd_redis_duration_seconds";
/// Redis calls that failed or timed out, by operation.
pub const REDIS_ERRORS: &str = "ussd_redis_errors_total";
/// Whether the last Redis call succeeded (1) or not (0): cluster mode only.
pub const REDIS_UP: &str = "ussd_redis_up";
/// Times Redis answered again after failing (the connection came back).
pub const REDIS_RECONNECTS: &str = "ussd_redis_reconnects_total";
/// Hops a node of a cluster answered on a guess of the dialogue's version, by outcome (right:
/// kept in one round trip; wrong, effects: answered again under the lease).
pub const CLUSTER_GUESSES: &str = "ussd_cluster_guesses_total";
/// Hops refused by a limit, by limit.
pub const LIMITED: &str = "ussd_limited_total";
/// Build information (value 1): version and git commit.
pub const BUILD_INFO: &str = "ussd_build_info";
/// Buckets for hop latencies: a local hop takes well under a millisecond, a flushed save a few
/// milliseconds, an upstream call up to the 5 s deadline.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for dialogue durations (seconds to minutes).
const DIALOGUE_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and registers every family.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DIALOGUE_SECONDS.into()), DIALOGUE_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            });
        let handle = match builder.and_then(|b| b.install_recorder()) {
            Ok(h) => h,
            Err(e) => {
                // Another recorder is installed (an embedding program's): render our own, empty.
                tracing::warn!(error = %e, "metrics recorder not installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        describe();
        handle
    })
}

/// Renders the current values in Prometheus text format.
pub fn render() -> String {
    let handle = install();
    process_collector().collect();
    handle.render()
}

/// How many live dialogues are passivated now (the upkeep job sets it every 5 s).
pub fn passivated(n: usize) {
    gauge!(PASSIVATED).set(n as f64);
}

/// Runs the exporter's periodic upkeep (drains histogram buffers).
pub fn upkeep() {
    install().run_upkeep();
}

fn describe() {
    describe_counter!(
        HOPS,
        "USSD hops answered, by front, dialect, route and outcome"
    );
    describe_histogram!(
        HOP_SECONDS,
        metrics::Unit::Seconds,
        "Hop latency from the front's point of view"
    );
    describe_gauge!(LIVE, "Dialogues with an actor in memory");
    describe_gauge!(
        PASSIVATED,
        "Deadlines kept for dialogues passivated after [sessions] passivate_after_ms (state in the store): each counts until it passes, even once its dialogue resumed or ended; live in all is at most ussd_dialogues_live + this"
    );
    describe_counter!(
        ENDED,
        "Dialogues ended, by reason (end, idle_timeout, abort, error)"
    );
    describe_histogram!(
        DIALOGUE_SECONDS,
        metrics::Unit::Seconds,
        "Dialogue duration by end reason"
    );
    describe_histogram!(
        STORE_WRITE_SECONDS,
        metrics::Unit::Seconds,
        "Store write latency by operation"
    );
    describe_counter!(STORE_ERRORS, "Store operations that failed, by operation");
    describe_counter!(
        HTTP_REJECTED,
        "HTTP requests refused at the edge, by reason"
    );
    describe_counter!(RELOADS, "Flow reloads, by result");
    describe_gauge!(BUILD_INFO, "Build information");
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Calls to upstream AT-style apps, by route and outcome"
    );
    describe_histogram!(
        UPSTREAM_SECONDS,
        metrics::Unit::Seconds,
        "Upstream app latency by route"
    );
    describe_counter!(
        UPSTREAM_CUT,
        "Upstream screens cut to the screen limit, by route"
    );
    describe_counter!(
        VOICE_CALLBACKS,
        "Voice callbacks answered, by kind (active, final)"
    );
    describe_counter!(
        VOICE_COST,
        "Cost of finished voice calls as reported by AT, in cents, by currency"
    );
    for kind in ["active", "final"] {
        counter!(VOICE_CALLBACKS, "kind" => kind).absolute(0);
    }
    describe_gauge!(OUTBOX_PENDING, "Outbox items waiting to be sent");
    describe_counter!(
        OUTBOX_DELIVERIES,
        "Outbox delivery attempts by kind and outcome (sent, transient_failure, permanent_failure, not_sent)"
    );
    describe_histogram!(
        OUTBOX_DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "Time of one AT request made by the outbox sender, by kind"
    );
    gauge!(OUTBOX_PENDING).set(0.0);
    for kind in OUTBOX_KINDS {
        for outcome in OUTBOX_OUTCOMES {
            counter!(OUTBOX_DELIVERIES, "kind" => kind, "outcome" => outcome).absolute(0);
        }
    }
    // Families the dashboard reads exist from start-up, at zero.
    gauge!(LIVE).set(0.0);
    gauge!(PASSIVATED).set(0.0);
    gauge!(BUILD_INFO, "version" => crate::VERSION, "commit" => crate::COMMIT).set(1.0);
    for reason in ["end", "idle_timeout", "abort", "error"] {
        counter!(ENDED, "reason" => reason).absolute(0);
    }
    for result in ["ok", "refused"] {
        counter!(RELOADS, "result" => result).absolute(0);
    }
    describe_more();
}

/// Metric handles kept by their label values, for the families recorded on every hop.
///
/// Making a handle builds its key (an allocation per label set) and looks it up in the
/// recorder's registry; an SMPP hop records a dozen of them, which cost about as much as the
/// flow's own work. A kept handle is one lookup here. Nothing is kept before the recorder is
/// installed: the handles made then are no-ops and would stay so.
pub(crate) struct Kept<K, H>(LazyLock<DashMap<K, H>>);

impl<K: Hash + Eq, H> Kept<K, H> {
    pub(crate) const fn new() -> Self {
        Kept(LazyLock::new(DashMap::new))
    }

    /// Runs `record` on the handle for `key`, made by `make` the first time.
    pub(crate) fn with(&self, key: K, make: impl FnOnce() -> H, record: impl FnOnce(&H)) {
        if HANDLE.get().is_none() {
            return record(&make());
        }
        if let Some(h) = self.0.get(&key) {
            return record(&h);
        }
        record(&self.0.entry(key).or_insert_with(make));
    }
}

/// A hop series' labels: front, dialect, route, outcome.
type HopLabels = (&'static str, &'static str, Arc<str>, &'static str);
static HOP_HANDLES: Kept<HopLabels, (Counter, Histogram)> = Kept::new();
static ENDED_HANDLES: Kept<&str, (Counter, Histogram)> = Kept::new();
static STORE_HANDLES: Kept<&str, Histogram> = Kept::new();
static LIVE_HANDLE: Kept<(), Gauge> = Kept::new();

/// A hop was answered; `dialect` is the aggregator's (`smpp` for SMPP), from a bounded set.
pub fn hop(
    front: &'static str,
    dialect: &'static str,
    route: Arc<str>,
    outcome: &'static str,
    took: Duration,
) {
    HOP_HANDLES.with(
        (front, dialect, route.clone(), outcome),
        || {
            (
                counter!(HOPS, "front" => front, "dialect" => dialect, "route" => route.clone(), "outcome" => outcome),
                histogram!(HOP_SECONDS, "front" => front, "dialect" => dialect, "route" => route),
            )
        },
        |(hops, seconds)| {
            hops.increment(1);
            seconds.record(took.as_secs_f64());
        },
    );
}

/// A dialogue ended.
pub fn dialogue_ended(reason: &'static str, duration: Duration) {
    ENDED_HANDLES.with(
        reason,
        || {
            (
                counter!(ENDED, "reason" => reason),
                histogram!(DIALOGUE_SECONDS, "reason" => reason),
            )
        },
        |(ended, seconds)| {
            ended.increment(1);
            seconds.record(duration.as_secs_f64());
        },
    );
}

/// An actor started (+1) or stopped (-1).
pub fn live(delta: f64) {
    LIVE_HANDLE.with((), || gauge!(LIVE), |live| live.increment(delta));
}

/// A store write took `took`.
pub fn store_write(op: &'static str, took: Duration, ok: bool) {
    STORE_HANDLES.with(
        op,
        || histogram!(STORE_WRITE_SECONDS, "op" => op),
        |seconds| seconds.record(took.as_secs_f64()),
    );
    if !ok {
        counter!(STORE_ERRORS, "op" => op).increment(1);
    }
}

/// The largest call cost counted, in currency units: no call costs a million of anything,
/// and a larger figure (or `1e30`) is an error or an attack, not a cost.
pub const MAX_CALL_COST: f64 = 1_000_000.0;

/// A voice callback was answered; a final one may carry the call's cost, counted under its
/// currency when `currencies` lists it, else under `other`. A cost that is not a number, not
/// finite, negative or above [`MAX_CALL_COST`] is not counted (and is logged).
pub fn voice_callback(
    kind: &'static str,
    currency: Option<&str>,
    amount: Option<&str>,
    currencies: &[String],
) {
    counter!(VOICE_CALLBACKS, "kind" => kind).increment(1);
    let Some(raw) = amount else {
        return;
    };
    let cents = match raw.trim().parse::<f64>() {
        Ok(a) if a.is_finite() && (0.0..=MAX_CALL_COST).contains(&a) => (a * 100.0).round() as u64,
        _ => {
            tracing::warn!(
                amount = ?crate::logsafe::untrusted(raw),
                "voice: a call cost that is not a plausible amount was not counted"
            );
            return;
        }
    };
    let label = match currency {
        Some(c) => currencies
            .iter()
            .find(|known| known.as_str() == c)
            .map_or_else(|| "other".to_string(), Clone::clone),
        None => "other".to_string(),
    };
    counter!(VOICE_COST, "currency" => label).increment(cents);
}

/// A hop named a dialogue (`dialogue`: live or ended) that is not its subscriber's.
pub fn session_mismatch(front: &'static str, dialogue: &'static str) {
    counter!(SESSION_MISMATCH, "front" => front, "dialogue" => dialogue).increment(1);
}

/// A Redis call (`op`: a fixed set of command kinds) took `took`.
pub fn redis_call(op: &'static str, took: Duration, ok: bool) {
    histogram!(REDIS_SECONDS, "op" => op).record(took.as_secs_f64());
    if !ok {
        counter!(REDIS_ERRORS, "op" => op).increment(1);
    }
}

/// Whether Redis answers now; `back` when it answered again after failing.
pub fn redis_up(up: bool, back: bool) {
    gauge!(REDIS_UP).set(if up { 1.0 } else { 0.0 });
    if back {
        counter!(REDIS_RECONNECTS).increment(1);
    }
}

/// An upstream app was called for a hop: `outcome` is `ok` or the failure.
pub fn upstream(route: &str, outcome: &'static str, took: Duration) {
    counter!(UPSTREAM_REQUESTS, "route" => route.to_string(), "outcome" => outcome).increment(1);
    histogram!(UPSTREAM_SECONDS, "route" => route.to_string()).record(took.as_secs_f64());
}

/// An upstream screen was cut to the limit (routes with `long_screens = "cut"`).
pub fn upstream_cut(route: &str) {
    counter!(UPSTREAM_CUT, "route" => route.to_string()).increment(1);
}

/// A hop answered on a guess, by `outcome` (right, wrong, effects).
pub fn cluster_guess(outcome: &'static str) {
    counter!(CLUSTER_GUESSES, "outcome" => outcome).increment(1);
}

/// A live dialogue was superseded by a new one from the same number on the same code.
pub fn superseded() {
    counter!(ENDED_SUPERSEDED).increment(1);
}

/// A hop was refused by a limit (`msisdn_rate`, `live_dialogues`).
pub fn limited(which: &'static str) {
    counter!(LIMITED, "limit" => which).increment(1);
}

/// A request was refused at the HTTP edge.
pub fn http_rejected(reason: &'static str) {
    counter!(HTTP_REJECTED, "reason" => reason).increment(1);
}

/// A reload was tried.
pub fn reload(ok: bool) {
    counter!(RELOADS, "result" => if ok { "ok" } else { "refused" }).increment(1);
}

/// The outbox effect kinds (metric label values).
const OUTBOX_KINDS: [&str; 5] = ["sms", "airtime", "call", "ussn", "ussr"];
/// The outbox delivery outcomes (metric label values).
const OUTBOX_OUTCOMES: [&str; 4] = ["sent", "transient_failure", "permanent_failure", "not_sent"];

/// The outbox sender counted `n` pending items.
pub fn outbox_pending(n: usize) {
    gauge!(OUTBOX_PENDING).set(n as f64);
}

/// An outbox delivery attempt ended with `outcome`; `took` is the AT request's time (none when
/// nothing was sent).
pub fn outbox_delivery(kind: &'static str, outcome: &'static str, took: Option<Duration>) {
    counter!(OUTBOX_DELIVERIES, "kind" => kind, "outcome" => outcome).increment(1);
    if let Some(took) = took {
        histogram!(OUTBOX_DELIVERY_SECONDS, "kind" => kind).record(took.as_secs_f64());
    }
}

/// Descriptions and start-up zeros of the families added for the dashboard and the alerts
/// (SMPP, store, HTTP edge, process): every family they read exists before the first hop.
fn describe_more() {
    smpp::describe();
    journey::describe();
    describe_histogram!(
        REDIS_SECONDS,
        metrics::Unit::Seconds,
        "Redis calls of cluster mode, by operation"
    );
    describe_counter!(
        REDIS_ERRORS,
        "Redis calls that failed or timed out, by operation"
    );
    describe_gauge!(
        REDIS_UP,
        "Cluster mode: 1 while Redis answers, 0 since a call to it failed"
    );
    describe_counter!(
        REDIS_RECONNECTS,
        "Cluster mode: times Redis answered again after failing"
    );
    describe_counter!(
        CLUSTER_GUESSES,
        "Cluster mode: hops answered on a guess of the dialogue's version, by outcome (right: one round trip; wrong, effects: answered again under the lease)"
    );
    describe_counter!(
        SESSION_MISMATCH,
        "Hops refused because their session belongs to another number or service, by front and dialogue (live, ended)"
    );
    for front in ["http", "smpp"] {
        for dialogue in ["live", "ended"] {
            counter!(SESSION_MISMATCH, "front" => front, "dialogue" => dialogue).absolute(0);
        }
    }
    for op in ["session", "end", "transact", "records"] {
        let _ = histogram!(STORE_WRITE_SECONDS, "op" => op);
        counter!(STORE_ERRORS, "op" => op).absolute(0);
    }
    for reason in [
        "content_type",
        "body",
        "bad_request",
        "source",
        "secret",
        "connections",
        "request_timeout",
    ] {
        counter!(HTTP_REJECTED, "reason" => reason).absolute(0);
    }
    describe_counter!(
        LIMITED,
        "Hops refused by a limit, by limit (msisdn_rate, live_dialogues)"
    );
    for limit in ["msisdn_rate", "live_dialogues"] {
        counter!(LIMITED, "limit" => limit).absolute(0);
    }
    describe_counter!(
        ENDED_SUPERSEDED,
        "Live dialogues ended because the same number dialled the same code again"
    );
    counter!(ENDED_SUPERSEDED).absolute(0);
    for kind in OUTBOX_KINDS {
        let _ = histogram!(OUTBOX_DELIVERY_SECONDS, "kind" => kind);
    }
    for reason in ["end", "idle_timeout", "abort", "error"] {
        let _ = histogram!(DIALOGUE_SECONDS, "reason" => reason);
    }
    // The apps bill in Kenyan shillings; other currencies appear with their first call.
    counter!(VOICE_COST, "currency" => "KES").absolute(0);
    process_collector().describe();
    process_collector().collect();
}

/// Process CPU, memory, threads and file descriptors under the standard `process_*` names
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), refreshed on every
/// scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Registers zero-valued series for the routes in force, so that the hop families (and the
/// upstream ones) exist per route before the first hop. Call after (re)loading routes.
pub fn routes<'a>(service_codes: impl IntoIterator<Item = &'a str>) {
    for route in service_codes {
        for (front, dialect) in [("http", "africastalking"), ("smpp", "smpp")] {
            for outcome in ["con", "end", "error"] {
                counter!(HOPS, "front" => front, "dialect" => dialect, "route" => route.to_string(), "outcome" => outcome)
                    .absolute(0);
            }
            let _ = histogram!(HOP_SECONDS, "front" => front, "dialect" => dialect, "route" => route.to_string());
        }
        counter!(UPSTREAM_REQUESTS, "route" => route.to_string(), "outcome" => "ok").absolute(0);
        counter!(UPSTREAM_CUT, "route" => route.to_string()).absolute(0);
        let _ = histogram!(UPSTREAM_SECONDS, "route" => route.to_string());
    }
}

/// Backend calls made by flows' `http` screens, by route and outcome (ok, status, malformed
/// is decided by the flow and not counted here; timeout, connection, cache_hit, retry).
pub const FLOW_HTTP_REQUESTS: &str = "ussd_flow_http_requests_total";
/// Time of one flow backend call (all its attempts), by route, seconds.
pub const FLOW_HTTP_SECONDS: &str = "ussd_flow_http_duration_seconds";
/// Resumes of cut dialogues, by route and outcome (offered, continued, restarted, silent).
pub const FLOW_RESUMES: &str = "ussd_flow_resumes_total";
/// Dialogues a node ended because they started on another version of the flow.
pub const FLOW_VERSION_MISMATCH: &str = "ussd_flow_version_mismatch_total";

/// Describes the flow backend and resume families (once; called when a flow app is built).
pub fn describe_flow_extras() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        describe_counter!(
            FLOW_HTTP_REQUESTS,
            "Backend calls of flow http screens, by route and outcome (ok, status, timeout, connection, cache_hit, retry)"
        );
        describe_histogram!(
            FLOW_HTTP_SECONDS,
            metrics::Unit::Seconds,
            "Time of one flow backend call, retries included, by route"
        );
        describe_counter!(
            FLOW_RESUMES,
            "Cut dialogues offered or taken back where they were, by route and outcome (offered, continued, restarted, silent)"
        );
        describe_counter!(
            FLOW_VERSION_MISMATCH,
            "Dialogues ended with the apology because they started on a flow version this node does not run (a rolling upgrade of a cluster), by route"
        );
    });
}

/// A flow's backend call ended with `outcome`.
pub fn flow_http(route: &str, outcome: &'static str, took: Option<Duration>) {
    counter!(FLOW_HTTP_REQUESTS, "route" => route.to_string(), "outcome" => outcome).increment(1);
    if let Some(took) = took {
        histogram!(FLOW_HTTP_SECONDS, "route" => route.to_string()).record(took.as_secs_f64());
    }
}

/// A resume point was offered, continued, declined (`restarted`) or taken silently.
pub fn flow_resume(route: &str, outcome: &'static str) {
    counter!(FLOW_RESUMES, "route" => route.to_string(), "outcome" => outcome).increment(1);
}

/// A dialogue that started on another version of its flow was ended here.
pub fn flow_version_mismatch(route: &str) {
    counter!(FLOW_VERSION_MISMATCH, "route" => route.to_string()).increment(1);
}
