//! Cluster mode's shared dialogues (docs/cluster.md, "One hop on any node"), against real Redis
//! servers the test starts: each property holds on a standalone primary and on a Redis
//! Cluster of three primaries. Several handles play several gateway nodes.

mod common;

use common::redis::Server;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use ussd_gateway::store::shared_dialogues::{
    Begun, Claimed, Ending, Lease, SharedDialogues, next_version,
};

/// A new node's handle: a connection of its own.
async fn node(server: &Server) -> SharedDialogues {
    SharedDialogues::new(server.client().await)
}

const LEASE_MS: u64 = 5_000;

fn leased(begun: Begun) -> Lease {
    match begun {
        Begun::Absent(l) | Begun::Current(l) | Begun::Live(l, _) | Begun::Ended(l, _) => l,
        Begun::Busy => panic!("the dialogue is leased by another node"),
    }
}

/// A dialogue's life across two nodes: begun where nothing is kept, committed, continued on
/// the other node (which has no copy, so gets the state), ended there; a retry after the end
/// finds the tombstone, and the end record is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_moves_between_nodes_and_ends_once() {
    for server in Server::both() {
        let (a, b) = (node(&server).await, node(&server).await);
        let at = server.name();
        let key = "at:ATUid_move";

        let lease = match a.begin(key, None, LEASE_MS).await.unwrap() {
            Begun::Absent(l) => l,
            other => panic!("{at}: a new key is absent, got {other:?}"),
        };
        assert_eq!(
            b.begin(key, None, LEASE_MS).await.unwrap(),
            Begun::Busy,
            "{at}: while node A answers, node B waits"
        );
        let before = next_version(0);
        let v1 = a
            .commit(key, &lease, b"hop 1", u64::MAX / 2)
            .await
            .unwrap()
            .expect("written");
        assert!(
            (before..=next_version(0)).contains(&v1),
            "{at}: a new dialogue's first version is made from the time"
        );

        // Node A still holds version 1: current. Node B has no copy: it gets the state.
        let again = a.begin(key, Some(v1), LEASE_MS).await.unwrap();
        assert!(
            matches!(again, Begun::Current(ref l) if l.version == v1),
            "{at}: {again:?}"
        );
        a.release(key, &leased(again)).await.unwrap();
        let lease = match b.begin(key, None, LEASE_MS).await.unwrap() {
            Begun::Live(l, state) => {
                assert_eq!(state, b"hop 1", "{at}");
                l
            }
            other => panic!("{at}: node B gets the state, got {other:?}"),
        };
        assert_eq!(
            b.commit(key, &lease, b"hop 2", u64::MAX / 2).await.unwrap(),
            Some(v1 + 1)
        );
        // Node A's copy (version 1) is stale now: it gets version 2.
        let lease = match a.begin(key, Some(v1), LEASE_MS).await.unwrap() {
            Begun::Live(l, state) => {
                assert_eq!(
                    (l.version, state.as_slice()),
                    (v1 + 1, &b"hop 2"[..]),
                    "{at}"
                );
                l
            }
            other => panic!("{at}: a stale copy is refreshed, got {other:?}"),
        };
        let ending = Ending {
            tombstone: b"END bye",
            tombstone_ttl_ms: 60_000,
            record: b"{\"reason\":\"end\"}",
            record_ttl_ms: 86_400_000,
            started_ms: 1_700_000_000_000,
            event: Some(b"event"),
            keep_lease: false,
        };
        assert!(a.end(key, &lease, &ending).await.unwrap(), "{at}");
        match b.begin(key, None, LEASE_MS).await.unwrap() {
            Begun::Ended(l, tomb) => {
                assert_eq!(tomb, b"END bye", "{at}");
                b.release(key, &l).await.unwrap();
            }
            other => panic!("{at}: after the end, the tombstone, got {other:?}"),
        }
        assert_eq!(
            b.end_record(key, 1_700_000_000_000)
                .await
                .unwrap()
                .as_deref(),
            Some(&b"{\"reason\":\"end\"}"[..]),
            "{at}"
        );
        let bucket = ussd_gateway::store::shared_dialogues::bucket(key);
        let events = b.waiting_events(bucket).await.unwrap();
        assert_eq!(events.len(), 1, "{at}: one end event waits for the outbox");
        assert_eq!(events[0].1, b"event");
        b.forget_event(bucket, &events[0].0).await.unwrap();
        assert!(b.waiting_events(bucket).await.unwrap().is_empty(), "{at}");
    }
}

