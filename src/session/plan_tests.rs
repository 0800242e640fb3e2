//! Every decision of [`super::plan`], from plain data: no actor, no store, no clock.

use super::*;
use crate::app::{App, AppError, AppState, HopEnv, Turn};
use futures_util::future::BoxFuture;
use std::time::Duration;

const NOW: u64 = 1_000_000;
const CODE: &str = "*384*303#";
const SUBSCRIBER: &str = "254700000001";

/// An app that is never called: plans only name it.
struct Stub;

impl App for Stub {
    fn kind(&self) -> &'static str {
        "stub"
    }

    fn version(&self) -> Arc<str> {
        Arc::from("v1")
    }

    fn hop(
        self: Arc<Self>,
        _: Option<AppState>,
        _: Vec<String>,
        _: HopEnv,
    ) -> BoxFuture<'static, Result<Turn, AppError>> {
        unreachable!("a plan never runs the app")
    }
}

fn route() -> Arc<Route> {
    let r = Route::new(
        CODE,
        Arc::new(Stub),
        Duration::from_secs(180),
        Duration::from_secs(5),
        Limit::default(),
    )
    .unwrap();
    Arc::new(r)
}

fn routes() -> ArcSwap<RouteTable> {
    let r = Arc::try_unwrap(route()).unwrap();
    ArcSwap::from_pointee(RouteTable::new(vec![r]))
}

fn settings() -> Settings {
    Settings {
        unknown_service_text: "Unknown service".into(),
        apology_text: "Sorry".into(),
        timeout_text: "Timed out".into(),
        tombstone_ttl: Duration::from_secs(60),
        events: None,
        fixed_now: None,
        passivate_after: Duration::ZERO,
    }
}

fn msisdn(n: &str) -> Msisdn {
    Msisdn::parse(n, "254").unwrap()
}

/// A live dialogue of `SUBSCRIBER` on `CODE` that has seen `seen` and last answered `last`.
fn live(seen: &str, last: &str) -> Dialogue {
    Dialogue {
        msisdn: msisdn(SUBSCRIBER),
        front: Front::Http,
        dialled: Arc::from(CODE),
        route: Arc::from(CODE),
        network: None,
        started_ms: NOW - 10_000,
        last_hop_ms: NOW - 1_000,
        idle_timeout_ms: 180_000,
        hops: 1,
        seen_text: seen.into(),
        seen_raw: None,
        last_reply: Reply::con(last),
        app_version: Arc::from("v1"),
        app: None,
        journey: Vec::new(),
    }
}

fn tombstone(owner: &str) -> Tombstone {
    Tombstone {
        seen_text: "1".into(),
        reply: Reply::end("Bye"),
        expires_ms: NOW + 60_000,
        started_ms: NOW - 20_000,
        msisdn: Some(msisdn(owner)),
        route: Some(Arc::from(CODE)),
    }
}

fn hop(from: &str, dialled: &str, input: HopInput) -> Hop {
    Hop {
        key: Arc::from("k"),
        front: match input {
            HopInput::Cumulative(_) => Front::Http,
            HopInput::Single(_) => Front::Smpp,
        },
        msisdn: msisdn(from),
        dialled: dialled.into(),
        network: None,
        input,
        limit: Limit::default(),
        dialect: "test",
        seq: None,
    }
}

fn at(text: &str) -> HopInput {
    HopInput::Cumulative(text.into())
}

/// Plans `hop` with `dialogue` live (on its route unless `route_gone`) and `tomb` kept.
fn decide(hop: Hop, dialogue: Option<&Dialogue>, tomb: Option<Tombstone>) -> Plan {
    decide_with(hop, dialogue, tomb, false)
}

fn decide_with(
    hop: Hop,
    dialogue: Option<&Dialogue>,
    tomb: Option<Tombstone>,
    route_gone: bool,
) -> Plan {
    let routes = routes();
    let settings = settings();
    let route = route();
    let tombstone = if wants_tombstone(&hop, dialogue) {
        tomb
    } else {
        None
    };
    plan(
        hop,
        Known {
            dialogue,
            route: (!route_gone).then_some(&route),
            tombstone,
            routes: &routes,
            settings: &settings,
            now_ms: NOW,
        },
    )
}

