//! The SMPP families: binds, PDUs, windows, reconnections, refused binds. Per-bind series
//! carry the bind's name (a fixed set from config); `bind="all"` sums every bind.

use super::Kept;
use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};
use std::sync::Arc;

/// SMPP binds configured (ESME role).
pub const SMPP_BINDS_CONFIGURED: &str = "ussd_smpp_binds_configured";
/// SMPP binds with every connection bound (ESME role).
pub const SMPP_BINDS_UP: &str = "ussd_smpp_binds_up";
/// One SMPP bind or listener peer: 1 while bound, 0 while not, by bind (name or system_id).
pub const SMPP_BIND_UP: &str = "ussd_smpp_bind_up";
/// SMPP PDUs by bind, direction, command and status; `bind="all"` sums every bind.
pub const SMPP_PDUS: &str = "ussd_smpp_pdus_total";
/// SMPP requests sent and not yet answered, by bind; `bind="all"` sums every bind.
pub const SMPP_WINDOW: &str = "ussd_smpp_window_in_use";
/// SMPP reconnection attempts, by bind; `bind="all"` sums every bind.
pub const SMPP_RECONNECTS: &str = "ussd_smpp_reconnects_total";
/// Binds refused by the SMPP listener, by reason.
pub const SMPP_BIND_FAILURES: &str = "ussd_smpp_bind_failures_total";
/// The reasons of [`SMPP_BIND_FAILURES`].
pub const SMPP_BIND_FAILURE_REASONS: [&str; 4] = [
    "unknown_system_id",
    "wrong_password",
    "not_allowed",
    "too_many_binds",
];
/// The aggregate label value of the per-bind SMPP families.
pub const SMPP_ALL: &str = "all";

/// Bind, direction, command and raw status (past the specification: one value).
type PduKey = (Arc<str>, &'static str, &'static str, u32);
static PDU_HANDLES: Kept<PduKey, (Counter, Counter)> = Kept::new();
static WINDOW_HANDLES: Kept<Arc<str>, (Gauge, Gauge)> = Kept::new();

/// Describes the SMPP families and registers their fixed series at zero.
pub(super) fn describe() {
    describe_gauge!(SMPP_BINDS_CONFIGURED, "SMPP binds configured (ESME role)");
    describe_gauge!(
        SMPP_BINDS_UP,
        "SMPP binds with every connection bound (ESME role)"
    );
    describe_gauge!(
        SMPP_BIND_UP,
        "1 while an SMPP bind (or listener peer) is bound, 0 while not"
    );
    describe_counter!(
        SMPP_PDUS,
        "SMPP PDUs by bind, direction (in, out), command and status; bind=\"all\" sums every bind"
    );
    describe_gauge!(
        SMPP_WINDOW,
        "SMPP requests in flight without a response, by bind; bind=\"all\" sums every bind"
    );
    describe_counter!(
        SMPP_RECONNECTS,
        "SMPP reconnection attempts, by bind; bind=\"all\" sums every bind"
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
    gauge!(SMPP_WINDOW, "bind" => SMPP_ALL).set(0.0);
    counter!(SMPP_RECONNECTS, "bind" => SMPP_ALL).absolute(0);
    for (direction, command) in [
        ("in", "deliver_sm"),
        ("in", "submit_sm"),
        ("in", "data_sm"),
        ("out", "submit_sm"),
        ("out", "deliver_sm"),
        ("out", "data_sm"),
    ] {
        counter!(SMPP_PDUS, "bind" => SMPP_ALL, "direction" => direction, "command" => command, "status" => "ok")
            .absolute(0);
    }
}

/// How many ESME binds are configured (at SMPP front start).
pub fn smpp_binds_configured(n: usize) {
    gauge!(SMPP_BINDS_CONFIGURED).set(n as f64);
}

/// Registers one bind's (or listener peer's) series at zero.
pub fn smpp_bind_registered(bind: &str) {
    let bind: std::sync::Arc<str> = bind.into();
    gauge!(SMPP_BIND_UP, "bind" => bind.clone()).set(0.0);
    gauge!(SMPP_WINDOW, "bind" => bind.clone()).set(0.0);
    counter!(SMPP_RECONNECTS, "bind" => bind).absolute(0);
}

/// An ESME bind went up (`true`) or down; `bind_up` is per bind, `binds_up` counts them.
pub fn smpp_bind_state(bind: &str, up: bool) {
    gauge!(SMPP_BIND_UP, "bind" => bind.to_string()).set(if up { 1.0 } else { 0.0 });
    gauge!(SMPP_BINDS_UP).increment(if up { 1.0 } else { -1.0 });
}

/// A listener peer's connection bound (`+1`) or closed (`-1`): `bind_up` counts its bound
/// connections.
pub fn smpp_peer_connections(peer: &str, delta: f64) {
    gauge!(SMPP_BIND_UP, "bind" => peer.to_string()).increment(delta);
}

/// The SMPP listener refused a bind (or a connection) for `reason`, one of
/// [`SMPP_BIND_FAILURE_REASONS`].
pub fn smpp_bind_failure(reason: &'static str) {
    counter!(SMPP_BIND_FAILURES, "reason" => reason).increment(1);
}

/// A reconnection attempt of `bind`.
pub fn smpp_reconnect(bind: &str) {
    counter!(SMPP_RECONNECTS, "bind" => bind.to_string()).increment(1);
    counter!(SMPP_RECONNECTS, "bind" => SMPP_ALL).increment(1);
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
            (
                counter!(SMPP_PDUS, "bind" => bind.clone(), "direction" => direction, "command" => command, "status" => status.clone()),
                counter!(SMPP_PDUS, "bind" => SMPP_ALL, "direction" => direction, "command" => command, "status" => status),
            )
        },
        |(one, all)| {
            one.increment(1);
            all.increment(1);
        },
    );
}

/// A request entered (`+1`) or left (`-1`) the window of a connection of `bind`.
pub fn smpp_window(bind: &std::sync::Arc<str>, delta: f64) {
    WINDOW_HANDLES.with(
        bind.clone(),
        || {
            (
                gauge!(SMPP_WINDOW, "bind" => bind.clone()),
                gauge!(SMPP_WINDOW, "bind" => SMPP_ALL),
            )
        },
        |(one, all)| {
            one.increment(delta);
            all.increment(delta);
        },
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
