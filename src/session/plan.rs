//! What to do with a hop, decided from what the dialogue's actor has loaded: answer a retry
//! from the stored reply, answer from the tombstone of the key's ended dialogue, refuse a hop
//! of another subscriber or service, start a new dialogue, or run the app on the next input.
//!
//! [`plan`] is a pure function over plain data (the hop, the live dialogue, the tombstone, the
//! routes, the settings, the time), so every case is tested without actix. The actor
//! ([`super::actor`]) does what the plan says: the store reads and writes, the app call, the
//! timers, the metrics and the logs.

use super::core::Settings;
use super::mask::{self, HopText, InputsAt, Relation};
use super::state::{Dialogue, Tombstone};
use crate::app::{Route, RouteTable};
use crate::hop::{Front, Hop, HopInput, Reply};
use crate::msisdn::Msisdn;
use crate::text::Limit;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// What the actor knows when a hop comes.
#[derive(Debug)]
pub(super) struct Known<'a> {
    /// The key's live dialogue, if there is one.
    pub dialogue: Option<&'a Dialogue>,
    /// The live dialogue's route (`None` when it is gone from the configuration since a
    /// restart).
    pub route: Option<&'a Arc<Route>>,
    /// The tombstone of the key's ended dialogue, still kept, if [`wants_tombstone`] asked for
    /// it.
    pub tombstone: Option<Tombstone>,
    /// The routes in force, read only by the decisions that need them.
    pub routes: &'a ArcSwap<RouteTable>,
    /// The texts the hop may be answered.
    pub settings: &'a Settings,
    /// Now, in milliseconds since the epoch.
    pub now_ms: u64,
}

/// What to do with a hop. Lives only while a hop is planned, so the size difference between
/// the variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Plan {
    /// Answer at once (a retry, a tombstone's reply, an input for a dialogue no longer known);
    /// stop the actor if `stop`.
    Answer {
        reply: Reply,
        stop: bool,
        outcome: &'static str,
    },
    /// The live dialogue idled out while no actor held it (a restart): it ends now, as timed
    /// out, not later.
    Expire,
    /// The live dialogue's route is gone: it ends, as an error.
    RouteGone,
    /// The hop names a dialogue (`what`: live or ended) of another subscriber (`owner`) or
    /// service: it is refused, and the dialogue goes on untouched.
    Refuse {
        hop: Hop,
        owner: Msisdn,
        what: &'static str,
    },
    /// No route answers the code dialled (after ending the live dialogue as aborted, if
    /// `abort_live`).
    UnknownService {
        dialled: String,
        msisdn: Msisdn,
        abort_live: bool,
    },
    /// A new dialogue on `route`: its app runs on `inputs` (after the live dialogue of the key
    /// ends as aborted, if `abort_live`: the network started a new dialogue under a key that
    /// is still live, the old one was abandoned without an abort reaching us).
    New {
        route: Arc<Route>,
        dialogue: Dialogue,
        inputs: Vec<String>,
        text: HopText,
        limit: Limit,
        abort_live: bool,
    },
    /// The live dialogue's app runs on the hop's one new input.
    Next {
        route: Arc<Route>,
        input: String,
        text: HopText,
        limit: Limit,
    },
}

/// Whether [`plan`] needs the tombstone of the key's ended dialogue for `hop`: when no
/// dialogue of the key is live, for any hop but a start (a start is always a new dialogue).
pub(super) fn wants_tombstone(hop: &Hop, dialogue: Option<&Dialogue>) -> bool {
    dialogue.is_none() && !matches!(hop.input, HopInput::Single(None))
}

