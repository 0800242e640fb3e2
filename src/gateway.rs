//! Assembles and runs the gateway: config first, then the store, the flows and the actors, then
//! the listeners; and the reverse on shutdown.

use crate::app::flow::FlowApp;
use crate::app::upstream::{UpstreamApp, UpstreamConfig};
use crate::app::{App, Route, RouteTable};
use crate::config::Config;
use crate::flow::{Diagnostic, Flow, Severity};
use crate::front::http::{self, admin, ussd};
use crate::front::smpp::SmppFront;
use crate::session::{self, Registry, Settings, Shards, sweep};
use crate::store::Store;
use crate::text::Limit;
use crate::voice::{IvrSet, RenderOptions, VoicePath};
use ::http::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Loads every routed flow and builds the route table. Errors and warnings are returned as
/// diagnostics; any error means the table is not built.
pub fn load_routes(
    config: &Config,
    store: Option<&Store>,
) -> (Option<RouteTable>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut flows: std::collections::HashMap<String, Arc<Flow>> = Default::default();
    for name in config.routes.iter().filter_map(|r| r.flow.as_ref()) {
        if flows.contains_key(name) {
            continue;
        }
        let path = config.flows_path().join(format!("{name}.yaml"));
        match Flow::load(&path) {
            Ok(flow) => {
                diagnostics.extend(flow.warnings().iter().cloned());
                flows.insert(name.clone(), Arc::new(flow));
            }
            Err(errors) => diagnostics.extend(errors),
        }
    }
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return (None, diagnostics);
    }
    let Some(store) = store else {
        return (None, diagnostics);
    };
    let mut routes = Vec::new();
    for rc in &config.routes {
        let deadline = Duration::from_millis(rc.deadline_ms.unwrap_or(config.ussd.deadline_ms));
        let app: Arc<dyn App> = match (&rc.flow, &rc.upstream) {
            // Every routed flow loaded above, or we returned.
            (Some(name), _) => match flows.get(name) {
                Some(flow) => Arc::new(FlowApp::new(flow.clone(), store.clone())),
                None => continue,
            },
            (None, Some(url)) => {
                // The URL was validated with the config.
                let Ok(url) = url.parse::<::http::Uri>() else {
                    continue;
                };
                Arc::new(UpstreamApp::new(UpstreamConfig {
                    url,
                    route: rc.service_code.clone(),
                    network_code: rc.network_code.clone(),
                    apology: rc
                        .apology
                        .clone()
                        .unwrap_or_else(|| config.ussd.apology_text.clone()),
                    long_screens: rc.long_screens,
                    concurrency: rc.upstream_concurrency.unwrap_or(64),
                    breaker_failures: rc.breaker_failures.unwrap_or(5),
                    breaker_cooldown: Duration::from_millis(
                        rc.breaker_cooldown_ms.unwrap_or(10_000),
                    ),
                    session_id: ussd::at_session_id,
                }))
            }
            (None, None) => continue,
        };
        let limit = Limit {
            septets: rc.max_septets.unwrap_or(config.ussd.max_septets),
            ucs2: rc.max_ucs2_chars.unwrap_or(config.ussd.max_ucs2_chars),
        };
        let idle = Duration::from_secs(
            rc.idle_timeout_secs
                .unwrap_or(config.sessions.idle_timeout_secs),
        );
        // Service codes were validated with the config.
        if let Some(route) = Route::new(&rc.service_code, app, idle, deadline, limit) {
            routes.push(route);
        }
    }
    (Some(RouteTable::new(routes)), diagnostics)
}

/// A running gateway.
pub struct Running {
    /// Where the public front listens.
    pub public_addr: SocketAddr,
    /// Where the admin listener listens.
    pub admin_addr: SocketAddr,
    registry: Registry,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    shards: Option<Shards>,
    store: Store,
    reload: admin::Reloader,
    smpp: Option<Arc<SmppFront>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("public_addr", &self.public_addr)
            .field("admin_addr", &self.admin_addr)
            .finish()
    }
}

impl Running {
    /// The registry (for in-process callers such as tests and load drivers).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The SMPP front, when `[smpp]` configures binds or a listener.
    pub fn smpp(&self) -> Option<&SmppFront> {
        self.smpp.as_deref()
    }

    /// Reloads flows and routes; live dialogues finish on the version they started with.
    ///
    /// # Errors
    /// Every problem found; the running version keeps serving.
    pub fn reload(&self) -> Result<String, Vec<String>> {
        (self.reload)()
    }

