//! The SMPP families: binds, listener peers' connections, PDUs, windows, reconnections,
//! refused binds. Per-bind series carry the bind's name or the listener peer's system_id (a
//! fixed set from config). There is no aggregate series beside them (a `bind="all"` would make
//! every `sum()` count twice): totals are PromQL sums.

use super::Kept;
use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};
use std::sync::Arc;

/// SMPP binds configured (ESME role).
pub const SMPP_BINDS_CONFIGURED: &str = "ussd_smpp_binds_configured";
/// SMPP binds with every connection bound (ESME role).
pub const SMPP_BINDS_UP: &str = "ussd_smpp_binds_up";
/// One ESME bind: 1 while bound, 0 while not, by bind name.
pub const SMPP_BIND_UP: &str = "ussd_smpp_bind_up";
/// One listener peer's bound connections, by peer (system_id).
pub const SMPP_LISTENER_CONNECTIONS: &str = "ussd_smpp_listener_connections";
/// SMPP PDUs by bind (or listener peer), direction, command and status.
pub const SMPP_PDUS: &str = "ussd_smpp_pdus_total";
/// SMPP requests sent and not yet answered, by bind (or listener peer).
pub const SMPP_WINDOW: &str = "ussd_smpp_window_in_use";
/// SMPP reconnection attempts, by ESME bind.
pub const SMPP_RECONNECTS: &str = "ussd_smpp_reconnects_total";
/// Cluster mode: messages sent through another node's connection of a bind, by bind, way
/// (`out`: this node asked; `in`: this node sent another's) and outcome.
pub const SMPP_RELAYED: &str = "ussd_smpp_relayed_total";
/// Binds refused by the SMPP listener, by reason.
pub const SMPP_BIND_FAILURES: &str = "ussd_smpp_bind_failures_total";
/// The reasons of [`SMPP_BIND_FAILURES`].
pub const SMPP_BIND_FAILURE_REASONS: [&str; 4] = [
    "unknown_system_id",
    "wrong_password",
    "not_allowed",
    "too_many_binds",
];

/// Bind, direction, command and raw status (past the specification: one value).
type PduKey = (Arc<str>, &'static str, &'static str, u32);
static PDU_HANDLES: Kept<PduKey, Counter> = Kept::new();
static WINDOW_HANDLES: Kept<Arc<str>, Gauge> = Kept::new();
/// The (direction, command) pairs of a dialogue's PDUs, registered at zero per bind so that
/// `rate()` has a series from start-up.
const DIALOGUE_PDUS: [(&str, &str); 6] = [
    ("in", "deliver_sm"),
    ("in", "submit_sm"),
    ("in", "data_sm"),
    ("out", "submit_sm"),
    ("out", "deliver_sm"),
    ("out", "data_sm"),
];

/// Describes the SMPP families and registers their fixed series at zero.
pub(super) fn describe() {
    describe_gauge!(SMPP_BINDS_CONFIGURED, "SMPP binds configured (ESME role)");
    describe_gauge!(
        SMPP_BINDS_UP,
        "SMPP binds with every connection bound (ESME role)"
    );
    describe_gauge!(
        SMPP_BIND_UP,
        "1 while an SMPP ESME bind is bound, 0 while not, by bind"
    );
    describe_gauge!(
        SMPP_LISTENER_CONNECTIONS,
        "Bound connections of an SMPP listener peer, by peer (system_id)"
    );
    describe_counter!(
        SMPP_PDUS,
        "SMPP PDUs by bind (or listener peer), direction (in, out), command and status"
    );
    describe_gauge!(
        SMPP_WINDOW,
        "SMPP requests in flight without a response, by bind (or listener peer)"
    );
    describe_counter!(SMPP_RECONNECTS, "SMPP reconnection attempts, by ESME bind");
    describe_counter!(
        SMPP_RELAYED,
        "Cluster mode: SMPP messages sent through another node's connection of the bind, by bind, way (out: asked by this node, in: sent for another) and outcome (sent, failed, unanswered)"
    );
    describe_counter!(
        SMPP_BIND_FAILURES,
        "Binds (and connections) refused by the SMPP listener, by reason"
    );
    for reason in SMPP_BIND_FAILURE_REASONS {
        counter!(SMPP_BIND_FAILURES, "reason" => reason).absolute(0);
    }
    gauge!(SMPP_BINDS_CONFIGURED).set(0.0);
    gauge!(SMPP_BINDS_UP).set(0.0);
}

/// How many ESME binds are configured (at SMPP front start).
pub fn smpp_binds_configured(n: usize) {
    gauge!(SMPP_BINDS_CONFIGURED).set(n as f64);
}