/// A node whose lease expired (it stalled past its hop's deadline) cannot write over the node
/// that took the dialogue after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_writes_nothing() {
    for server in Server::both() {
        let (a, b) = (node(&server).await, node(&server).await);
        let at = server.name();
        let key = "at:ATUid_stall";
        let stalled = leased(a.begin(key, None, 50).await.unwrap());
        let until = std::time::Instant::now() + Duration::from_secs(5);
        let taken = loop {
            match b.begin(key, None, LEASE_MS).await.unwrap() {
                Begun::Busy => {
                    assert!(std::time::Instant::now() < until, "{at}: the lease expires");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                begun => break leased(begun),
            }
        };
        let kept = b
            .commit(key, &taken, b"B's hop", u64::MAX / 2)
            .await
            .unwrap()
            .expect("written");
        assert_eq!(
            a.commit(key, &stalled, b"A's late hop", u64::MAX / 2)
                .await
                .unwrap(),
            None,
            "{at}: the stalled node's write is refused"
        );
        let ending = Ending {
            tombstone: b"x",
            tombstone_ttl_ms: 1000,
            record: b"x",
            record_ttl_ms: 1000,
            started_ms: 1,
            event: None,
            keep_lease: false,
        };
        assert!(!a.end(key, &stalled, &ending).await.unwrap(), "{at}");
        match a.begin(key, None, LEASE_MS).await.unwrap() {
            Begun::Live(l, state) => {
                assert_eq!((l.version, state.as_slice()), (kept, &b"B's hop"[..]))
            }
            other => panic!("{at}: B's hop is kept, got {other:?}"),
        }
    }
}

