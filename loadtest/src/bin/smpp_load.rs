//! SMPP load driver: plays the operator's SMSC (the gateway binds to it, as to a real USSD
//! centre), drives many concurrent dialogues over every bind the gateway keeps with it, and
//! reports hops per second and hop latency percentiles (deliver_sm sent to the gateway's
//! submit_sm received), with its own CPU use.
//!
//! The SMSC side is the gateway's own operator simulator (`ussd_gateway::sim::OperatorSim`,
//! the peer of the SMPP tests), so the driver speaks exactly the profiles the gateway ships.
//!
//! ```sh
//! # 1. the driver listens; 2. a gateway whose [[smpp.binds]] point at it is started.
//! cargo run --release -p ussd-loadtest --bin smpp-load -- --listen 127.0.0.1:2776 \
//!     --concurrency 256 --window 256 --duration 30s
//! ```

use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ussd_gateway::config::smpp::LinkConfig;
use ussd_gateway::front::smpp::Profile;
use ussd_gateway::sim::OperatorSim;
use ussd_loadtest::{Percentiles, cpu_seconds, synthetic_msisdn};

#[derive(Debug, Parser)]
struct Args {
    /// Where to accept the gateway's binds.
    #[arg(long, default_value = "127.0.0.1:2776")]
    listen: SocketAddr,
    /// The operator profile to play (a preset).
    #[arg(long, default_value = "its_session_info")]
    profile: String,
    /// Dialogues in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: u64,
    /// The SMSC side's window: its deliver_sm in flight without a response, at most (set it
    /// as wide as the gateway bind's `window`; SMPP's guideline default is 10).
    #[arg(long, default_value_t = 10)]
    window: usize,
    /// How long to drive load (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// How long to wait for the gateway to bind.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    bind_timeout: Duration,
    /// Synthetic subscribers to spread dialogues over (`seed --synthetic N`).
    #[arg(long, default_value_t = 10_000)]
    subscribers: u64,
    /// The code to dial.
    #[arg(long, default_value = "*123#")]
    code: String,
    /// The subscriber's inputs after the dial (the student walk: results of the current term).
    #[arg(long = "input", default_values_t = ["1".to_string(), "1".to_string()])]
    inputs: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = n.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let profile = Profile::preset(&args.profile)
        .ok_or_else(|| anyhow::anyhow!("unknown profile {}", args.profile))?;
    let link = LinkConfig {
        window: args.window.max(1),
        // The driver measures; it never throttles the side under test.
        max_pdus_per_sec: 0,
        ..LinkConfig::default()
    };
    let sim = Arc::new(OperatorSim::start_with(args.listen, profile, None, link).await?);
    println!(
        "smpp-load listening on {} (profile {})",
        sim.addr(),
        args.profile
    );
    if !sim.wait_bound(args.bind_timeout).await {
        anyhow::bail!("the gateway did not bind within {:?}", args.bind_timeout);
    }
    println!(
        "gateway bound; driving {} concurrent dialogues for {:?}",
        args.concurrency, args.duration
    );
    let stop = Arc::new(AtomicBool::new(false));
    let dialogues = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let inputs: Arc<[String]> = args.inputs.clone().into();
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut workers = Vec::new();
    let args_concurrency = args.concurrency;
    for w in 0..args.concurrency {
        let sim = sim.clone();
        let stop = stop.clone();
        let dialogues = dialogues.clone();
        let failures = failures.clone();
        let inputs = inputs.clone();
        let code = args.code.clone();
        // A multiple of the concurrency, so that index % concurrency == w always.
        let span = (args.subscribers / args.concurrency).max(1) * args.concurrency;
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(64 * 1024);
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Each worker owns the numbers w, w + C, w + 2C, ...: no two dialogues in
                // flight share an MSISDN (the simulator matches replies by MSISDN).
                let msisdn = synthetic_msisdn((w + k * args_concurrency) % span);
                k += 1;
                let t = Instant::now();
                let (mut d, mut screen) = match sim.dial(&msisdn, &code).await {
                    Ok(x) => x,
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("dial failed: {e}");
                        continue;
                    }
                };
                samples.push(t.elapsed());
                let mut ok = true;
                for input in inputs.iter() {
                    if screen.end {
                        break;
                    }
                    let t = Instant::now();
                    match d.reply(input).await {
                        Ok(s) => {
                            samples.push(t.elapsed());
                            screen = s;
                        }
                        Err(e) => {
                            eprintln!("reply failed: {e}");
                            ok = false;
                            break;
                        }
                    }
                }
                if ok && screen.end {
                    dialogues.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        }));
    }
    tokio::time::sleep(args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await?);
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let hops = samples.len();
    let p = Percentiles::of(&mut samples);
    println!(
        "SMPP hops: {hops} in {took:.1} s = {:.0} hops/s",
        hops as f64 / took
    );
    println!(
        "SMPP dialogues: {} completed ({:.0}/s), {} failed",
        dialogues.load(Ordering::Relaxed),
        dialogues.load(Ordering::Relaxed) as f64 / took,
        failures.load(Ordering::Relaxed)
    );
    println!("SMPP hop latency: {p}");
    println!(
        "driver CPU: {cpu:.1} s over {took:.1} s = {:.2} cores",
        cpu / took
    );
    if failures.load(Ordering::Relaxed) > 0 && hops == 0 {
        anyhow::bail!("no hop succeeded");
    }
    Ok(())
}
