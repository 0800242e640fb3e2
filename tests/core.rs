//! The gateway core through its HTTP front: dialogues, retries, END and tombstones, idle
//! eviction, the start-up sweep, crash resume, concurrency, routing and bad input.

mod common;

use common::{At, Sandbox, eventually, status};
use std::time::Duration;

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");
const PHONE: &str = "+254700000001";

fn echo_sandbox(extra_routes: &str) -> Sandbox {
    Sandbox::new(
        &format!("[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n{extra_routes}"),
        &[("echo", ECHO)],
    )
}

/// A new dialogue gets the first screen; each hop's new input is derived from the cumulative
/// text, including inputs that contain `*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_starts_and_continues() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(
        at.hop("s1", "*384*1#", PHONE, "").await,
        "CON Say something"
    );
    assert_eq!(
        at.hop("s1", "*384*1#", PHONE, "hello").await,
        "CON #1 254700000001: hello\n1. Again\n2. Stop"
    );
    assert_eq!(
        at.hop("s1", "*384*1#", PHONE, "hello*1").await,
        "CON Say something"
    );
    assert_eq!(
        at.hop("s1", "*384*1#", PHONE, "hello*1*a*b").await,
        "CON #2 254700000001: a*b\n1. Again\n2. Stop"
    );
    gw.shutdown().await;
}

/// END closes the dialogue; a retry of the closing hop gets the same END from the tombstone,
/// and the end-of-session record is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_leaves_a_tombstone_and_an_end_record() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("s2", "*384*1#", PHONE, "").await;
    at.hop("s2", "*384*1#", PHONE, "x").await;
    assert_eq!(
        at.hop("s2", "*384*1#", PHONE, "x*2").await,
        "END Bye after 1"
    );
    assert_eq!(
        at.hop("s2", "*384*1#", PHONE, "x*2").await,
        "END Bye after 1"
    );
    let s = status(gw.admin_addr).await;
    assert_eq!(s["dialogues_persisted"], 0);
    assert_eq!(s["dialogues_ended"], 1);
    assert_eq!(s["tombstones_kept"], 1);
    let records: Vec<serde_json::Value> = gw
        .registry()
        .core()
        .store
        .ended_records()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records[0]["reason"], "end");
    assert_eq!(records[0]["hops"], 3);
    assert_eq!(records[0]["msisdn"], "254700000001");
    assert_eq!(records[0]["service_code"], "*384*1#");
    assert_eq!(records[0]["input"], "x*2");
    gw.shutdown().await;
}

/// The same text twice is a retry: answered from the stored reply, the step not run again;
/// concurrent retries get one answer, computed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_answered_from_the_stored_reply() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("s3", "*384*1#", PHONE, "").await;
    let first = at.hop("s3", "*384*1#", PHONE, "a").await;
    assert_eq!(at.hop("s3", "*384*1#", PHONE, "a").await, first);
    at.hop("s3", "*384*1#", PHONE, "a*1").await;
    // Ten copies of the same hop at once.
    let answers = futures_util::future::join_all((0..10).map(|_| {
        let at = at.clone();
        async move { at.hop("s3", "*384*1#", PHONE, "a*1*b").await }
    }))
    .await;
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    // Counted once: the second echo is #2, not #11.
    assert_eq!(answers[0], "CON #2 254700000001: b\n1. Again\n2. Stop");
    // Ten copies of the closing hop at once: the dialogue's actor stops after the first
    // answer, under the others; each still gets the END, none the apology.
    let answers = futures_util::future::join_all((0..10).map(|_| {
        let at = at.clone();
        async move { at.hop("s3", "*384*1#", PHONE, "a*1*b*2").await }
    }))
    .await;
    assert!(
        answers.iter().all(|a| a == "END Bye after 2"),
        "{answers:?}"
    );
    gw.shutdown().await;
}

/// A dialogue idle past its timeout ends: its actor goes, an end record is kept, and a late hop
/// is told the session timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_dialogues_are_evicted() {
    let sb = Sandbox::new(
        "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\nidle_timeout_secs = 1\n",
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("s4", "*384*1#", PHONE, "").await;
    assert_eq!(gw.registry().live(), 1);
    let admin = gw.admin_addr;
    assert!(
        eventually(10, || async move {
            let s = status(admin).await;
            s["dialogues_in_memory"] == 0 && s["dialogues_ended"] == 1
        })
        .await,
        "the idle dialogue was not evicted"
    );
    assert_eq!(
        at.hop("s4", "*384*1#", PHONE, "late").await,
        "END Your session has timed out. Please dial again."
    );
    let records: Vec<serde_json::Value> = gw
        .registry()
        .core()
        .store
        .ended_records()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records[0]["reason"], "idle_timeout");
    gw.shutdown().await;
}

