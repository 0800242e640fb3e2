//! Faults under load, the variants of the crash soak (soak.rs) that do not kill the gateway:
//!
//! - the SMPP peer killed and restarted mid-load: the bind is back within 5 s of the peer's
//!   return, the dialogues in flight on that bind end cleanly (as aborted, counted), and the
//!   dialogues on another bind and on HTTP go on untouched;
//! - an upstream app that hangs under load: its deadline holds for every hop, and another
//!   route's dialogues go on without waiting for it.
//!
//! The test suite runs short versions. The documented runs (docs/reliability.md) set
//! `SOAK_LOAD_HOPS` (hops of background load per phase, default 60):
//!
//! ```sh
//! SOAK_LOAD_HOPS=2000 cargo test --release --test soak_faults -- --nocapture
//! ```

mod common;

use common::{At, FakeHttp, Sandbox, eventually};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ussd_gateway::front::smpp::Profile;
use ussd_gateway::sim::OperatorSim;

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");

fn load_hops() -> usize {
    std::env::var("SOAK_LOAD_HOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// What the background load saw.
#[derive(Default)]
struct Load {
    hops: AtomicUsize,
    failures: Mutex<Vec<String>>,
    /// Every hop's time, in microseconds.
    latencies: Mutex<Vec<u64>>,
}

impl Load {
    fn hop(&self, took: Duration) {
        self.hops.fetch_add(1, Ordering::SeqCst);
        self.latencies
            .lock()
            .unwrap()
            .push(took.as_micros().try_into().unwrap_or(u64::MAX));
    }

    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    async fn reach(&self, hops: usize) {
        assert!(
            eventually(120, || async { self.hops.load(Ordering::SeqCst) >= hops }).await,
            "load stalled at {} hops",
            self.hops.load(Ordering::SeqCst)
        );
    }

    /// p50, p99 and max of the hops recorded from index `from` on, in milliseconds.
    fn percentiles(&self, from: usize) -> (f64, f64, f64) {
        let mut v = self.latencies.lock().unwrap()[from..].to_vec();
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        (at(0.5), at(0.99), at(1.0))
    }
}

/// One subscriber over HTTP: whole echo dialogues in a loop until `stop`.
async fn http_subscriber(
    addr: std::net::SocketAddr,
    phone: String,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) {
    let at = At::new(addr);
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let session = format!("{phone}-{n}");
        for (text, want) in [
            ("", "CON Say something"),
            ("x", "CON #1 "),
            ("x*2", "END Bye after 1"),
        ] {
            let t = Instant::now();
            let answer = at.hop(&session, "*384*1#", &phone, text).await;
            load.hop(t.elapsed());
            if !answer.starts_with(want) {
                load.fail(format!("http {session} `{text}`: {answer}"));
                return;
            }
        }
    }
}

/// One subscriber over SMPP: whole echo dialogues in a loop until `stop`.
async fn smpp_subscriber(
    sim: Arc<OperatorSim>,
    msisdn: String,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let (mut d, s) = match sim.dial(&msisdn, "*384*1#").await {
            Ok(x) => x,
            Err(e) => return load.fail(format!("smpp {msisdn} dial: {e}")),
        };
        load.hop(t.elapsed());
        if s.text != "Say something" {
            return load.fail(format!("smpp {msisdn}: {}", s.text));
        }
        for (text, want) in [("x", "#1 "), ("2", "Bye after 1")] {
            let t = Instant::now();
            match d.reply(text).await {
                Ok(s) if s.text.starts_with(want) => load.hop(t.elapsed()),
                Ok(s) => return load.fail(format!("smpp {msisdn} `{text}`: {}", s.text)),
                Err(e) => return load.fail(format!("smpp {msisdn} `{text}`: {e}")),
            }
        }
    }
}

