//! Adapter mode: an existing Africa's Talking-style app behind the gateway, and AT's
//! end-of-session events both ways.

mod common;

use common::{At, FakeHttp, FlaskApp, Sandbox, Seen, eventually};
use std::time::Duration;
use ussd_gateway::text::{Limit, Nav, fits};

/// Every path of the founding student app, by cumulative text.
const PATHS: [&str; 12] = [
    "", "1", "1*1", "1*2", "2", "3", "4", "5", "6", "7", "1*3", "00",
];

/// The `text` field of a request the fake app got.
fn text_of(seen: &Seen) -> String {
    seen.form
        .iter()
        .find(|(k, _)| k == "text")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn route(url: &str, extra: &str) -> String {
    format!("[[routes]]\nservice_code = \"*123#\"\nupstream = \"{url}\"\n{extra}")
}

/// The founding app's stand-in, unchanged, answers through the gateway's HTTP front: every screen
/// that fits comes through byte for byte; longer ones are paginated by the gateway, which
/// never forwards its own More/Back keys to the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_founding_app_runs_unchanged_behind_the_gateway() {
    let flask = FlaskApp::spawn();
    let direct = At::new(flask.addr);
    let sb = Sandbox::new(&route(&format!("http://{}/ussd", flask.addr), ""), &[]);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    for (i, path) in PATHS.iter().enumerate() {
        for phone in ["+254700000001", "+254700000002", "+254700000099"] {
            let expected = direct.hop("direct", "*123#", phone, path).await;
            let session = format!("u{i}-{phone}");
            // Walk the path one input at a time, as a subscriber would.
            let mut got = at.hop(&session, "*123#", phone, "").await;
            let mut text = String::new();
            if !path.is_empty() {
                for input in path.split('*') {
                    if !text.is_empty() {
                        text.push('*');
                    }
                    text.push_str(input);
                    got = at.hop(&session, "*123#", phone, &text).await;
                }
            }
            if fits(&expected[4..], Limit::default()) {
                assert_eq!(got, expected, "{phone} {path:?}");
                continue;
            }
            // A long answer: read every page with 98 and compare the whole text.
            let nav = Nav::default();
            let mut pages = vec![got];
            while pages.last().unwrap().starts_with("CON ") {
                text.push_str("*98");
                pages.push(at.hop(&session, "*123#", phone, &text).await);
            }
            assert_eq!(&pages.last().unwrap()[..4], &expected[..4], "{path}");
            let joined: Vec<String> = pages
                .iter()
                .flat_map(|p| p[4..].lines().map(str::to_string).collect::<Vec<_>>())
                .filter(|l| *l != nav.next_line() && *l != nav.back_line())
                .collect();
            let expected_lines: Vec<&str> =
                expected[4..].lines().filter(|l| !l.is_empty()).collect();
            let joined: Vec<&str> = joined
                .iter()
                .map(String::as_str)
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(joined, expected_lines, "{phone} {path:?}");
        }
    }
    gw.shutdown().await;
}

/// What the app is sent: the AT form, with a stable sessionId, + international phone number,
/// networkCode from the front (or the route) and `text` of the app's own inputs only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_gets_the_at_form() {
    let app = FakeHttp::start(|seen| async move {
        let text = text_of(&seen);
        let long: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        match text.as_str() {
            "" => (200, "CON Hello\n1. Long".to_string()),
            "1" => (200, format!("CON {long}Pick 2")),
            _ => (200, format!("END got {text}")),
        }
    })
    .await;
    let sb = Sandbox::new(
        &route(
            &format!("http://{}/cb", app.addr),
            "network_code = \"99999\"\n",
        ),
        &[],
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let form = |sid: &str, text: &str| {
        vec![
            ("sessionId", sid.to_string()),
            ("serviceCode", "*123#".to_string()),
            ("phoneNumber", "0700000005".to_string()),
            ("text", text.to_string()),
        ]
    };
    let send = |sid: &'static str, text: &'static str| {
        let at = at.clone();
        async move {
            let fields = form(sid, text);
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            at.form(&fields).await.body
        }
    };
    assert_eq!(send("ATUid_1", "").await, "CON Hello\n1. Long");
    let page1 = send("ATUid_1", "1").await;
    assert!(page1.ends_with("98. More"), "{page1}");
    let page2 = send("ATUid_1", "1*98").await;
    assert!(page2.contains("0. Back"), "{page2}");
    // The app's next input goes through; the gateway's 98 never did.
    assert_eq!(send("ATUid_1", "1*98*2").await, "END got 1*2");
    let seen = app.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let first: std::collections::HashMap<_, _> = seen[0].form.iter().cloned().collect();
    assert_eq!(first["sessionId"], "ATUid_1");
    assert_eq!(first["serviceCode"], "*123#");
    assert_eq!(first["phoneNumber"], "+254700000005");
    assert_eq!(first["networkCode"], "99999");
    assert_eq!(first["text"], "");
    gw.shutdown().await;
}