fn answer(p: Plan) -> (Reply, bool, &'static str) {
    match p {
        Plan::Answer {
            reply,
            stop,
            outcome,
        } => (reply, stop, outcome),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn a_retry_of_the_last_hop_is_answered_from_the_stored_reply() {
    let d = live("1", "Enter PIN");
    let (reply, stop, outcome) = answer(decide(hop(SUBSCRIBER, CODE, at("1")), Some(&d), None));
    assert_eq!(reply, Reply::con("Enter PIN"));
    assert!(!stop, "the dialogue goes on");
    assert_eq!(outcome, "retry");
}

#[test]
fn a_hop_number_already_answered_is_a_retry_whatever_its_input() {
    let mut d = live("1", "Enter PIN");
    d.hops = 2;
    // An aggregator's Sequence: hop 2 again, and the dial (1) arriving late.
    for (seq, input) in [(2, HopInput::Single(Some("1".into()))), (1, at(""))] {
        let mut h = hop(SUBSCRIBER, "", input);
        h.seq = Some(seq);
        let (reply, stop, outcome) = answer(decide(h, Some(&d), None));
        assert_eq!(
            (reply, stop, outcome),
            (Reply::con("Enter PIN"), false, "retry")
        );
    }
    // Hop 3 is the next input.
    let mut h = hop(SUBSCRIBER, "", HopInput::Single(Some("1".into())));
    h.seq = Some(3);
    assert!(matches!(decide(h, Some(&d), None), Plan::Next { .. }));
}

#[test]
fn a_text_that_extends_the_dialogue_carries_its_next_input() {
    let d = live("1", "Menu");
    match decide(hop(SUBSCRIBER, CODE, at("1*2")), Some(&d), None) {
        Plan::Next {
            route, input, text, ..
        } => {
            assert_eq!(&*route.service_code, CODE);
            assert_eq!(input, "2");
            assert_eq!(text.text, "1*2");
            assert_eq!(text.inputs, InputsAt::Next(2));
            assert!(text.cumulative);
        }
        other => panic!("expected the next input, got {other:?}"),
    }
}

#[test]
fn an_smpp_input_is_added_to_the_text_kept() {
    let d = live("1", "Menu");
    match decide(
        hop(SUBSCRIBER, "", HopInput::Single(Some("3".into()))),
        Some(&d),
        None,
    ) {
        Plan::Next { input, text, .. } => {
            assert_eq!(input, "3");
            assert_eq!(text.text, "1*3");
            assert_eq!(text.inputs, InputsAt::Next(2));
            assert!(!text.cumulative);
        }
        other => panic!("expected the next input, got {other:?}"),
    }
}

#[test]
fn a_retry_of_an_ended_dialogue_is_answered_from_its_tombstone() {
    let (reply, stop, outcome) = answer(decide(
        hop(SUBSCRIBER, CODE, at("1")),
        None,
        Some(tombstone(SUBSCRIBER)),
    ));
    assert_eq!(reply, Reply::end("Bye"));
    assert!(stop);
    assert_eq!(outcome, "retry");
}

#[test]
fn another_subscribers_hop_is_refused_live_or_ended() {
    let d = live("1", "Menu");
    match decide(hop("254700000002", CODE, at("1*2")), Some(&d), None) {
        Plan::Refuse { owner, what, hop } => {
            assert_eq!(owner, msisdn(SUBSCRIBER));
            assert_eq!(what, "live");
            assert_eq!(hop.msisdn, msisdn("254700000002"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match decide(
        hop("254700000002", CODE, at("1")),
        None,
        Some(tombstone(SUBSCRIBER)),
    ) {
        Plan::Refuse { owner, what, .. } => {
            assert_eq!(owner, msisdn(SUBSCRIBER));
            assert_eq!(what, "ended");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_hop_for_another_service_is_refused_but_a_prefilled_dial_of_the_same_is_not() {
    let d = live("1", "Menu");
    assert!(matches!(
        decide(hop(SUBSCRIBER, "*999#", at("1*2")), Some(&d), None),
        Plan::Refuse { what: "live", .. }
    ));
    assert!(matches!(
        decide(hop(SUBSCRIBER, "*384*303*1#", at("1*2")), Some(&d), None),
        Plan::Next { .. }
    ));
}

#[test]
fn a_start_under_a_live_key_ends_the_old_dialogue_and_starts_anew() {
    let d = live("1", "Menu");
    match decide(
        hop(SUBSCRIBER, CODE, HopInput::Single(None)),
        Some(&d),
        Some(tombstone("254700000002")),
    ) {
        Plan::New {
            abort_live,
            inputs,
            text,
            dialogue,
            ..
        } => {
            assert!(abort_live);
            assert!(inputs.is_empty());
            assert_eq!(text.text, "");
            assert!(!text.cumulative);
            assert_eq!(dialogue.hops, 0);
            assert_eq!(dialogue.started_ms, NOW);
        }
        other => panic!("expected a new dialogue, got {other:?}"),
    }
}

#[test]
fn an_smpp_input_for_an_unknown_dialogue_is_told_it_timed_out() {
    let input = || hop(SUBSCRIBER, "", HopInput::Single(Some("1".into())));
    let (reply, stop, outcome) = answer(decide(input(), None, None));
    assert_eq!(reply, Reply::end("Timed out"));
    assert!(stop);
    assert_eq!(outcome, "expired");
    let (reply, _, outcome) = answer(decide(input(), None, Some(tombstone(SUBSCRIBER))));
    assert_eq!(reply, Reply::end("Bye"));
    assert_eq!(outcome, "expired");
}

#[test]
fn an_unrouted_code_is_an_unknown_service() {
    match decide(hop(SUBSCRIBER, "*999#", at("")), None, None) {
        Plan::UnknownService {
            dialled,
            msisdn: m,
            abort_live,
        } => {
            assert_eq!(dialled, "*999#");
            assert_eq!(m, msisdn(SUBSCRIBER));
            assert!(!abort_live);
        }
        other => panic!("expected an unknown service, got {other:?}"),
    }
}

#[test]
fn a_first_hop_starts_a_dialogue_with_the_inputs_typed_ahead() {
    match decide(hop(SUBSCRIBER, "*384*303*1#", at("2")), None, None) {
        Plan::New {
            route,
            dialogue,
            inputs,
            text,
            abort_live,
            ..
        } => {
            assert_eq!(inputs, ["1", "2"]);
            assert_eq!(text.inputs, InputsAt::Start { dialled: 1 });
            assert!(text.cumulative);
            assert!(!abort_live);
            assert_eq!(&*dialogue.dialled, "*384*303*1#");
            assert_eq!(&*dialogue.route, CODE);
            assert_eq!(dialogue.msisdn, msisdn(SUBSCRIBER));
            assert_eq!(dialogue.idle_timeout_ms, 180_000);
            assert_eq!(&*dialogue.app_version, "v1");
            assert_eq!(&*route.service_code, CODE);
        }
        other => panic!("expected a new dialogue, got {other:?}"),
    }
    // Dialled as configured, the dialogue shares the route's code.
    match decide(hop(SUBSCRIBER, CODE, at("")), None, None) {
        Plan::New {
            route,
            dialogue,
            inputs,
            ..
        } => {
            assert!(inputs.is_empty());
            assert!(Arc::ptr_eq(&dialogue.dialled, &route.service_code));
        }
        other => panic!("expected a new dialogue, got {other:?}"),
    }
}

#[test]
fn a_dialogue_idle_past_its_timeout_expires() {
    let mut d = live("1", "Menu");
    d.last_hop_ms = NOW - d.idle_timeout_ms;
    assert!(matches!(
        decide(hop(SUBSCRIBER, CODE, at("1*2")), Some(&d), None),
        Plan::Expire
    ));
}

#[test]
fn a_dialogue_whose_route_is_gone_ends() {
    let d = live("1", "Menu");
    assert!(matches!(
        decide_with(hop(SUBSCRIBER, CODE, at("1*2")), Some(&d), None, true),
        Plan::RouteGone
    ));
}

#[test]
fn the_tombstone_is_wanted_only_without_a_live_dialogue_and_for_no_start() {
    let d = live("1", "Menu");
    assert!(wants_tombstone(&hop(SUBSCRIBER, CODE, at("1")), None));
    assert!(wants_tombstone(
        &hop(SUBSCRIBER, "", HopInput::Single(Some("1".into()))),
        None
    ));
    assert!(!wants_tombstone(
        &hop(SUBSCRIBER, CODE, HopInput::Single(None)),
        None
    ));
    assert!(!wants_tombstone(&hop(SUBSCRIBER, CODE, at("1")), Some(&d)));
}