    /// Stops accepting, lets hops in flight finish, flushes the store and stops the actors.
    /// Live dialogues stay persisted and resume on the next start.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);

        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // The listeners are closed, so the admin handler's handle on the SMPP front is gone.
        if let Some(smpp) = self.smpp.take() {
            match Arc::try_unwrap(smpp) {
                Ok(smpp) => smpp.shutdown().await,
                Err(_) => tracing::warn!("SMPP front still in use at shutdown"),
            }
        }
        // Background tasks hold store handles: wait until they are gone, so that the database
        // is released when this returns (an in-process restart can open it again at once).
        for t in self.background.drain(..) {
            t.abort();
            let _ = t.await;
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush_blocking()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "final flush failed"),
            Err(e) => tracing::error!(error = %e, "final flush task failed"),
        }
        if let Some(shards) = self.shards.take() {
            let _ = tokio::task::spawn_blocking(move || shards.stop()).await;
        }
        tracing::info!("gateway stopped");
    }
}

/// Starts the gateway described by `config`.
///
/// # Errors
/// Invalid flows (every diagnostic, one per line), a store that cannot be opened, or an
/// address that cannot be bound.
/// What the public front's handler reads, shared by every request.
struct PublicFront {
    guard: http::guard::Guard,
    registry: Registry,
    voice: http::voice::VoiceState,
    ready: Arc<AtomicBool>,
    smpp_health: Option<crate::front::smpp::SmppHealth>,
    max_body: usize,
    http_limit: Limit,
    cc: String,
    apology: String,
}

