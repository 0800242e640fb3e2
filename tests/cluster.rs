//! Cluster mode with its dialogues shared in Redis (docs/cluster.md): several gateway
//! processes on one Redis (a standalone primary, or a three-primary Redis Cluster), every one
//! started by the test as a user would (`serve` with `[store] backend = "redis"`), spoken to as
//! an aggregator that spreads a dialogue's hops over the nodes with no stickiness.

mod common;

use common::redis::{Redis, RedisCluster};
use common::{At, ChildGateway, FakeHttp, Sandbox, eventually};

const STUDENT: &str = "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n";

/// The student app's walks the test plays: (phone, inputs).
const WALKS: &[(&str, &[&str])] = &[
    ("+254700000001", &["1", "2", "98"]),
    ("+254700000001", &["3", "98"]),
    ("+254700000001", &["1", "1"]),
    ("0700000002", &["2"]),
    ("+254700000001", &["5"]),
];

/// A node's sandbox on the Redis at `urls`, with `extra` config (tables).
fn node_sandbox(urls: &[String], cluster: bool, extra: &str) -> Sandbox {
    Sandbox::cluster_node(urls, cluster, &format!("{extra}{STUDENT}"))
}

/// `n` nodes (each its own process and data folder) on one Redis.
fn nodes(n: usize, urls: &[String], cluster: bool, extra: &str) -> Vec<(Sandbox, ChildGateway)> {
    (0..n)
        .map(|_| {
            let sb = node_sandbox(urls, cluster, extra);
            let gw = sb.spawn();
            (sb, gw)
        })
        .collect()
}

/// Every hop of every walk lands on the next node in turn, and every screen is the one a
/// single node (on its own sled store) answers: on a primary and on a Redis Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_walks_spread_over_three_nodes_answer_as_one_node_does() {
    // The baseline: one node alone, on sled.
    let alone = Sandbox::with_repo_flows(STUDENT);
    let alone = alone.start().await;
    let one = At::new(alone.public_addr);
    let mut expected = Vec::new();
    for (i, (phone, inputs)) in WALKS.iter().enumerate() {
        expected.push(
            one.walk(&format!("alone-{i}"), "*123#", phone, inputs)
                .await,
        );
    }
    alone.shutdown().await;
    assert!(expected[0][0].starts_with("CON Welcome to UniConnect, Amina Wanjiru"));
    assert!(expected[0][3].starts_with("END "), "{:?}", expected[0]);

    let primary = Redis::standalone();
    let cluster = RedisCluster::start();
    for (urls, is_cluster) in [(vec![primary.url()], false), (cluster.urls(), true)] {
        let nodes = nodes(3, &urls, is_cluster, "");
        let ats: Vec<At> = nodes.iter().map(|(_, gw)| At::new(gw.public)).collect();
        let mut turn = 0;
        for (i, (phone, inputs)) in WALKS.iter().enumerate() {
            let session = format!("spread-{is_cluster}-{i}");
            let mut text = String::new();
            let mut answers = Vec::new();
            for hop in 0..=inputs.len() {
                if hop > 0 {
                    if !text.is_empty() {
                        text.push('*');
                    }
                    text.push_str(inputs[hop - 1]);
                }
                let at = &ats[turn % ats.len()];
                turn += 1;
                answers.push(at.hop(&session, "*123#", phone, &text).await);
            }
            assert_eq!(
                answers, expected[i],
                "cluster={is_cluster}: walk {i} spread over the nodes"
            );
        }
    }
}

