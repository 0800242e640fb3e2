//! `ussd-gateway operator-sim`: the simulator at a terminal.
//!
//! Start it, start the gateway with a bind to it (`host = "127.0.0.1"`, `port = 2775`), and
//! dial: each screen the gateway sends is printed as `dial` prints them (`--- CON ---` /
//! `--- END ---` and the text), each line typed is the subscriber's answer. With `--input`
//! values it runs one scripted dialogue and exits: 0 when it reached the end, 2 when the
//! inputs ran out first. At the `dial>` prompt it also shows what the gateway sends on its own
//! initiative: a USSN push is printed, a network-initiated dialogue is answered like a dialled
//! one (`POST /admin/push` on the gateway's admin listener sends both).

use super::operator::{OperatorSim, Screen};
use crate::config::smpp::profile::Profile;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// What the simulator does.
#[derive(Debug, Clone)]
pub struct OperatorSimOptions {
    /// Where to listen. Default 127.0.0.1:2775.
    pub listen: SocketAddr,
    /// The operator convention to play.
    pub profile: Profile,
    /// Only this system_id and password may bind; `None` accepts any.
    pub credentials: Option<(String, String)>,
    /// The subscriber.
    pub msisdn: String,
    /// The code to dial; `None` asks at the terminal.
    pub service_code: Option<String>,
    /// Scripted answers; empty means interactive.
    pub inputs: Vec<String>,
    /// How long to wait for the gateway to bind. Default 60 s.
    pub bind_wait: Duration,
}

impl Default for OperatorSimOptions {
    fn default() -> Self {
        OperatorSimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 2775)),
            // unwrap: the default preset always exists.
            profile: Profile::preset("its_session_info").unwrap_or_else(|| unreachable!()),
            credentials: None,
            msisdn: "254700000001".into(),
            service_code: None,
            inputs: Vec::new(),
            bind_wait: Duration::from_secs(60),
        }
    }
}

/// Runs the simulator at the terminal (or scripted). Returns whether the (last) dialogue
/// reached its end; scripted inputs that run out first are `Ok(false)`.
///
/// # Errors
/// The address cannot be bound, the gateway never binds, or a dialogue fails.
pub async fn run_operator_sim(opts: OperatorSimOptions) -> anyhow::Result<bool> {
    let mut out = std::io::stdout();
    let sim = OperatorSim::start(opts.listen, opts.profile.clone(), opts.credentials.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", opts.listen))?;
    let _ = writeln!(
        out,
        "operator-sim listening on {} (profile {}); waiting for the gateway to bind...",
        sim.addr(),
        opts.profile.name
    );
    if !sim.wait_bound(opts.bind_wait).await {
        anyhow::bail!("the gateway did not bind within {:?}", opts.bind_wait);
    }
    let _ = writeln!(out, "gateway bound");
    let scripted = !opts.inputs.is_empty();
    let mut script = opts.inputs.iter().cloned();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    // Waiting at the prompt, a push (USSN) from the gateway is printed, and a dialogue it
    // opens (USSR) is answered like a dialled one.
    const AWHILE: Duration = Duration::from_secs(24 * 3600);
    loop {
        let (mut d, mut screen) = match &opts.service_code {
            Some(c) => sim.dial(&opts.msisdn, c).await?,
            None => {
                let _ = write!(out, "dial> ");
                let _ = out.flush();
                tokio::select! {
                    line = stdin.next_line() => match line? {
                        Some(c) if !c.trim().is_empty() => sim.dial(&opts.msisdn, c.trim()).await?,
                        Some(_) => continue,
                        None => return Ok(true),
                    },
                    Some(s) = sim.next_push(AWHILE) => {
                        let _ = writeln!(out, "\n--- USSN to {} ---\n{}", s.message.dest.addr, s.text.trim_end());
                        continue;
                    }
                    Some((d, s)) = sim.next_dialogue(AWHILE) => {
                        let _ = writeln!(out, "\n(the network opened a dialogue with {})", s.message.dest.addr);
                        (d, s)
                    }
                }
            }
        };
        loop {
            show(&mut out, &screen);
            if screen.end {
                break;
            }
            let next = if scripted {
                script.next()
            } else {
                let _ = write!(out, "> ");
                let _ = out.flush();
                stdin.next_line().await?
            };
            let Some(input) = next else {
                let _ = writeln!(out, "(no more inputs before END)");
                d.abort().await?;
                return Ok(false);
            };
            if scripted {
                let _ = writeln!(out, "> {input}");
            }
            screen = d.reply(input.trim()).await?;
        }
        if opts.service_code.is_some() || scripted {
            return Ok(true);
        }
    }
}

fn show(out: &mut dyn Write, s: &Screen) {
    let _ = writeln!(out, "{}", if s.end { "--- END ---" } else { "--- CON ---" });
    let _ = writeln!(out, "{}", s.text.trim_end_matches('\n'));
}