/// A hang past the deadline, a non-200 answer and a body without CON/END end the dialogue with
/// the route's apology; a saturated upstream fails fast; after consecutive failures the circuit
/// opens and the upstream is not called until a probe after the cool-down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_upstreams() {
    let app = FakeHttp::start(|seen| async move {
        match seen.path.as_str() {
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                (200, "CON never".into())
            }
            "/500" => (500, "oops".into()),
            "/garbage" => (200, "Welcome!".into()),
            "/slow" => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                (200, "CON slow".into())
            }
            _ => (200, "END fine".into()),
        }
    })
    .await;
    let base = format!("http://{}", app.addr);
    let routes = format!(
        "[[routes]]\nservice_code = \"*1#\"\nupstream = \"{base}/hang\"\ndeadline_ms = 300\napology = \"Sorry, try later.\"\n\
         [[routes]]\nservice_code = \"*2#\"\nupstream = \"{base}/500\"\nbreaker_failures = 3\nbreaker_cooldown_ms = 60000\n\
         [[routes]]\nservice_code = \"*3#\"\nupstream = \"{base}/garbage\"\n\
         [[routes]]\nservice_code = \"*4#\"\nupstream = \"{base}/slow\"\nupstream_concurrency = 1\n"
    );
    let sb = Sandbox::new(&routes, &[]);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let apology = "END Sorry, the service is unavailable right now. Please try again later.";
    assert_eq!(
        at.hop("h", "*1#", "+254700000001", "").await,
        "END Sorry, try later."
    );
    assert_eq!(at.hop("g", "*3#", "+254700000001", "").await, apology);
    // Three failures open the circuit: the fourth and fifth hops never reach the app.
    for i in 0..5 {
        assert_eq!(
            at.hop(&format!("e{i}"), "*2#", "+254700000001", "").await,
            apology
        );
    }
    let calls_500 = app
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path == "/500")
        .count();
    assert_eq!(calls_500, 3);
    // One call in flight at most: a second concurrent dialogue fails fast.
    let (a, b) = tokio::join!(
        at.hop("s1", "*4#", "+254700000001", ""),
        at.hop("s2", "*4#", "+254700000002", "")
    );
    let mut answers = [a, b];
    answers.sort();
    assert_eq!(answers, ["CON slow".to_string(), apology.to_string()]);
    // Each failure is counted by reason.
    let metrics = At::new(gw.admin_addr)
        .request("GET", "/metrics", &[], "")
        .await
        .body;
    for outcome in [
        "timeout",
        "bad_status",
        "malformed",
        "circuit_open",
        "saturated",
    ] {
        assert!(
            metrics.contains(&format!("outcome=\"{outcome}\"")),
            "{outcome} not counted"
        );
    }
    let ended = common::end_records(&gw).await;
    assert!(ended.iter().all(|r| r["reason"] == "error"));
    assert!(
        ended
            .iter()
            .any(|r| r["error"].as_str().unwrap().contains("timeout"))
    );
    gw.shutdown().await;
}

