//! Interop with an independent SMPP implementation: the npm `smpp` package (node-smpp), driven
//! by the scripts in tests/interop (installed by `scripts/test` with `npm ci`).
//!
//! (a) node-smpp plays the operator's SMSC: the gateway binds to it, a subscriber dials the
//!     student app (*123#), navigates (results, previous terms, next page) and reaches the
//!     end; the texts are those of the HTTP front; the gateway unbinds on shutdown.
//! (b) node-smpp plays an ESME binding to the gateway's listener, with a wrong password first.
//! (c) node-smpp plays one SMSC to which two gateway nodes of a cluster (on one Redis) bind
//!     with the same account, and delivers a dialogue's messages alternately on the two binds.
//! (d) node-smpp cuts one node's connection between a message and its reply, and refuses that
//!     node's binds from then on: the reply, and a push asked of that node, go out on the
//!     other node's connection.
//! (f) node-smpp as an aggregator bound to two nodes' listeners, a receiver on one and a
//!     transmitter on the other: the screens of what it submits on the transmitter come back
//!     on the receiver, through the other node.
//! (e) node-smpp answers a dialogue one node opened (a network-initiated USSR) through the
//!     other node only: the last screen still comes as a notification (USSN).
//!
//! Skipped, with a message, only when `node` is not installed.

mod common;

use common::Sandbox;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// `node` with the script, or `None` (and a message) when node is absent.
fn node(script: &str, args: &[String]) -> Option<(Child, Lines<BufReader<ChildStdout>>)> {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: `node` is not installed; the node-smpp interop test needs it");
        return None;
    }
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/smpp").is_dir(),
        "tests/interop/node_modules is missing: run `npm ci --prefix tests/interop` (scripts/test does)"
    );
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().expect("piped stdout");
    Some((child, BufReader::new(stdout).lines()))
}

