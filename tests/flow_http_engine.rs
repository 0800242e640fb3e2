//! The `http` screen and resume in the pure engine: requests rendered from the dialogue,
//! answers turned into branches, dynamic menus from JSON, the resume question, and the load
//! diagnostics of both. No sockets, no store.

use serde_json::json;
use ussd_gateway::flow::{
    Ctx, Effect, EffectOutcome, Flow, FlowState, HttpOutcome, HttpRequest, Step, input, restore,
    resume, secret_placeholder, start,
};
use ussd_gateway::text::Limit;

const BUNDLES: &str = include_str!("fixtures/backend/bundles.yaml");

fn ctx() -> Ctx<'static> {
    Ctx {
        phone: "675700000001",
        service_code: "*675#",
        network: None,
        session_id: "s1",
        limit: Limit::default(),
        now: "2026-01-01T00:00:00Z".parse().unwrap(),
    }
}

fn flow() -> Flow {
    Flow::from_yaml("bundles", "bundles.yaml", BUNDLES).unwrap()
}

fn ok(body: serde_json::Value) -> EffectOutcome {
    EffectOutcome::Http(HttpOutcome::Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string(),
        cached: false,
    })
}

fn status(code: u16, body: &str) -> EffectOutcome {
    EffectOutcome::Http(HttpOutcome::Response {
        status: code,
        headers: vec![],
        body: body.into(),
        cached: false,
    })
}

fn request(step: Step) -> (FlowState, HttpRequest) {
    match step {
        Step::Effect {
            state,
            effect: Effect::Http(r),
        } => (state, r),
        other => panic!("expected an http effect, got {other:?}"),
    }
}

