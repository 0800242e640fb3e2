//! A primary watched by Sentinel (`[store.redis] sentinel_master`, docs/cluster.md): the node
//! asks the Sentinel which server is the primary; when it dies and the Sentinel promotes its
//! replica, the node answers busy for a moment, then follows the new primary by itself, and
//! the dialogue goes on where it was (the replica had it).

mod common;

use common::redis::{Redis, Sentinel};
use common::{At, Sandbox};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_follows_the_primary_sentinel_promotes() {
    let mut primary = Redis::standalone();
    let replica = Redis::replica_of(&primary);
    let sentinel = Sentinel::watching(&primary);
    let sb = Sandbox::cluster_node(
        &[sentinel.url()],
        false,
        &format!(
            "sentinel_master = \"{}\"\ntimeout_ms = 300\n[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n",
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
