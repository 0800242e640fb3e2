//! Goose load test of the HTTP front (Africa's Talking callbacks).
//!
//! Scenarios (pick with `--scenarios`): `studentwalk` dials `*123#` as a synthetic student and
//! reads the current term's results (3 hops, END); `microfinancedeposit` dials `*384*303#` as a
//! synthetic customer and deposits KES 100 (4 hops, the last one a ledger transaction flushed
//! to disk before it is confirmed); `firsthop` dials `*123#` and leaves the dialogue on its
//! home menu (one hop, CON: an abandoned dialogue). Subscribers are drawn from the
//! `USSD_SUBSCRIBERS` (default
//! 10000) numbers `ussd-gateway seed --synthetic N` creates, no two users
//! on the same number (up to 4096 users).
//!
//! With `USSD_NODES` (base URLs separated by commas: several gateway nodes of a cluster), each
//! hop of a dialogue goes to the next node in turn, as an aggregator that spreads callbacks
//! over the nodes with no stickiness does; `--host` is then only goose's default.
//!
//! Everything else is goose's own options: `--host`, `--users`, `--increase-rate`, `--run-time`,
//! `--throttle-requests` (the rate), `--report-file`; goose prints throughput and latency
//! percentiles per request name (one name per hop of each scenario).
//!
//! ```sh
//! cargo run --release -p ussd-loadtest --bin ussd-goose -- --host http://127.0.0.1:8080 \
//!     --users 64 --increase-rate 64 --run-time 30s --scenarios studentwalk
//! ```

use goose::prelude::*;
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use ussd_loadtest::synthetic_msisdn;

static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// Users at most for disjoint numbers (see `dialogue`).
const STRIDE: u64 = 4096;

/// The nodes the hops go to in turn (`USSD_NODES`), if set.
fn nodes() -> &'static [String] {
    static NODES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NODES.get_or_init(|| {
        std::env::var("USSD_NODES")
            .unwrap_or_default()
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .map(|u| format!("{}/ussd", u.trim().trim_end_matches('/')))
            .collect()
    })
}

fn subscribers() -> u64 {
    std::env::var("USSD_SUBSCRIBERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(10_000)
}

/// One dialogue: POSTs each cumulative `text` in turn; every hop but the last must answer
/// `CON `, the last `END ` (with no inputs, the first hop is left at its `CON `).
async fn dialogue(
    user: &mut GooseUser,
    name: &str,
    code: &str,
    inputs: &[&str],
) -> TransactionResult {
    // A new dial from a number supersedes that number's live dialogue on the same code, so no
    // two users share a number: user u dials the numbers u, u + STRIDE, u + 2 STRIDE, ...
    let span = (subscribers() / STRIDE).max(1) * STRIDE;
    let k = rand::rng().random_range(0..span / STRIDE);
    let phone = synthetic_msisdn((user.weighted_users_index as u64 % STRIDE + k * STRIDE) % span);
    let session = format!(
        "goose-{}-{}-{}",
        std::process::id(),
        user.weighted_users_index,
        SESSIONS.fetch_add(1, Ordering::Relaxed)
    );
    let mut text = String::new();
    for (i, input) in std::iter::once(&"").chain(inputs.iter()).enumerate() {
        if i > 1 {
            text.push('*');
        }
        text.push_str(input);
        let form = [
            ("sessionId", session.as_str()),
            ("serviceCode", code),
            ("phoneNumber", phone.as_str()),
            ("networkCode", "63902"),
            ("text", text.as_str()),
        ];
        let step = format!("{name} hop {}", i + 1);
        let nodes = nodes();
        let path = match nodes.len() {
            0 => "/ussd",
            n => nodes[(user.weighted_users_index + i) % n].as_str(),
        };
        let builder = user
            .get_request_builder(&GooseMethod::Post, path)?
            .form(&form);
        let request = GooseRequest::builder()
            .method(GooseMethod::Post)
            .path("/ussd")
            .name(step.as_str())
            .set_request_builder(builder)
            .build();
        let mut goose = user.request(request).await?;
        let want = if i == inputs.len() && !inputs.is_empty() {
            "END "
        } else {
            "CON "
        };
        match goose.response {
            Ok(r) => {
                let body = r.text().await.unwrap_or_default();
                if !body.starts_with(want) {
                    let tag = format!(
                        "expected {want:?}, got {:?}",
                        body.chars().take(60).collect::<String>()
                    );
                    return user.set_failure(&tag, &mut goose.request, None, Some(&body));
                }
            }
            Err(e) => {
                return user.set_failure(&e.to_string(), &mut goose.request, None, None);
            }
        }
    }
    Ok(())
}

async fn student_walk(user: &mut GooseUser) -> TransactionResult {
    dialogue(user, "student", "*123#", &["1", "1"]).await
}

async fn first_hop(user: &mut GooseUser) -> TransactionResult {
    dialogue(user, "first", "*123#", &[]).await
}

async fn microfinance_deposit(user: &mut GooseUser) -> TransactionResult {
    dialogue(user, "deposit", "*384*303#", &["2", "100", "1"]).await
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    GooseAttack::initialize()?
        .register_scenario(
            scenario!("StudentWalk")
                .register_transaction(transaction!(student_walk).set_name("student walk")),
        )
        .register_scenario(
            scenario!("FirstHop")
                .register_transaction(transaction!(first_hop).set_name("first hop")),
        )
        .register_scenario(
            scenario!("MicrofinanceDeposit")
                .register_transaction(transaction!(microfinance_deposit).set_name("deposit")),
        )
        .set_default(GooseDefault::Host, "http://127.0.0.1:8080")?
        .execute()
        .await?;
    Ok(())
}
