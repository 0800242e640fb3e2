//! The `ussd-gateway` command: thin. Parses the command line and hands over to the library.

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use ussd_gateway::config::{Config, LogFormat};
use ussd_gateway::flow::Severity;
use ussd_gateway::gateway;
use ussd_gateway::sim::dial::{self, DialOptions, DialOutcome};

/// `--version`: the crate's version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("USSD_GATEWAY_COMMIT"),
    ")"
);

/// The variable that names the configuration file when `--config` does not.
const CONFIG_ENV: &str = "USSD_GATEWAY_CONFIG";

/// Exit code for bad configuration (EX_USAGE in sysexits).
const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(name = "ussd-gateway", version = VERSION, about = "An actor-based USSD gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
        /// The gateway's USSD callback URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/ussd")]
        url: String,
        /// Scripted inputs, in order (non-interactive).
        #[arg(long = "input", short)]
        inputs: Vec<String>,
        /// A networkCode to send.
        #[arg(long)]
        network_code: Option<String>,
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
enum ExportWhat {
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
enum ExportFormat {
    /// One JSON document per line.
    #[value(alias = "json")]
    Jsonl,
    /// CSV with a header; nested values as JSON text.
    Csv,
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    /// Lines for people (coloured on a terminal only).
    Text,
    /// One JSON object per line, for Loki or ELK: the event's fields at the top, its hop's
    /// span (front, route, session) under `span`.
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match format {
        LogFormat::Text => {
            // Colours only on a terminal: a log file or journal gets plain text.
            let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(colours)
                .init();
        }
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            log_format,
            watch,
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(match log_format {
                Some(LogFormatArg::Text) => LogFormat::Text,
                Some(LogFormatArg::Json) => LogFormat::Json,
                None => config.log.format,
            });
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(config, watch))
        }
        // The variable is read here, not by clap: clap would count it as `--config` given
        // and refuse the positional file beside it.
        Command::Check { config, file } => check(
            &config
                .or(file)
                .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("config/gateway.toml")),
        ),
        Command::Export {
            what,
            format,
            config,
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            use ussd_gateway::retention::{Format, Kind};
            let kind = match what {
                ExportWhat::Ended => Kind::Ended,
                ExportWhat::Calls => Kind::Calls,
                ExportWhat::Outbox => Kind::Outbox,
                ExportWhat::Journal => Kind::Journal,
            };
            let format = match format {
                ExportFormat::Jsonl => Format::JsonLines,
                ExportFormat::Csv => Format::Csv,
            };
            let store = match ussd_gateway::store::Store::open(
                &config.store.data_dir,
                config.store.cache_mb,
                config.store.flush_every_ms,
            ) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "error: {}: {e} (is the gateway running? use GET /admin/export/...)",
                        config.store.data_dir.display()
                    );
                    return ExitCode::FAILURE;
                }
            };
            let mut out = std::io::stdout().lock();
            match ussd_gateway::retention::export(&store, kind, format, &mut out) {
                Ok(n) => {
                    eprintln!("{n} records");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Test { files, config } => match load_config(&config) {
            Ok(config) if ussd_gateway::workbench::test_command(&config, files) => {
                ExitCode::SUCCESS
            }
            Ok(_) => ExitCode::FAILURE,
            Err(code) => code,
        },
        Command::Graph {
            route,
            format,
            config,
        } => {
            let dot = format == "dot";
            match load_config(&config).map(|c| ussd_gateway::workbench::graph(&c, &route, dot)) {
                Ok(Ok(text)) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Ok(Err(e)) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
                Err(code) => code,
            }
        }
        Command::Schema => {
            println!("{}", ussd_gateway::flow::flow_schema());
            ExitCode::SUCCESS
        }
        Command::Seed { config, synthetic } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let store = match ussd_gateway::store::Store::open(
                &config.store.data_dir,
                config.store.cache_mb,
                config.store.flush_every_ms,
            ) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {}: {e}", config.store.data_dir.display());
                    return ExitCode::FAILURE;
                }
            };
            let ctx = ussd_gateway::seed::SeedContext::of(&config);
            match ussd_gateway::seed::load_dir(store.records(), &config.seed_path(), &ctx) {
                Ok(n) => {
                    println!("{n} records loaded from {}", config.seed_path().display());
                    if let Some(n) = synthetic {
                        match ussd_gateway::seed::synthetic(store.records(), n) {
                            Ok(w) => println!("{n} synthetic subscribers created ({w} records)"),
                            Err(e) => {
                                eprintln!("error: {e}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ussd-gateway",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Dial {
            service_code,
            phone,
            url,
            inputs,
            network_code,
        } => {
            let opts = DialOptions {
                service_code,
                phone,
                url,
                inputs,
                network_code,
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut out = std::io::stdout();
            match runtime.block_on(dial::run(&opts, &mut out)) {
                Ok(DialOutcome::Ended) => ExitCode::SUCCESS,
                Ok(DialOutcome::InputsRanOut) => ExitCode::from(2),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::OperatorSim {
            listen,
            profile,
            config,
            phone,
            dial,
            inputs,
            credentials,
        } => {
            init_tracing(LogFormat::Text);
            let profile = match &config {
                Some(path) => match load_config(path) {
                    Ok(c) => c.smpp.profile(&profile),
                    Err(code) => return code,
                },
                None => ussd_gateway::front::smpp::SmppConfig::default().profile(&profile),
            };
            let profile = match profile {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let opts = ussd_gateway::sim::OperatorSimOptions {
                listen,
                profile,
                credentials: credentials.and_then(|c| {
                    c.split_once(':')
                        .map(|(id, pw)| (id.to_string(), pw.to_string()))
                }),
                msisdn: phone,
                service_code: dial,
                inputs,
                ..Default::default()
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(ussd_gateway::sim::run_operator_sim(opts)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(2),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !config.overrides.is_empty() {
        println!("values not from {}:", path.display());
        for o in &config.overrides {
            println!("  {o}");
        }
    }
    let (_, diagnostics) = gateway::load_routes(&config, None);
    let mut errors = 0;
    let mut warnings = config.security_warnings();
    for path in ussd_gateway::workbench::unrouted_flows(&config) {
        warnings.push(format!(
            "{}: no route names this flow file (a typo in a route's `flow`?)",
            path.display()
        ));
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if let Err(ivr_errors) = gateway::load_ivrs(&config) {
        for e in &ivr_errors {
            eprintln!("error: {e}");
        }
        errors += ivr_errors.len();
    }
    for d in &diagnostics {
        if d.severity == Severity::Error {
            errors += 1;
        }
        eprintln!("{d}");
    }
    if errors > 0 {
        eprintln!("{errors} error(s)");
        ExitCode::FAILURE
    } else {
        println!(
            "{}: ok ({} routes, {} warnings)",
            path.display(),
            config.routes.len(),
            diagnostics.len() + warnings.len()
        );
        ExitCode::SUCCESS
    }
}

async fn serve(config: Config, watch: bool) -> ExitCode {
    // Signal handlers first: a SIGHUP or SIGTERM that arrives as soon as the addresses are
    // announced must reload or drain, not kill the process (their default action).
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let flows_dir = config.flows_path();
    let config_file = config.source.clone();
    let running = match gateway::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // One machine-readable line for scripts and tests that start the gateway on port 0.
    println!(
        "listening public={} admin={}",
        running.public_addr, running.admin_addr
    );
    let watch = match watch.then(|| gateway::FlowWatch::start(&flows_dir, config_file.as_deref())) {
        Some(Err(e)) => {
            eprintln!("error: --watch: {}: {e}", flows_dir.display());
            running.shutdown().await;
            return ExitCode::FAILURE;
        }
        w => w.and_then(Result::ok),
    };
    signals.wait(&running, watch).await;
    tracing::info!("shutting down: no new connections, finishing hops in flight");
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGTERM, SIGINT and SIGHUP, caught from before the gateway starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGINT or SIGTERM; reloads flows on SIGHUP, or on a change `watch` sees,
    /// meanwhile.
    async fn wait(mut self, running: &gateway::Running, mut watch: Option<gateway::FlowWatch>) {
        loop {
            let changed = async {
                match &mut watch {
                    Some(w) => w.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                files = changed => match running.reload() {
                    Ok(summary) => tracing::info!(
                        changed = ?files,
                        "watch: {}",
                        summary.replace('\n', "; ")
                    ),
                    Err(errors) => tracing::error!(
                        changed = ?files,
                        "watch: reload refused: {}",
                        errors.join("; ")
                    ),
                },
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => match running.reload() {
                    Ok(summary) => tracing::info!("SIGHUP: {}", summary.replace('\n', "; ")),
                    Err(errors) => tracing::error!("SIGHUP: reload refused: {}", errors.join("; ")),
                },
            }
        }
    }
}