/// Registers one ESME bind's series at zero.
pub fn smpp_bind_registered(bind: &str) {
    let bind: Arc<str> = bind.into();
    gauge!(SMPP_BIND_UP, "bind" => bind.clone()).set(0.0);
    counter!(SMPP_RECONNECTS, "bind" => bind.clone()).absolute(0);
    traffic_registered(&bind);
}

/// Registers one listener peer's series at zero.
pub fn smpp_peer_registered(peer: &str) {
    let peer: Arc<str> = peer.into();
    gauge!(SMPP_LISTENER_CONNECTIONS, "peer" => peer.clone()).set(0.0);
    traffic_registered(&peer);
}

/// The window and the dialogue PDUs of a bind or peer, at zero.
fn traffic_registered(bind: &Arc<str>) {
    gauge!(SMPP_WINDOW, "bind" => bind.clone()).set(0.0);
    for (direction, command) in DIALOGUE_PDUS {
        counter!(SMPP_PDUS, "bind" => bind.clone(), "direction" => direction, "command" => command, "status" => "ok")
            .absolute(0);
    }
}

/// An ESME bind went up (`true`) or down; `bind_up` is per bind, `binds_up` counts them.
pub fn smpp_bind_state(bind: &str, up: bool) {
    gauge!(SMPP_BIND_UP, "bind" => bind.to_string()).set(if up { 1.0 } else { 0.0 });
    gauge!(SMPP_BINDS_UP).increment(if up { 1.0 } else { -1.0 });
}

/// A listener peer's connection bound (`+1`) or closed (`-1`).
pub fn smpp_peer_connections(peer: &str, delta: f64) {
    gauge!(SMPP_LISTENER_CONNECTIONS, "peer" => peer.to_string()).increment(delta);
}

/// The SMPP listener refused a bind (or a connection) for `reason`, one of
/// [`SMPP_BIND_FAILURE_REASONS`].
pub fn smpp_bind_failure(reason: &'static str) {
    counter!(SMPP_BIND_FAILURES, "reason" => reason).increment(1);
}

/// A message relayed `way` ("out" or "in") for `bind`, with its outcome.
pub fn smpp_relayed(bind: &str, way: &'static str, outcome: &'static str) {
    counter!(SMPP_RELAYED, "bind" => bind.to_string(), "way" => way, "outcome" => outcome)
        .increment(1);
}

/// A reconnection attempt of `bind`.
pub fn smpp_reconnect(bind: &str) {
    counter!(SMPP_RECONNECTS, "bind" => bind.to_string()).increment(1);
}

/// The handles one connection counts its traffic with, made once when it is counted under
/// a bind: the PDUs a dialogue sends and receives (status ok) and the window, without a lookup
/// per PDU. Other PDUs go by [`smpp_pdu`].
#[derive(Debug)]
pub struct SmppCounts {
    bind: Arc<str>,
    /// Handles kept: none before the recorder is installed (they would stay no-ops).
    kept: Option<(Gauge, [Counter; KEPT_PDUS.len() * 2])>,
}

/// The commands whose ok PDUs [`SmppCounts`] keeps a handle for, in both directions.
const KEPT_PDUS: [rusmpp::CommandId; 8] = {
    use rusmpp::CommandId as C;
    [
        C::DeliverSm,
        C::DeliverSmResp,
        C::SubmitSm,
        C::SubmitSmResp,
        C::DataSm,
        C::DataSmResp,
        C::EnquireLink,
        C::EnquireLinkResp,
    ]
};

impl SmppCounts {
    /// The handles of `bind`.
    pub fn new(bind: &str) -> SmppCounts {
        let bind: Arc<str> = bind.into();
        let kept = super::HANDLE.get().map(|_| {
            let pdus = std::array::from_fn(|i| {
                let direction = if i < KEPT_PDUS.len() { "in" } else { "out" };
                let command = smpp_command_label(KEPT_PDUS[i % KEPT_PDUS.len()]);
                counter!(SMPP_PDUS, "bind" => bind.clone(), "direction" => direction, "command" => command, "status" => "ok")
            });
            (gauge!(SMPP_WINDOW, "bind" => bind.clone()), pdus)
        });
        SmppCounts { bind, kept }
    }

    /// One PDU went `direction` ("in" or "out").
    pub fn pdu(
        &self,
        direction: &'static str,
        command: rusmpp::CommandId,
        status: rusmpp::CommandStatus,
    ) {
        if let Some((_, pdus)) = &self.kept
            && status == rusmpp::CommandStatus::EsmeRok
            && let Some(i) = KEPT_PDUS.iter().position(|&c| c == command)
        {
            let out = if direction == "in" {
                0
            } else {
                KEPT_PDUS.len()
            };
            return pdus[out + i].increment(1);
        }
        smpp_pdu(&self.bind, direction, command, status);
    }

