//! The `ussd-gateway` command: thin. Parses the command line and hands over to the library.

use clap::{CommandFactory, Parser};
use std::path::PathBuf;
use std::process::ExitCode;
use ussd_gateway::config::{Config, LogFormat};
use ussd_gateway::flow::Severity;
use ussd_gateway::gateway;
use ussd_gateway::sim::dial::{self, DialOptions, DialOutcome};

mod cli;

use cli::{CONFIG_ENV, Cli, Command, EXIT_CONFIG, ExportFormat, ExportWhat, LogFormatArg};

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
            if config.store.backend == ussd_gateway::config::Backend::Redis {
                if let Some(code) = export_cluster(&config, kind, format) {
                    return code;
                }
            }
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
            if config.store.backend == ussd_gateway::config::Backend::Redis {
                return seed_cluster(&config, synthetic);
            }
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
            secret,
            secret_header,
            ca_file,
            dialect,
            config,
        } => {
            let dialects = match &config {
                Some(path) => Config::load(path)
                    .map(|c| c.http)
                    .map_err(|e| e.to_string()),
                None => Ok(Default::default()),
            }
            .and_then(|http: ussd_gateway::config::dialect::HttpConfig| http.resolve());
            let found = dialects.and_then(|all| {
                let names: Vec<String> = all.iter().map(|d| d.name.clone()).collect();
                all.into_iter().find(|d| d.name == dialect).ok_or(format!(
                    "unknown dialect {dialect:?} (known: {})",
                    names.join(", ")
                ))
            });
            let dialect = match found {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let opts = DialOptions {
                service_code,
                phone,
                // A path per session (Infobip) is filled in on every hop: the base alone here.
                url: url.unwrap_or_else(|| match dialect.path.contains('{') {
                    true => "http://127.0.0.1:8080".into(),
                    false => format!("http://127.0.0.1:8080{}", dialect.path),
                }),
                inputs,
                network_code,
                secret,
                secret_header,
                ca_file,
                dialect,
            };
            let runtime = match current_thread() {
                Ok(rt) => rt,
                Err(code) => return code,
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

/// `seed` in cluster mode: into the cluster's Redis.
fn seed_cluster(config: &ussd_gateway::config::Config, synthetic: Option<u64>) -> ExitCode {
    let runtime = match current_thread() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let seeded = runtime.block_on(async {
        let Some(shared) = ussd_gateway::gateway::shared(config).await? else {
            anyhow::bail!("[store] backend is not \"redis\"");
        };
        Ok(ussd_gateway::seed::cluster_replacing(&shared.records, config, synthetic).await?)
    });
    match seeded {
        Ok((loaded, made)) => {
            println!(
                "{loaded} records loaded from {} into the cluster's Redis",
                config.seed_path().display()
            );
            if let Some(n) = synthetic {
                println!("{n} synthetic subscribers created ({made} records)");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `export` in cluster mode: what the cluster keeps, read from its Redis.
fn export_cluster(
    config: &ussd_gateway::config::Config,
    kind: ussd_gateway::retention::Kind,
    format: ussd_gateway::retention::Format,
) -> Option<ExitCode> {
    let runtime = match current_thread() {
        Ok(rt) => rt,
        Err(code) => return Some(code),
    };
    let docs = runtime.block_on(async {
        let shared = match ussd_gateway::gateway::shared(config).await {
            Ok(Some(shared)) => shared,
            Ok(None) => return None,
            Err(e) => return Some(Err(e.to_string())),
        };
        let outbox = shared.outbox.clone().into();
        Some(
            ussd_gateway::retention::cluster_documents(
                &shared.dialogues,
                &shared.records,
                &outbox,
                kind,
            )
            .await,
        )
    })?;
    let mut out = std::io::stdout().lock();
    let written =
        docs.and_then(|docs| ussd_gateway::retention::write_documents(&docs, format, &mut out));
    Some(match written {
        Ok(n) => {
            eprintln!("{n} records (the cluster's, from Redis)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    })
}

/// A single-threaded runtime for a command's few async calls, or the failure to report.
fn current_thread() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })
}