/// A retry of one hop sent to two other nodes at once gets the same answer from both, and the
/// dialogue goes on from that hop once; a node killed with kill -9 after answering a hop loses
/// nothing: the next hop, on another node, continues the dialogue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_two_nodes_answer_once_and_a_killed_node_loses_nothing() {
    let primary = Redis::standalone();
    let mut nodes = nodes(3, &[primary.url()], false, "");
    let ats: Vec<At> = nodes.iter().map(|(_, gw)| At::new(gw.public)).collect();
    let amina = "+254700000001";

    let home = ats[0].hop("retry", "*123#", amina, "").await;
    assert!(
        home.starts_with("CON Welcome to UniConnect, Amina"),
        "{home}"
    );
    let (a, b) = tokio::join!(
        ats[1].hop("retry", "*123#", amina, "1"),
        ats[2].hop("retry", "*123#", amina, "1"),
    );
    assert_eq!(a, "CON View Results\n1. Current Term\n2. Previous Terms");
    assert_eq!(a, b, "both nodes give the one answer");
    // The dialogue is at the results menu, once: its next input is read there.
    let end = ats[0].hop("retry", "*123#", amina, "1*1").await;
    assert!(end.starts_with("END Current Term Results:"), "{end}");

    // Node 0 answers a hop, then dies.
    let home = ats[0].hop("killed", "*123#", amina, "").await;
    assert!(home.starts_with("CON Welcome"), "{home}");
    assert_eq!(
        ats[0].hop("killed", "*123#", amina, "3").await,
        "CON Your Timetable:\nMonday: Data Structures\n8:00:00 - 10:00:00 at LH 1\nTuesday: Discrete Mathematics\n10:00:00 - 12:00:00 at Room B12\n98. More"
    );
    let (_, killed) = nodes.remove(0);
    killed.kill9();
    let next = ats[1].hop("killed", "*123#", amina, "3*98").await;
    assert!(
        next.starts_with("END Wednesday:"),
        "the next page, on node 1: {next}"
    );
}

/// A dialogue left idle is ended once across the cluster, even when the node that answered it
/// died: one end record, one end-of-session event to the aggregator, whichever node sweeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_dialogue_ends_once_even_when_its_node_died() {
    let primary = Redis::standalone();
    let events = FakeHttp::start(|_| async { (200, "OK".to_string()) }).await;
    let extra = format!(
        "[sessions]\nidle_timeout_secs = 1\n[events]\nurl = \"http://{}/events\"\n",
        events.addr
    );
    let mut nodes = nodes(3, &[primary.url()], false, &extra);
    let ats: Vec<At> = nodes.iter().map(|(_, gw)| At::new(gw.public)).collect();
    for (i, at) in ats.iter().enumerate() {
        let home = at
            .hop(&format!("idle-{i}"), "*123#", "+254700000001", "")
            .await;
        assert!(home.starts_with("CON Welcome"), "{home}");
    }
    // Node 0, which answered idle-0, dies: the others sweep it.
    let (_, killed) = nodes.remove(0);
    killed.kill9();
    let live = || primary.command(&["EVAL", "return #redis.call('KEYS', 'ussd:*:live:*')", "0"]);
    assert!(
        eventually(20, || async { live() == ":0\r\n" && events.count() >= 3 }).await,
        "every idle dialogue ended and reported (live: {}, events: {})",
        live(),
        events.count()
    );
    let ends = primary.command(&["EVAL", "return #redis.call('KEYS', 'ussd:*:end:*')", "0"]);
    assert_eq!(ends, ":3\r\n", "one end record per dialogue");
    // Every deadline is gone from the sweep's sets: no node will end any of them again.
    let due = primary.command(&[
        "EVAL",
        "local n = 0 for _, k in ipairs(redis.call('KEYS', 'ussd:*:deadlines')) do n = n + redis.call('ZCARD', k) end return n",
        "0",
    ]);
    assert_eq!(due, ":0\r\n");
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
    assert_eq!(
        sessions,
        ["idle-0", "idle-1", "idle-2"],
        "one event per dialogue"
    );
}