pub async fn start(config: Config) -> anyhow::Result<Running> {
    crate::metrics::install();
    for w in config.security_warnings() {
        tracing::warn!("{w}");
    }
    let store = Store::open(
        &config.store.data_dir,
        config.store.cache_mb,
        config.store.flush_every_ms,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", config.store.data_dir.display()))?;
    crate::session::set_log_secret(&store.installation_secret()?);
    let (routes, diagnostics) = load_routes(&config, Some(&store));
    for d in diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
    {
        tracing::warn!("{d}");
    }
    let Some(routes) = routes else {
        let errors: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        anyhow::bail!("invalid flows:\n{}", errors.join("\n"));
    };
    crate::metrics::routes(routes.routes().iter().map(|r| &*r.service_code));
    let ivr_dir = config.ivr_path();
    let ivrs = if ivr_dir.is_dir() {
        IvrSet::load_dir(&ivr_dir)
            .map_err(|errors| anyhow::anyhow!("invalid IVRs:\n{}", errors.join("\n")))?
    } else {
        IvrSet::default()
    };
    crate::seed::at_start(&store, &config)?;

    let shards_n = match config.sessions.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let shards = Shards::start(shards_n)?;
    let settings = Settings {
        unknown_service_text: config.ussd.unknown_service_text.clone(),
        apology_text: config.ussd.apology_text.clone(),
        timeout_text: config.ussd.timeout_text.clone(),
        tombstone_ttl: Duration::from_secs(config.sessions.tombstone_secs),
        fixed_now: config.clock.fixed.as_ref().map(|_| config.now()),
        events: config
            .events
            .url
            .clone()
            .map(|url| Arc::new(http::events::AtEvents { url }) as Arc<dyn session::EndEvents>),
    };
    let http_limit = Limit {
        septets: config.ussd.max_septets,
        ucs2: config.ussd.max_ucs2_chars,
    };
    let core = session::Core::new(
        store.clone(),
        routes,
        settings,
        session::Limits::from_config(&config.limits),
    );
    let registry = Registry::new(core, &shards);

    let public = TcpListener::bind(config.public.listen)
        .await
        .map_err(|e| anyhow::anyhow!("public front {}: {e}", config.public.listen))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .map_err(|e| anyhow::anyhow!("admin listener {}: {e}", config.admin.listen))?;
    let public_addr = public.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    tracing::info!(%public_addr, "public front listening (POST /ussd, POST /voice/..., GET /health, GET /ready)");
    tracing::info!(%admin_addr, "admin listener listening (GET /metrics, /admin/...)");

    let (shutdown, shutdown_rx) = watch::channel(false);
    let grace = Duration::from_secs(config.sessions.shutdown_grace_secs);
    let serve_limits = http::ServeLimits::from_config("public", &config.limits, grace);
    let admin_limits = http::ServeLimits::from_config("admin", &config.limits, grace);
    let ready = Arc::new(AtomicBool::new(false));

    let smpp = if config.smpp.binds.is_empty() && config.smpp.listener.is_none() {
        None
    } else {
        Some(
            SmppFront::start(
                &config.smpp,
                registry.clone(),
                config.numbers.default_country_code.clone(),
                shutdown_rx.clone(),
            )
            .await?,
        )
    };
    let smpp = smpp.map(Arc::new);
    let smpp_health = smpp.as_deref().map(SmppFront::health);

    let reload: admin::Reloader = {
        let config = config.clone();
        let registry = registry.clone();
        let store = store.clone();
        Arc::new(move || reload_routes(&config, &registry, &store))
    };

    let voice_state = http::voice::VoiceState {
        ivrs: Arc::new(ivrs),
        store: store.clone(),
        base_url: config.public.base_url.trim_end_matches('/').into(),
        render: Arc::new(RenderOptions {
            ringback_attribute: config.voice.ringback_attribute.clone(),
        }),
        max_body: config.public.max_body_bytes,
        cost_currencies: config.voice.cost_currencies.clone().into(),
    };
    let public_task = {
        let placement = http::Placement::Shards(registry.clone());
        // One handle per request on everything the handler reads: cloning each part for every
        // request (the store alone is a dozen reference counts) was a few percent of a hop.
        let front = Arc::new(PublicFront {
            guard: http::guard::Guard {
                allow_from: config.public.allow_from.clone(),
                trusted_proxies: config.public.trusted_proxies.clone(),
                secret: config.public_secret().map(Arc::from),
                secret_header: config.public.secret_header.clone(),
            },
            registry: registry.clone(),
            voice: voice_state.clone(),
            ready: ready.clone(),
            smpp_health: smpp_health.clone(),
            max_body: config.public.max_body_bytes,
            http_limit,
            cc: config.numbers.default_country_code.clone(),
            apology: config.ussd.apology_text.clone(),
        });
        let handler = move |mut req: hyper::Request<hyper::body::Incoming>| {
            let front = front.clone();
            async move {
                let f = &*front;
                let probe = matches!(req.uri().path(), "/health" | "/ready");
                if !probe && let Err(refusal) = f.guard.check(&mut req) {
                    return *refusal;
                }
                if req.uri().path().starts_with("/voice/") {
                    return match (req.method(), VoicePath::from_path(req.uri().path())) {
                        (&Method::POST, Some(path)) => {
                            http::voice::handle(req, path, &f.voice).await
                        }
                        (_, Some(_)) => {
                            http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
                        }
                        (_, None) => http::text(StatusCode::NOT_FOUND, "not found\n"),
                    };
                }
                match (req.method(), req.uri().path()) {
                    (&Method::POST, "/ussd/events") => {
                        http::events::handle(req, &f.registry, f.max_body).await
                    }
                    (&Method::POST, "/ussd") => {
                        ussd::handle(
                            req,
                            &f.registry,
                            f.max_body,
                            f.http_limit,
                            &f.cc,
                            &f.apology,
                        )
                        .await
                    }
                    (&Method::GET, "/health") => http::text(StatusCode::OK, "ok\n"),
                    (&Method::GET, "/ready") => {
                        let smpp_ok = f.smpp_health.as_ref().is_none_or(|h| h.ready());
                        if f.ready.load(Ordering::Acquire) && smpp_ok {
                            http::text(StatusCode::OK, "ready\n")
                        } else {
                            http::text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                        }
                    }
                    (_, "/ussd" | "/ussd/events" | "/health" | "/ready") => {
                        http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
                    }
                    _ => http::text(StatusCode::NOT_FOUND, "not found\n"),
                }
            }
        };
        tokio::spawn(http::serve(
            public,
            handler,
            serve_limits,
            placement,
            shutdown_rx.clone(),
        ))
    };
    let admin_task = {
        let state = admin::AdminState {
            registry: registry.clone(),
            token: config.admin_token().map(Arc::from),
            reload: reload.clone(),
            smpp: smpp.clone(),
            max_body: config.public.max_body_bytes,
        };
        if state.token.is_none() {
            tracing::warn!("no admin token configured: every /admin call will be refused");
        }
        let handler = move |req| admin::handle(req, state.clone());
        tokio::spawn(http::serve(
            admin_listener,
            handler,
            admin_limits,
            http::Placement::Tokio,
            shutdown_rx.clone(),
        ))
    };
    ready.store(true, Ordering::Release);

    // Tombstones are purged only after the start-up sweep has read them: one may be all that
    // tells a dialogue cut short by a crash from a live one.
    let (swept_tx, swept_rx) = tokio::sync::oneshot::channel::<()>();
    let sweeper = {
        let registry = registry.clone();
        tokio::spawn(async move {
            let pending = sweep::sweep_until_complete(&registry, Duration::from_secs(5), || {
                let _ = swept_tx.send(());
            })
            .await;
            sweep::expire_pending(registry, pending).await;
        })
    };
    let purger = {
        let registry = registry.clone();
        tokio::spawn(async move {
            let _ = swept_rx.await;
            sweep::purge_tombstones(registry).await;
        })
    };
    // Awaited on shutdown (not aborted), so requests in flight get their answers recorded.
    let outbox_task = crate::outbox::spawn_sender_with(
        store.clone(),
        config.africastalking.clone(),
        crate::outbox::SenderOptions {
            transport: Some(Arc::new(crate::outbox::HyperTransport::https())),
            wake: Some(store.outbox_signal()),
            network: smpp
                .as_deref()
                .map(|s| Arc::new(s.pusher()) as Arc<dyn crate::outbox::Network>),
        },
        shutdown_rx.clone(),
    );
    let retention = {
        let store = store.clone();
        let policy = config.retention.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_secs(policy.every_minutes.saturating_mul(60)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let store = store.clone();
                let policy = policy.clone();
                let purged = tokio::task::spawn_blocking(move || {
                    crate::retention::purge(&store, &policy, crate::clock::now_ms())
                })
                .await;
                match purged {
                    Ok(Ok(p)) => tracing::info!(?p, "retention purge"),
                    Ok(Err(e)) => tracing::error!(error = %e, "retention purge failed"),
                    Err(e) => tracing::error!(error = %e, "retention purge task failed"),
                }
            }
        })
    };
    let committer = spawn_committer(
        store.clone(),
        Duration::from_millis(config.store.flush_every_ms),
        shutdown_rx.clone(),
    );
    let upkeep = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            crate::metrics::upkeep();
        }
    });

    Ok(Running {
        public_addr,
        admin_addr,
        registry,
        shutdown,
        tasks: vec![public_task, admin_task, outbox_task, committer],
        background: vec![sweeper, purger, upkeep, retention],
        shards: Some(shards),
        store,
        reload,
        smpp,
    })
}

