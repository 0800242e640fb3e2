//! Cluster mode's connection to Redis (docs/cluster.md), against real Redis servers the test
//! starts: a standalone primary and a Redis Cluster of three primaries.

mod common;

use common::Sandbox;
use common::redis::{Redis, RedisCluster};
use std::time::Duration;
use ussd_gateway::store::redis::{Credentials, Redis as Client, RedisError, RedisSettings};

fn settings(urls: Vec<String>, cluster: bool) -> RedisSettings {
    RedisSettings {
        urls,
        cluster,
        timeout: Duration::from_secs(2),
        sentinel_master: None,
        credentials: Default::default(),
    }
}

async fn set_get(client: &Client, key: &str) -> String {
    let _: () = client
        .query(redis::cmd("SET").arg(key).arg(format!("v-{key}")))
        .await
        .unwrap();
    client.query(redis::cmd("GET").arg(key)).await.unwrap()
}

/// A standalone primary and a three-primary Cluster both answer through one handle (keys of
/// every slot, in the Cluster), and both pass the durability check with `appendonly yes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_and_a_cluster_answer_and_keep_what_they_are_told() {
    let primary = Redis::standalone();
    let client = Client::connect(&settings(vec![primary.url()], false))
        .await
        .unwrap();
    assert_eq!(set_get(&client, "k1").await, "v-k1");
    client.check_durability(0).await.unwrap();

    let cluster = RedisCluster::start();
    let client = Client::connect(&settings(cluster.urls(), true))
        .await
        .unwrap();
    // Keys spread over the three primaries' slots.
    for key in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(set_get(&client, key).await, format!("v-{key}"));
    }
    let owners: std::collections::BTreeSet<u16> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|k| {
            cluster
                .nodes
                .iter()
                .find(|n| {
                    n.command(&["GET", k]).starts_with('$')
                        && !n.command(&["GET", k]).starts_with("$-1")
                })
                .map(|n| n.port)
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(
        owners.len(),
        3,
        "the keys live on all three primaries: {owners:?}"
    );
    client.check_durability(0).await.unwrap();
}

/// A primary that does not write its changes to disk is refused when no replica is awaited,
/// with what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_without_appendonly_is_not_durable() {
    let primary = Redis::standalone();
    assert_eq!(
        primary.command(&["CONFIG", "SET", "appendonly", "no"]),
        "+OK\r\n"
    );
    let client = Client::connect(&settings(vec![primary.url()], false))
        .await
        .unwrap();
    match client.check_durability(0).await {
        Err(RedisError::NotDurable(why)) => assert!(why.contains("appendonly yes"), "{why}"),
        other => panic!("expected NotDurable, got {other:?}"),
    }
    // With replicas acknowledging each write, the primary's own file is not the promise.
    client.check_durability(1).await.unwrap();
}

/// `check` refuses Redis settings that cannot work, naming the key.
#[test]
fn check_refuses_bad_redis_settings() {
    for (redis, why) in [
        ("urls = []", "store.redis.urls must name at least one Redis"),
        (
            "urls = [\"http://x\"]",
            "is not a redis://, rediss:// or redis+unix:// URL",
        ),
        (
            "urls = [\"redis+unix:///run/redis.sock\"]\ncluster = true",
            "a Unix socket (redis+unix://) reaches one Redis on this machine",
        ),
        (
            "urls = [\"redis://a:1\", \"redis://b:1\"]",
            "set store.redis.cluster = true",
        ),
        (
            "timeout_ms = 0",
            "store.redis.timeout_ms must be between 1 and 60000",
        ),
        (
            "cluster = true\nsentinel_master = \"gateway\"",
            "a Redis Cluster fails over by itself",
        ),
        (
            "sentinel_master = \"\"",
            "store.redis.sentinel_master must be the name given to `sentinel monitor`",
        ),
    ] {
        let sb = Sandbox::new(&format!("[store.redis]\n{redis}\n"), &[]);
        let path = sb.config_path();
        let toml = std::fs::read_to_string(&path)
            .unwrap()
            .replace("[store]\n", "[store]\nbackend = \"redis\"\n");
        std::fs::write(&path, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{redis}: {err}");
        assert!(err.contains(why), "{redis}: {err}");
    }
}

/// `serve` with `backend = "redis"` refuses to start on a Redis it cannot reach or that would
/// forget, saying which (tests/cluster_apps.rs starts nodes on a good one).
#[test]
fn serve_refuses_an_unreachable_or_forgetful_redis() {
    let serve = |url: &str| {
        let sb = Sandbox::new(
            &format!("[store.redis]\nurls = [\"{url}\"]\ntimeout_ms = 500\n"),
            &[],
        );
        let path = sb.config_path();
        let toml = std::fs::read_to_string(&path)
            .unwrap()
            .replace("[store]\n", "[store]\nbackend = \"redis\"\n");
        std::fs::write(&path, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, err) = serve(&format!("redis://{closed}"));
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains(&format!("[store.redis] redis://{closed}")),
        "{err}"
    );

    let primary = Redis::standalone();
    primary.command(&["CONFIG", "SET", "appendonly", "no"]);
    let (code, err) = serve(&primary.url());
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("set `appendonly yes`"), "{err}");
}

/// A Cluster whose nodes ask for a password: the node logs in to every one of them with
/// `[store.redis] password` (keys of every node's slots), and without it cannot connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_a_password_is_logged_in_to() {
    let cluster = RedisCluster::with_password("cluster-pw-123");
    let with = RedisSettings {
        credentials: Credentials {
            username: None,
            password: Some("cluster-pw-123".into()),
        },
        ..settings(cluster.urls(), true)
    };
    let client = Client::connect(&with).await.unwrap();
    for key in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(set_get(&client, key).await, format!("v-{key}"));
    }
    client.check_durability(0).await.unwrap();
    let without = Client::connect(&settings(cluster.urls(), true)).await;
    assert!(without.is_err(), "connected without the password");
}