    /// A request entered (`+1`) or left (`-1`) the connection's window.
    pub fn window(&self, delta: f64) {
        match &self.kept {
            Some((window, _)) => window.increment(delta),
            None => smpp_window(&self.bind, delta),
        }
    }
}

/// One SMPP PDU went `direction` ("in" or "out") on `bind`.
pub fn smpp_pdu(
    bind: &std::sync::Arc<str>,
    direction: &'static str,
    command: rusmpp::CommandId,
    status: rusmpp::CommandStatus,
) {
    let command = smpp_command_label(command);
    // Statuses past the specification's share one label, and so one handle.
    let raw = u32::from(status).min(0x113);
    PDU_HANDLES.with(
        (bind.clone(), direction, command, raw),
        || {
            let status = smpp_status_label(status);
            counter!(SMPP_PDUS, "bind" => bind.clone(), "direction" => direction, "command" => command, "status" => status)
        },
        |pdus| pdus.increment(1),
    );
}

/// A request entered (`+1`) or left (`-1`) the window of a connection of `bind`.
pub fn smpp_window(bind: &std::sync::Arc<str>, delta: f64) {
    WINDOW_HANDLES.with(
        bind.clone(),
        || gauge!(SMPP_WINDOW, "bind" => bind.clone()),
        |window| window.increment(delta),
    );
}

/// The command's name in snake case; ids outside the specification are `other`.
pub fn smpp_command_label(id: rusmpp::CommandId) -> &'static str {
    use rusmpp::CommandId as C;
    match id {
        C::BindReceiver => "bind_receiver",
        C::BindTransmitter => "bind_transmitter",
        C::BindTransceiver => "bind_transceiver",
        C::BindReceiverResp => "bind_receiver_resp",
        C::BindTransmitterResp => "bind_transmitter_resp",
        C::BindTransceiverResp => "bind_transceiver_resp",
        C::SubmitSm => "submit_sm",
        C::SubmitSmResp => "submit_sm_resp",
        C::DeliverSm => "deliver_sm",
        C::DeliverSmResp => "deliver_sm_resp",
        C::DataSm => "data_sm",
        C::DataSmResp => "data_sm_resp",
        C::Unbind => "unbind",
        C::UnbindResp => "unbind_resp",
        C::EnquireLink => "enquire_link",
        C::EnquireLinkResp => "enquire_link_resp",
        C::GenericNack => "generic_nack",
        C::Outbind => "outbind",
        C::AlertNotification => "alert_notification",
        _ => "other",
    }
}

/// `ok`, the status in hex for the codes SMPP 5.0 defines (0x01 to 0x112), `other` otherwise:
/// a fixed, small set whatever a peer sends.
pub fn smpp_status_label(status: rusmpp::CommandStatus) -> metrics::SharedString {
    let raw = u32::from(status);
    match raw {
        0 => metrics::SharedString::const_str("ok"),
        1..=0x112 => metrics::SharedString::from_owned(format!("{raw:#06x}")),
        _ => metrics::SharedString::const_str("other"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::{CommandId, CommandStatus};

    /// A connection's kept handles count the same series as the lookups do, and what they do
    /// not keep (a refusal, a bind) is still counted.
    #[test]
    fn a_connections_counts_land_in_the_bind_series() {
        super::super::install();
        let counts = SmppCounts::new("unit-bind");
        counts.pdu("in", CommandId::DeliverSm, CommandStatus::EsmeRok);
        counts.pdu("in", CommandId::DeliverSm, CommandStatus::EsmeRok);
        counts.pdu("out", CommandId::SubmitSm, CommandStatus::EsmeRok);
        counts.pdu("in", CommandId::SubmitSmResp, CommandStatus::EsmeRthrottled);
        counts.pdu("out", CommandId::BindTransceiver, CommandStatus::EsmeRok);
        counts.window(1.0);
        counts.window(1.0);
        counts.window(-1.0);
        let text = super::super::render();
        for line in [
            r#"ussd_smpp_pdus_total{bind="unit-bind",direction="in",command="deliver_sm",status="ok"} 2"#,
            r#"ussd_smpp_pdus_total{bind="unit-bind",direction="out",command="submit_sm",status="ok"} 1"#,
            r#"ussd_smpp_pdus_total{bind="unit-bind",direction="in",command="submit_sm_resp",status="0x0058"} 1"#,
            r#"ussd_smpp_pdus_total{bind="unit-bind",direction="out",command="bind_transceiver",status="ok"} 1"#,
            r#"ussd_smpp_window_in_use{bind="unit-bind"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