/// AT's end-of-session notification ends a live dialogue at once and is kept with the end
/// record; a notification after END is attached to the record too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_events_end_dialogues_and_are_recorded() {
    let sb = Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("ev1", "*123#", "+254700000001", "").await;
    assert_eq!(gw.registry().live(), 1);
    let event = |sid: &str, status: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("date", "2026-11-23 10:00:00")
            .append_pair("sessionId", sid)
            .append_pair("serviceCode", "*123#")
            .append_pair("networkCode", "63902")
            .append_pair("phoneNumber", "+254700000001")
            .append_pair("status", status)
            .append_pair("cost", "KES 0.10")
            .append_pair("durationInMillis", "9000")
            .append_pair("hopsCount", "1")
            .append_pair("input", "")
            .append_pair("lastAppResponse", "CON Welcome")
            .append_pair(
                "errorMessage",
                if status == "Failed" { "timeout" } else { "" },
            )
            .finish()
    };
    let post = |body: String| {
        let at = at.clone();
        async move {
            at.request(
                "POST",
                "/ussd/events",
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await
        }
    };
    let a = post(event("ev1", "Incomplete")).await;
    assert_eq!((a.status, a.body.as_str()), (200, "OK"));
    // Ended at once: its live state is gone and its end record written before the 200.
    assert_eq!(common::live_count(&gw).await, 0, "ended at once");
    assert_eq!(common::end_records(&gw).await.len(), 1);
    // A dialogue that ended by END gets AT's report attached.
    at.hop("ev2", "*123#", "+254700000001", "").await;
    at.hop("ev2", "*123#", "+254700000001", "6").await;
    assert_eq!(post(event("ev2", "Failed")).await.status, 200);
    let records = common::end_records(&gw).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["reason"], "abort");
    assert_eq!(records[0]["aggregator"]["status"], "Incomplete");
    assert_eq!(records[0]["aggregator"]["cost"], "KES 0.10");
    assert_eq!(records[1]["reason"], "end");
    assert_eq!(records[1]["aggregator"]["status"], "Failed");
    assert_eq!(records[1]["aggregator"]["error_message"], "timeout");
    // Malformed notifications are refused.
    assert_eq!(post("status=Success".into()).await.status, 400);
    assert_eq!(post(event("x", "Maybe")).await.status, 400);
    gw.shutdown().await;
}

/// Every ended dialogue is reported to the configured events URL in AT's format, through the
/// outbox: retried until the receiver answers 200, delivered after a restart, never twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_dialogues_are_reported_until_the_receiver_answers_200() {
    let flaky_calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = flaky_calls.clone();
    let flaky = FakeHttp::start(move |_| {
        let calls = calls.clone();
        async move {
            // Down for the first two attempts.
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                (503, "down".into())
            } else {
                (200, "OK".into())
            }
        }
    })
    .await;
    let config = |url: String| {
        format!(
            "[events]\nurl = \"{url}\"\n[africastalking.retry]\ninitial_backoff_ms = 50\nmax_backoff_ms = 200\n[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n"
        )
    };
    let sb = Sandbox::with_repo_flows(&config(format!("http://{}/events", flaky.addr)));
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("out1", "*123#", "+254700000001", "").await;
    assert_eq!(
        at.hop("out1", "*123#", "+254700000001", "6").await,
        "END Thank you for using UniConnect. Goodbye!"
    );
    assert!(
        eventually(10, || async { flaky.count() >= 3 }).await,
        "retried until 200"
    );
    let seen = flaky.seen.lock().unwrap().last().cloned().unwrap();
    let fields: std::collections::HashMap<_, _> = seen.form.into_iter().collect();
    assert_eq!(fields["sessionId"], "out1");
    assert_eq!(fields["serviceCode"], "*123#");
    assert_eq!(fields["phoneNumber"], "+254700000001");
    assert_eq!(fields["networkCode"], "63902");
    assert_eq!(fields["status"], "Success");
    assert_eq!(fields["hopsCount"], "2");
    assert_eq!(fields["input"], "6");
    assert_eq!(
        fields["lastAppResponse"],
        "END Thank you for using UniConnect. Goodbye!"
    );
    assert_eq!(fields["errorMessage"], "");
    assert!(fields["date"].len() == 19 && fields["durationInMillis"].parse::<u64>().is_ok());
    gw.shutdown().await;
    assert_eq!(flaky.count(), 3, "nothing delivered twice after the 200");

    // Written while the receiver is down, still pending at shutdown, delivered after a restart.
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let switch = up.clone();
    let later = FakeHttp::start(move |_| {
        let up = switch.clone();
        async move {
            if up.load(std::sync::atomic::Ordering::SeqCst) {
                (200, "OK".into())
            } else {
                (503, "down".into())
            }
        }
    })
    .await;
    let toml = std::fs::read_to_string(sb.config_path()).unwrap();
    std::fs::write(
        sb.config_path(),
        toml.replace(
            &format!("http://{}/events", flaky.addr),
            &format!("http://{}/events", later.addr),
        ),
    )
    .unwrap();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("out2", "*123#", "+254700000002", "").await;
    at.hop("out2", "*123#", "+254700000002", "9").await;
    assert!(
        eventually(10, || async { later.count() >= 1 }).await,
        "tried while down"
    );
    gw.shutdown().await;
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let before = later.count();
    let gw = sb.start().await;
    let delivered = || later.seen.lock().unwrap().len();
    assert!(
        eventually(10, || async { delivered() > before }).await,
        "delivered after the restart"
    );
    let fields: std::collections::HashMap<_, _> = later
        .seen
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .form
        .iter()
        .cloned()
        .collect();
    assert_eq!(fields["sessionId"], "out2");
    assert_eq!(fields["status"], "Success");
    gw.shutdown().await;
    // One 200, and nothing after it.
    assert_eq!(later.count(), before + 1);
}