/// Redis stopped under load: every hop is answered busy at once (no hang past the Redis
/// timeout), `/ready` says the node is not ready; once Redis is back the node answers again
/// and is ready, with no restart of the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_busy_while_redis_is_down_and_recovers_by_itself() {
    let mut primary = Redis::standalone();
    let sb = node_sandbox(&[primary.url()], false, "");
    // A short Redis timeout, so that a dead Redis is noticed quickly.
    let path = sb.config_path();
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[store.redis]\n", "[store.redis]\ntimeout_ms = 300\n");
    std::fs::write(&path, toml).unwrap();
    let busy = sb.config().limits.busy_text;
    let gw = sb.spawn();
    let at = At::new(gw.public);
    let ready = || async { at.request("GET", "/ready", &[], "").await.status };
    assert_eq!(ready().await, 200);
    let home = at.hop("before", "*123#", "+254700000001", "").await;
    assert!(home.starts_with("CON Welcome"), "{home}");

    primary.kill();
    let started = std::time::Instant::now();
    let hops = (0..20).map(|i| {
        let at = &at;
        async move {
            at.hop(&format!("down-{i}"), "*123#", "+254700000001", "")
                .await
        }
    });
    for answer in futures_util::future::join_all(hops).await {
        assert_eq!(answer, format!("END {busy}"));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "twenty hops answered busy in {:?}",
        started.elapsed()
    );
    assert_eq!(ready().await, 503, "not ready while Redis is down");

    primary.restart();
    assert!(
        eventually(20, || async { ready().await == 200 }).await,
        "ready again once Redis is back"
    );
    let home = at.hop("after", "*123#", "+254700000001", "").await;
    assert!(home.starts_with("CON Welcome"), "{home}");
    // What the dashboard's Cluster (Redis) row and the UssdRedisDown alert read.
    let scrape = At::new(gw.admin)
        .request(
            "GET",
            "/metrics",
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await
        .body;
    for needle in [
        "ussd_redis_up 1",
        "ussd_redis_duration_seconds_bucket{op=",
        "ussd_redis_duration_seconds_count{op=\"keep_if\"}",
    ] {
        assert!(scrape.contains(needle), "{needle} not in\n{scrape}");
    }
    // Which calls failed depends on where each hop was when Redis died (a record read, a
    // write on a guess, a begin): the errors are counted, whatever their operation.
    let errors: f64 = scrape
        .lines()
        .filter(|l| l.starts_with("ussd_redis_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        errors >= 20.0,
        "each busy hop's failed call is counted:\n{scrape}"
    );
    let reconnects: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("ussd_redis_reconnects_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(reconnects >= 1.0, "the reconnect is counted:\n{scrape}");
}

/// Every node logs a dialogue under the same log id (the installation secret its hash is keyed
/// with is the cluster's, kept in Redis), so one dialogue's lines can be followed across the
/// nodes that answered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_has_one_log_id_on_every_node() {
    let primary = Redis::standalone();
    let nodes: Vec<(Sandbox, ChildGateway, common::ChildLog)> = (0..2)
        .map(|_| {
            let sb = node_sandbox(&[primary.url()], false, "");
            let (gw, log) = sb.spawn_logged("warn");
            (sb, gw, log)
        })
        .collect();
    let amina = "+254700000001";
    let home = At::new(nodes[0].1.public)
        .hop("logged", "*123#", amina, "")
        .await;
    assert!(home.starts_with("CON Welcome"), "{home}");
    // A hop from another number is refused and logged, on each node, with the dialogue's id.
    let refused = "hop refused: the session belongs to another number or service";
    let mut ids = Vec::new();
    for (_, gw, log) in &nodes {
        At::new(gw.public)
            .hop("logged", "*123#", "+254700000099", "1")
            .await;
        assert!(log.wait_for(refused, 10).await, "{}", log.text());
        let text = log.text();
        let line = text.lines().find(|l| l.contains(refused)).unwrap();
        let id = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("session="))
            .unwrap_or_else(|| panic!("no session= in {line}"))
            .to_string();
        ids.push(id);
    }
    assert_eq!(ids[0], ids[1], "one log id on both nodes");
    assert_eq!(ids[0].len(), 12, "{ids:?}");

    // Either node's admin listener lists the cluster's live dialogues, under that id, and
    // ends one by it.
    let admin = |n: usize, method: &'static str, path: &'static str, body: String| {
        let at = At::new(nodes[n].1.admin);
        async move {
            at.request(
                method,
                path,
                &[
                    ("authorization", "Bearer test-token"),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    let listed = |n: usize| async move {
        let a = admin(n, "GET", "/admin/dialogues", String::new()).await;
        assert_eq!(a.status, 200, "{a:?}");
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        v["dialogues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].as_str().unwrap().to_string(), d["session"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(1).await,
        vec![(ids[0].clone(), serde_json::json!("http:logged"))],
        "node 1 lists the dialogue node 0 answered"
    );
    let a = admin(
        1,
        "POST",
        "/admin/dialogues/end",
        format!("{{\"id\":\"{}\"}}", ids[0]),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(listed(0).await.is_empty(), "ended for the whole cluster");
}

/// A subscriber dials again on another node while their dialogue is live on the first (the
/// network abandoned it without telling us): the older one ends at once as an abort, as on one
/// node, whichever node holds it; another number's dialogue goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_dial_on_another_node_supersedes_the_live_dialogue() {
    let primary = Redis::standalone();
    let nodes = nodes(2, &[primary.url()], false, "");
    let (a, b) = (At::new(nodes[0].1.public), At::new(nodes[1].1.public));
    let amina = "+254700000001";
    assert!(
        a.hop("sup-old", "*123#", amina, "")
            .await
            .starts_with("CON ")
    );
    assert!(
        a.hop("sup-old", "*123#", amina, "1")
            .await
            .starts_with("CON ")
    );
    assert!(
        a.hop("sup-other", "*123#", "+254700000002", "")
            .await
            .starts_with("CON ")
    );
    assert!(
        b.hop("sup-new", "*123#", amina, "")
            .await
            .starts_with("CON ")
    );
    let admin = nodes[1].1.admin;
    let ended = || async move {
        let a = At::new(admin)
            .request(
                "GET",
                "/admin/export/ended",
                &[("authorization", "Bearer test-token")],
                "",
            )
            .await;
        a.body
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(10, || async { !ended().await.is_empty() }).await,
        "the older dialogue ended"
    );
    let records = ended().await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["session"], "http:sup-old");
    assert_eq!(records[0]["reason"], "abort");
    // The new dialogue and the other number's go on, on either node.
    assert!(
        a.hop("sup-new", "*123#", amina, "1")
            .await
            .starts_with("CON ")
    );
    assert!(
        b.hop("sup-other", "*123#", "+254700000002", "1")
            .await
            .starts_with("CON ")
    );
    assert_eq!(ended().await.len(), 1);
}

/// A node answers the hops of a dialogue it holds in one Redis call each, on its own copy
/// (docs/cluster.md, "One round trip for most hops"). A copy another node has made stale is
/// answered again on the current state and counted once; a hop with a transaction runs it
/// once, under the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_on_its_copy_in_one_call_and_a_stale_copy_again() {
    const MICRO: &str = "[clock]\nfixed = \"2026-01-05T08:00:00+10:00\"\n[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n";
    let primary = Redis::standalone();
    let nodes = nodes(2, &[primary.url()], false, MICRO);
    let (a, b) = (At::new(nodes[0].1.public), At::new(nodes[1].1.public));
    let admin = nodes[0].1.admin;
    let amina = "+254700000001";
    let count = |what: &'static str| async move { common::metric(admin, what).await };
    const BEGIN: &str = "ussd_redis_duration_seconds_count{op=\"begin\"}";
    const KEEP: &str = "ussd_redis_duration_seconds_count{op=\"keep_if\"}";
    const END: &str = "ussd_redis_duration_seconds_count{op=\"end_if\"}";
    const RIGHT: &str = "ussd_cluster_guesses_total{outcome=\"right\"}";
    const WRONG: &str = "ussd_cluster_guesses_total{outcome=\"wrong\"}";
    const EFFECTS: &str = "ussd_cluster_guesses_total{outcome=\"effects\"}";
    const HOPS: &str = "ussd_hops_total{front=\"http\",dialect=\"africastalking\",route=\"*123#\"";

    // One node, the whole walk: a guess each, no begin.
    let walk = a.walk("sticky", "*123#", amina, &["1", "1"]).await;
    assert!(walk[2].starts_with("END Current Term Results:"), "{walk:?}");
    assert_eq!(
        (count(BEGIN).await, count(KEEP).await, count(END).await),
        (0.0, 2.0, 1.0),
        "dial and menu kept on a guess, the end too: one call a hop"
    );
    assert_eq!(count(RIGHT).await, 3.0);

    // Node A holds version 1; node B, with no copy, reads the state without the lease and
    // answers the next hop on it (version 2); A's guess is wrong.
    assert!(
        a.hop("stale", "*123#", amina, "")
            .await
            .starts_with("CON Welcome")
    );
    assert_eq!(
        b.hop("stale", "*123#", amina, "1").await,
        "CON View Results\n1. Current Term\n2. Previous Terms"
    );
    let b_admin = nodes[1].1.admin;
    let on_b = |what: &'static str| async move { common::metric(b_admin, what).await };
    assert_eq!(
        (
            on_b(BEGIN).await,
            on_b("ussd_redis_duration_seconds_count{op=\"hmget\"}").await,
            on_b(KEEP).await,
            on_b(RIGHT).await
        ),
        (0.0, 1.0, 1.0, 1.0),
        "a node with no copy: a read and a write on its guess, no lease"
    );
    let end = a.hop("stale", "*123#", amina, "1*1").await;
    assert_eq!(end, walk[2], "answered on the current state, not A's copy");
    assert_eq!(count(WRONG).await, 1.0);
    let hops = At::new(admin)
        .request("GET", "/metrics", &[], "")
        .await
        .body;
    let on_a: f64 = hops
        .lines()
        .filter(|l| l.starts_with(HOPS))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(on_a, 5.0, "the stale hop counted once: {hops}");
    for op in ["session", "end"] {
        assert_eq!(
            common::metric(admin, &format!("ussd_store_errors_total{{op=\"{op}\"}}")).await,
            0.0,
            "a wrong guess is no store error (it would page: UssdStoreErrors)"
        );
    }

    // A deposit on one node: its confirming hop reaches the transaction, so it is answered
    // under the lease, and the deposit is applied once.
    let micro = "*384*303#";
    let deposit = a.walk("deposit", micro, amina, &["2", "100.50", "1"]).await;
    assert!(deposit[3].ends_with("Balance: KES 2,600.50"), "{deposit:?}");
    assert!(count(EFFECTS).await >= 1.0);
    let again = a.walk("deposit-2", micro, amina, &["2", "1", "1"]).await;
    assert!(
        again[3].ends_with("Balance: KES 2,601.50"),
        "one deposit each: {again:?}"
    );
}

/// A node reaches a Redis on its machine over the Unix socket (docs/cluster.md), and shares its
/// dialogues with a node that reaches the same Redis over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaches_a_local_redis_over_its_unix_socket() {
    let primary = Redis::with_unix_socket();
    let (by_socket, by_tcp) = (
        node_sandbox(&[primary.unix_url()], false, ""),
        node_sandbox(&[primary.url()], false, ""),
    );
    let (s, t) = (by_socket.spawn(), by_tcp.spawn());
    let (s, t) = (At::new(s.public), At::new(t.public));
    let amina = "+254700000001";
    assert!(
        s.hop("unix", "*123#", amina, "")
            .await
            .starts_with("CON Welcome")
    );
    assert_eq!(
        t.hop("unix", "*123#", amina, "1").await,
        "CON View Results\n1. Current Term\n2. Previous Terms"
    );
    let end = s.hop("unix", "*123#", amina, "1*1").await;
    assert!(end.starts_with("END Current Term Results:"), "{end}");
}