/// Dialogues persisted before a stop are swept at the next start once their idle timeout has
/// passed, with end records, without any hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_sweep_ends_expired_dialogues() {
    let sb = Sandbox::new(
        "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\nidle_timeout_secs = 1\n",
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("s5a", "*384*1#", PHONE, "").await;
    at.hop("s5b", "*384*1#", PHONE, "").await;
    gw.shutdown().await;
    // The idle timeout passes while the gateway is down.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let gw = sb.start().await;
    let admin = gw.admin_addr;
    assert!(
        eventually(10, || async move {
            let s = status(admin).await;
            s["dialogues_persisted"] == 0 && s["dialogues_ended"] == 2
        })
        .await
    );
    let registry = gw.registry().clone();
    assert!(
        eventually(10, || {
            let r = registry.clone();
            async move { r.live() == 0 }
        })
        .await
    );
    gw.shutdown().await;
}

/// After a restart, live dialogues continue where they were on their next hop; dialogues whose
/// timeout has not passed yet are ended at their deadline if no hop comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_and_later_expires() {
    let sb = Sandbox::new(
        "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\nidle_timeout_secs = 2\n",
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("r1", "*384*1#", PHONE, "").await;
    at.hop("r1", "*384*1#", PHONE, "one").await;
    // Another subscriber: the same number dialling again would supersede r1.
    at.hop("r2", "*384*1#", "+254700000009", "").await;
    gw.shutdown().await;
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(gw.registry().live(), 0, "actors are created lazily");
    assert_eq!(
        at.hop("r1", "*384*1#", PHONE, "one*1").await,
        "CON Say something"
    );
    let admin = gw.admin_addr;
    assert!(
        eventually(
            10,
            || async move { status(admin).await["dialogues_ended"] == 2 }
        )
        .await,
        "both dialogues end by their idle timeouts"
    );
    gw.shutdown().await;
}

/// kill -9 of a real gateway process: a dialogue whose last hop was answered more than a flush
/// interval before the kill continues where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_resumes_the_dialogue() {
    let sb = echo_sandbox("");
    let gw = sb.spawn();
    let at = At::new(gw.public);
    at.hop("k1", "*384*1#", PHONE, "").await;
    assert_eq!(
        at.hop("k1", "*384*1#", PHONE, "before").await,
        "CON #1 254700000001: before\n1. Again\n2. Stop"
    );
    // The guarantee holds for hops answered at least one flush interval (50 ms here) before
    // the crash: wait three.
    tokio::time::sleep(Duration::from_millis(150)).await;
    gw.kill9();
    let gw = sb.spawn();
    let at = At::new(gw.public);
    // The retry of the last hop is answered from the persisted reply...
    assert_eq!(
        at.hop("k1", "*384*1#", PHONE, "before").await,
        "CON #1 254700000001: before\n1. Again\n2. Stop"
    );
    // ...and the dialogue goes on with its state.
    at.hop("k1", "*384*1#", PHONE, "before*1").await;
    assert_eq!(
        at.hop("k1", "*384*1#", PHONE, "before*1*after").await,
        "CON #2 254700000001: after\n1. Again\n2. Stop"
    );
    let status = gw.signal("TERM");
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
}

