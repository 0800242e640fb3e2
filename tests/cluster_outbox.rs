//! Cluster mode's shared outbox through real `serve` processes (docs/cluster.md, "The
//! outbox"): the SMS a flow's transactions write on any node reach the AT API once each; a
//! node killed while it was sending its dialogues' end events leaves them to another node,
//! which sends each once the claim timeout has passed.

mod common;
mod outbox_fake;

use common::redis::Redis;
use common::{At, FakeHttp, Sandbox, eventually};
use outbox_fake::{FakeAt, SMS};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const STUDENT: &str = "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n";
const MICRO: &str = "*384*303#";
const CLAIM_TIMEOUT_SECS: u64 = 3;

/// A node's sandbox on the Redis at `url`, with `extra` config (which ends with the routes).
fn node_sandbox(url: &str, extra: &str) -> Sandbox {
    Sandbox::cluster_node(&[url.to_string()], false, extra)
}

/// A count the test reads from Redis with a script answering an integer.
fn count(redis: &Redis, script: &str, key: &str) -> String {
    redis.command(&["EVAL", script, "1", key])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_end_events_are_sent_once_by_another_node() {
    let primary = Redis::standalone();
    // The events receiver holds every request until released: the first node dies with its
    // requests unanswered.
    let (release, released) = watch::channel(false);
    let events = FakeHttp::start(move |_| {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|r| *r).await;
            (200, "OK".to_string())
        }
    })
    .await;
    let extra = format!(
        "[sessions]\nidle_timeout_secs = 1\n[events]\nurl = \"http://{}/events\"\n\
         [outbox]\nclaim_timeout_secs = {CLAIM_TIMEOUT_SECS}\n\
         [africastalking]\nrequest_timeout_ms = 2000\n\
         [africastalking.retry]\ninitial_backoff_ms = 100\nmax_backoff_ms = 200\n{STUDENT}",
        events.addr
    );
    let (first_sb, second_sb) = (
        node_sandbox(&primary.url(), &extra),
        node_sandbox(&primary.url(), &extra),
    );
    let first = first_sb.spawn();
    let at = At::new(first.public);
    for i in 0..2 {
        let home = at
            .hop(&format!("gone-{i}"), "*123#", "+254700000001", "")
            .await;
        assert!(home.starts_with("CON Welcome"), "{home}");
    }
    // The dialogues end no sooner than the idle timeout after this, and their events are taken
    // by the first node after that.
    let answered = Instant::now();
    // Both dialogues idle out on the first node, which takes their events and sends them.
    assert!(
        eventually(20, || async { events.count() == 2 }).await,
        "both events in flight on the first node (seen: {})",
        events.count()
    );
    first.kill9();
    release.send(true).unwrap();

    let second = second_sb.spawn();
    let sent = "local n = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do \
                if string.find(v, '\"state\":\"sent\"', 1, true) then n = n + 1 end end return n";
    let items = "ussd:{tx}:outbox:items";
    assert!(
        eventually(30, || async { count(&primary, sent, items) == ":2\r\n" }).await,
        "both events sent by the second node (sent: {})",
        count(&primary, sent, items)
    );
    assert!(
        answered.elapsed() >= Duration::from_secs(1 + CLAIM_TIMEOUT_SECS),
        "taken over only after the claim timeout ({:?} after the idle timeout)",
        answered.elapsed() - Duration::from_secs(1)
    );
    // Each event reached the receiver twice: once from the node that died before it heard the
    // answer, once from the node that took it over (at least once), and never again: every
    // item is sent, every entry acknowledged, nothing waits.
    let mut sessions: Vec<String> = events
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
    sessions.sort();
    assert_eq!(sessions, ["gone-0", "gone-0", "gone-1", "gone-1"]);
    let attempts = "local n = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do \
                    n = n + cjson.decode(v).attempts end return n";
    assert_eq!(
        count(&primary, attempts, items),
        ":4\r\n",
        "two attempts each"
    );
    let unacked = "return redis.call('XPENDING', KEYS[1], 'senders')[1]";
    assert_eq!(count(&primary, unacked, "ussd:{tx}:outbox:ready"), ":0\r\n");
    let waiting = "return redis.call('ZCARD', KEYS[1])";
    assert_eq!(count(&primary, waiting, "ussd:{tx}:outbox:later"), ":0\r\n");

    // The admin listener of the surviving node shows the cluster's items, exports them, and
    // refuses to re-queue one already sent.
    let admin = |method: &'static str, path: &'static str, body: &'static str| {
        let addr = second.admin;
        async move {
            At::new(addr)
                .request(
                    method,
                    path,
                    &[
                        ("authorization", "Bearer test-token"),
                        ("content-type", "application/json"),
                    ],
                    body.to_string(),
                )
                .await
        }
    };
    let listed = admin("GET", "/admin/outbox", "").await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let listed: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    for item in items {
        assert_eq!(item["kind"], "event");
        assert_eq!(item["status"]["state"], "sent");
        assert_eq!(item["attempts"], 2);
    }
    let exported = admin("GET", "/admin/export/outbox", "").await;
    assert_eq!(exported.status, 200, "{exported:?}");
    let mut sessions: Vec<String> = exported
        .body
        .lines()
        .map(|l| {
            let doc: serde_json::Value = serde_json::from_str(l).unwrap();
            doc["session"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    sessions.sort();
    assert_eq!(
        sessions,
        ["http:gone-0", "http:gone-1"],
        "{}",
        exported.body
    );
    let id = items[0]["id"].as_u64().unwrap();
    let body: &'static str = Box::leak(format!("{{\"id\": {id}}}").into_boxed_str());
    let refused = admin("POST", "/admin/outbox/requeue", body).await;
    assert_eq!(
        refused.status, 404,
        "a sent item is not re-queued: {refused:?}"
    );
}

/// The balance SMS of the microfinance app, asked for on three nodes in turn and then, after
/// one of them was killed, on the other two: each reaches the AT API once, whichever node sent
/// it, and nothing is left queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_written_on_any_node_reach_the_at_api_once_each() {
    let primary = Redis::standalone();
    let fake = FakeAt::start().await;
    let extra = format!(
        "[africastalking]\nusername = \"sandbox\"\napi_key = \"test-key-123\"\n\
         messaging_base_url = \"{0}\"\nvoice_base_url = \"{0}\"\npoll_interval_ms = 50\n\
         [[routes]]\nservice_code = \"{MICRO}\"\nflow = \"microfinance\"\n",
        fake.url()
    );
    let sandboxes: Vec<Sandbox> = (0..3)
        .map(|_| node_sandbox(&primary.url(), &extra))
        .collect();
    let mut nodes: Vec<_> = sandboxes.iter().map(Sandbox::spawn).collect();
    let sent = "local n = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do \
                if string.find(v, '\"state\":\"sent\"', 1, true) then n = n + 1 end end return n";
    let items = "ussd:{tx}:outbox:items";
    let mut asked = 0;
    for round in 0..2 {
        let ats: Vec<At> = nodes.iter().map(|gw| At::new(gw.public)).collect();
        for i in 0..6 {
            let session = format!("bal-{round}-{i}");
            let at = &ats[i % ats.len()];
            let home = at.hop(&session, MICRO, "+254700000001", "").await;
            assert!(home.starts_with("CON "), "{home}");
            // The menu on the next node, as an aggregator with no stickiness sends it.
            let next = &ats[(i + 1) % ats.len()];
            let done = next.hop(&session, MICRO, "+254700000001", "7").await;
            assert!(done.starts_with("END Please wait"), "{done}");
            asked += 1;
        }
        let want = format!(":{asked}\r\n");
        assert!(
            eventually(20, || async { count(&primary, sent, items) == want }).await,
            "every SMS sent (sent: {}, asked: {asked})",
            count(&primary, sent, items)
        );
        if round == 0 {
            nodes.remove(0).kill9();
        }
    }
    let sms = fake.requests_to(SMS);
    assert_eq!(sms.len(), asked, "each SMS reached the API once");
    assert!(sms.iter().all(|r| {
        r.field("message")
            .is_some_and(|m| m.starts_with("Confirmed. Your Wallet balance"))
    }));
    let attempts = "local n = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do \
                    n = n + cjson.decode(v).attempts end return n";
    assert_eq!(count(&primary, attempts, items), format!(":{asked}\r\n"));
    let unacked = "return redis.call('XPENDING', KEYS[1], 'senders')[1]";
    assert_eq!(count(&primary, unacked, "ussd:{tx}:outbox:ready"), ":0\r\n");
}