fn reply(step: Step) -> (FlowState, String, bool) {
    match step {
        Step::Reply { state, reply } => (state, reply.text, reply.end),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn catalog() -> serde_json::Value {
    json!({ "bundles": [
        { "code": "D1", "name": "Daily 100MB", "price_cents": 100 },
        { "code": "W1", "name": "Weekly 1GB", "price_cents": 500 },
        { "code": "M1", "name": "Monthly 5GB", "price_cents": 2000 },
    ]})
}

/// Runs the flow to the bundle menu for a subscriber with `balance_cents`.
fn to_menu(flow: &Flow, balance_cents: i64) -> (FlowState, String, bool) {
    let ctx = ctx();
    let (state, balance) = request(start(flow, &ctx));
    assert_eq!(balance.method, http::Method::GET);
    assert_eq!(
        balance.url,
        "http://backend.invalid/subscribers/675700000001/balance"
    );
    let balance_cents = json!({ "balance_cents": balance_cents });
    let (state, catalog_req) = request(resume(flow, state, ok(balance_cents), &ctx));
    assert_eq!(catalog_req.cache_ttl_secs, Some(300));
    reply(resume(flow, state, ok(catalog()), &ctx))
}

#[test]
fn requests_carry_secrets_only_as_placeholders() {
    let flow = flow();
    let (state, req) = request(start(&flow, &ctx()));
    let auth = format!("Bearer {}", secret_placeholder("BUNDLES_TOKEN"));
    assert!(req.headers.contains(&("Authorization".into(), auth)));
    assert!(
        req.headers
            .contains(&("accept".into(), "application/json".into()))
    );
    assert_eq!((req.retries, req.body.as_deref()), (2, None));
    // Nothing secret (not even the placeholder) is in the dialogue's state.
    let saved = serde_json::to_string(&state).unwrap();
    assert!(!saved.contains("secret"), "{saved}");
}

#[test]
fn the_menu_offers_what_the_balance_affords() {
    let flow = flow();
    let (_, text, end) = to_menu(&flow, 600);
    assert!(!end);
    assert_eq!(
        text,
        "Balance K 6.00. Choose a bundle:\n1. Daily 100MB K 1.00\n2. Weekly 1GB K 5.00\n3. Exit"
    );
    let (_, text, _) = to_menu(&flow, 2500);
    assert!(text.contains("3. Monthly 5GB K 20.00\n4. Exit"), "{text}");
    let (_, text, end) = to_menu(&flow, 50);
    assert!(end);
    assert_eq!(
        text,
        "Your balance is too low for any bundle. Top up and try again."
    );
}

#[test]
fn buying_posts_json_and_branches_on_the_answer() {
    let flow = flow();
    let ctx = ctx();
    let (state, _, _) = to_menu(&flow, 600);
    let (state, text, _) = reply(input(&flow, state, "2", &ctx));
    assert_eq!(text, "Buy Weekly 1GB for K 5.00?\n1. Confirm\n2. Cancel");
    let (at_buy, req) = request(input(&flow, state, "1", &ctx));
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(req.url, "http://backend.invalid/purchases");
    assert_eq!(req.retries, 0);
    let body: serde_json::Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({ "msisdn": "675700000001", "bundle": "W1", "price_cents": 500 })
    );
    assert!(
        req.headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    let cases = [
        (
            ok(json!({ "reference": "R-9" })),
            "You bought Weekly 1GB. Ref R-9.",
        ),
        (status(402, "{}"), "Your balance is too low now."),
        (
            status(500, "oops"),
            "The purchase failed. You were not charged.",
        ),
        (
            status(200, "<html>"),
            "The purchase failed. You were not charged.",
        ),
        (
            EffectOutcome::Http(HttpOutcome::Failed("connection reset".into())),
            "The purchase failed. You were not charged.",
        ),
        (
            EffectOutcome::Http(HttpOutcome::Timeout),
            "We could not confirm your purchase. You will get an SMS if it went through.",
        ),
    ];
    for (outcome, expected) in cases {
        let (state, text, end) = reply(resume(&flow, at_buy.clone(), outcome, &ctx));
        assert_eq!((text.as_str(), end), (expected, true));
        let purchase = &state.vars()["purchase"];
        assert!(purchase["ok"].is_boolean(), "{purchase}");
    }
}

#[test]
fn failures_are_stored_for_the_flow_to_read() {
    let flow = flow();
    let ctx = ctx();
    let (state, _) = request(start(&flow, &ctx));
    let (state, text, _) = reply(resume(&flow, state, status(200, "not json"), &ctx));
    assert_eq!(
        text,
        "Bundles are unavailable right now. Please try again later."
    );
    assert_eq!(
        state.vars()["account"],
        json!({ "ok": false, "status": 200, "error": "malformed", "text": "not json", "headers": {}, "cached": false })
    );
    let (state, _) = request(start(&flow, &ctx));
    let (state, text, _) = reply(resume(
        &flow,
        state,
        EffectOutcome::Http(HttpOutcome::Timeout),
        &ctx,
    ));
    assert_eq!(text, "The service is busy. Please try again in a minute.");
    assert_eq!(state.vars()["account"]["error"], "timeout");
}

/// The state of a dialogue cut on the confirmation screen (which is `resumable: false`).
fn cut_on_confirm(flow: &Flow) -> FlowState {
    let (state, _, _) = to_menu(flow, 600);
    reply(input(flow, state, "1", &ctx())).0
}

#[test]
fn a_cut_dialogue_is_offered_back_at_its_last_resumable_screen() {
    let flow = flow();
    let ctx = ctx();
    let saved = cut_on_confirm(&flow);
    assert_eq!(saved.screen(), "confirm");
    let (mut offer, text, end) = reply(restore(&flow, saved.clone(), &ctx).unwrap());
    assert_eq!(
        (text.as_str(), end),
        (
            "Your last session was interrupted.\n1. Continue\n2. Start again",
            false
        )
    );
    assert!(offer.is_resume_offer());
    assert_eq!(offer.take_resume_event(), Some("offered"));
    let (_, text, _) = reply(input(&flow, offer.clone(), "7", &ctx));
    assert!(text.starts_with("Invalid choice. Please try again:\nYour last session"));
    // Continue: the confirmation is stale, so the bundle menu is shown again.
    let (mut state, text, _) = reply(input(&flow, offer.clone(), "1", &ctx));
    assert!(
        text.starts_with("Balance K 6.00. Choose a bundle:"),
        "{text}"
    );
    assert_eq!(state.take_resume_event(), Some("continued"));
    // Start again: a fresh dialogue, which first asks the backend for the balance.
    let (mut state, req) = request(input(&flow, offer, "2", &ctx));
    assert!(req.url.ends_with("/balance"));
    assert_eq!(state.take_resume_event(), Some("restarted"));
    assert!(state.vars().is_empty());
}

#[test]
fn flows_that_did_not_opt_in_never_resume() {
    let plain = BUNDLES.replace("resume: { window_secs: 120, ask: true }\n", "");
    let plain = Flow::from_yaml("plain", "plain.yaml", &plain).unwrap();
    assert_eq!(plain.resume_window(), None);
    let saved = cut_on_confirm(&plain);
    assert!(restore(&plain, saved, &ctx()).is_none());
}

#[test]
fn a_silent_resume_shows_the_screen_at_once() {
    let silent = BUNDLES.replace("ask: true", "ask: false");
    let flow = Flow::from_yaml("silent", "silent.yaml", &silent).unwrap();
    let (state, _, _) = to_menu(&flow, 600);
    let (mut state, text, _) = reply(restore(&flow, state, &ctx()).unwrap());
    assert!(text.starts_with("Balance K 6.00."), "{text}");
    assert_eq!(state.take_resume_event(), Some("silent"));
}

const INVALID: &str = r#"
start: a
secrets: [TOKEN, "bad-name"]
resume: { window_secs: 0, prompt: "This question is far too long to share one screen with its two choices, because it goes on and on about the session that was interrupted and what may happen next to it" }
screens:
  a:
    type: http
    method: FETCH
    url: "ftp://example.com/x"
    into: r
    next: b
    failed: b
  b:
    type: http
    method: POST
    url: "{{ base }}/y"
    headers: { "Bad Header": "x", Authorization: "{{ secrets.OTHER }}" }
    json: { a: 1 }
    body: "x"
    retries: 2
    cache_ttl_secs: 10
    into: r
    next: c
    failed: c
    timeout: nowhere
  c:
    type: http
    url: "{{ base }}/z"
    json: { a: 1 }
    retries: 9
    into: r
    next: d
    failed: d
  d: { type: end, text: bye, resumable: false }
  e: { type: set, values: {}, next: d, resumable: false }
"#;

#[test]
fn golden_diagnostics() {
    let errors = Flow::from_yaml("bad", "bad.yaml", INVALID).unwrap_err();
    let got: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
    let expected = [
        "error: bad.yaml: secrets[1]: `bad-name` is not a valid environment variable name",
        "error: bad.yaml: screens.a.method: unknown method `FETCH` (expected GET, POST, PUT, PATCH, DELETE or HEAD)",
        "error: bad.yaml: screens.a.url: must be an http:// or https:// URL",
        "error: bad.yaml: screens.b.headers.Authorization: secret `OTHER` is not declared in `secrets`",
        "error: bad.yaml: screens.b.headers.Bad Header: invalid header name `Bad Header`",
        "error: bad.yaml: screens.b: at most one of `json`, `form` and `body`",
        "error: bad.yaml: screens.b.retries: retries are only for idempotent methods (GET, PUT, DELETE, HEAD), not POST",
        "error: bad.yaml: screens.b.cache_ttl_secs: only GET answers are cached, not POST",
        "error: bad.yaml: screens.b.timeout: unknown target screen `nowhere`",
        "error: bad.yaml: screens.c: a GET request has no body",
        "error: bad.yaml: screens.c.retries: at most 5 retries",
        "error: bad.yaml: screens.e.resumable: only screens that are shown (menu, input, end) can be resumed",
        "error: bad.yaml: resume.window_secs: must be at least 1",
        "error: bad.yaml: resume.prompt: the question and its two choices do not fit one screen",
        "error: bad.yaml: screens.e: unreachable from `start` or `home`",
    ];
    assert_eq!(got, expected, "{got:#?}");
}
