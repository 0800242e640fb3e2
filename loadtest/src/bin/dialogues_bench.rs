//! Dialogue residency and restart:
//!
//! 1. starts the gateway in this process with `--config`, opens `--n` dialogues through the
//!    registry (the path every front takes after its own translation: a first hop on the
//!    student app, leaving each dialogue live and idle on its menu), leaves them idle for
//!    `--idle-secs`, and reports the resident memory they take (RSS after minus RSS before,
//!    and the total);
//! 2. with `--ended M`, ends M more dialogues through the store (their end records and
//!    tombstones, written by the group commit as the actors' ends are), so the restart also
//!    reads back the index of the tombstones a busy gateway keeps;
//! 3. shuts the gateway down (every live dialogue stays persisted in sled), starts it again on
//!    the same store, and reports the time from the start call to the answer of one hop that
//!    continues a persisted dialogue (`--restart`), and that a retry of an ended one's last
//!    hop is still answered from its tombstone.
//!
//! The config's idle timeout must outlast the run (e.g. `[sessions] idle_timeout_secs = 3600`).
//!
//! ```sh
//! cargo run --release -p ussd-loadtest --bin dialogues-bench -- --config bench.toml --n 1000000 --restart
//! ```

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ussd_gateway::config::Config;
use ussd_gateway::hop::Front;
use ussd_gateway::hop::{Hop, HopInput};
use ussd_gateway::msisdn::Msisdn;
use ussd_gateway::text::Limit;
use ussd_loadtest::{rss_bytes, synthetic_msisdn};

#[derive(Debug, Parser)]
struct Args {
    /// The gateway configuration (its store is filled; use a scratch data_dir).
    #[arg(long)]
    config: PathBuf,
    /// Dialogues to open.
    #[arg(long, default_value_t = 1_000_000)]
    n: u64,
    /// Hops in flight at once while opening them.
    #[arg(long, default_value_t = 512)]
    concurrency: u64,
    /// The code dialled.
    #[arg(long, default_value = "*123#")]
    code: String,
    /// Seconds the dialogues are left idle, after the config's `passivate_after_ms`, before
    /// the resident set is read: the last group commit, the passivation and the allocator's
    /// return of freed pages are done by then.
    #[arg(long, default_value_t = 3)]
    idle_secs: u64,
    /// Then restart on the same store and time the first hop.
    #[arg(long)]
    restart: bool,
    /// Before the restart, end this many dialogues more (after the memory is read), whose
    /// tombstones the restart indexes again: a gateway ending 3,333 dialogues a second keeps
    /// 1,000,000 with the default `tombstone_secs` of 300.
    #[arg(long, default_value_t = 0)]
    ended: u64,
    /// After the resident set is read, send each dialogue one more hop with this input (its
    /// second hop: on a passivated dialogue it resumes the dialogue from the store), and
    /// report the rate.
    #[arg(long)]
    next_input: Option<String>,
}

/// The session key of the `i`-th dialogue ended with `--ended`.
fn ended_key(i: u64) -> String {
    format!("http:bench-ended-{i}")
}

/// Ends `n` dialogues through the store as an actor's end does: a tombstone (the last reply)
/// and an end record each, committed in groups.
fn end_many(store: &ussd_gateway::store::Store, n: u64) -> anyhow::Result<()> {
    let now = ussd_gateway::clock::now_ms();
    let expires = now + 3_600_000;
    for i in 0..n {
        let tomb = serde_json::json!({
            "seen_text": "1*1",
            "reply": {"text": format!("Thank you. Reference {i}."), "end": true},
            "expires_ms": expires,
            "started_ms": now - 20_000,
        });
        let record = serde_json::json!({
            "session_id": ended_key(i),
            "msisdn": synthetic_msisdn(i % 10_000_000),
            "service_code": "*123#",
            "hops": 3,
            "started_ms": now - 20_000,
            "ended_ms": now,
            "duration_ms": 20_000,
            "reason": "end",
        });
        store.end(&ended_key(i), (&tomb, expires), &record, None)?;
        if i % 4_096 == 4_095 {
            store.commit()?;
        }
    }
    store.flush_blocking()?;
    Ok(())
}

