//! `sensitive: true` in the pure engine: checked like every field, which inputs the engine
//! reports as sensitive, resume points without them, and failures logged with them masked.
//! No sockets (the HTTP and SMPP end of it is `sensitive_http.rs`).

use std::sync::{Arc, Mutex};
use ussd_gateway::flow::*;
use ussd_gateway::hop::Reply;
use ussd_gateway::text::Limit;

const PIN: &str = "73914628";

fn ctx() -> Ctx<'static> {
    Ctx {
        phone: "254700000001",
        service_code: "*384*9#",
        network: None,
        session_id: "ATUid_1",
        limit: Limit::default(),
        now: "2024-03-15T09:30:00Z".parse().unwrap(),
    }
}

const FLOW: &str = r#"
start: home
resume: { window_secs: 120 }
screens:
  home:
    type: menu
    text: Wallet
    options:
      - { label: Send money, next: amount }
      - { label: Expr, next: expr_pin }
      - { label: Set, next: set_pin }
      - { label: Http, next: http_pin }
  amount: { type: input, text: "Enter amount:", into: amount, next: pin }
  pin:
    type: input
    sensitive: true
    text: "Enter PIN:"
    into: pin
    next: verify
    validators: [ { length: { min: 4, max: 8 }, error: PIN must be 4 to 8 digits. } ]
  verify:
    type: http
    method: POST
    sensitive: true
    url: "https://bank.example.com/verify"
    json: { pin: "{{ pin }}" }
    into: verified
    next: confirm
    failed: wrong
  confirm: { type: menu, text: "Send {{ amount }}?", options: [ { label: Confirm, next: done } ] }
  done: { type: end, text: "Sent {{ amount }}." }
  wrong: { type: end, text: Wrong PIN. }
  expr_pin:
    type: input
    sensitive: true
    text: "PIN:"
    into: pin
    next: done
    validators: [ { expr: "((input ~ '.123') | to_cents) > 0", error: Never. } ]
  set_pin: { type: input, sensitive: true, text: "PIN:", into: pin, next: broken }
  broken: { type: set, values: { cents: "{{ (pin ~ '.123') | to_cents }}" }, next: done }
  http_pin: { type: input, sensitive: true, text: "PIN:", into: pin, next: bad_http }
  bad_http:
    type: http
    method: POST
    sensitive: true
    url: "https://bank.example.com/verify"
    json: { cents: "{{ (pin ~ '.123') | to_cents }}" }
    into: r
    next: done
    failed: done
"#;

fn flow(src: &str) -> Flow {
    Flow::from_yaml("pin", "pin.yaml", src).unwrap_or_else(|d| panic!("{d:#?}"))
}

