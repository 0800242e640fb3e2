//! A primary watched by Sentinel (`[store.redis] sentinel_master`, docs/cluster.md): the node
//! asks the Sentinel which server is the primary; when it dies and the Sentinel promotes its
//! replica, the node answers busy for a moment, then follows the new primary by itself, and
//! the dialogue goes on where it was (the replica had it). With a password on the servers
//! (`[store.redis] password`) the same, and a node without it does not start.

mod common;

use common::redis::{Redis, Sentinel};
use common::{At, Sandbox};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_follows_the_primary_sentinel_promotes() {
    follows_the_failover(None).await;
}

/// The servers ask for a password, which the node has in `[store.redis] password` (the
/// Sentinel's URL has none): it logs in to the primary the Sentinel names, and to the replica
/// promoted after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_follows_the_failover_of_servers_with_a_password() {
    follows_the_failover(Some("s3cret-redis-pw")).await;
}

async fn follows_the_failover(password: Option<&str>) {
    let mut primary = match password {
        Some(pw) => Redis::with_password(pw),
        None => Redis::standalone(),
    };
    let replica = Redis::replica_of(&primary);
    let sentinel = Sentinel::watching(&primary);
    let auth = password
        .map(|pw| format!("password = \"{pw}\"\n"))
        .unwrap_or_default();
    let sb = Sandbox::cluster_node(
        &[sentinel.url()],
        false,
        &format!(
            "sentinel_master = \"{}\"\ntimeout_ms = 300\n{auth}[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n",
            Sentinel::MASTER
        ),
    );
    let busy = sb.config().limits.busy_text;
    let gw = sb.spawn();
    let at = At::new(gw.public);
    let amina = "+254700000001";
    let home = at.hop("failover", "*123#", amina, "").await;
    assert!(
        home.starts_with("CON Welcome to UniConnect, Amina"),
        "{home}"
    );

    // The replica has the dialogue; then the primary dies.
    let until = Instant::now() + Duration::from_secs(10);
    while !replica.caught_up_with(&primary) {
        assert!(Instant::now() < until, "the replica did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    primary.kill();
    let until = Instant::now() + Duration::from_secs(20);
    while sentinel.primary_port() != Some(replica.port) {
        assert!(
            Instant::now() < until,
            "the Sentinel did not promote the replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Busy at most for a moment, then the dialogue's next screen from the new primary.
    let results = "CON View Results\n1. Current Term\n2. Previous Terms";
    let until = Instant::now() + Duration::from_secs(10);
    let mut busy_answers = 0;
    loop {
        let a = at.hop("failover", "*123#", amina, "1").await;
        if a == results {
            break;
        }
        assert_eq!(
            a,
            format!("END {busy}"),
            "busy while the node finds the primary"
        );
        busy_answers += 1;
        assert!(
            Instant::now() < until,
            "the node did not follow the new primary"
        );
        // A busy answer leaves the dialogue as it was: the aggregator's retry is the same hop.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next hop goes on from there, on the new primary.
    let term = at.hop("failover", "*123#", amina, "1*1").await;
    assert!(
        term.starts_with("END Current Term Results:"),
        "{term} (after {busy_answers} busy)"
    );
    assert!(
        replica.command(&["ROLE"]).contains("master"),
        "the replica is the primary now"
    );
}

/// A primary that asks for a password: a node with it answers; a node without it, or with a
/// wrong one, does not start, and says why without showing the password of a URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_used_and_a_missing_one_stops_the_start() {
    let primary = Redis::with_password("s3cret-redis-pw");
    let routes = "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n";
    let sb = Sandbox::cluster_node(
        &[primary.url()],
        false,
        &format!("password = \"s3cret-redis-pw\"\n{routes}"),
    );
    let gw = sb.spawn();
    let home = At::new(gw.public)
        .hop("pw", "*123#", "+254700000001", "")
        .await;
    assert!(home.starts_with("CON Welcome to UniConnect"), "{home}");
    drop(gw);
    for (urls, extra) in [
        (vec![primary.url()], String::new()),
        (
            vec![format!("redis://:wrong-pw@127.0.0.1:{}", primary.port)],
            String::new(),
        ),
    ] {
        let sb = Sandbox::cluster_node(&urls, false, &format!("{extra}{routes}"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(["serve", "--config"])
            .arg(sb.config_path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started without the password: {err}");
        assert!(err.contains("[store.redis]"), "{err}");
        assert!(
            err.to_lowercase().contains("auth") || err.contains("NOAUTH"),
            "says it is about authentication: {err}"
        );
        assert!(
            !err.contains("wrong-pw"),
            "the URL's password is not shown: {err}"
        );
    }
}