async fn json_line(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("node answered within 30 s")
        .expect("node's stdout")
        .expect("a line from node");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn texts(record: &Value) -> Vec<String> {
    record["screens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect()
}

const HOME: &str = "Welcome to UniConnect, ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_smpp_as_the_operator_smsc() {
    let args = ["*123#", "254700000001", "1", "2", "98"].map(String::from);
    let Some((mut child, mut lines)) = node("smsc.js", &args) else {
        return;
    };
    let port = json_line(&mut lines).await["port"].as_u64().unwrap();
    let sb = Sandbox::with_repo_flows(&format!(
        "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[[smpp.binds]]\nname = \"node\"\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"gw\"\npassword = \"secret\"\n"
    ));
    let gw = sb.start().await;
    assert_eq!(json_line(&mut lines).await["event"], "ended");
    // The same dialogue over HTTP, for the texts.
    let at = common::At::new(gw.public_addr);
    let mut http = Vec::new();
    for text in ["", "1", "1*2", "1*2*98"] {
        http.push(at.hop("interop", "*123#", "+254700000001", text).await);
    }
    gw.shutdown().await;
    let record = json_line(&mut lines).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    assert_eq!(record["bind"]["system_id"], "gw");
    assert_eq!(record["bind"]["password"], "secret");
    assert_eq!(record["bind"]["interface_version"], 0x34);
    assert_eq!(record["deliver_sm_resp"], 0);
    assert_eq!(record["unbound"], true, "{record}");
    let screens = record["screens"].as_array().unwrap();
    assert_eq!(screens.len(), 4, "{record}");
    assert!(texts(&record)[0].starts_with(HOME), "{record}");
    for (i, s) in screens.iter().enumerate() {
        let last = i == screens.len() - 1;
        assert_eq!(s["command"], "submit_sm");
        assert_eq!(s["esm_class"], 0);
        assert_eq!(s["data_coding"], 0);
        assert_eq!(s["service_type"], "USSD");
        assert_eq!(s["source_addr"], "123");
        assert_eq!(s["destination_addr"], "254700000001");
        assert_eq!(s["op"], if last { 17 } else { 2 });
        let step = 2 * i as u64;
        let its = serde_json::json!([0x2A, if last { step | 1 } else { step }]);
        assert_eq!(s["its"], its, "{s}");
        assert_eq!(s["end"], last);
        let prefix = if last { "END " } else { "CON " };
        assert_eq!(http[i], format!("{prefix}{}", s["text"].as_str().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_smpp_as_an_esme_binding_to_the_listener() {
    let sb = Sandbox::with_repo_flows(
        "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[smpp.listener]\nlisten = \"127.0.0.1:0\"\n[[smpp.listener.peers]]\nsystem_id = \"aggregator\"\npassword = \"pw\"\n",
    );
    let gw = sb.start().await;
    let port = gw
        .smpp()
        .unwrap()
        .listener_addr()
        .unwrap()
        .port()
        .to_string();
    let args = [&port, "aggregator", "pw", "*123#", "254700000001", "2"].map(|s| s.to_string());
    let Some((mut child, mut lines)) = node("esme.js", &args) else {
        gw.shutdown().await;
        return;
    };
    let record = json_line(&mut lines).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    assert_eq!(record["bad_bind_status"], 0x0E, "{record}");
    assert_eq!(record["bind_status"], 0, "{record}");
    assert_eq!(record["submit_statuses"], serde_json::json!([0, 0]));
    assert_eq!(record["unbind_status"], 0);
    let screens = record["screens"].as_array().unwrap();
    assert_eq!(screens.len(), 2, "{record}");
    assert!(texts(&record)[0].starts_with(HOME));
    assert_eq!(screens[0]["command"], "deliver_sm");
    assert_eq!(screens[0]["esm_class"], 0);
    assert_eq!(screens[0]["its"], serde_json::json!([0x11, 0]));
    assert_eq!(screens[1]["op"], 17);
    assert_eq!(screens[1]["its"], serde_json::json!([0x11, 3]));
    assert_eq!(screens[1]["end"], true);
    let at = common::At::new(gw.public_addr);
    at.hop("x", "*123#", "+254700000001", "").await;
    let balance = at.hop("x", "*123#", "+254700000001", "2").await;
    assert_eq!(balance, format!("END {}", texts(&record)[1]));
    gw.shutdown().await;
}

/// Two nodes of a cluster (cluster mode, dialogues shared in Redis) bound to one SMSC with the
/// same account: node-smpp delivers each message of a dialogue on the other bind than the last,
/// and the dialogue completes, each screen answered on the bind its message came on, with the
/// texts one node gives over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_smpp_spreads_a_dialogue_over_two_nodes_of_a_cluster() {
    let args = ["*123#", "254700000001", "1", "2", "98"].map(String::from);
    let Some((mut child, mut lines)) = node("smsc_pair.js", &args) else {
        return;
    };
    let port = json_line(&mut lines).await["port"].as_u64().unwrap();
    let redis = common::redis::Redis::standalone();
    let spawn_node = || {
        let sb = Sandbox::with_repo_flows(&format!(
            "[store.redis]\nurls = [\"{}\"]\n[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[[smpp.binds]]\nname = \"node\"\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"gw\"\npassword = \"secret\"\n",
            redis.url()
        ));
        let path = sb.config_path();
        let toml = std::fs::read_to_string(&path)
            .unwrap()
            .replace("[store]\n", "[store]\nbackend = \"redis\"\n");
        std::fs::write(&path, toml).unwrap();
        let gw = sb.spawn();
        (sb, gw)
    };
    let (sb1, gw1) = spawn_node();
    let (_sb2, gw2) = spawn_node();
    assert_eq!(json_line(&mut lines).await["event"], "ended");
    // The same dialogue over HTTP on one node alone, for the texts.
    let alone =
        Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n");
    let alone = alone.start().await;
    let at = common::At::new(alone.public_addr);
    let mut http = Vec::new();
    for text in ["", "1", "1*2", "1*2*98"] {
        http.push(at.hop("interop-pair", "*123#", "+254700000001", text).await);
    }
    alone.shutdown().await;
    drop(sb1);
    assert!(gw1.signal("TERM").success());
    assert!(gw2.signal("TERM").success());
    let record = json_line(&mut lines).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    assert_eq!(record["binds"], 2, "{record}");
    assert_eq!(record["unbound"], 2, "{record}");
    assert_eq!(
        record["delivered_on"],
        serde_json::json!([0, 1, 0, 1]),
        "{record}"
    );
    assert_eq!(
        record["answered_on"], record["delivered_on"],
        "each screen comes back on the bind its message came on: {record}"
    );
    let screens = record["screens"].as_array().unwrap();
    assert_eq!(screens.len(), 4, "{record}");
    for (i, s) in screens.iter().enumerate() {
        let last = i == screens.len() - 1;
        assert_eq!(s["end"], last, "{s}");
        let prefix = if last { "END " } else { "CON " };
        assert_eq!(http[i], format!("{prefix}{}", s["text"].as_str().unwrap()));
    }
}

/// A node of a cluster on `redis`, serving the student app and bound as `system_id` to the
/// SMSC at `port` through a bind named `op` (the same bind on every node).
fn bound_node(
    redis: &common::redis::Redis,
    port: u64,
    system_id: &str,
) -> (Sandbox, common::ChildGateway) {
    let sb = Sandbox::cluster_node(
        &[redis.url()],
        false,
        &format!(
            "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"{system_id}\"\npassword = \"secret\"\nsource_addr = \"123\"\n"
        ),
    );
    let gw = sb.spawn();
    (sb, gw)
}

/// `POST /admin/push` with `body` on the admin listener at `admin`.
async fn admin_push(admin: std::net::SocketAddr, body: &str) -> common::Answer {
    common::At::new(admin)
        .request(
            "POST",
            "/admin/push",
            &[
                ("authorization", "Bearer test-token"),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await
}

/// One node's connection is cut right after it acknowledged a subscriber's first message: the
/// first screen still reaches the SMSC, on the other node's connection of the bind (the node
/// that has none hands it over through the cluster); and a push asked of the node whose binds
/// the SMSC now refuses goes out the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_smpp_gets_a_reply_and_a_push_through_the_other_nodes_bind() {
    let args = ["*123#", "254700000001", "1", "2", "98"].map(String::from);
    let Some((_child, mut lines)) = node("smsc_relay.js", &args) else {
        return;
    };
    let port = json_line(&mut lines).await["port"].as_u64().unwrap();
    let redis = common::redis::Redis::standalone();
    let (_sb1, gw1) = bound_node(&redis, port, "gw1");
    let (_sb2, gw2) = bound_node(&redis, port, "gw2");
    let record = json_line(&mut lines).await;
    assert_eq!(record["event"], "ended", "{record}");
    let screens = record["screens"].as_array().unwrap();
    assert_eq!(screens.len(), 4, "{record}");
    assert!(
        screens[0]["text"].as_str().unwrap().starts_with(HOME),
        "the first screen arrived: {record}"
    );
    assert!(screens[3]["end"].as_bool().unwrap(), "{record}");
    assert_eq!(
        record["answered_by"],
        serde_json::json!(["gw2", "gw2", "gw2", "gw2"]),
        "every screen came back on the connection left: {record}"
    );
    // The first screen went out once: not on the cut connection as well.
    assert_eq!(record["ignored_on_cut"], 0, "{record}");

    // gw1 has no connection (the SMSC refuses its binds): a push asked of it goes through gw2.
    let push = admin_push(
        gw1.admin,
        r#"{"msisdn":"254700000002","text":"Results are out"}"#,
    )
    .await;
    assert_eq!(push.status, 200, "{push:?}");
    let pushed = json_line(&mut lines).await;
    assert_eq!(pushed["event"], "push", "{pushed}");
    assert_eq!(pushed["by"], "gw2", "{pushed}");
    assert_eq!(pushed["screen"]["text"], "Results are out", "{pushed}");
    assert_eq!(
        pushed["screen"]["destination_addr"], "254700000002",
        "{pushed}"
    );
    let metrics = common::At::new(gw1.admin)
        .request(
            "GET",
            "/metrics",
            &[("authorization", "Bearer test-token")],
            String::new(),
        )
        .await;
    assert!(
        metrics
            .body
            .contains("ussd_smpp_relayed_total{bind=\"op\",way=\"out\",outcome=\"sent\"} 2"),
        "node 1 relayed the first screen and the push: {}",
        metrics.body
    );
    assert!(gw1.signal("TERM").success());
    assert!(gw2.signal("TERM").success());
}

/// A dialogue node 1 opens (`/admin/push` with a service code) is answered through node 2
/// only: its screens come back from node 2, and the last is a USSN (op 3), as when one node
/// opens and ends it, not a reply to a request the subscriber never made (op 17).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_smpp_gets_a_network_initiated_dialogue_ended_as_a_notification_by_the_other_node() {
    let args = ["254700000001", "1", "2", "98"].map(String::from);
    let Some((_child, mut lines)) = node("smsc_initiated.js", &args) else {
        return;
    };
    let port = json_line(&mut lines).await["port"].as_u64().unwrap();
    let redis = common::redis::Redis::standalone();
    let (_sb1, gw1) = bound_node(&redis, port, "gw1");
    let (_sb2, gw2) = bound_node(&redis, port, "gw2");
    assert_eq!(json_line(&mut lines).await["event"], "bound");
    let push = admin_push(
        gw1.admin,
        r#"{"msisdn":"254700000001","service_code":"*123#"}"#,
    )
    .await;
    assert_eq!(push.status, 200, "{push:?}");
    assert!(push.body.contains(r#""dialogue":true"#), "{}", push.body);
    let record = json_line(&mut lines).await;
    assert_eq!(record["event"], "ended", "{record}");
    let screens = record["screens"].as_array().unwrap();
    assert_eq!(screens.len(), 4, "{record}");
    assert!(
        screens[0]["text"].as_str().unwrap().starts_with(HOME),
        "{record}"
    );
    assert_eq!(screens[0]["op"], 2, "opened with a USSR request: {record}");
    assert_eq!(
        record["came_on"],
        serde_json::json!(["gw1", "gw2", "gw2", "gw2"]),
        "{record}"
    );
    assert_eq!(screens[1]["op"], 2, "{record}");
    assert_eq!(screens[3]["op"], 3, "ended with a USSN by node 2: {record}");
    assert!(gw1.signal("TERM").success());
    assert!(gw2.signal("TERM").success());
}

/// An aggregator (node-smpp as the ESME) binds a receiver to node 1's listener and a
/// transmitter to node 2's, and submits a dialogue on the transmitter: node 2 takes each
/// message (it has no receiver of the peer, but the cluster has), and every screen comes back
/// on the receiver, through node 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_smpp_as_an_aggregator_split_over_two_nodes_listeners() {
    let redis = common::redis::Redis::standalone();
    let spawn_node = || {
        let sb = Sandbox::cluster_node(
            &[redis.url()],
            false,
            "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[smpp.listener]\nlisten = \"127.0.0.1:0\"\n[[smpp.listener.peers]]\nsystem_id = \"aggregator\"\npassword = \"pw\"\n",
        );
        let (gw, log) = sb.spawn_logged("info");
        (sb, gw, log)
    };
    let (_sb1, gw1, log1) = spawn_node();
    let (_sb2, gw2, log2) = spawn_node();
    let rx = log1
        .addr("SMPP listener listening")
        .await
        .port()
        .to_string();
    let tx = log2
        .addr("SMPP listener listening")
        .await
        .port()
        .to_string();
    let args = [
        &rx,
        &tx,
        "aggregator",
        "pw",
        "*123#",
        "254700000001",
        "1",
        "2",
        "98",
    ]
    .map(|s| s.to_string());
    let Some((_child, mut lines)) = node("esme_split.js", &args) else {
        return;
    };
    let record = json_line(&mut lines).await;
    assert_eq!(
        record["bound"],
        serde_json::json!([["receiver", 0], ["transmitter", 0]]),
        "{record}"
    );
    assert_eq!(
        record["submit_statuses"],
        serde_json::json!([0, 0, 0, 0]),
        "{record}"
    );
    let screens = record["screens"].as_array().unwrap();
    assert_eq!(screens.len(), 4, "{record}");
    assert!(texts(&record)[0].starts_with(HOME), "{record}");
    assert_eq!(screens[3]["end"], true, "{record}");
    assert_eq!(
        record["came_on"],
        serde_json::json!(["receiver", "receiver", "receiver", "receiver"]),
        "{record}"
    );
    assert!(gw1.signal("TERM").success());
    assert!(gw2.signal("TERM").success());
}