fn hop(i: u64, code: &str, text: &str) -> Hop {
    let msisdn = synthetic_msisdn(i % 10_000_000);
    Hop {
        key: format!("http:bench-{i}").into(),
        front: Front::Http,
        dialect: "africastalking",
        seq: None,
        msisdn: Msisdn::parse(&msisdn, "254").expect("synthetic numbers are valid"),
        dialled: code.to_string(),
        network: None,
        input: HopInput::Cumulative(text.to_string()),
        limit: Limit {
            septets: 182,
            ucs2: 80,
        },
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Both of rustls's providers are compiled in here (the gateway's ring, goose's aws-lc-rs):
    // name the gateway's, or its HTTPS outbox transport cannot choose.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let gw = ussd_gateway::gateway::start(config.clone()).await?;
        let before = rss_bytes().unwrap_or(0);
        let started = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency {
            let registry = gw.registry().clone();
            let next = next.clone();
            let failed = failed.clone();
            let code = args.code.clone();
            let n = args.n;
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    match registry.hop(hop(i, &code, "")).await {
                        Ok(r) if !r.end => {}
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        let mut last = Instant::now();
        for t in tasks {
            t.await?;
            if last.elapsed() > Duration::from_secs(5) {
                last = Instant::now();
                eprintln!("  {} dialogues open", gw.registry().live());
            }
        }
        let took = started.elapsed();
        let at_once = rss_bytes().unwrap_or(0);
        // Idle dialogues give up their actors after `[sessions] passivate_after_ms`: the
        // resident set is read `--idle-secs` after that.
        let passivate = Duration::from_millis(config.sessions.passivate_after_ms);
        tokio::time::sleep(passivate + Duration::from_secs(args.idle_secs)).await;
        let (resident, passivated) = (gw.registry().live(), gw.registry().passivated());
        let live = resident + passivated;
        let after = rss_bytes().unwrap_or(0);
        println!(
            "opened {} dialogues in {:.1} s ({:.0}/s), {} failed; live {} ({} with an actor, {} passivated)",
            args.n,
            took.as_secs_f64(),
            args.n as f64 / took.as_secs_f64(),
            failed.load(Ordering::Relaxed),
            live,
            resident,
            passivated
        );
        println!(
            "RSS: {:.0} MiB before, {:.0} MiB with {} live dialogues idle for {:.1} s: {:.0} MiB for them ({:.0} bytes each)",
            mib(before),
            mib(after),
            live,
            (passivate + Duration::from_secs(args.idle_secs)).as_secs_f64(),
            mib(after.saturating_sub(before)),
            after.saturating_sub(before) as f64 / live.max(1) as f64
        );
        println!(
            "RSS as the last one opened (transient buffers still held): {:.0} MiB",
            mib(at_once)
        );
        if let Some(input) = &args.next_input {
            let started = Instant::now();
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..args.concurrency {
                let (registry, next, failed) = (gw.registry().clone(), next.clone(), failed.clone());
                let (code, input, n) = (args.code.clone(), input.clone(), args.n);
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        if registry.hop(hop(i, &code, &input)).await.is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            for t in tasks {
                t.await?;
            }
            let took = started.elapsed();
            println!(
                "second hops: {} in {:.1} s ({:.0}/s), {} failed in all; {} with an actor after them",
                args.n,
                took.as_secs_f64(),
                args.n as f64 / took.as_secs_f64(),
                failed.load(Ordering::Relaxed),
                gw.registry().live()
            );
        }
        if !args.restart {
            gw.shutdown().await;
            return Ok(());
        }
        if args.ended > 0 {
            let store = gw.registry().core().store.clone();
            let n = args.ended;
            let t = Instant::now();
            tokio::task::spawn_blocking(move || end_many(&store, n)).await??;
            println!(
                "ended {n} more dialogues in {:.1} s; tombstones kept: {}",
                t.elapsed().as_secs_f64(),
                gw.registry().core().store.tombstone_count()
            );
        }
        let t = Instant::now();
        gw.shutdown().await;
        println!("shutdown with {live} live dialogues took {:.1} s", t.elapsed().as_secs_f64());
        let probe = args.n / 2;
        let t = Instant::now();
        let gw = ussd_gateway::gateway::start(config).await?;
        let started_in = t.elapsed();
        let reply = gw.registry().hop(hop(probe, &args.code, "1")).await;
        let first = t.elapsed();
        let reply = reply.map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "restart with {} persisted dialogues: started in {:.3} s, first hop (continuing dialogue {probe}) answered {:.3} s after the start call: {:?}",
            gw.registry().core().store.live_count(),
            started_in.as_secs_f64(),
            first.as_secs_f64(),
            reply.text.chars().take(40).collect::<String>()
        );
        if args.ended > 0 {
            let store = &gw.registry().core().store;
            let last = args.ended - 1;
            let tomb = store.tombstone::<serde_json::Value>(&ended_key(last))?;
            let found = tomb.is_some_and(|t| t["reply"]["text"] == format!("Thank you. Reference {last}."));
            println!(
                "tombstones kept after the restart: {}; the last ended dialogue's found: {found}",
                store.tombstone_count()
            );
            anyhow::ensure!(found, "the last ended dialogue's tombstone was not found after the restart");
        }
        gw.shutdown().await;
        Ok(())
    })
}
