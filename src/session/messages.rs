//! Every message a dialogue's actor takes, in one place (as actix's chat-broker example keeps
//! its messages): what each one asks and what it answers. The actor handles them
//! ([`super::actor`]); the registry sends them ([`super::registry`]).

use super::state::{AggregatorReport, EndReason};
use crate::hop::{Hop, Reply};
use actix::Message;

/// Answer this hop.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Reply")]
pub struct HopMsg(pub Hop);

/// End the dialogue if it is idle past its timeout; answers whether it ended.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct Expire;

/// End the dialogue now: the network or the aggregator says it is over. Answers whether a live
/// dialogue ended.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct Abort;

/// The aggregator reports that the dialogue ended (AT's end-of-session notification): end it
/// now, for `reason`, if it is still live, and keep the report with its end-of-session record
/// either way. Answers whether a dialogue (live or ended) was found.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct AggregatorEnd {
    /// The aggregator's own account, kept with the end record.
    pub report: AggregatorReport,
    /// How a dialogue still live ends (the aggregator's status, as its front reads it).
    pub reason: EndReason,
    /// The subscriber the report names, when it names one: a report for another number's
    /// dialogue is refused (someone who knows a session id must not end it).
    pub msisdn: Option<crate::msisdn::Msisdn>,
}