fn errors(src: &str) -> Vec<String> {
    match Flow::from_yaml("pin", "pin.yaml", src) {
        Ok(_) => panic!("should not load"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

/// Runs a step to its reply, answering a backend call with 200 `{"ok": true}` after checking
/// that the request carries the PIN (the flow still has it where it needs it).
fn reply(f: &Flow, mut step: Step) -> (FlowState, Reply) {
    loop {
        match step {
            Step::Reply { state, reply } => return (state, reply),
            Step::Effect { state, effect } => {
                let Effect::Http(req) = effect else {
                    panic!("unexpected effect {effect:?}")
                };
                assert!(req.body.unwrap_or_default().contains(PIN));
                let outcome = EffectOutcome::Http(HttpOutcome::Response {
                    status: 200,
                    headers: vec![],
                    body: r#"{"ok": true}"#.into(),
                    cached: false,
                });
                step = resume(f, state, outcome, &ctx());
            }
        }
    }
}

/// Feeds `inputs` in turn from the first screen; returns the state, the last reply, and for
/// each input whether the engine called it sensitive before it was handed in.
fn walk(f: &Flow, inputs: &[&str]) -> (FlowState, Reply, Vec<bool>) {
    let (mut state, mut last) = reply(f, start(f, &ctx()));
    let mut sensitive = Vec::new();
    for i in inputs {
        sensitive.push(sensitive_input(f, &state));
        (state, last) = reply(f, input(f, state, i, &ctx()));
    }
    (state, last, sensitive)
}

#[test]
fn sensitive_is_checked_like_every_field() {
    let flow_with = |pin: &str, verify: &str| {
        format!(
            "start: pin\nscreens:\n  pin: {{ type: input, text: PIN, into: pin, next: verify{pin} }}\n  verify: {{ type: http, method: POST, url: \"https://x.example/v\", into: r, next: done, failed: done{verify} }}\n  done: {{ type: end, text: Done. }}\n"
        )
    };
    assert!(Flow::from_yaml("ok", "ok.yaml", &flow_with(", sensitive: true", "")).is_ok());
    assert_eq!(
        errors(&flow_with(", sensitive: \"yes\"", "")),
        [
            "error: pin.yaml: screens.pin.sensitive: invalid type: string \"yes\", expected a boolean"
        ]
    );
    // On a menu it means nothing: an unknown field, as any other.
    let menu = "start: m\nscreens:\n  m: { type: menu, text: M, sensitive: true, options: [ { label: A, next: e } ] }\n  e: { type: end, text: E }\n";
    assert!(errors(menu)[0].starts_with("error: pin.yaml: screens.m.sensitive: unknown field"));
    // A sensitive request is never cached.
    let cached = "start: h\nscreens:\n  h: { type: http, url: \"https://x.example/v\", sensitive: true, cache_ttl_secs: 60, into: r, next: e, failed: e }\n  e: { type: end, text: E }\n";
    assert_eq!(
        errors(cached),
        ["error: pin.yaml: screens.h.cache_ttl_secs: a sensitive request is never cached"]
    );
    // An http screen that sends a sensitive input's variable must say it is sensitive, in
    // the body, the URL or a header alike.
    let sends = |part: &str| {
        errors(&flow_with(", sensitive: true", part))
            == [
                "error: pin.yaml: screens.verify.sensitive: sends `pin`, typed on a sensitive input screen: mark this screen `sensitive: true`",
            ]
    };
    assert!(sends(", json: { pin: \"{{ pin }}\" }"));
    assert!(sends(", form: { p: \"PIN {{ pin }}\" }"));
    assert!(sends(", body: \"{{ pin | trim }}\""));
    assert!(sends(", headers: { X-Pin: \"{{ pin }}\" }"));
    let ok = flow_with(
        ", sensitive: true",
        ", sensitive: true, json: { pin: \"{{ pin }}\" }",
    );
    assert!(Flow::from_yaml("ok", "ok.yaml", &ok).is_ok());
    // Without a sensitive input, nothing is required of http screens.
    assert!(
        Flow::from_yaml(
            "ok",
            "ok.yaml",
            &flow_with("", ", json: { pin: \"{{ pin }}\" }")
        )
        .is_ok()
    );
}

#[test]
fn the_engine_says_which_inputs_are_sensitive() {
    let f = flow(FLOW);
    // The menu, the amount, a PIN too short, the PIN, the confirmation.
    let (state, last, sensitive) = walk(&f, &["1", "4862", "12", PIN, "1"]);
    assert_eq!(sensitive, [false, false, true, true, false]);
    assert_eq!(last, Reply::end("Sent 4862."));
    // The PIN stays in its variable for the screens after it (the request carried it).
    assert_eq!(state.vars()["pin"], PIN);
    let (state, last, _) = walk(&f, &["1", "4862", "12"]);
    assert_eq!(last, Reply::con("PIN must be 4 to 8 digits.\nEnter PIN:"));
    assert!(sensitive_input(&f, &state), "still on the PIN screen");
    // A flow without a sensitive screen never has one.
    let plain = flow(&FLOW.replace("sensitive: true", "sensitive: false"));
    let (_, _, sensitive) = walk(&plain, &["1", "4862", PIN]);
    assert_eq!(sensitive, [false, false, false]);
}

#[test]
fn a_resume_point_never_holds_a_pin() {
    let f = flow(FLOW);
    // Before the PIN, the point is the state itself.
    let (at_pin, _, _) = walk(&f, &["1", "4862"]);
    assert!(matches!(
        resume_point(&f, &at_pin),
        Some(std::borrow::Cow::Borrowed(_))
    ));
    // Cut on the confirmation, after the PIN: the point goes back to the PIN screen, without
    // the PIN, and a resumed dialogue asks for it again.
    let (confirm, last, _) = walk(&f, &["1", "4862", PIN]);
    assert_eq!(last, Reply::con("Send 4862?\n1. Confirm"));
    let point = resume_point(&f, &confirm).unwrap().into_owned();
    assert_eq!(point.screen(), "pin");
    assert!(point.is_resume_point());
    assert!(!point.vars().contains_key("pin"));
    assert_eq!(point.vars()["amount"], "4862");
    assert!(!serde_json::to_string(&point).unwrap().contains(PIN));
    let (offer, question) = reply(&f, restore(&f, point, &ctx()).unwrap());
    assert_eq!(
        question,
        Reply::con("Your last session was interrupted.\n1. Continue\n2. Start again")
    );
    let (_, shown) = reply(&f, input(&f, offer, "1", &ctx()));
    assert_eq!(shown, Reply::con("Enter PIN:"));
    // The PIN held, and no screen in the history to ask for it again: no point.
    let (home, _, _) = walk(&f, &["1", "4862", PIN, "00", "1"]);
    assert_eq!(home.screen(), "amount");
    assert_eq!(home.vars()["pin"], PIN);
    assert!(resume_point(&f, &home).is_none());
}

/// Collects what the engine logs.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

#[test]
fn failures_are_logged_with_the_pin_masked() {
    let f = flow(FLOW);
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let apology = Reply::end("Sorry, something went wrong. Please try again later.");
    tracing::subscriber::with_default(subscriber, || {
        // A validator's expression fails on the PIN typed: the validator counts as failed (its
        // error is shown) and the failure is logged. A later screen's template fails on the PIN
        // stored, and a sensitive request fails to render: the apology.
        let (_, last, sensitive) = walk(&f, &["2", PIN]);
        assert_eq!(sensitive, [false, true]);
        assert_eq!(last, Reply::con("Never.\nPIN:"));
        for choice in ["3", "4"] {
            let (_, last, sensitive) = walk(&f, &[choice, PIN]);
            assert_eq!(sensitive, [false, true]);
            assert_eq!(last, apology, "{choice}");
        }
    });
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.matches("flow failed").count(), 2, "{log}");
    assert_eq!(
        log.matches("a validator could not be evaluated").count(),
        1,
        "{log}"
    );
    // What the failures quoted is there, the PIN masked.
    assert_eq!(log.matches("xxxx.123").count(), 2, "{log}");
    assert!(
        log.contains("screen=expr_pin") && log.contains("screen=broken"),
        "{log}"
    );
    // A sensitive request's failure says where and what kind, nothing more.
    assert!(
        log.contains("json.cents: invalid operation (details withheld: the request is sensitive)"),
        "{log}"
    );
    assert!(!log.contains(PIN), "{log}");
}

#[test]
fn a_flow_drops_the_pin_once_used() {
    // As docs/flows.md advises: a `set` screen after the check.
    let f = flow(&FLOW.replace(
        "next: confirm\n    failed: wrong",
        "next: forget\n    failed: wrong\n  forget: { type: set, values: { pin: null }, next: confirm }",
    ));
    let (state, last, _) = walk(&f, &["1", "4862", PIN]);
    assert_eq!(last, Reply::con("Send 4862?\n1. Confirm"));
    assert!(!serde_json::to_string(&state).unwrap().contains(PIN));
}
