//! The command line of `ussd-gateway`: its subcommands and their arguments (clap derive), kept
//! apart from `main.rs`, which runs them.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `--version`: the crate's version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("USSD_GATEWAY_COMMIT"),
    ")"
);

/// The variable that names the configuration file when `--config` does not.
pub(crate) const CONFIG_ENV: &str = "USSD_GATEWAY_CONFIG";

/// Exit code for bad configuration (EX_USAGE in sysexits).
pub(crate) const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(name = "ussd-gateway", version = VERSION, about = "An actor-based USSD gateway")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gateway.
    Serve {
        /// The configuration file.
        #[arg(long, short, env = CONFIG_ENV, default_value = "config/gateway.toml")]
        config: PathBuf,
        /// The log's format (default: `[log] format` of the configuration, else text).
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
        /// Reload the flows when their files (or the configuration) change, as on SIGHUP: for
        /// development.
        #[arg(long)]
        watch: bool,
    },
    /// Validate the configuration and every flow; exit non-zero on any error.
    Check {
        /// The configuration file (as with the other commands). [env: USSD_GATEWAY_CONFIG=]
        #[arg(long, short, conflicts_with = "file")]
        config: Option<PathBuf>,
        /// The configuration file, given without `--config` (kept for older scripts).
        #[arg(value_name = "CONFIG")]
        file: Option<PathBuf>,
    },
    /// Run scripted dialogue tests (YAML files of cases; docs/testing-flows.md) on the flows
    /// in-process; exit non-zero unless every case passes.
    Test {
        /// Test files (default: every `*.test.yaml` of the configured flows folder).
        files: Vec<PathBuf>,
        /// The configuration file (its routes, flows and sample records).
        #[arg(long, short, env = CONFIG_ENV, default_value = "config/gateway.toml")]
        config: PathBuf,
    },
    /// Print a route's flow as a graph (screens and transitions).
    Graph {
        /// The route's service code (`*123#`) or the flow's name (`student`).
        route: String,
        /// The graph language: mermaid (GitHub and many editors draw it) or dot (Graphviz).
        #[arg(long, value_parser = ["mermaid", "dot"], default_value = "mermaid")]
        format: String,
        /// The configuration file.
        #[arg(long, short, env = CONFIG_ENV, default_value = "config/gateway.toml")]
        config: PathBuf,
    },
    /// Print the JSON Schema of flow files, for editors (docs/flows.md, "Editor support").
    Schema,
    /// Load the sample records of the configuration's data folder into the store.
    Seed {
        /// The configuration file.
        #[arg(long, short, env = CONFIG_ENV, default_value = "config/gateway.toml")]
        config: PathBuf,
        /// Also create N synthetic subscribers for load tests (254710000000 onwards: students
        /// and microfinance customers with wallets; made-up names).
        #[arg(long, value_name = "N")]
        synthetic: Option<u64>,
    },
    /// Export records for reconciliation before retention removes them: ended, calls, outbox or
    /// journal, as JSON lines or CSV on standard output. Reads the store directly, so the
    /// gateway must be stopped; while it runs, use GET /admin/export/... instead.
    Export {
        /// What to export.
        #[arg(value_enum)]
        what: ExportWhat,
        /// How to write it.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// The configuration file.
        #[arg(long, short, env = CONFIG_ENV, default_value = "config/gateway.toml")]
        config: PathBuf,
    },
    /// Print a shell completion script, e.g. `ussd-gateway completions bash >
    /// /etc/bash_completion.d/ussd-gateway`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Dial a service code against a running gateway, as the aggregator would.
    Dial {
        /// The service code, e.g. '*123#'.
        service_code: String,
        /// The subscriber's phone number.
        #[arg(long, default_value = "+254700000001")]
        phone: String,
        /// The gateway's USSD callback URL. Default: http://127.0.0.1:8080 and the dialect's
        /// path (/ussd for Africa's Talking).
        #[arg(long)]
        url: Option<String>,
        /// Scripted inputs, in order (non-interactive).
        #[arg(long = "input", short)]
        inputs: Vec<String>,
        /// A network to send (AT's networkCode, Hubtel's Operator, ...).
        #[arg(long)]
        network_code: Option<String>,
        /// The public front's shared secret, sent in --secret-header (better from the
        /// environment than on the command line, where `ps` shows it).
        #[arg(long, env = "USSD_GATEWAY_PUBLIC_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// The header the shared secret goes in (the front's [public] secret_header).
        #[arg(long, default_value = "X-Ussd-Secret")]
        secret_header: String,
        /// A PEM file of CA certificates to trust besides the public roots, for an https
        /// front with a private certificate.
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        /// The aggregator to play: a built-in dialect (africastalking, hubtel, nalo, arkesel,
        /// beem) or one of --config's [[http.dialects]] (docs/dialects.md).
        #[arg(long, default_value = "africastalking")]
        dialect: String,
        /// A gateway.toml whose [[http.dialects]] define or change --dialect.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// An SMSC simulator: accepts the gateway's SMPP bind and lets you dial over SMPP.
    OperatorSim {
        /// Where to listen for the gateway's bind.
        #[arg(long, default_value = "127.0.0.1:2775")]
        listen: std::net::SocketAddr,
        /// The operator convention to play: a preset, or a [smpp.profiles] name of --config.
        #[arg(long, default_value = "its_session_info")]
        profile: String,
        /// A gateway.toml whose [smpp.profiles] define --profile.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The subscriber's phone number.
        #[arg(long, default_value = "254700000001")]
        phone: String,
        /// The code to dial (asked at the terminal when absent).
        #[arg(long)]
        dial: Option<String>,
        /// Scripted inputs, in order (non-interactive).
        #[arg(long = "input", short)]
        inputs: Vec<String>,
        /// Accept only this system_id:password (any by default).
        #[arg(long)]
        credentials: Option<String>,
    },
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ExportWhat {
    /// End-of-session records.
    Ended,
    /// Voice call records.
    Calls,
    /// Outbox items.
    Outbox,
    /// The ledger journal.
    Journal,
}

/// How `export` writes it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON document per line.
    #[value(alias = "json")]
    Jsonl,
    /// CSV with a header; nested values as JSON text.
    Csv,
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormatArg {
    /// Lines for people (coloured on a terminal only).
    Text,
    /// One JSON object per line, for Loki or ELK: the event's fields at the top, its hop's
    /// span (front, route, session) under `span`.
    Json,
}