fn aborted(gw: &ussd_gateway::gateway::Running) -> usize {
    gw.registry()
        .core()
        .store
        .ended_records::<serde_json::Value>()
        .filter(|r| r.as_ref().is_ok_and(|r| r["reason"] == "abort"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smpp_peer_killed_and_restarted_mid_load() {
    let profile = || Profile::preset("its_session_info").unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let sim_a = OperatorSim::start(any, profile(), None).await.unwrap();
    let sim_b = Arc::new(OperatorSim::start(any, profile(), None).await.unwrap());
    let a_addr = sim_a.addr();
    let bind = |name: &str, port: u16| {
        format!(
            "[[smpp.binds]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"gw\"\npassword = \"pw\"\n"
        )
    };
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n{}{}",
            bind("a", a_addr.port()),
            bind("b", sim_b.addr().port())
        ),
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    let smpp = gw.smpp().unwrap();
    assert!(eventually(10, || async { smpp.binds_up() == 2 }).await);

    // Load on bind b and on HTTP, all along.
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..4 {
        tasks.push(tokio::spawn(smpp_subscriber(
            sim_b.clone(),
            format!("25471100000{i}"),
            load.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(http_subscriber(
            gw.public_addr,
            format!("+25471200000{i}"),
            load.clone(),
            stop.clone(),
        )));
    }
    // Dialogues in flight on bind a when its peer dies.
    let mut held = Vec::new();
    for i in 0..5 {
        let (mut d, _) = sim_a
            .dial(&format!("25471300000{i}"), "*384*1#")
            .await
            .unwrap();
        assert!(d.reply("hello").await.unwrap().text.starts_with("#1 "));
        held.push(d);
    }
    load.reach(load_hops()).await;
    let aborted_before = aborted(&gw);

    sim_a.kill();
    assert!(
        eventually(10, || async { smpp.binds_up() == 1 }).await,
        "bind a down"
    );
    assert!(
        eventually(10, || async { aborted(&gw) == aborted_before + held.len() }).await,
        "the dialogues in flight on a ended as aborted: {}",
        aborted(&gw) - aborted_before
    );
    // The peer stays away while the load goes on.
    let during = load.hops.load(Ordering::SeqCst);
    load.reach(during + load_hops()).await;

    let sim_a = OperatorSim::start(a_addr, profile(), None).await.unwrap();
    let returned = Instant::now();
    assert!(
        sim_a.wait_bound(Duration::from_secs(10)).await,
        "bind a back"
    );
    let back_in = returned.elapsed();
    assert!(
        back_in <= Duration::from_secs(5),
        "bind back {back_in:?} after the peer returned"
    );
    let (mut d, s) = sim_a.dial("254713000009", "*384*1#").await.unwrap();
    assert_eq!(s.text, "Say something");
    assert!(d.reply("again").await.unwrap().text.starts_with("#1 "));

    let after = load.hops.load(Ordering::SeqCst);
    load.reach(after + load_hops() / 2).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = load.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "other binds and HTTP disturbed: {failures:?}"
    );
    let (p50, p99, max) = load.percentiles(0);
    eprintln!(
        "smpp peer restart: {} hops on bind b and HTTP, none failed; {} in-flight dialogues on a \
         ended as aborted; bind back {:.0} ms after the peer returned; hop p50 {p50:.1} ms, p99 \
         {p99:.1} ms, max {max:.1} ms",
        load.hops.load(Ordering::SeqCst),
        held.len(),
        back_in.as_secs_f64() * 1000.0
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_upstream_holds_its_deadline_and_spares_other_routes() {
    let app = FakeHttp::start(|_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        (200, "END never".to_string())
    })
    .await;
    let deadline = Duration::from_millis(1000);
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n\
             [[routes]]\nservice_code = \"*384*2#\"\nupstream = \"http://{}/ussd\"\ndeadline_ms = {}\n\
             apology = \"Sorry, try later.\"\nbreaker_failures = 1000000\n",
            app.addr,
            deadline.as_millis()
        ),
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let spawn_echo = |range: std::ops::Range<usize>| {
        range
            .map(|i| {
                tokio::spawn(http_subscriber(
                    gw.public_addr,
                    format!("+25471400000{i}"),
                    load.clone(),
                    stop.clone(),
                ))
            })
            .collect::<Vec<_>>()
    };
    // Baseline: the echo route alone.
    let mut tasks = spawn_echo(0..4);
    load.reach(load_hops()).await;
    let baseline = load.percentiles(0);
    let from = load.latencies.lock().unwrap().len();

    // Subscribers of the hanging app, all the time.
    let hung = Arc::new(Load::default());
    let hangers: Vec<_> = (0..8)
        .map(|i| {
            let (hung, stop, addr) = (hung.clone(), stop.clone(), gw.public_addr);
            tokio::spawn(async move {
                let at = At::new(addr);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let t = Instant::now();
                    let answer = at
                        .hop(
                            &format!("hang-{i}-{n}"),
                            "*384*2#",
                            &format!("+25471500000{i}"),
                            "",
                        )
                        .await;
                    hung.hop(t.elapsed());
                    if answer != "END Sorry, try later." {
                        hung.fail(answer);
                    }
                }
            })
        })
        .collect();
    let mark = load.hops.load(Ordering::SeqCst);
    load.reach(mark + load_hops()).await;
    // And at least a hop per 20 of the other load from the hanging app (each takes the
    // deadline): the two run side by side for a while.
    hung.reach((load_hops() / 20).max(8)).await;
    stop.store(true, Ordering::SeqCst);
    tasks.extend(hangers);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        load.failures.lock().unwrap().is_empty(),
        "{:?}",
        load.failures.lock().unwrap()
    );
    assert!(
        hung.failures.lock().unwrap().is_empty(),
        "{:?}",
        hung.failures.lock().unwrap()
    );
    // The deadline holds: no hop of the hanging app waited much past it. (The circuit breaker is
    // set out of reach here, so that every hop waits for the deadline.)
    let (_, _, hung_max) = hung.percentiles(0);
    assert!(
        hung_max < (deadline + Duration::from_millis(1500)).as_secs_f64() * 1000.0,
        "a hop of the hanging app took {hung_max} ms"
    );
    // The other route never waited for it: no echo hop took anywhere near the deadline.
    let during = load.percentiles(from);
    assert!(
        during.2 < deadline.as_secs_f64() * 1000.0,
        "an echo hop took {} ms while the upstream hung",
        during.2
    );
    eprintln!(
        "hanging upstream: {} hops of it, all answered with the apology, max {hung_max:.0} ms \
         (deadline {} ms); echo route p50/p99/max {:.1}/{:.1}/{:.1} ms alone, \
         {:.1}/{:.1}/{:.1} ms beside it ({} hops)",
        hung.hops.load(Ordering::SeqCst),
        deadline.as_millis(),
        baseline.0,
        baseline.1,
        baseline.2,
        during.0,
        during.1,
        during.2,
        load.hops.load(Ordering::SeqCst)
    );
    gw.shutdown().await;
}