/// Commits the dialogue state written since the last commit and flushes, every `flush_every`,
/// until shutdown (whose own last flush commits what is left). On a thread of its own: sled's
/// allocations for the commits then stay in one malloc arena instead of one per blocking-pool
/// thread (about 500 MiB more with a million live dialogues, docs/benchmarks.md).
fn spawn_committer(
    store: Store,
    flush_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ussd-commit".into())
        .spawn(move || {
            let mut failing = false;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(flush_every)
            {
                let result = store.flush_blocking();
                // Said once when commits start failing and once when they recover.
                match (result, failing) {
                    (Err(e), false) => {
                        failing = true;
                        tracing::error!(error = %e, waiting = store.uncommitted(), "dialogue state commit failed; retrying");
                    }
                    (Ok(()), true) => {
                        failing = false;
                        tracing::info!("dialogue state commits recovered");
                    }
                    _ => {}
                }
            }
        })
        .expect("the commit thread starts");
    tokio::spawn(async move {
        let _ = shutdown.changed().await;
        drop(stop);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    })
}

/// Re-reads the config's routes and flows and swaps them in if they are all valid. Only routes
/// and flows change on reload; listeners, store and session settings need a restart.
fn reload_routes(
    config: &Config,
    registry: &Registry,
    store: &Store,
) -> Result<String, Vec<String>> {
    let fresh = match &config.source {
        Some(path) => Config::load(path).map_err(|e| {
            crate::metrics::reload(false);
            vec![e.to_string()]
        })?,
        None => config.clone(),
    };
    let (routes, diagnostics) = load_routes(&fresh, Some(store));
    let Some(routes) = routes else {
        let errors: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        tracing::error!(errors = errors.len(), "flow reload refused");
        crate::metrics::reload(false);
        return Err(errors);
    };
    let summary: Vec<String> = routes
        .routes()
        .iter()
        .map(|r| format!("{} {} {}", r.service_code, r.app.kind(), r.app.version()))
        .collect();
    crate::metrics::routes(routes.routes().iter().map(|r| &*r.service_code));
    registry.core().routes.store(Arc::new(routes));
    crate::metrics::reload(true);
    tracing::info!("flows reloaded");
    Ok(format!("reloaded:\n{}", summary.join("\n")))
}