/// The same stand-in, unchanged, over a direct operator SMPP bind: every screen that fits
/// comes through exactly as the app wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_founding_app_answers_over_smpp() {
    let flask = FlaskApp::spawn();
    let direct = At::new(flask.addr);
    let sim = common::operator_sim().await;
    let bind = format!(
        "[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\npassword = \"pw\"\nprofile = \"its_session_info\"\nreconnect_cap_ms = 500\n",
        sim.addr().port()
    );
    let sb = Sandbox::new(
        &format!(
            "{}{bind}",
            route(&format!("http://{}/ussd", flask.addr), "")
        ),
        &[],
    );
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await);
    for path in [&["1", "1"][..], &["2"], &["4"], &["5"], &["6"], &["1", "3"]] {
        let (mut dialogue, first) = sim.dial("254700000001", "*123#").await.unwrap();
        let mut screens = vec![first];
        for input in path {
            screens.push(dialogue.reply(input).await.unwrap());
        }
        for (n, screen) in screens.iter().enumerate() {
            let text = path[..n].join("*");
            let expected = direct.hop("direct", "*123#", "+254700000001", &text).await;
            let prefix = if screen.end { "END " } else { "CON " };
            assert_eq!(format!("{prefix}{}", screen.text), expected, "{path:?}");
        }
    }
    gw.shutdown().await;
}

/// SIGTERM drains: a hop in flight (waiting on a slow upstream) still gets its answer, new
/// connections are refused, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_hops_in_flight_finish() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let app = FakeHttp::start(move |_| {
        let mut release = release_rx.clone();
        async move {
            // Answers only once the test says so: the hop is in flight until then.
            let _ = release.wait_for(|r| *r).await;
            (200, "END finished".to_string())
        }
    })
    .await;
    let sb = Sandbox::new(&route(&format!("http://{}/cb", app.addr), ""), &[]);
    let gw = sb.spawn();
    let at = At::new(gw.public);
    let in_flight = {
        let at = at.clone();
        tokio::spawn(async move { at.hop("drain", "*123#", "+254700000001", "").await })
    };
    assert!(
        eventually(10, || async { app.count() == 1 }).await,
        "hop reached the app"
    );
    let pid = gw.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Give the gateway a moment to stop accepting, then check a new caller is refused.
    assert!(
        eventually(10, || async {
            tokio::net::TcpStream::connect(gw.public).await.is_err()
        })
        .await,
        "stops accepting"
    );
    release_tx.send(true).unwrap();
    assert_eq!(in_flight.await.unwrap(), "END finished");
    let status = gw.signal_wait();
    assert!(status.success(), "exit 0 after draining, got {status:?}");
}

