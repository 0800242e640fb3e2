//! The SMPP ceiling: an ESME that binds to the load driver (`smpp-load`) exactly as the gateway
//! does, over the gateway's own connection code (its `Link`: framing, window, sequence
//! matching) and PDU translation, and answers every deliver_sm with a fixed submit_sm: `CON`
//! (ussd_service_op 2) until the dialogue has had `--walk-inputs` inputs, then `END` (op 17),
//! its_session_info echoed. No registry, no actor, no flow, no store: what the gateway does
//! beyond this is its own cost.
//!
//! ```sh
//! cargo run --release -p ussd-loadtest --bin smpp-load -- --listen 127.0.0.1:2776 --window 256 &
//! cargo run --release -p ussd-loadtest --bin bare-smpp -- --connect 127.0.0.1:2776 --window 256
//! ```

use clap::Parser;
use rusmpp::pdus::DeliverSmResp;
use rusmpp::types::COctetString;
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use ussd_gateway::config::smpp::LinkConfig;
use ussd_gateway::front::smpp::conn::link::{Handler, Link};
use ussd_gateway::front::smpp::wire::bind::{self, BindKind, Credentials};
use ussd_gateway::front::smpp::wire::message::{Address, UssdMessage};
use ussd_gateway::front::smpp::wire::{encoding, sm};

#[derive(Debug, Parser)]
struct Args {
    /// The driver's address.
    #[arg(long, default_value = "127.0.0.1:2776")]
    connect: SocketAddr,
    /// Requests in flight without a response, at most (as the gateway bind's `window`).
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Inputs after which a dialogue ends (the student walk has two: `1`, `1`).
    #[arg(long, default_value_t = 2)]
    walk_inputs: usize,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Answers deliver_sm at once and sends the reply from a task of its own, as the gateway does.
struct Echo {
    walk_inputs: usize,
    /// Inputs seen per subscriber in the dialogue in progress.
    seen: Mutex<HashMap<String, usize>>,
}

impl Handler for Echo {
    fn request(&self, link: &Link, cmd: Command) -> Option<Command> {
        let seq = cmd.sequence_number();
        let Some(Pdu::DeliverSm(d)) = cmd.pdu() else {
            return Some(Command::new(
                CommandStatus::EsmeRinvcmdid,
                seq,
                Pdu::GenericNack,
            ));
        };
        let m = sm::from_deliver_sm(d);
        let end = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let n = seen.entry(m.source.addr.clone()).or_default();
            // ussd_service_op 1: a new dialogue.
            if m.op == Some(1) {
                *n = 0;
            } else {
                *n += 1;
            }
            let end = *n >= self.walk_inputs;
            if end {
                seen.remove(&m.source.addr);
            }
            end
        };
        let (data_coding, body) =
            encoding::encode(if end { "Thank you" } else { "Choose\n1. Next" });
        let reply = UssdMessage {
            service_type: m.service_type.clone(),
            source: Address::unknown(&m.dest.addr),
            dest: m.source.clone(),
            data_coding,
            body,
            op: Some(if end { 17 } else { 2 }),
            its: m.its.map(|[s, q]| [s, (q & 0xFE) | u8::from(end)]),
            umr: m.umr,
        };
        let link = link.clone();
        tokio::spawn(async move {
            if let Ok(pdu) = sm::to_submit_sm(&reply)
                && let Err(e) = link.request(pdu).await
            {
                eprintln!("submit_sm failed: {e}");
            }
        });
        Some(Command::new(
            CommandStatus::EsmeRok,
            seq,
            DeliverSmResp::new(COctetString::empty(), Vec::new()),
        ))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ussd_loadtest::runtime(args.threads)?.block_on(async move {
        // The driver may still be starting: try for a while, as a bind's reconnect loop would.
        let mut tries = 0;
        let stream = loop {
            match tokio::net::TcpStream::connect(args.connect).await {
                Ok(s) => break s,
                Err(_) if tries < 300 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let link_cfg = LinkConfig {
            window: args.window.max(1),
            // A ceiling: no request rate limit.
            max_pdus_per_sec: 0,
            ..LinkConfig::default()
        };
        let handler = Arc::new(Echo {
            walk_inputs: args.walk_inputs,
            seen: Mutex::new(HashMap::new()),
        });
        let (link, task) = Link::spawn(stream, &link_cfg, args.connect.to_string(), handler);
        let creds = Credentials {
            system_id: "bare".into(),
            password: "bare".into(),
            system_type: String::new(),
            version: 0x34,
            address_range: String::new(),
        };
        let resp = link
            .request(bind::request(BindKind::Transceiver, &creds))
            .await?;
        anyhow::ensure!(
            resp.status() == CommandStatus::EsmeRok,
            "bind refused: {:?}",
            resp.status()
        );
        println!("bare-smpp bound to {}", args.connect);
        task.await?;
        println!("bare-smpp: connection closed");
        Ok(())
    })
}
