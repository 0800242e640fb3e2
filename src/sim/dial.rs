//! `ussd-gateway dial`: a terminal simulator that plays the aggregator against a running gateway.
//!
//! It posts the AT callback form as Africa's Talking does: a fresh `sessionId` per run, the
//! cumulative `text` (every input so far joined by `*`), and shows each screen until `END`.
//! With `--dialect` it plays that aggregator instead (Hubtel's JSON, Nalo's, ...: `dial_wire`).
//! Interactive by default; with `--input` values it runs a scripted path and fails when the
//! inputs run out before `END`. The grown-up version of the founding project's `ussd_test.py`.
//! It reaches `http://` and `https://` URLs (the gateway's outgoing client, `crate::net`, with
//! an extra CA for a front behind a private one) and can present the public front's shared
//! secret in its header.

use crate::config::http_client::HttpClientConfig;
use std::io::Write;
use std::path::PathBuf;
use tokio::io::AsyncBufReadExt;

/// What to dial and how.
#[derive(Debug, Clone)]
pub struct DialOptions {
    /// The service code, e.g. `*123#`.
    pub service_code: String,
    /// The subscriber's number as AT would send it.
    pub phone: String,
    /// The gateway's callback URL.
    pub url: String,
    /// Scripted inputs; empty means interactive.
    pub inputs: Vec<String>,
    /// The network code to send, if any.
    pub network_code: Option<String>,
    /// The public front's shared secret, sent in `secret_header`.
    pub secret: Option<String>,
    /// The header the secret goes in (the front's `[public] secret_header`).
    pub secret_header: String,
    /// A PEM file of CA certificates trusted besides the public roots (an https front with a
    /// private certificate).
    pub ca_file: Option<PathBuf>,
    /// The aggregator played.
    pub dialect: crate::config::dialect::Dialect,
}

/// How a dial ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialOutcome {
    /// The dialogue reached END.
    Ended,
    /// The scripted inputs (or stdin) ran out while the gateway still waited for input.
    InputsRanOut,
}

/// A dial that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The request failed (connection refused, reset, bad URL).
    #[error("request failed: {0}")]
    Http(String),
    /// The gateway answered with a status other than 200.
    #[error("gateway answered HTTP {status}: {body}")]
    Status {
        /// The status.
        status: u16,
        /// Its body.
        body: String,
    },
    /// The answer was not in the dialect's reply format.
    #[error("answer not in the dialect's format: {0}")]
    Malformed(String),
}

/// Runs one dialogue, printing every screen (and every scripted input) to `out`.
///
/// # Errors
/// HTTP failures, non-200 answers and malformed answers.
pub async fn run(opts: &DialOptions, out: &mut dyn Write) -> Result<DialOutcome, DialError> {
    let ca = match &opts.ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| DialError::Http(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let client = crate::net::build(&HttpClientConfig {
        ca,
        ..HttpClientConfig::default()
    })
    .map_err(DialError::Http)?;
    let url = reqwest::Url::parse(&opts.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| DialError::Http(format!("{}: not an http(s) URL", opts.url)))?;
    let session_id = format!("dial-{:016x}", rand::random::<u64>());
    let scripted = !opts.inputs.is_empty();
    let mut script = opts.inputs.iter().cloned();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut inputs: Vec<String> = Vec::new();
    loop {
        let played = super::dial_wire::Played {
            session_id: &session_id,
            service_code: &opts.service_code,
            phone: &opts.phone,
            network: opts.network_code.as_deref(),
            inputs: &inputs,
        };
        // A dialect with a path per session (Infobip): the URL's path is the dialect's, filled.
        let mut target = url.clone();
        if let Some(p) = super::dial_wire::path(&opts.dialect, &played) {
            target.set_path(&p);
        }
        let mut req = match super::dial_wire::request(&opts.dialect, &played) {
            super::dial_wire::Outgoing::Query(q) => {
                target.set_query(Some(&q));
                client.get(target)
            }
            super::dial_wire::Outgoing::Post(content_type, body) => client
                .post(target)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(body),
        };
        if let Some(secret) = &opts.secret {
            req = req.header(opts.secret_header.as_str(), secret.as_str());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| DialError::Http(crate::net::error_chain(&e)))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| DialError::Http(crate::net::error_chain(&e)))?;
        if status != http::StatusCode::OK {
            return Err(DialError::Status {
                status: status.as_u16(),
                body: body.trim_end().to_string(),
            });
        }
        let (end, screen) =
            super::dial_wire::reply(&opts.dialect, &body).map_err(DialError::Malformed)?;
        let _ = writeln!(out, "{}", if end { "--- END ---" } else { "--- CON ---" });
        let _ = writeln!(out, "{}", screen.trim_end_matches('\n'));
        if end {
            return Ok(DialOutcome::Ended);
        }
        let next = if scripted {
            script.next()
        } else {
            let _ = write!(out, "> ");
            let _ = out.flush();
            stdin.next_line().await.ok().flatten()
        };
        let Some(input) = next else {
            let _ = writeln!(out, "(no more inputs before END)");
            return Ok(DialOutcome::InputsRanOut);
        };
        if scripted {
            let _ = writeln!(out, "> {input}");
        }
        inputs.push(input.trim().to_string());
    }
}