/// Three nodes race hops of one dialogue: every hop that a node committed is applied exactly
/// once and in order (no update lost, none applied twice), whatever node answered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_nodes_never_both_apply_a_hop() {
    for server in Server::both() {
        let at = server.name();
        let key = format!("at:ATUid_race_{at}");
        let committed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let node = node(&server).await;
            let (key, committed) = (key.clone(), committed.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = 0;
                let until = std::time::Instant::now() + Duration::from_secs(20);
                while mine < 20 {
                    assert!(std::time::Instant::now() < until, "hops go through");
                    let (lease, count) = match node.begin(&key, None, LEASE_MS).await.unwrap() {
                        Begun::Busy => {
                            tokio::task::yield_now().await;
                            continue;
                        }
                        Begun::Absent(l) => (l, 0u64),
                        Begun::Live(l, state) => {
                            // "count previous": the version the hop was answered on.
                            let state = String::from_utf8(state).unwrap();
                            let (count, previous) = state.split_once(' ').unwrap();
                            let previous: u64 = previous.parse().unwrap();
                            if previous > 0 {
                                assert_eq!(
                                    l.version,
                                    next_version(previous),
                                    "each version follows the one its hop was answered on"
                                );
                            }
                            (l, count.parse().unwrap())
                        }
                        other => panic!("unexpected {other:?}"),
                    };
                    let next = format!("{} {}", count + 1, lease.version);
                    if node
                        .commit(&key, &lease, next.as_bytes(), u64::MAX / 2)
                        .await
                        .unwrap()
                        .is_some()
                    {
                        mine += 1;
                        committed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let node = node(&server).await;
        match node.begin(&key, None, LEASE_MS).await.unwrap() {
            Begun::Live(l, state) => {
                let state = String::from_utf8(state).unwrap();
                let (count, previous) = state.split_once(' ').unwrap();
                assert_eq!(count, "60", "{at}: 60 hops, each applied once");
                assert_eq!(l.version, next_version(previous.parse().unwrap()), "{at}");
            }
            other => panic!("{at}: {other:?}"),
        }
        assert_eq!(committed.load(Ordering::SeqCst), 60);
    }
}

/// The sweep: a dialogue idle past its deadline is listed as due and ended by exactly one of
/// the nodes that race to claim it; one whose deadline a hop moved is not claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_dialogue_is_claimed_by_one_node() {
    for server in Server::both() {
        let at = server.name();
        let nodes = [
            node(&server).await,
            node(&server).await,
            node(&server).await,
        ];
        let (idle, busy) = ("at:ATUid_idle", "at:ATUid_fresh");
        let l = leased(nodes[0].begin(idle, None, LEASE_MS).await.unwrap());
        nodes[0]
            .commit(idle, &l, b"idle", 1_000)
            .await
            .unwrap()
            .unwrap();
        let l = leased(nodes[0].begin(busy, None, LEASE_MS).await.unwrap());
        nodes[0]
            .commit(busy, &l, b"fresh", 5_000)
            .await
            .unwrap()
            .unwrap();

        let due = nodes[1].due(2_000, 100).await.unwrap();
        assert_eq!(
            due,
            vec![idle.to_string()],
            "{at}: only the idle one is due at 2 s"
        );

        let claims = futures_util::future::join_all(
            nodes.iter().map(|n| n.claim_due(idle, 2_000, LEASE_MS)),
        )
        .await;
        let won: Vec<Lease> = claims
            .into_iter()
            .filter_map(|c| match c.unwrap() {
                Claimed::Due(l, state) => {
                    assert_eq!(state, b"idle");
                    Some(l)
                }
                Claimed::NotDue => None,
            })
            .collect();
        assert_eq!(
            won.len(),
            1,
            "{at}: exactly one node ends the idle dialogue"
        );
        let ending = Ending {
            tombstone: b"END timed out",
            tombstone_ttl_ms: 60_000,
            record: b"{}",
            record_ttl_ms: 60_000,
            started_ms: 7,
            event: None,
            keep_lease: false,
        };
        assert!(nodes[2].end(idle, &won[0], &ending).await.unwrap(), "{at}");
        assert!(
            nodes[1].due(10_000, 100).await.unwrap() == vec![busy.to_string()],
            "{at}"
        );
        assert_eq!(
            nodes[1].claim_due(busy, 2_000, LEASE_MS).await.unwrap(),
            Claimed::NotDue,
            "{at}: not due before its deadline"
        );
    }
}

/// Writes on a guess (docs/cluster.md, "One round trip for most hops"): a right guess writes
/// in one call; a wrong one writes nothing and begins instead (the lease taken, the current
/// state handed back), so the node answers the hop again on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_wrong_guess_writes_nothing_and_begins() {
    use ussd_gateway::store::shared_dialogues::Guessed;
    for server in Server::both() {
        let (a, b) = (node(&server).await, node(&server).await);
        let at = server.name();
        let key = "smpp:op:guess";

        // A dial on node A: nothing is kept, as guessed.
        let v1 = match a
            .keep_if(key, 0, b"hop 1", u64::MAX / 2, LEASE_MS)
            .await
            .unwrap()
        {
            Guessed::Done(v) => v,
            other => panic!("{at}: nothing was kept, got {other:?}"),
        };
        // The same dial retried on node B, guessing nothing is kept: wrong, it gets version 1
        // and the lease.
        let lease = match b
            .keep_if(key, 0, b"hop 1 again", u64::MAX / 2, LEASE_MS)
            .await
            .unwrap()
        {
            Guessed::Wrong(Begun::Live(l, state)) => {
                assert_eq!((l.version, state.as_slice()), (v1, &b"hop 1"[..]), "{at}");
                l
            }
            other => panic!("{at}: a wrong guess begins, got {other:?}"),
        };
        // While B holds the lease, A's right guess of version 1 must not write.
        assert_eq!(
            a.keep_if(key, v1, b"hop 2 on A", u64::MAX / 2, LEASE_MS)
                .await
                .unwrap(),
            Guessed::Wrong(Begun::Busy),
            "{at}: a leased dialogue is never written on a guess"
        );
        assert_eq!(
            b.commit(key, &lease, b"hop 2", u64::MAX / 2).await.unwrap(),
            Some(v1 + 1)
        );
        // A guesses its stale version 1: it gets version 2, leased.
        let lease = match a
            .keep_if(key, v1, b"hop 3 on a stale copy", u64::MAX / 2, LEASE_MS)
            .await
            .unwrap()
        {
            Guessed::Wrong(Begun::Live(l, state)) => {
                assert_eq!(
                    (l.version, state.as_slice()),
                    (v1 + 1, &b"hop 2"[..]),
                    "{at}"
                );
                l
            }
            other => panic!("{at}: a stale guess gets the current state, got {other:?}"),
        };
        a.release(key, &lease).await.unwrap();
        // B's copy is current: its end on a guess is done at once.
        let ending = Ending {
            tombstone: b"END bye",
            tombstone_ttl_ms: 60_000,
            record: b"{\"reason\":\"end\"}",
            record_ttl_ms: 86_400_000,
            started_ms: 1_700_000_000_001,
            event: None,
            keep_lease: false,
        };
        assert_eq!(
            b.end_if(key, v1 + 1, &ending, LEASE_MS).await.unwrap(),
            Guessed::Done(0),
            "{at}"
        );
        assert_eq!(
            b.end_record(key, 1_700_000_000_001)
                .await
                .unwrap()
                .as_deref(),
            Some(&b"{\"reason\":\"end\"}"[..]),
            "{at}"
        );
        // A dial guessing nothing is kept finds the tombstone: nothing written.
        match a.end_if(key, 0, &ending, LEASE_MS).await.unwrap() {
            Guessed::Wrong(Begun::Ended(l, tomb)) => {
                assert_eq!(tomb, b"END bye", "{at}");
                a.release(key, &l).await.unwrap();
            }
            other => panic!("{at}: the tombstone is kept, got {other:?}"),
        }
        // A wrong guess holds the lease it took until it lets it go.
        assert!(
            matches!(
                a.keep_if(key, 0, b"new", u64::MAX / 2, LEASE_MS)
                    .await
                    .unwrap(),
                Guessed::Wrong(Begun::Ended(..))
            ),
            "{at}"
        );
        assert_eq!(
            b.begin(key, None, LEASE_MS).await.unwrap(),
            Begun::Busy,
            "{at}"
        );
    }
}