/// A crash in the middle of a commit can leave a dialogue's end on disk (its record and
/// tombstone) with its live state still there. The next start recognises the leftover and
/// removes it, whether the start-up sweep or a retry of the last hop finds it first: no second
/// end, and the retry gets its END. A live dialogue whose key's tombstone is another
/// dialogue's stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_state_left_behind_by_a_cut_commit_does_not_end_twice() {
    let sb = echo_sandbox("");
    let data_dir = sb.config().store.data_dir;
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("c1", "*384*1#", PHONE, "").await;
    at.hop("c1", "*384*1#", PHONE, "x").await;
    gw.shutdown().await;
    let live = {
        let store = common::open_released(&data_dir, 8, 50);
        store.live::<serde_json::Value>("http:c1").unwrap().unwrap()
    };
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(
        at.hop("c1", "*384*1#", PHONE, "x*2").await,
        "END Bye after 1"
    );
    gw.shutdown().await;
    {
        let store = common::open_released(&data_dir, 8, 50);
        // The state the end replaced, back on disk as if its removal had been cut off.
        store.put_live("http:c1", live.clone()).unwrap();
        // And a live dialogue under a key whose tombstone is an earlier dialogue's.
        let mut tomb = store
            .tombstone::<serde_json::Value>("http:c1")
            .unwrap()
            .unwrap();
        tomb["started_ms"] = (live["started_ms"].as_u64().unwrap() - 1).into();
        // Its end record: a copy of c1's (retention drops records without an end time).
        let record: serde_json::Value = store.ended_records().next().unwrap().unwrap();
        let expires = tomb["expires_ms"].as_u64().unwrap();
        store
            .end("http:c2", (&tomb, expires), &record, None)
            .unwrap();
        store.put_live("http:c2", live).unwrap();
        store.flush_blocking().unwrap();
        assert_eq!(store.live_count(), 2);
        assert_eq!(store.ended_count(), 2);
    }
    let gw = sb.start().await;
    let admin = gw.admin_addr;
    let at = At::new(gw.public_addr);
    // At once: the sweep may or may not have reached it yet.
    assert_eq!(
        at.hop("c1", "*384*1#", PHONE, "x*2").await,
        "END Bye after 1"
    );
    assert!(
        eventually(10, || async move {
            status(admin).await["dialogues_persisted"] == 1
        })
        .await,
        "the leftover is removed, the other dialogue stays"
    );
    assert_eq!(status(admin).await["dialogues_ended"], 2, "no second end");
    assert!(
        gw.registry()
            .core()
            .store
            .live::<serde_json::Value>("http:c2")
            .unwrap()
            .is_some()
    );
    gw.shutdown().await;
}

/// 1,000 dialogues at once: every answer belongs to its own dialogue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_dialogues_never_mix() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let at = at.clone();
            tokio::spawn(async move {
                let session = format!("c{i}");
                let phone = format!("+2547{i:08}");
                assert_eq!(
                    at.hop(&session, "*384*1#", &phone, "").await,
                    "CON Say something"
                );
                let token = format!("t{i}");
                let body = at.hop(&session, "*384*1#", &phone, &token).await;
                assert_eq!(
                    body,
                    format!("CON #1 2547{i:08}: {token}\n1. Again\n2. Stop")
                );
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(gw.registry().live(), 1000);
    gw.shutdown().await;
}

/// A dial that extends a routed code feeds the extra segments in as first inputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_filled_dials_reach_their_route() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(
        at.hop("p1", "*384*1*hi#", PHONE, "").await,
        "CON #1 254700000001: hi\n1. Again\n2. Stop"
    );
    assert_eq!(
        at.hop("p1", "*384*1*hi#", PHONE, "2").await,
        "END Bye after 1"
    );
    // Unknown codes, including prefixes of routed ones, get the configured END.
    assert_eq!(
        at.hop("p2", "*384#", PHONE, "").await,
        "END This service code is not available."
    );
    assert_eq!(
        at.hop("p3", "*999#", PHONE, "").await,
        "END This service code is not available."
    );
    gw.shutdown().await;
}

/// `+254…`, `254…` and `0…` are the same subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_numbers_are_normalised_at_the_edge() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    for (i, phone) in [
        "+254700000001",
        "254700000001",
        "0700000001",
        "+254 700 000 001",
    ]
    .iter()
    .enumerate()
    {
        let s = format!("n{i}");
        at.hop(&s, "*384*1#", phone, "").await;
        assert_eq!(
            at.hop(&s, "*384*1#", phone, "x").await,
            "CON #1 254700000001: x\n1. Again\n2. Stop"
        );
    }
    gw.shutdown().await;
}