/// Decides what to do with `hop`, given what is `known`.
pub(super) fn plan(hop: Hop, known: Known<'_>) -> Plan {
    if known
        .dialogue
        .is_some_and(|d| d.idle_deadline_ms() <= known.now_ms)
    {
        return Plan::Expire;
    }
    let start = matches!(hop.input, HopInput::Single(None));
    // A hop of another number, or for another service, never sees this dialogue: with
    // AT the session key is the aggregator's `sessionId` alone, which anyone who learns it
    // can send. (An SMPP start is the network's own new dialogue for the same number.)
    if !start
        && let Some(d) = known.dialogue
        && !owned_by(&hop, known.routes, &d.msisdn, Some(&d.dialled), &d.route)
    {
        let owner = d.msisdn.clone();
        return Plan::Refuse {
            hop,
            owner,
            what: "live",
        };
    }
    let abort_live = start && known.dialogue.is_some();
    let Some(d) = known.dialogue.filter(|_| !start) else {
        // What the key's ended dialogue left, if anything: only its own subscriber may be
        // answered from it.
        let tombstone = if start {
            None
        } else {
            match known.tombstone {
                Some(t) => match t.msisdn {
                    Some(owner)
                        if !owned_by(
                            &hop,
                            known.routes,
                            &owner,
                            None,
                            t.route.as_deref().unwrap_or(""),
                        ) =>
                    {
                        return Plan::Refuse {
                            hop,
                            owner,
                            what: "ended",
                        };
                    }
                    _ => Some(t.reply),
                },
                None => None,
            }
        };
        let (text, retry_possible) = match hop.input {
            HopInput::Cumulative(text) => (text, true),
            // A start is always a new dialogue, never a retry of an ended one.
            HopInput::Single(None) => (String::new(), false),
            HopInput::Single(Some(_)) => {
                // An input for a dialogue we do not know (ended, or lost): answer from the
                // tombstone if there is one, else say it timed out.
                let reply = tombstone.unwrap_or_else(|| Reply::end(&known.settings.timeout_text));
                return Plan::Answer {
                    reply,
                    stop: true,
                    outcome: "expired",
                };
            }
        };
        if retry_possible && let Some(reply) = tombstone {
            return Plan::Answer {
                reply,
                stop: true,
                outcome: "retry",
            };
        }
        return plan_new(
            NewHop {
                msisdn: hop.msisdn,
                dialled: hop.dialled,
                network: hop.network.map(Arc::from),
                front: hop.front,
                limit: hop.limit,
                text,
                cumulative: retry_possible,
            },
            abort_live,
            known.routes,
            known.now_ms,
        );
    };
    // A hop number the dialogue has already answered (an aggregator's `Sequence`): sent again.
    if hop.seq.is_some_and(|n| n <= d.hops) {
        return Plan::Answer {
            reply: d.last_reply.clone(),
            stop: false,
            outcome: "retry",
        };
    }
    let (text, input) = match hop.input {
        HopInput::Cumulative(text) => {
            let at = match mask::relate(&d.seen_text, d.seen_raw.as_deref(), &text) {
                Relation::Retry => {
                    return Plan::Answer {
                        reply: d.last_reply.clone(),
                        stop: false,
                        outcome: "retry",
                    };
                }
                Relation::Next(at) => at,
                Relation::Other(at) => {
                    tracing::warn!(
                        "cumulative text does not extend the dialogue's; using its last segment"
                    );
                    at
                }
            };
            let input = text[at..].to_string();
            let text = HopText {
                text,
                inputs: InputsAt::Next(at),
                cumulative: true,
            };
            (text, input)
        }
        HopInput::Single(input) => {
            let input = input.unwrap_or_default();
            // Built from the text kept, in which sensitive inputs are already masked.
            let text = if d.seen_text.is_empty() {
                input.clone()
            } else {
                format!("{}*{input}", d.seen_text)
            };
            let text = HopText {
                inputs: InputsAt::Next(text.len() - input.len()),
                text,
                cumulative: false,
            };
            (text, input)
        }
    };
    let Some(route) = known.route else {
        return Plan::RouteGone;
    };
    Plan::Next {
        route: route.clone(),
        input,
        text,
        limit: hop.limit,
    }
}

/// The parts of a hop that a new dialogue is made of.
struct NewHop {
    msisdn: Msisdn,
    dialled: String,
    network: Option<Arc<str>>,
    front: Front,
    limit: Limit,
    /// The hop's text (AT's cumulative text, empty for an SMPP start).
    text: String,
    /// Whether `text` is the aggregator's.
    cumulative: bool,
}

/// A new dialogue for `hop`, started at `now_ms`, on the route its code reaches.
fn plan_new(hop: NewHop, abort_live: bool, routes: &ArcSwap<RouteTable>, now_ms: u64) -> Plan {
    let routes = routes.load();
    let Some((route, mut inputs)) = routes.resolve(&hop.dialled) else {
        return Plan::UnknownService {
            dialled: hop.dialled,
            msisdn: hop.msisdn,
            abort_live,
        };
    };
    let text = HopText {
        inputs: InputsAt::Start {
            dialled: inputs.len(),
        },
        text: hop.text,
        cumulative: hop.cumulative,
    };
    // AT sends an empty text on the first hop; anything else is taken as inputs typed ahead.
    if !text.text.is_empty() {
        inputs.extend(text.text.split('*').map(str::to_string));
    }
    let now = now_ms;
    let dialogue = Dialogue {
        msisdn: hop.msisdn,
        front: hop.front,
        // Shared with the route when dialled as configured, as it mostly is.
        dialled: if hop.dialled == *route.service_code {
            route.service_code.clone()
        } else {
            hop.dialled.into()
        },
        route: route.service_code.clone(),
        network: hop.network,
        started_ms: now,
        last_hop_ms: now,
        idle_timeout_ms: route.idle_timeout.as_millis() as u64,
        hops: 0,
        seen_text: String::new(),
        seen_raw: None,
        last_reply: Reply::con(""),
        app_version: route.app.version(),
        app: None,
        journey: Vec::new(),
    };
    Plan::New {
        route,
        dialogue,
        inputs,
        text,
        limit: hop.limit,
        abort_live,
    }
}

/// Whether `hop` comes from the dialogue's subscriber (`msisdn`) for its service: the code
/// it dialled (`dialled`, when known) or any code that reaches its route. A hop that names
/// no code (an SMPP continuation) is checked on its number alone.
fn owned_by(
    hop: &Hop,
    routes: &ArcSwap<RouteTable>,
    msisdn: &Msisdn,
    dialled: Option<&str>,
    route: &str,
) -> bool {
    if hop.msisdn != *msisdn {
        return false;
    }
    if hop.dialled.is_empty() || dialled.is_some_and(|d| d == hop.dialled) {
        return true;
    }
    routes
        .load()
        .resolve(&hop.dialled)
        .is_some_and(|(r, _)| *r.service_code == *route)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
