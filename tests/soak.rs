//! Crash soak: kill -9 of a real gateway process during mixed load, restarted again and again.
//!
//! Load: microfinance deposits and transfers (the money), student walks and dental bookings
//! (the rest), over many concurrent dialogues. At random moments the gateway is killed with
//! SIGKILL and started again on the same data; dialogues in flight retry their last hop as the
//! aggregator would. At the end the store must hold every transaction the load driver was told
//! was confirmed exactly once, nothing applied twice, balances equal to the journal, and every
//! dialogue whose last hop was answered well before a kill must have continued after it.
//!
//! The test suite runs a short version (3 rounds). The documented soak (docs/reliability.md):
//!
//! ```sh
//! SOAK_ROUNDS=20 cargo test --release --test soak -- --nocapture
//! ```

mod common;

use common::{At, Sandbox};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ussd_gateway::store::Store;

const MF: &str = "*384*303#";
const STUDENT: &str = "*123#";
const DENTAL: &str = "*675#";

/// Answers that mean a dialogue did not continue where it was: the gateway's apology, a flow's
/// own apology, a timeout.
const LOST: [&str; 3] = [
    "END Sorry, the service is unavailable right now",
    "END Sorry, something went wrong",
    "END Your session has timed out",
];

#[derive(Default)]
struct Books {
    /// Idempotency key prefixes (`http:<session>#`) of transactions the driver saw confirmed.
    confirmed: HashSet<String>,
    /// Amount confirmed per key.
    amounts: HashMap<String, i64>,
    /// Dental bookings the driver saw confirmed, per phone (canonical).
    bookings: HashMap<String, usize>,
    /// Dialogues whose next hop after a restart did not continue.
    lost: Vec<String>,
    hops: usize,
    /// Finished walks by kind.
    walks: HashMap<&'static str, usize>,
}

