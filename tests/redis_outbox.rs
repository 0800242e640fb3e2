//! Cluster mode's shared outbox (docs/cluster.md, "The outbox"), against real Redis servers the
//! test starts: each property holds on a standalone primary and on a Redis Cluster of three
//! primaries. Several handles play several gateway nodes (each a consumer of the group), their
//! senders deliver to a fake AT API. No sleeps: each test waits for what it expects to see,
//! with a deadline.

mod common;
mod outbox_fake;

use common::redis::Server;
use outbox_fake::{FakeAt, SMS};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use ussd_gateway::clock::now_ms;
use ussd_gateway::outbox::{AtConfig, Effect, Item, Status, spawn_sender};
use ussd_gateway::store::OutboxBackend;
use ussd_gateway::store::redis::{Redis as Client, RedisSettings};
use ussd_gateway::store::shared_outbox::SharedOutbox;

/// A new node's outbox: a connection and a consumer of its own.
async fn node(server: &Server, claim_timeout: Duration) -> SharedOutbox {
    SharedOutbox::open(server.client().await, claim_timeout)
        .await
        .unwrap()
}

/// Long enough never to fire in a test that does not wait for it.
const NEVER: Duration = Duration::from_secs(600);

struct Sender {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sender {
    fn start(outbox: &SharedOutbox, config: AtConfig) -> Sender {
        let (stop, rx) = watch::channel(false);
        Sender {
            task: spawn_sender(outbox.clone(), config, rx),
            stop,
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

fn sms(message: &str) -> Effect {
    Effect::Sms {
        to: "254711000001".into(),
        message: message.into(),
    }
}

/// Waits until `cond` holds, for at most `within`.
async fn wait_until<F: Future<Output = bool>>(what: &str, within: Duration, cond: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(outbox: &SharedOutbox, id: u64) -> Status {
    outbox.get(id).await.unwrap().unwrap().status
}

/// How many requests with this message the fake received.
fn received(fake: &FakeAt, message: &str) -> usize {
    fake.requests_to(SMS)
        .iter()
        .filter(|r| r.field("message") == Some(message))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_senders_racing_deliver_each_item_once() {
    for server in Server::both() {
        let at = server.name();
        let fake = FakeAt::start().await;
        let (a, b) = (node(&server, NEVER).await, node(&server, NEVER).await);
        assert_ne!(a.consumer(), b.consumer());
        let (sa, sb) = (
            Sender::start(&a, fake.config()),
            Sender::start(&b, fake.config()),
        );
        let mut ids = Vec::new();
        for i in 0..40 {
            let node = if i % 2 == 0 { &a } else { &b };
            ids.push(
                node.enqueue(sms(&format!("m{i}")), None, None)
                    .await
                    .unwrap(),
            );
        }
        wait_until("every item sent", Duration::from_secs(20), || async {
            for &id in &ids {
                if status(&a, id).await != Status::Sent {
                    return false;
                }
            }
            true
        })
        .await;
        sa.stop().await;
        sb.stop().await;
        for i in 0..40 {
            assert_eq!(received(&fake, &format!("m{i}")), 1, "{at}: m{i} sent once");
        }
        assert_eq!(fake.requests().len(), 40, "{at}");
        for &id in &ids {
            assert_eq!(a.get(id).await.unwrap().unwrap().attempts, 1, "{at}");
        }
        assert_eq!(
            a.unacknowledged().await.unwrap(),
            0,
            "{at}: every entry acknowledged"
        );
        let depth = a.promote_due(now_ms(), 10).await.unwrap();
        assert_eq!(
            (depth.ready, depth.later),
            (0, 0),
            "{at}: nothing left queued"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_items_are_taken_over_after_the_claim_timeout() {
    for server in Server::both() {
        let at = server.name();
        let fake = FakeAt::start().await;
        let claim_timeout = Duration::from_millis(1500);
        let dead = node(&server, claim_timeout).await;
        let live = node(&server, claim_timeout).await;
        let read_only = dead.enqueue(sms("read"), None, None).await.unwrap();
        let claimed = dead.enqueue(sms("claimed"), None, None).await.unwrap();

        // The node that dies read both entries, claimed one item (as its sender does, with a
        // lease past its request time) and never acknowledged either.
        // (Redis counts the claim timeout from the read, which is after `read_at`.)
        let read_at = now_ms();
        let entries = dead.read(10).await.unwrap();
        assert_eq!(entries.len(), 2, "{at}");
        let found = dead.fetch(&entries).await.unwrap();
        let (item, raw) = found
            .into_iter()
            .flatten()
            .find(|(i, _)| i.id == claimed)
            .unwrap();
        let lease_until = now_ms() + 3000;
        let mut taken = item.clone();
        taken.attempts = 1;
        taken.next_attempt_ms = lease_until;
        assert!(dead.claim(&raw, &taken).await.unwrap().is_some(), "{at}");
        drop(dead);

        let sender = Sender::start(&live, fake.config());
        wait_until(
            "both sent by the live node",
            Duration::from_secs(20),
            || async {
                status(&live, read_only).await == Status::Sent
                    && status(&live, claimed).await == Status::Sent
            },
        )
        .await;
        sender.stop().await;
        let first = |m: &str| {
            fake.requests_to(SMS)
                .iter()
                .find(|r| r.field("message") == Some(m))
                .unwrap()
                .at_ms
        };
        assert!(
            first("read") >= read_at + 1500,
            "{at}: an entry read by the dead node waits for the claim timeout"
        );
        assert!(
            first("claimed") >= lease_until,
            "{at}: an item the dead node claimed waits for its lease too"
        );
        assert_eq!(
            (received(&fake, "read"), received(&fake, "claimed")),
            (1, 1)
        );
        assert_eq!(
            live.get(claimed).await.unwrap().unwrap().attempts,
            2,
            "{at}: the dead node's attempt counts"
        );
        assert_eq!(live.unacknowledged().await.unwrap(), 0, "{at}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_waits_for_its_time_and_voided_items_are_never_sent() {
    for server in Server::both() {
        let at = server.name();
        let fake = FakeAt::start().await;
        let node = node(&server, NEVER).await;
        // Voided before any sender runs, and voided while waiting for its time.
        let voided_now = node.enqueue(sms("void-now"), None, None).await.unwrap();
        let soon = now_ms() + 3000;
        let voided_later = node
            .enqueue(sms("void-later"), Some(soon), None)
            .await
            .unwrap();
        for id in [voided_now, voided_later] {
            let void = |i: &mut Item| {
                i.status = Status::Voided;
                true
            };
            assert!(node.update(id, false, void).await.unwrap(), "{at}");
        }
        let not_before = now_ms() + 1500;
        let reminder = node
            .enqueue(sms("reminder"), Some(not_before), None)
            .await
            .unwrap();
        assert_eq!(node.promote_due(now_ms(), 10).await.unwrap().later, 2);

        let sender = Sender::start(&node, fake.config());
        wait_until("the reminder sent", Duration::from_secs(20), || async {
            status(&node, reminder).await == Status::Sent
        })
        .await;
        // Every entry is settled: the voided ones acknowledged and dropped.
        wait_until("nothing queued", Duration::from_secs(20), || async {
            let d = node.promote_due(now_ms(), 10).await.unwrap();
            (d.ready, d.later) == (0, 0) && node.unacknowledged().await.unwrap() == 0
        })
        .await;
        sender.stop().await;
        let sent = fake.requests_to(SMS);
        assert_eq!(sent.len(), 1, "{at}: only the reminder");
        assert_eq!(sent[0].field("message"), Some("reminder"));
        assert!(sent[0].at_ms >= not_before, "{at}: not before its time");
        for id in [voided_now, voided_later] {
            assert_eq!(status(&node, id).await, Status::Voided, "{at}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_sends_a_failed_item_again_and_purge_removes_only_old_finished_ones() {
    for server in Server::both() {
        let at = server.name();
        let fake = FakeAt::start().await;
        let node = node(&server, NEVER).await;
        let backend = OutboxBackend::from(node.clone());
        let now = now_ms();
        let make = |id: u64, status: Status, finished: Option<u64>| {
            let mut item = Item::new(id, sms(&format!("i{id}")), now - 10_000, None, None);
            item.status = status;
            item.finished_ms = finished;
            item.attempts = u32::from(finished.is_some()) * 5;
            item
        };
        let (failed, old_sent, new_sent) = (
            node.next_id().await.unwrap(),
            node.next_id().await.unwrap(),
            node.next_id().await.unwrap(),
        );
        let failure = Status::Failed {
            reason: "401".into(),
        };
        assert!(
            node.insert(&make(failed, failure, Some(now - 5000)))
                .await
                .unwrap()
        );
        assert!(
            !node
                .insert(&make(failed, Status::Sent, None))
                .await
                .unwrap(),
            "{at}: an id is written once"
        );
        assert!(
            node.insert(&make(old_sent, Status::Sent, Some(now - 9000)))
                .await
                .unwrap()
        );
        assert!(
            node.insert(&make(new_sent, Status::Sent, Some(now - 1000)))
                .await
                .unwrap()
        );
        let pending = backend
            .enqueue(sms("pending"), Some(now + 600_000), None)
            .await
            .unwrap();

        assert!(
            !backend.requeue(new_sent).await.unwrap(),
            "{at}: a sent item stays sent"
        );
        assert!(
            !backend.requeue(pending).await.unwrap(),
            "{at}: a pending one is queued"
        );
        assert!(backend.requeue(failed).await.unwrap(), "{at}");
        let sender = Sender::start(&node, fake.config());
        wait_until(
            "the re-queued item sent",
            Duration::from_secs(20),
            || async { status(&node, failed).await == Status::Sent },
        )
        .await;
        sender.stop().await;
        assert_eq!(received(&fake, &format!("i{failed}")), 1, "{at}");
        assert_eq!(node.get(failed).await.unwrap().unwrap().attempts, 1, "{at}");
        assert_eq!(fake.requests().len(), 1, "{at}: nothing else was sent");

        // The re-queued item finished just now; the old sent one 9 s ago, the other 1 s ago.
        assert_eq!(backend.purge_finished(now - 2000).await.unwrap(), 1, "{at}");
        let left: Vec<u64> = backend.list().await.unwrap().iter().map(|i| i.id).collect();
        assert_eq!(left, [failed, new_sent, pending], "{at}: oldest first");
        assert_eq!(backend.pending().await.unwrap().len(), 1, "{at}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_event_moved_by_several_nodes_becomes_one_item() {
    use ussd_gateway::store::shared_dialogues::{Begun, Ending, SharedDialogues, bucket};
    use ussd_gateway::store::shared_outbox::EndEvent;
    for server in Server::both() {
        let at = server.name();
        let (urls, cluster) = match &server {
            Server::Primary(r) => (vec![r.url()], false),
            Server::Cluster(c) => (c.urls(), true),
        };
        let dialogues = SharedDialogues::new(
            Client::connect(&RedisSettings {
                urls,
                cluster,
                timeout: Duration::from_secs(2),
                sentinel_master: None,
                credentials: Default::default(),
            })
            .await
            .unwrap(),
        );
        let nodes = [
            node(&server, NEVER).await,
            node(&server, NEVER).await,
            node(&server, NEVER).await,
        ];
        let mut keys = Vec::new();
        for i in 0..5 {
            let key = format!("at:ATUid_end{i}");
            let Begun::Absent(lease) = dialogues.begin(&key, None, 5000).await.unwrap() else {
                panic!("{at}: a new dialogue");
            };
            let event = serde_json::to_vec(&EndEvent {
                session: key.clone(),
                effect: Effect::Event {
                    url: "http://127.0.0.1:9/events".into(),
                    fields: vec![("sessionId".into(), key.clone())],
                },
            })
            .unwrap();
            let ending = Ending {
                tombstone: b"t",
                tombstone_ttl_ms: 60_000,
                record: b"{}",
                record_ttl_ms: 60_000,
                started_ms: 1000 + i,
                event: Some(&event),
                keep_lease: false,
            };
            assert!(dialogues.end(&key, &lease, &ending).await.unwrap(), "{at}");
            keys.push(key);
        }
        // The three nodes move every bucket's events at once, twice over (as after a crash
        // between a move and the removal from the bucket).
        let mut moves = Vec::new();
        for _ in 0..2 {
            for node in &nodes {
                for key in &keys {
                    let (node, dialogues, b) = (node.clone(), dialogues.clone(), bucket(key));
                    moves.push(tokio::spawn(async move {
                        node.move_waiting_events(&dialogues, b).await.unwrap()
                    }));
                }
            }
        }
        let mut new = 0;
        for m in moves {
            new += m.await.unwrap();
        }
        assert_eq!(new, 5, "{at}: each event moved in once");
        let items = nodes[0].items().await.unwrap();
        let mut sessions: Vec<&str> = items.iter().filter_map(|i| i.session.as_deref()).collect();
        sessions.sort();
        assert_eq!(
            sessions,
            keys.iter().map(String::as_str).collect::<Vec<_>>(),
            "{at}"
        );
        for key in &keys {
            assert!(
                dialogues
                    .waiting_events(bucket(key))
                    .await
                    .unwrap()
                    .is_empty(),
                "{at}: nothing left waiting"
            );
        }
        // Moved again after all (a mark outlives the event): still one item each.
        let record = SharedDialogues::end_record_key(&keys[0], 1000);
        let event = serde_json::to_vec(&EndEvent {
            session: keys[0].clone(),
            effect: Effect::Call {
                to: "254711000001".into(),
            },
        })
        .unwrap();
        let again = nodes[1]
            .move_end_event(&dialogues, bucket(&keys[0]), &record, &event)
            .await
            .unwrap();
        assert!(!again, "{at}");
        assert_eq!(nodes[0].items().await.unwrap().len(), 5, "{at}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_of_gone_nodes_leave_the_group_unless_they_left_entries() {
    for server in Server::both() {
        let at = server.name();
        let (gone, holding, me) = (
            node(&server, NEVER).await,
            node(&server, NEVER).await,
            node(&server, NEVER).await,
        );
        // A node joins the group when it first reads an entry; this one was done with its.
        gone.enqueue(sms("done"), None, None).await.unwrap();
        let done = gone.read(10).await.unwrap();
        assert_eq!(done.len(), 1, "{at}");
        gone.settle(&done[0], None).await.unwrap();
        gone.enqueue(sms("held"), None, None).await.unwrap();
        assert_eq!(holding.read(10).await.unwrap().len(), 1, "{at}");
        assert!(me.read(10).await.unwrap().is_empty(), "{at}");
        drop((gone, holding));
        // Nothing is idle for a day here: none goes.
        assert_eq!(me.forget_gone_consumers(NEVER).await.unwrap(), 0, "{at}");
        // The node that read nothing goes; the one holding an entry and this one stay.
        assert_eq!(
            me.forget_gone_consumers(Duration::ZERO).await.unwrap(),
            1,
            "{at}"
        );
        assert_eq!(
            me.forget_gone_consumers(Duration::ZERO).await.unwrap(),
            0,
            "{at}"
        );
        assert_eq!(
            me.unacknowledged().await.unwrap(),
            1,
            "{at}: the entry is still held"
        );
    }
}