/// A route may cut long upstream screens instead of paginating them: the answer fits one
/// screen, and the cut is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_screens_can_be_cut() {
    let app = FakeHttp::start(|_| async {
        let long: String = (1..=60).map(|i| format!("line {i}\n")).collect();
        (200, format!("END {long}"))
    })
    .await;
    let sb = Sandbox::new(
        &route(
            &format!("http://{}/cb", app.addr),
            "long_screens = \"cut\"\n",
        ),
        &[],
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let answer = at.hop("cut", "*123#", "+254700000001", "").await;
    assert!(answer.starts_with("END line 1\nline 2\n"), "{answer}");
    assert!(fits(&answer[4..], Limit::default()), "{answer}");
    assert!(!answer.contains("98. More"));
    let metrics = At::new(gw.admin_addr)
        .request("GET", "/metrics", &[], "")
        .await
        .body;
    assert!(
        metrics.contains("ussd_upstream_screens_cut_total{route=\"*123#\"} 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

/// The cumulative AT text after `input` is typed on top of `text`.
fn typed(text: &str, input: &str) -> String {
    if text.is_empty() {
        input.to_string()
    } else {
        format!("{text}*{input}")
    }
}

/// A paginated answer read again: each page without its `CON `/`END ` and its More/Back lines,
/// joined by the line breaks the pages were cut at.
fn joined(pages: &[String]) -> String {
    let nav = Nav::default();
    pages
        .iter()
        .map(|p| {
            let text = &p[4..];
            let text = text
                .strip_suffix(&format!("\n{}", nav.next_line()))
                .unwrap_or(text);
            text.strip_suffix(&format!("\n{}", nav.back_line()))
                .unwrap_or(text)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a paginated screen of service `code` to its end with 98, as a subscriber would,
/// starting from `first` (the answer to `text`); every 98 must show a new page. Returns the
/// pages and the cumulative text typed.
async fn read_pages(
    at: &At,
    code: &str,
    session: &str,
    phone: &str,
    mut text: String,
    first: String,
) -> (Vec<String>, String) {
    let more = format!("\n{}", Nav::default().next_line());
    let mut pages = vec![first];
    while pages.last().unwrap().ends_with(&more) {
        assert!(pages.len() < 10, "no end to the pages: {pages:?}");
        text = typed(&text, "98");
        let page = at.hop(session, code, phone, &text).await;
        assert_ne!(&page, pages.last().unwrap(), "98 shows the next page");
        pages.push(page);
    }
    (pages, text)
}

/// A welcome screen longer than one screen (a long name over 182 septets; a name with "ĩ" or "ũ",
/// which needs UCS-2 and so 80 characters) is paged like any other: 98 shows page 2 instead of
/// asking the app for page 1 again, and the options on the later pages can be chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paginated_first_screen_can_be_paged() {
    let flask = FlaskApp::spawn();
    let direct = At::new(flask.addr);
    let sb = Sandbox::new(&route(&format!("http://{}/ussd", flask.addr), ""), &[]);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    // A long name, over 182 septets; a short Kikuyu name, under 182 characters but over 80.
    for phone in ["+254700000003", "+254700000004"] {
        let welcome = direct.hop("direct", "*123#", phone, "").await;
        assert!(!fits(&welcome[4..], Limit::default()), "{welcome}");
        if phone.ends_with('4') {
            assert!(welcome.chars().count() < 182, "only the 80 limit pages it");
        }
        let first = at.hop(phone, "*123#", phone, "").await;
        let (pages, text) = read_pages(&at, "*123#", phone, phone, String::new(), first).await;
        assert!(pages.len() >= 2, "{pages:?}");
        for page in &pages {
            assert!(page.starts_with("CON "), "{page}");
            assert!(fits(&page[4..], Limit::default()), "{page}");
        }
        assert_eq!(joined(&pages), welcome[4..], "{phone}");
        // "5. Notifications" is on the last page only; choosing it reaches the app.
        let offers = |page: &str| page[4..].lines().any(|l| l == "5. Notifications");
        assert!(
            offers(pages.last().unwrap()) && !offers(&pages[0]),
            "{pages:?}"
        );
        let text = typed(&text, "5");
        assert_eq!(
            at.hop(phone, "*123#", phone, &text).await,
            direct.hop("direct", "*123#", phone, "5").await,
            "{phone}"
        );
    }
    gw.shutdown().await;
}

/// On a paginated answer 98 and 0 are the gateway's keys, on every page: 0 on the first page
/// and 98 on the last show the same page again, and the app never gets either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_keys_never_reach_the_app() {
    let app = FakeHttp::start(|seen| async move {
        let text = text_of(&seen);
        let long = |what: &str| -> String {
            (1..=30)
                .map(|i| format!("{what} line {i}\n"))
                .collect::<String>()
        };
        match text.as_str() {
            "" => (200, format!("CON {}7. Go on", long("first"))),
            "7" => (200, format!("CON {}1. Finish", long("second"))),
            _ => (200, format!("END got {text}")),
        }
    })
    .await;
    let sb = Sandbox::new(&route(&format!("http://{}/cb", app.addr), ""), &[]);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let phone = "+254700000001";
    let hop = |text: String| {
        let at = at.clone();
        async move { at.hop("keys", "*123#", phone, &text).await }
    };
    // The first screen (paginated), then a paginated screen after an input.
    let mut text = String::new();
    let mut page1 = hop(text.clone()).await;
    for choice in ["7", "1"] {
        // 0 on the first page: the same page.
        text = typed(&text, "0");
        assert_eq!(hop(text.clone()).await, page1, "0 on page 1");
        let (pages, walked) = read_pages(&at, "*123#", "keys", phone, text, page1).await;
        assert!(pages.len() >= 3, "{pages:?}");
        // 98 on the last page: the same page; then 0 goes back one page.
        text = typed(&walked, "98");
        assert_eq!(
            &hop(text.clone()).await,
            pages.last().unwrap(),
            "98 on the last page"
        );
        text = typed(&text, "0");
        assert_eq!(
            hop(text.clone()).await,
            pages[pages.len() - 2],
            "0 goes back"
        );
        text = typed(&text, choice);
        page1 = hop(text.clone()).await;
    }
    assert_eq!(page1, "END got 7*1");
    let texts: Vec<String> = app.seen.lock().unwrap().iter().map(text_of).collect();
    assert_eq!(texts, ["", "7", "7*1"], "the app got its own inputs only");
    gw.shutdown().await;
}

/// The last page keeps the app's trailing newline: the pages read again are the app's answer,
/// for END answers (the timetable, past results) and for a CON answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_read_again_are_the_apps_answer() {
    let flask = FlaskApp::spawn();
    let direct = At::new(flask.addr);
    let app = FakeHttp::start(|_| async {
        let long: String = (1..=30).map(|i| format!("row {i}\n")).collect();
        (200, format!("CON {long}"))
    })
    .await;
    let routes = format!(
        "{}[[routes]]\nservice_code = \"*124#\"\nupstream = \"http://{}/cb\"\n",
        route(&format!("http://{}/ussd", flask.addr), ""),
        app.addr
    );
    let sb = Sandbox::new(&routes, &[]);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let phone = "+254700000001";
    for path in ["3", "1*2"] {
        let expected = direct.hop("direct", "*123#", phone, path).await;
        assert!(!fits(&expected[4..], Limit::default()), "{expected}");
        assert!(expected.starts_with("END ") && expected.ends_with('\n'));
        let session = format!("nl{path}");
        let mut got = at.hop(&session, "*123#", phone, "").await;
        let mut text = String::new();
        for input in path.split('*') {
            text = typed(&text, input);
            got = at.hop(&session, "*123#", phone, &text).await;
        }
        let (pages, _) = read_pages(&at, "*123#", &session, phone, text, got).await;
        assert!(pages.last().unwrap().starts_with("END "), "{pages:?}");
        assert_eq!(joined(&pages), expected[4..], "{path}");
    }
    // A CON answer: its last page ends with the app's newline, then the gateway's Back line.
    let first = at.hop("con", "*124#", phone, "").await;
    let (pages, _) = read_pages(&at, "*124#", "con", phone, String::new(), first).await;
    let expected: String = (1..=30).map(|i| format!("row {i}\n")).collect();
    assert_eq!(joined(&pages), expected);
    for page in &pages {
        assert!(
            page.starts_with("CON ") && fits(&page[4..], Limit::default()),
            "{page}"
        );
    }
    gw.shutdown().await;
}
