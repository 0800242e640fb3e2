//! Every metric the gateway exports, registered once, with fixed label sets.
//!
//! Served in Prometheus text format at `/metrics` on the admin listener. Histograms are real
//! histograms (buckets chosen for USSD latencies) so that `histogram_quantile` works. Labels are
//! always from small fixed sets (front, route service code, outcome, reason): never an MSISDN or
//! a session id.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Hops by front, route and outcome.
pub const HOPS: &str = "ussd_hops_total";
/// Hop latency by front and route, seconds.
pub const HOP_SECONDS: &str = "ussd_hop_duration_seconds";
/// Dialogues with an actor in memory.
pub const LIVE: &str = "ussd_dialogues_live";
/// Dialogues ended, by reason.
pub const ENDED: &str = "ussd_dialogues_ended_total";
/// Dialogue duration by end reason, seconds.
pub const DIALOGUE_SECONDS: &str = "ussd_dialogue_duration_seconds";
/// Actors evicted by the idle timeout.
pub const EVICTIONS: &str = "ussd_evictions_total";
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
/// Build information (value 1).
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
    install().render()
}

/// Runs the exporter's periodic upkeep (drains histogram buffers).
pub fn upkeep() {
    install().run_upkeep();
}

fn describe() {
    describe_counter!(HOPS, "USSD hops answered, by front, route and outcome");
    describe_histogram!(
        HOP_SECONDS,
        metrics::Unit::Seconds,
        "Hop latency from the front's point of view"
    );
    describe_gauge!(LIVE, "Dialogues with an actor in memory");
    describe_counter!(
        ENDED,
        "Dialogues ended, by reason (end, idle_timeout, abort, error)"
    );
    describe_histogram!(
        DIALOGUE_SECONDS,
        metrics::Unit::Seconds,
        "Dialogue duration by end reason"
    );
    describe_counter!(EVICTIONS, "Dialogue actors evicted by their idle timeout");
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
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for reason in ["end", "idle_timeout", "abort", "error"] {
        counter!(ENDED, "reason" => reason).absolute(0);
    }
    counter!(EVICTIONS).absolute(0);
    for result in ["ok", "refused"] {
        counter!(RELOADS, "result" => result).absolute(0);
    }
}

/// A hop was answered.
pub fn hop(front: &'static str, route: &str, outcome: &'static str, took: Duration) {
    counter!(HOPS, "front" => front, "route" => route.to_string(), "outcome" => outcome)
        .increment(1);
    histogram!(HOP_SECONDS, "front" => front, "route" => route.to_string())
        .record(took.as_secs_f64());
}

/// A dialogue ended.
pub fn dialogue_ended(reason: &'static str, duration: Duration) {
    counter!(ENDED, "reason" => reason).increment(1);
    histogram!(DIALOGUE_SECONDS, "reason" => reason).record(duration.as_secs_f64());
    if reason == "idle_timeout" {
        counter!(EVICTIONS).increment(1);
    }
}

/// An actor started (+1) or stopped (-1).
pub fn live(delta: f64) {
    gauge!(LIVE).increment(delta);
}

/// A store write took `took`.
pub fn store_write(op: &'static str, took: Duration, ok: bool) {
    histogram!(STORE_WRITE_SECONDS, "op" => op).record(took.as_secs_f64());
    if !ok {
        counter!(STORE_ERRORS, "op" => op).increment(1);
    }
}

/// A voice callback was answered; a final one may carry the call's cost.
pub fn voice_callback(kind: &'static str, currency: Option<&str>, amount: Option<&str>) {
    counter!(VOICE_CALLBACKS, "kind" => kind).increment(1);
    if let (Some(currency), Some(amount)) =
        (currency, amount.and_then(|a| a.trim().parse::<f64>().ok()))
    {
        // Currencies are ISO codes: a small fixed set in practice.
        if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
            metrics::counter!(VOICE_COST, "currency" => currency.to_string())
                .increment((amount * 100.0).round() as u64);
        }
    }
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
const OUTBOX_KINDS: [&str; 3] = ["sms", "airtime", "call"];
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
