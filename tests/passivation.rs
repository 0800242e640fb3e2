//! Passivation (`[sessions] passivate_after_ms`, src/session/passive.rs): a dialogue idle for a
//! while gives up its actor, keeping only its deadline; its next hop resumes it from the store
//! with its state, and its idle timeout ends it once, at its deadline, with its end record and
//! its end-of-session event, as a resident dialogue's own timer does. Runs on sled and, with
//! `USSD_TEST_BACKEND=redis`, in cluster mode.

mod common;

use common::{At, FakeHttp, Sandbox, end_records, eventually, live_count};
use ussd_gateway::gateway::Running;

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");
const CODE: &str = "*384*1#";
const PHONE: &str = "+254700000001";

/// The echo flow with an idle timeout of `idle_secs`, dialogues passivated after 100 ms.
fn sandbox(idle_secs: u64, extra: &str) -> Sandbox {
    Sandbox::new(
        &format!(
            "[sessions]\npassivate_after_ms = 100\n{extra}[[routes]]\nservice_code = \"{CODE}\"\nflow = \"echo\"\nidle_timeout_secs = {idle_secs}\n"
        ),
        &[("echo", ECHO)],
    )
}

/// Waits until no dialogue has an actor and `deadlines` deadlines are kept.
async fn passivated(gw: &Running, deadlines: usize) -> bool {
    let registry = gw.registry().clone();
    eventually(10, || {
        let r = registry.clone();
        async move { r.live() == 0 && r.passivated() == deadlines }
    })
    .await
}

/// A passivated dialogue's next hop resumes it from the store: a retry of its last hop is
/// answered from the stored reply (the flow's counter does not move), and the next input goes
/// on from the state it had (the counter goes on from 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passivated_dialogue_resumes_with_its_state_on_its_next_hop() {
    let sb = sandbox(60, "");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(at.hop("p1", CODE, PHONE, "").await, "CON Say something");
    let first = "CON #1 254700000001: hello\n1. Again\n2. Stop";
    assert_eq!(at.hop("p1", CODE, PHONE, "hello").await, first);
    assert!(passivated(&gw, 1).await, "the idle dialogue kept its actor");
    assert_eq!(at.hop("p1", CODE, PHONE, "hello").await, first);
    assert!(
        passivated(&gw, 2).await,
        "the resumed dialogue kept its actor"
    );
    assert_eq!(
        at.hop("p1", CODE, PHONE, "hello*1").await,
        "CON Say something"
    );
    assert!(passivated(&gw, 3).await);
    assert_eq!(
        at.hop("p1", CODE, PHONE, "hello*1*again").await,
        "CON #2 254700000001: again\n1. Again\n2. Stop"
    );
    assert_eq!(
        at.hop("p1", CODE, PHONE, "hello*1*again*2").await,
        "END Bye after 2"
    );
    let records = end_records(&gw).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["reason"], "end");
    assert_eq!(records[0]["hops"], 5);
    gw.shutdown().await;
}

/// A passivated dialogue's idle timeout ends it once: one end record (timed out, with its
/// hops and inputs), one end-of-session event to the aggregator, no live state left, and a
/// late hop is told it timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passivated_dialogue_times_out_once_with_its_end_record_and_event() {
    let events = FakeHttp::start(|_| async { (200, "OK".to_string()) }).await;
    let sb = sandbox(
        2,
        &format!("[events]\nurl = \"http://{}/events\"\n", events.addr),
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(at.hop("t1", CODE, PHONE, "").await, "CON Say something");
    assert_eq!(
        at.hop("t1", CODE, PHONE, "hi").await,
        "CON #1 254700000001: hi\n1. Again\n2. Stop"
    );
    assert!(passivated(&gw, 1).await, "the idle dialogue kept its actor");
    let registry = gw.registry().clone();
    let (gw_ref, events_ref) = (&gw, &events);
    assert!(
        eventually(10, || {
            let r = registry.clone();
            async move {
                r.passivated() == 0
                    && end_records(gw_ref).await.len() == 1
                    && events_ref.count() >= 1
            }
        })
        .await,
        "the passivated dialogue did not time out"
    );
    let records = end_records(&gw).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["session"], "http:t1");
    assert_eq!(r["reason"], "idle_timeout");
    assert_eq!(r["hops"], 2);
    assert_eq!(r["input"], "hi");
    assert_eq!(live_count(&gw).await, 0);
    assert_eq!(gw.registry().live(), 0);
    assert_eq!(
        at.hop("t1", CODE, PHONE, "hi*1").await,
        "END Your session has timed out. Please dial again."
    );
    let sessions: Vec<String> = events
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|s| {
            s.form
                .iter()
                .find(|(k, _)| k == "sessionId")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(sessions, ["t1"], "one end-of-session event");
    gw.shutdown().await;
}

/// A dialogue passivated, resumed by a hop and passivated again ends at its new deadline, not
/// at the one it left first: the first deadline finds it not due and leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_dialogue_ends_at_its_new_deadline() {
    let sb = sandbox(2, "");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(at.hop("n1", CODE, PHONE, "").await, "CON Say something");
    assert!(passivated(&gw, 1).await, "the idle dialogue kept its actor");
    let second = ussd_gateway::clock::now_ms();
    assert_eq!(
        at.hop("n1", CODE, PHONE, "again").await,
        "CON #1 254700000001: again\n1. Again\n2. Stop"
    );
    let registry = gw.registry().clone();
    let gw_ref = &gw;
    assert!(
        eventually(10, || {
            let r = registry.clone();
            async move { r.passivated() == 0 && end_records(gw_ref).await.len() == 1 }
        })
        .await,
        "the dialogue did not time out"
    );
    let records = end_records(&gw).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["reason"], "idle_timeout");
    assert_eq!(records[0]["hops"], 2);
    let ended = records[0]["ended_ms"].as_u64().unwrap();
    assert!(
        ended >= second + 2_000,
        "ended {} ms after its last hop was sent, before its idle timeout",
        ended - second
    );
    gw.shutdown().await;
}

