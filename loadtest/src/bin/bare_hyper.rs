//! The ceiling: a bare hyper server that reads each POST's form and answers a fixed text, with
//! the same runtime and connection handling the gateway's public front uses (tokio multi-thread,
//! hyper's HTTP/1 connection builder with keep-alive). It answers `CON` until the form's `text`
//! holds `--walk-inputs` inputs and `END` then, so a load generator that follows a walk (goose's
//! student walk: dial, `1`, `1`) sends it exactly the requests it sends the gateway. What the
//! gateway does beyond this is its own cost.
//!
//! ```sh
//! cargo run --release -p ussd-loadtest --bin bare-hyper -- --listen 127.0.0.1:8090
//! ```

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Inputs after which a walk ends (the student walk has two: `1`, `1`).
    #[arg(long, default_value_t = 2)]
    walk_inputs: usize,
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    walk_inputs: usize,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the form as the gateway does; count the inputs in `text`.
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let inputs = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "text")
        .map_or(0, |(_, t)| {
            if t.is_empty() {
                0
            } else {
                t.split('*').count()
            }
        });
    let text: &'static [u8] = if inputs >= walk_inputs {
        b"END Thank you"
    } else {
        b"CON Choose\n1. Next"
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(text)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ussd_loadtest::runtime(args.threads)?.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        println!("listening public={}", listener.local_addr()?);
        let walk_inputs = args.walk_inputs;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req| answer(req, walk_inputs)),
                    )
                    .await;
            });
        }
    })
}