/// Concurrent subscribers (`SOAK_USERS`, default 8).
fn users() -> usize {
    std::env::var("SOAK_USERS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(8)
        .clamp(2, 99)
}

fn rounds() -> usize {
    std::env::var("SOAK_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

/// The soak subscriber `n`'s number, canonical.
fn phone(n: usize) -> String {
    format!("2547100000{n:02}")
}

/// What one dialogue of the mix is.
struct Walk {
    kind: &'static str,
    code: &'static str,
    phone: String,
    /// The cumulative texts of its hops.
    texts: Vec<String>,
    /// Money it moves when confirmed, in cents.
    amount_cents: i64,
}

/// The walk of subscriber `n` in round `round`: registrations first (microfinance, then
/// dental), then deposits, transfers to the next subscriber, student walks and dental
/// bookings in turn.
fn walk(n: usize, round: usize, users: usize) -> Walk {
    let name = format!("Soak {}", (b'A' + n as u8) as char);
    let cumulative = |inputs: &[String]| -> Vec<String> {
        (0..=inputs.len()).map(|i| inputs[..i].join("*")).collect()
    };
    let own = format!("+{}", phone(n));
    let amount = 1 + (n * 7 + round * 13) % 50;
    let w = |kind, code, phone: &str, inputs: &[String], cents| Walk {
        kind,
        code,
        phone: phone.to_string(),
        texts: cumulative(inputs),
        amount_cents: cents,
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match round {
        1 => w("register", MF, &own, &[name.clone(), "Lae".into()], 0),
        2 => w("dental_register", DENTAL, &own, &s(&["1", &name, "4"]), 0),
        _ => match (round - 3) % 4 {
            0 => w(
                "deposit",
                MF,
                &own,
                &s(&["2", &amount.to_string(), "1"]),
                amount as i64 * 100,
            ),
            1 => {
                let to = format!("0{}", &phone((n + 1) % users)[3..]);
                w(
                    "transfer",
                    MF,
                    &own,
                    &s(&["4", &to, &amount.to_string(), "1"]),
                    amount as i64 * 100,
                )
            }
            // Two subscribers walk as the seeded students, the others as unknown numbers.
            2 => match n {
                0 => w("student", STUDENT, "+254700000001", &s(&["1", "1"]), 0),
                1 => w("student", STUDENT, "+254700000002", &s(&["1", "1"]), 0),
                _ => w("student", STUDENT, &own, &[], 0),
            },
            _ => w(
                "booking",
                DENTAL,
                &own,
                &s(&["2", "2", "1", "1", "1", "4"]),
                0,
            ),
        },
    }
}

/// One subscriber's loop: its walks, until `stop`.
async fn subscriber(
    n: usize,
    gateway: Arc<Mutex<std::net::SocketAddr>>,
    books: Arc<Mutex<Books>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    // One number per subscriber (a phone has one USSD session at a time: a second dial from
    // the same number supersedes the first).
    let mut round = 0usize;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        round += 1;
        let session = format!("soak-{n}-{round}");
        let walk = walk(n, round, users());
        for (hop, text) in walk.texts.iter().enumerate() {
            // Retry the hop until the gateway answers (it may be down between a kill and its
            // restart), as the aggregator would; each retry is the same text.
            let mut answer = None;
            for _ in 0..200 {
                let addr = *gateway.lock().unwrap();
                let at = At::new(addr);
                let body = {
                    let mut f = form_urlencoded::Serializer::new(String::new());
                    f.append_pair("sessionId", &session)
                        .append_pair("serviceCode", walk.code)
                        .append_pair("phoneNumber", &walk.phone)
                        .append_pair("text", text);
                    f.finish()
                };
                let result = tokio::time::timeout(
                    Duration::from_secs(2),
                    at.try_request(
                        "POST",
                        "/ussd",
                        &[("content-type", "application/x-www-form-urlencoded")],
                        body,
                    ),
                )
                .await;
                match result {
                    Ok(Some(a)) if a.status == 200 => {
                        answer = Some(a.body);
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(25)).await,
                }
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
            }
            let Some(answer) = answer else { return };
            let mut b = books.lock().unwrap();
            b.hops += 1;
            // A hop after the first must continue the dialogue where it was.
            if LOST.iter().any(|l| answer.starts_with(l)) {
                b.lost
                    .push(format!("{session} {} hop {hop}: {answer}", walk.kind));
                return;
            }
            // The dialogue's own prefix of the idempotency key (`<session>#<hop>#<n>`): after
            // a crash that lost an early hop's state the dialogue is rebuilt from the
            // cumulative text, so the hop number may differ.
            let key = format!("http:{session}#");
            let confirmed = match walk.kind {
                "deposit" => answer.starts_with("END Simulated deposit:"),
                "transfer" => answer.starts_with("END We are sending"),
                _ => false,
            };
            if confirmed {
                b.amounts.insert(key.clone(), walk.amount_cents);
                b.confirmed.insert(key);
            }
            if walk.kind == "booking" && answer.starts_with("CON Appointment confirmed!") {
                *b.bookings.entry(phone(n)).or_default() += 1;
            }
            if answer.starts_with("END ") {
                *b.walks.entry(walk.kind).or_default() += 1;
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_and_applies_nothing_twice() {
    let sb = Sandbox::with_repo_flows(&format!(
        "[[routes]]\nservice_code = \"{MF}\"\nflow = \"microfinance\"\n[[routes]]\nservice_code = \"{STUDENT}\"\nflow = \"student\"\n[[routes]]\nservice_code = \"{DENTAL}\"\nflow = \"dental\"\n"
    ));
    let mut gw = Some(sb.spawn());
    let addr = Arc::new(Mutex::new(gw.as_ref().unwrap().public));
    let books = Arc::new(Mutex::new(Books::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drivers: Vec<_> = (0..users())
        .map(|n| tokio::spawn(subscriber(n, addr.clone(), books.clone(), stop.clone())))
        .collect();
    for round in 0..rounds() {
        // Let load run for a while, then kill -9 at an arbitrary moment.
        let before = books.lock().unwrap().hops;
        common::eventually(30, || {
            let books = books.clone();
            async move { books.lock().unwrap().hops >= before + 40 + round * 7 }
        })
        .await;
        gw.take().unwrap().kill9();
        // Start again on the same data: sled must open cleanly every time.
        let next = sb.spawn();
        *addr.lock().unwrap() = next.public;
        gw = Some(next);
    }
    // A last stretch of load after the final restart (`SOAK_TAIL_HOPS`, default 40), then stop.
    let tail: usize = std::env::var("SOAK_TAIL_HOPS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(40);
    let before = books.lock().unwrap().hops;
    common::eventually(300, || {
        let books = books.clone();
        async move { books.lock().unwrap().hops >= before + tail }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for d in drivers {
        let _ = d.await;
    }
    let status = gw.take().unwrap().signal("TERM");
    assert!(status.success());

    let books = books.lock().unwrap();
    assert!(
        books.lost.is_empty(),
        "dialogues that did not continue: {:?}",
        books.lost
    );
    let config = sb.config();
    let store = Store::open(&config.store.data_dir, 16, 500).unwrap();
    let journal = store.journal().unwrap();
    // Nothing applied twice: one journal entry per idempotency key.
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for e in &journal {
        *keys.entry(e.key.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = keys.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    // Nothing confirmed lost, with the confirmed amount, exactly once per dialogue (deposits
    // and transfers alike).
    for prefix in &books.confirmed {
        let entries: Vec<_> = journal
            .iter()
            .filter(|e| e.key.starts_with(prefix.as_str()))
            .collect();
        assert_eq!(entries.len(), 1, "confirmed deposit {prefix}: {entries:?}");
        assert_eq!(entries[0].amount_cents, books.amounts[prefix]);
    }
    // Balances equal the journal (every soak wallet opened at zero on registration).
    for n in 0..users() {
        let phone = format!("2547100000{n:02}");
        let account = format!("wallets/{phone}");
        let credits: i64 = journal
            .iter()
            .filter(|e| e.to.as_deref() == Some(&account))
            .map(|e| e.amount_cents)
            .sum();
        let debits: i64 = journal
            .iter()
            .filter(|e| e.from.as_deref() == Some(&account))
            .map(|e| e.amount_cents)
            .sum();
        let Some(wallet) = store.records().get("wallets", &phone).unwrap() else {
            continue;
        };
        let balance = wallet["balance_cents"].as_i64().unwrap();
        let opening = 0;
        assert_eq!(balance, opening + credits - debits, "{phone}");
    }
    // Every booking the driver saw confirmed is there, for that number, and no slot is booked
    // twice.
    let bookings = store.records().scan("bookings").unwrap();
    let mut slots: HashMap<String, usize> = HashMap::new();
    for (_, b) in bookings.iter().filter(|(_, b)| b["status"] == "booked") {
        *slots
            .entry(b["slot"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        slots.values().all(|n| *n == 1),
        "a slot booked twice: {slots:?}"
    );
    for (phone, seen) in &books.bookings {
        let stored = bookings
            .iter()
            .filter(|(_, b)| b["phone"] == phone.as_str() && b["status"] == "booked")
            .count();
        assert_eq!(stored, *seen, "bookings of {phone}");
    }
    let kinds = |k: &str| journal.iter().filter(|e| e.kind == k).count();
    eprintln!(
        "soak: {} rounds, {} hops, {} confirmed transactions ({} deposits, {} transfers in the \
         journal), {} bookings, walks {:?}; none lost, none applied twice",
        rounds(),
        books.hops,
        books.confirmed.len(),
        kinds("deposit"),
        kinds("transfer"),
        books.bookings.values().sum::<usize>(),
        books.walks
    );
    assert!(!books.confirmed.is_empty());
}