/// The same number dialling the same code again supersedes its passivated dialogue, as it does
/// a resident one: the older one ends as aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_dial_supersedes_a_passivated_dialogue() {
    let sb = sandbox(60, "");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(at.hop("old", CODE, PHONE, "").await, "CON Say something");
    assert!(passivated(&gw, 1).await, "the idle dialogue kept its actor");
    assert_eq!(at.hop("new", CODE, PHONE, "").await, "CON Say something");
    let gw_ref = &gw;
    assert!(
        eventually(10, || async move { end_records(gw_ref).await.len() == 1 }).await,
        "the passivated dialogue was not superseded"
    );
    let records = end_records(&gw).await;
    assert_eq!(records[0]["session"], "http:old");
    assert_eq!(records[0]["reason"], "abort");
    assert_eq!(
        at.hop("new", CODE, PHONE, "x").await,
        "CON #1 254700000001: x\n1. Again\n2. Stop"
    );
    gw.shutdown().await;
}

/// On one node passivated dialogues count against `max_live_dialogues` as resident ones do: at
/// the limit a new dialogue is refused, and a passivated one goes on. (In a cluster only
/// dialogues with an actor count: a passivated one is not told from a new one there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivated_dialogues_count_against_the_live_dialogue_limit() {
    let sb = sandbox(
        60,
        "[limits]\nhops_per_minute_per_msisdn = 0\nmax_live_dialogues = 1\nbusy_text = \"Busy\"\n",
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(at.hop("l1", CODE, PHONE, "").await, "CON Say something");
    assert!(passivated(&gw, 1).await, "the idle dialogue kept its actor");
    if !common::on_redis() {
        assert_eq!(
            at.hop("l2", CODE, "+254700000002", "").await,
            "END Busy",
            "a new dialogue past the limit"
        );
    }
    assert_eq!(
        at.hop("l1", CODE, PHONE, "go").await,
        "CON #1 254700000001: go\n1. Again\n2. Stop"
    );
    gw.shutdown().await;
}

/// A dialogue passivated before a flow reload finishes on the version it started with, as a
/// resident one does; new dialogues get the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passivated_dialogue_keeps_its_flow_version_across_a_reload() {
    let sb = sandbox(60, "");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(at.hop("v1", CODE, PHONE, "").await, "CON Say something");
    assert!(passivated(&gw, 1).await, "the idle dialogue kept its actor");
    std::fs::write(
        sb.dir.path().join("flows/echo.yaml"),
        ECHO.replace("Say something", "Tell me"),
    )
    .unwrap();
    let a = At::new(gw.admin_addr)
        .request(
            "POST",
            "/admin/reload",
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(at.hop("v2", CODE, "+254700000003", "").await, "CON Tell me");
    at.hop("v1", CODE, PHONE, "x").await;
    assert_eq!(
        at.hop("v1", CODE, PHONE, "x*1").await,
        "CON Say something",
        "the passivated dialogue moved to the new version"
    );
    gw.shutdown().await;
}

/// The dialogues of a lost SMPP bind are ended by key prefix (`Registry::abort_prefix`):
/// passivated ones too, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialogues_ended_by_key_prefix_include_passivated_ones() {
    let sb = sandbox(60, "");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(at.hop("lost-1", CODE, PHONE, "").await, "CON Say something");
    assert_eq!(
        at.hop("lost-2", CODE, "+254700000002", "").await,
        "CON Say something"
    );
    assert!(
        passivated(&gw, 2).await,
        "the idle dialogues kept their actors"
    );
    assert_eq!(
        at.hop("lost-2", CODE, "+254700000002", "a").await,
        "CON #1 254700000002: a\n1. Again\n2. Stop"
    );
    // lost-1 passivated; lost-2 resumed by its hop (its first deadline still kept).
    assert_eq!(gw.registry().abort_prefix("http:lost-").await, 2);
    let records = end_records(&gw).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records.iter().all(|r| r["reason"] == "abort"),
        "{records:?}"
    );
    gw.shutdown().await;
}

/// The scrape shows a passivated dialogue where an operator looks for it: out of
/// `ussd_dialogues_live` (actors) and in `ussd_dialogues_passivated`, and back in the first
/// once its next hop resumes it. A process of its own: its gauges are not shared with the other
/// tests of this file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_counts_passivated_dialogues_apart_from_actors() {
    let sb = sandbox(60, "");
    let gw = sb.spawn();
    let at = At::new(gw.public);
    assert_eq!(at.hop("m1", CODE, PHONE, "").await, "CON Say something");
    let gauges = || async {
        let body = At::new(gw.admin)
            .request("GET", "/metrics", &[], "")
            .await
            .body;
        let value = |name: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        };
        (
            value("ussd_dialogues_live"),
            value("ussd_dialogues_passivated"),
        )
    };
    assert!(
        eventually(15, || async { gauges().await == (Some(0.0), Some(1.0)) }).await,
        "passivated, not an actor: {:?}",
        gauges().await
    );
    assert_eq!(
        at.hop("m1", CODE, PHONE, "hi").await,
        "CON #1 254700000001: hi\n1. Again\n2. Stop"
    );
    // Resumed (an actor again), then passivated again: two deadlines until the first passes.
    assert!(
        eventually(15, || async {
            matches!(gauges().await, (Some(0.0), Some(n)) if n >= 1.0)
        })
        .await,
        "{:?}",
        gauges().await
    );
}