/// Admin endpoints need the bearer token, and nothing admin is on the public front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_token() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let admin = At::new(gw.admin_addr);
    let a = admin.request("GET", "/admin/status", &[], "").await;
    assert_eq!(a.status, 401);
    let a = admin
        .request(
            "GET",
            "/admin/status",
            &[("authorization", "Bearer wrong")],
            "",
        )
        .await;
    assert_eq!(a.status, 401);
    let a = admin
        .request(
            "GET",
            "/admin/status",
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await;
    assert_eq!(a.status, 200);
    let public = At::new(gw.public_addr);
    let a = public
        .request(
            "GET",
            "/admin/status",
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await;
    assert_eq!(a.status, 404);
    gw.shutdown().await;

    // Without any token configured, everything admin is refused.
    let sb = Sandbox::new("", &[]);
    let toml = std::fs::read_to_string(sb.config_path())
        .unwrap()
        .replace("token = \"test-token\"\n", "");
    std::fs::write(sb.config_path(), toml).unwrap();
    let gw = sb.start().await;
    let admin = At::new(gw.admin_addr);
    for token in ["", "Bearer ", "Bearer test-token"] {
        let a = admin
            .request("POST", "/admin/reload", &[("authorization", token)], "")
            .await;
        assert_eq!(a.status, 403, "{token:?}");
    }
    gw.shutdown().await;
}

/// Malformed requests are refused with a clear reason and never disturb a live dialogue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_at_the_edge() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("b0", "*384*1#", PHONE, "").await;

    let a = at
        .form(&[("serviceCode", "*384*1#"), ("phoneNumber", PHONE)])
        .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "missing field sessionId\n")
    );
    let a = at
        .form(&[("sessionId", "b1"), ("phoneNumber", PHONE)])
        .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "missing field serviceCode\n")
    );
    let a = at
        .form(&[("sessionId", "b1"), ("serviceCode", "*384*1#")])
        .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "missing field phoneNumber\n")
    );
    let a = at
        .form(&[
            ("sessionId", "b1"),
            ("serviceCode", "*384*1#"),
            ("phoneNumber", "call me"),
        ])
        .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "phoneNumber is not a valid phone number\n")
    );
    let big = format!(
        "sessionId=b2&serviceCode=*384*1%23&phoneNumber=1&text={}",
        "1".repeat(17000)
    );
    let a = at
        .request(
            "POST",
            "/ussd",
            &[("content-type", "application/x-www-form-urlencoded")],
            big,
        )
        .await;
    assert_eq!(a.status, 413);
    let a = at
        .request(
            "POST",
            "/ussd",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(a.status, 415);
    let a = at.request("POST", "/ussd", &[], "sessionId=x").await;
    assert_eq!(a.status, 415);
    let a = at.request("GET", "/nowhere", &[], "").await;
    assert_eq!(a.status, 404);
    let a = at.request("GET", "/ussd", &[], "").await;
    assert_eq!(a.status, 405);

    // Nothing reached an actor; the live dialogue goes on.
    assert_eq!(gw.registry().live(), 1);
    assert_eq!(
        at.hop("b0", "*384*1#", PHONE, "still").await,
        "CON #1 254700000001: still\n1. Again\n2. Stop"
    );
    gw.shutdown().await;
}

/// Liveness and readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready() {
    let sb = echo_sandbox("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(at.request("GET", "/health", &[], "").await.status, 200);
    assert_eq!(at.request("GET", "/ready", &[], "").await.status, 200);
    gw.shutdown().await;
}

/// The terminal simulator runs a scripted path and reports how it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_runs_a_scripted_path() {
    let sb = echo_sandbox("");
    let gw = sb.spawn();
    let url = format!("http://{}/ussd", gw.public);
    let run = |inputs: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"));
        cmd.args(["dial", "*384*1#", "--url", &url]);
        for i in inputs {
            cmd.args(["--input", i]);
        }
        cmd.output().unwrap()
    };
    let out = run(&["hi", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        "--- CON ---\nSay something\n> hi\n--- CON ---\n#1 254700000001: hi\n1. Again\n2. Stop\n> 2\n--- END ---\nBye after 1\n"
    );
    let out = run(&["hi"]);
    assert_eq!(out.status.code(), Some(2), "inputs ran out before END");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args([
            "dial",
            "*384*1#",
            "--url",
            "http://127.0.0.1:9/ussd",
            "--input",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "connection refused is an error");
}

/// A new dialogue from the same number on the same code supersedes the live one (the network
/// abandoned it without telling us): it ends as an abort. Other numbers and codes are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_dial_supersedes_the_same_subscribers_live_dialogue() {
    let sb = Sandbox::new(
        "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n[[routes]]\nservice_code = \"*384*2#\"\nflow = \"echo\"\n",
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("old", "*384*1#", PHONE, "").await;
    at.hop("old", "*384*1#", PHONE, "a").await;
    at.hop("other-code", "*384*2#", PHONE, "").await;
    at.hop("other-number", "*384*1#", "+254700000002", "").await;
    at.hop("new", "*384*1#", PHONE, "").await;
    let store = gw.registry().core().store.clone();
    assert!(
        eventually(10, || {
            let store = store.clone();
            async move { store.ended_count() == 1 }
        })
        .await,
        "the old dialogue ended"
    );
    let records: Vec<serde_json::Value> = store.ended_records().collect::<Result<_, _>>().unwrap();
    assert_eq!(records[0]["session"], "http:old");
    assert_eq!(records[0]["reason"], "abort");
    // The others go on.
    assert_eq!(
        at.hop("other-code", "*384*2#", PHONE, "x").await,
        "CON #1 254700000001: x\n1. Again\n2. Stop"
    );
    assert_eq!(
        at.hop("other-number", "*384*1#", "+254700000002", "y")
            .await,
        "CON #1 254700000002: y\n1. Again\n2. Stop"
    );
    gw.shutdown().await;
}
