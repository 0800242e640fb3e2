//! A lean load generator for the HTTP front's walks: each connection walks dialogues one after
//! another (the dial, then each input, in order), all connections on one thread. It checks every
//! answer (`CON` until the walk's last input, `END` then) and prints hops/s and latencies.
//!
//! wrk needs one thread per connection to keep a dialogue's hops in order (its script's state is
//! per thread), and its threads cost 22 to 28 us of CPU a hop, two thirds of the gateway's whole
//! hop on sled. On a two-core machine that cost lands on the core the gateway does not use, which
//! is also where a local Redis runs: this generator (one thread, plain requests on kept-alive
//! connections, answers read with httparse) costs less, so a comparison between the two stores
//! measures the stores more than the generator (docs/benchmarks.md, cluster mode).
//!
//! ```sh
//! cargo run --release -p ussd-loadtest --bin ussd-walk -- --url http://127.0.0.1:8080 --seconds 10
//! ```

use anyhow::{Context, bail};
use clap::Parser;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ussd_loadtest::{Percentiles, synthetic_msisdn};

#[derive(Debug, Parser)]
struct Args {
    /// The gateway's public front (its `/ussd` callback is posted to).
    #[arg(long)]
    url: String,
    /// Connections, each walking its own dialogues one after another.
    #[arg(long, default_value_t = 16)]
    connections: u64,
    /// How long to walk.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Synthetic subscribers to dial from (`ussd-gateway seed --synthetic N`); connection `c`
    /// of `C` dials the numbers `c + C k` (below the largest multiple of `C`), so no two
    /// connections' dialogues supersede each other.
    #[arg(long, default_value_t = 10_000)]
    subscribers: u64,
    /// The service code dialled.
    #[arg(long, default_value = "*123#")]
    code: String,
    /// The walk's inputs after the dial, comma-separated ("" for first hops only: each
    /// dialogue is then left on its first screen).
    #[arg(long, default_value = "1,1")]
    inputs: String,
}

/// What one connection did.
#[derive(Default)]
struct Walked {
    hops: u64,
    unexpected: u64,
    latencies: Vec<Duration>,
    /// Why the connection stopped before the end, if it did.
    failed: Option<String>,
}

/// What every connection walks, and until when.
struct Plan {
    connections: u64,
    /// Numbers dialled: below this multiple of `connections`.
    span: u64,
    authority: String,
    inputs: Vec<String>,
    code: String,
    /// This run's part of the session ids.
    run: u32,
    until: Instant,
    /// How long an answer may take.
    patience: Duration,
}

/// Connection `conn` walks dialogues until the plan's end, into `walked`.
async fn walk(conn: u64, plan: &Plan, walked: &mut Walked) -> anyhow::Result<()> {
    let &Plan {
        connections,
        span,
        ref authority,
        ref inputs,
        ref code,
        run,
        until,
        patience,
    } = plan;
    let mut stream = TcpStream::connect(authority.as_str()).await?;
    stream.set_nodelay(true)?;
    let mut request = Vec::with_capacity(512);
    let mut answer = Vec::with_capacity(4096);
    let mut dialogue = 0u64;
    loop {
        dialogue += 1;
        let subscriber = (conn + connections * dialogue) % span;
        let phone = synthetic_msisdn(subscriber);
        let session = format!("walk-{run}-{conn}-{dialogue}");
        let mut text = String::new();
        for hop in 0..=inputs.len() {
            if hop > 0 {
                if hop > 1 {
                    text.push('*');
                }
                text.push_str(&inputs[hop - 1]);
            }
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("sessionId", &session)
                .append_pair("serviceCode", code)
                .append_pair("phoneNumber", &phone)
                .append_pair("networkCode", "63902")
                .append_pair("text", &text)
                .finish();
            request.clear();
            request.extend_from_slice(
                format!(
                    "POST /ussd HTTP/1.1\r\nhost: {authority}\r\n\
                         content-type: application/x-www-form-urlencoded\r\n\
                         content-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
            let sent = Instant::now();
            stream.write_all(&request).await?;
            let (status, body_at) =
                tokio::time::timeout(patience, read_response(&mut stream, &mut answer))
                    .await
                    .map_err(|_| anyhow::anyhow!("no answer within {patience:?}"))??;
            let answer = &answer[body_at..];
            walked.latencies.push(sent.elapsed());
            walked.hops += 1;
            let want: &[u8] = if hop == inputs.len() && !inputs.is_empty() {
                b"END "
            } else {
                b"CON "
            };
            if status != 200 || !answer.starts_with(want) {
                walked.unexpected += 1;
            }
            if Instant::now() >= until {
                return Ok(());
            }
        }
    }
}

/// Reads one HTTP/1.1 response with a `content-length` into `buf`: its status and where its
/// body starts.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<(u16, usize)> {
    buf.clear();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = response.parse(buf)? {
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .context("an answer without content-length")
                .and_then(|h| Ok(std::str::from_utf8(h.value)?.trim().parse()?))?;
            let status = response.code.unwrap_or(0);
            while buf.len() < head + length {
                if stream.read_buf(buf).await? == 0 {
                    bail!("the gateway closed the connection");
                }
            }
            return Ok((status, head));
        }
        if stream.read_buf(buf).await? == 0 {
            bail!("the gateway closed the connection");
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.connections > args.subscribers {
        bail!("--connections must be between 1 and --subscribers");
    }
    let inputs: Vec<String> = args
        .inputs
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let plan = std::sync::Arc::new(Plan {
        connections: args.connections,
        span: args.subscribers / args.connections * args.connections,
        authority: args
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        inputs,
        code: args.code.clone(),
        // Session ids differ from one run to the next: a reused id is a retry to the gateway.
        run: rand::random(),
        until: Instant::now() + Duration::from_secs(args.seconds),
        // No answer may take longer: a stalled gateway ends the run, it does not hang it.
        patience: Duration::from_secs(10),
    });
    let mut walkers = Vec::new();
    for conn in 0..args.connections {
        let plan = std::sync::Arc::clone(&plan);
        walkers.push(tokio::spawn(async move {
            let mut walked = Walked::default();
            if let Err(e) = walk(conn, &plan, &mut walked).await {
                walked.failed = Some(e.to_string());
            }
            walked
        }));
    }
    let started = Instant::now();
    let mut all = Walked::default();
    let mut failed = 0;
    for walker in walkers {
        let walked = walker.await?;
        all.hops += walked.hops;
        all.unexpected += walked.unexpected;
        all.latencies.extend(walked.latencies);
        if let Some(why) = walked.failed {
            failed += 1;
            all.failed.get_or_insert(why);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let p = Percentiles::of(&mut all.latencies);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("hops: {} in {secs:.2} s", all.hops);
    println!("Requests/sec: {:.2}", all.hops as f64 / secs);
    println!(
        "latency ms: p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.max)
    );
    println!("unexpected answers: {}", all.unexpected);
    if let Some(why) = all.failed {
        println!("failed connections: {failed} (the first: {why})");
        bail!("{failed} of {} connections failed", args.connections);
    }
    Ok(())
}
