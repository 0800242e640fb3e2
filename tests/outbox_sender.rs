//! The background sender against a fake AT API: delivery, retries, permanent failures,
//! reminders, restarts and the not-configured account. No sleeps: the store is polled for the
//! expected state with a deadline.

mod outbox_fake;

use outbox_fake::{AIRTIME, CALL, FakeAt, Reply, SMS, item, wait_for};
use tokio::sync::watch;
use ussd_gateway::clock::now_ms;
use ussd_gateway::outbox::{self, AtConfig, Effect, Status, enqueue, spawn_sender};
use ussd_gateway::store::Store;

fn sms(to: &str, message: &str) -> Effect {
    Effect::Sms {
        to: to.into(),
        message: message.into(),
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(store: &Store, config: AtConfig) -> Running {
        let (stop, rx) = watch::channel(false);
        Running {
            task: spawn_sender(store.clone(), config, rx),
            stop,
        }
    }
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

fn sent(store: &Store, id: u64) -> bool {
    item(store, id).status == Status::Sent
}

fn finished(store: &Store, id: u64) -> bool {
    item(store, id).status != Status::Pending
}

#[tokio::test]
async fn every_kind_is_delivered_and_recorded() {
    let fake = FakeAt::start().await;
    let store = Store::temporary().unwrap();
    let sender = Running::start(&store, fake.config());
    let a = enqueue(
        &store,
        sms("254711000001", "hello"),
        None,
        Some("s1".into()),
    )
    .unwrap();
    let b = enqueue(
        &store,
        Effect::Airtime {
            to: "254711000002".into(),
            currency: "KES".into(),
            amount_cents: 5000,
        },
        None,
        None,
    )
    .unwrap();
    let c = enqueue(
        &store,
        Effect::Call {
            to: "254711000003".into(),
        },
        None,
        None,
    )
    .unwrap();
    wait_for("all three sent", || {
        [a, b, c].iter().all(|&id| sent(&store, id))
    })
    .await;
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.requests_to(SMS)[0].field("message"), Some("hello"));
    assert_eq!(
        fake.requests_to(AIRTIME)[0].header("idempotency-key"),
        Some(format!("outbox-{b}").as_str())
    );
    assert_eq!(fake.requests_to(CALL)[0].field("to"), Some("+254711000003"));
    let done = item(&store, a);
    assert_eq!(done.attempts, 1);
    assert!(done.detail.unwrap().contains("ATXid_1"));
    assert!(done.finished_ms.is_some());
    assert_eq!(done.session.as_deref(), Some("s1"));
    assert!(outbox::pending(&store).unwrap().is_empty());
    assert_eq!(outbox::list(&store).unwrap().len(), 3);
    sender.stop().await;
}

#[tokio::test]
async fn transient_failures_are_retried_until_sent() {
    let fake = FakeAt::start().await;
    fake.script(
        SMS,
        [
            Reply::Raw(500, "busy"),
            Reply::Hang,
            Reply::RetryAfter(429, 0),
        ],
    );
    let store = Store::temporary().unwrap();
    let sender = Running::start(&store, fake.config());
    let id = enqueue(&store, sms("254711000001", "retry me"), None, None).unwrap();
    wait_for("sent after retries", || sent(&store, id)).await;
    let it = item(&store, id);
    assert_eq!(it.attempts, 4);
    assert!(it.last_error.unwrap().contains("429"));
    assert_eq!(fake.requests_to(SMS).len(), 4);
    sender.stop().await;
}

#[tokio::test]
async fn permanent_failures_are_recorded_and_not_retried() {
    let fake = FakeAt::start().await;
    fake.script(
        SMS,
        [Reply::Raw(401, "The supplied authentication is invalid")],
    );
    fake.script(
        CALL,
        [Reply::Raw(
            201,
            r#"{"entries":[{"phoneNumber":"+254711000002","status":"InvalidPhoneNumber"}],"errorMessage":"None"}"#,
        )],
    );
    let store = Store::temporary().unwrap();
    let sender = Running::start(&store, fake.config());
    let bad_key = enqueue(&store, sms("254711000001", "x"), None, None).unwrap();
    let rejected = enqueue(
        &store,
        Effect::Call {
            to: "254711000002".into(),
        },
        None,
        None,
    )
    .unwrap();
    wait_for("both failed", || {
        finished(&store, bad_key) && finished(&store, rejected)
    })
    .await;
    match item(&store, bad_key).status {
        Status::Failed { reason } => assert!(reason.contains("401"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match item(&store, rejected).status {
        Status::Failed { reason } => assert!(reason.contains("InvalidPhoneNumber"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A later item goes through (the script is used up): a barrier showing the sender kept
    // working, and the failed ones were not tried again meanwhile.
    let later = enqueue(&store, sms("254711000003", "later"), None, None).unwrap();
    wait_for("later sent", || sent(&store, later)).await;
    assert_eq!(fake.requests_to(SMS).len(), 2);
    assert_eq!(fake.requests_to(CALL).len(), 1);
    assert_eq!(item(&store, bad_key).attempts, 1);
    sender.stop().await;
}

#[tokio::test]
async fn transient_failures_give_up_after_max_attempts() {
    let fake = FakeAt::start().await;
    fake.script(
        AIRTIME,
        std::iter::repeat_n(Reply::Raw(502, "bad gateway"), 10),
    );
    let mut config = fake.config();
    config.retry.max_attempts = 3;
    let store = Store::temporary().unwrap();
    let sender = Running::start(&store, config);
    let id = enqueue(
        &store,
        Effect::Airtime {
            to: "254711000001".into(),
            currency: "KES".into(),
            amount_cents: 1000,
        },
        None,
        None,
    )
    .unwrap();
    wait_for("given up", || finished(&store, id)).await;
    match item(&store, id).status {
        Status::Failed { reason } => {
            assert!(reason.starts_with("gave up after 3 attempts"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests_to(AIRTIME).len(), 3);
    // Every attempt carried the same idempotency key.
    let key = format!("outbox-{id}");
    assert!(
        fake.requests_to(AIRTIME)
            .iter()
            .all(|r| r.header("idempotency-key") == Some(key.as_str()))
    );
    sender.stop().await;
}

#[tokio::test]
async fn a_reminder_waits_for_its_time() {
    let fake = FakeAt::start().await;
    let store = Store::temporary().unwrap();
    let mut config = fake.config();
    config.concurrency = 1;
    let sender = Running::start(&store, config);
    let now = enqueue(&store, sms("254711000003", "now"), None, None).unwrap();
    // Far in the future: still pending after a later, immediate item went out.
    let far = enqueue(
        &store,
        sms("254711000001", "next week"),
        Some(now_ms() + 3_600_000),
        None,
    )
    .unwrap();
    let soon_at = now_ms() + 300;
    let soon = enqueue(&store, sms("254711000002", "soon"), Some(soon_at), None).unwrap();
    wait_for("now and soon sent", || {
        sent(&store, now) && sent(&store, soon)
    })
    .await;
    let reqs = fake.requests_to(SMS);
    let order: Vec<_> = reqs.iter().map(|r| r.field("message").unwrap()).collect();
    assert_eq!(order, ["now", "soon"]);
    assert!(reqs[1].at_ms >= soon_at, "sent before its not-before time");
    let waiting = item(&store, far);
    assert_eq!(waiting.status, Status::Pending);
    assert_eq!(waiting.attempts, 0);
    assert_eq!(outbox::pending(&store).unwrap().len(), 1);
    sender.stop().await;
}

#[tokio::test]
async fn the_outbox_survives_a_restart_and_delivers_exactly_once() {
    let fake = FakeAt::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (first, second) = {
        let store = Store::open(&path, 8, 50).unwrap();
        let sender = Running::start(&store, fake.config());
        let first = enqueue(&store, sms("254711000001", "before restart"), None, None).unwrap();
        wait_for("first sent", || sent(&store, first)).await;
        sender.stop().await;
        // Written while no sender runs (as after a crash), one of them a reminder.
        let second = [
            enqueue(&store, sms("254711000002", "while down"), None, None).unwrap(),
            enqueue(
                &store,
                Effect::Call {
                    to: "254711000003".into(),
                },
                None,
                None,
            )
            .unwrap(),
            enqueue(
                &store,
                sms("254711000004", "reminder"),
                Some(now_ms() + 200),
                None,
            )
            .unwrap(),
        ];
        store.flush().await.unwrap();
        (first, second)
    };
    assert_eq!(fake.requests().len(), 1);
    let store = Store::open(&path, 8, 50).unwrap();
    assert_eq!(outbox::pending(&store).unwrap().len(), 3);
    let sender = Running::start(&store, fake.config());
    wait_for("all sent after restart", || {
        second.iter().all(|&id| sent(&store, id))
    })
    .await;
    // A barrier: one more item, so a stray second delivery would have had its chance.
    let last = enqueue(&store, sms("254711000005", "last"), None, None).unwrap();
    wait_for("last sent", || sent(&store, last)).await;
    let mut messages: Vec<_> = fake
        .requests_to(SMS)
        .iter()
        .map(|r| r.field("message").unwrap().to_string())
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        ["before restart", "last", "reminder", "while down"]
    );
    assert_eq!(fake.requests_to(CALL).len(), 1);
    assert_eq!(item(&store, first).attempts, 1);
    sender.stop().await;
}

#[tokio::test]
async fn an_answer_lost_to_a_crash_means_the_item_is_sent_again() {
    let fake = FakeAt::start().await;
    fake.script(CALL, [Reply::Hang]);
    let store = Store::temporary().unwrap();
    let mut config = fake.config();
    config.request_timeout_ms = 1_000;
    let (_stop, rx) = watch::channel(false);
    let crashed = spawn_sender(store.clone(), config, rx);
    let id = enqueue(
        &store,
        Effect::Call {
            to: "254711000001".into(),
        },
        None,
        None,
    )
    .unwrap();
    wait_for("the call in flight", || fake.requests_to(CALL).len() == 1).await;
    crashed.abort(); // the process dies mid-request: the claim is all that is left
    let _ = crashed.await;
    let claimed = item(&store, id);
    assert_eq!(
        (claimed.status.clone(), claimed.attempts),
        (Status::Pending, 1)
    );
    // The next sender sends it again once the claim's lease has passed.
    let mut config = fake.config();
    config.request_timeout_ms = 200;
    let sender = Running::start(&store, config);
    wait_for("sent again", || sent(&store, id)).await;
    assert_eq!(item(&store, id).attempts, 2);
    assert_eq!(fake.requests_to(CALL).len(), 2);
    sender.stop().await;
}

#[tokio::test]
async fn without_an_account_effects_are_recorded_as_not_sent() {
    ussd_gateway::metrics::install();
    let fake = FakeAt::start().await;
    let mut config = fake.config();
    config.username = None;
    config.api_key = None;
    let store = Store::temporary().unwrap();
    let sender = Running::start(&store, config);
    let ids = [
        enqueue(&store, sms("254711000001", "x"), None, None).unwrap(),
        enqueue(
            &store,
            Effect::Call {
                to: "254711000002".into(),
            },
            None,
            None,
        )
        .unwrap(),
    ];
    wait_for("marked", || ids.iter().all(|&id| finished(&store, id))).await;
    for id in ids {
        let it = item(&store, id);
        assert_eq!(it.status, Status::NotSent);
        assert_eq!(it.attempts, 0);
        assert_eq!(
            it.last_error.as_deref(),
            Some("not sent: no AT account configured")
        );
    }
    assert!(fake.requests().is_empty());
    let text = ussd_gateway::metrics::render();
    let line = text
        .lines()
        .find(|l| l.starts_with(r#"ussd_outbox_deliveries_total{kind="sms",outcome="not_sent"}"#))
        .unwrap_or_else(|| panic!("no not_sent counter in:\n{text}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{line}");
    sender.stop().await;
}