/// A session key comes round again (SMPP session numbers do): the new dialogue's versions never
/// repeat the old one's, so a node still holding a copy of the old one cannot take it for the
/// new one's current state, with a lease or on a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_key_never_repeats_an_earlier_dialogues_versions() {
    use ussd_gateway::store::shared_dialogues::Guessed;
    for server in Server::both() {
        let (a, b) = (node(&server).await, node(&server).await);
        let at = server.name();
        let key = "smpp:op:7";
        let lease = leased(b.begin(key, None, LEASE_MS).await.unwrap());
        let old = b
            .commit(key, &lease, b"old", u64::MAX / 2)
            .await
            .unwrap()
            .unwrap();
        let lease = leased(b.begin(key, Some(old), LEASE_MS).await.unwrap());
        let ending = Ending {
            tombstone: b"END old",
            tombstone_ttl_ms: 1,
            record: b"{}",
            record_ttl_ms: 60_000,
            started_ms: 1,
            event: None,
            keep_lease: false,
        };
        assert!(b.end(key, &lease, &ending).await.unwrap(), "{at}");
        // Once the tombstone is gone, a new dialogue under the key, as far as the old one got.
        let lease = loop {
            match b.begin(key, None, LEASE_MS).await.unwrap() {
                Begun::Absent(l) => break l,
                Begun::Ended(l, _) => {
                    b.release(key, &l).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                other => panic!("{at}: {other:?}"),
            }
        };
        let new = b
            .commit(key, &lease, b"new", u64::MAX / 2)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(new, old, "{at}");
        // Node A still holds the old dialogue at `old`: neither path takes it for current.
        match a
            .keep_if(key, old, b"stale", u64::MAX / 2, LEASE_MS)
            .await
            .unwrap()
        {
            Guessed::Wrong(Begun::Live(l, state)) => {
                assert_eq!((l.version, state.as_slice()), (new, &b"new"[..]), "{at}");
                a.release(key, &l).await.unwrap();
            }
            other => panic!("{at}: the new dialogue is handed back, got {other:?}"),
        }
        match a.begin(key, Some(old), LEASE_MS).await.unwrap() {
            Begun::Live(l, state) => assert_eq!(state, b"new", "{at}: {l:?}"),
            other => panic!("{at}: the old copy is not current, got {other:?}"),
        }
    }
}
