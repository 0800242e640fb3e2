//! Assembles and runs the gateway, in named phases, and takes it down in the reverse order.
//!
//! A start ([`start`]) goes:
//! 1. `open_store`: the database (and the installation's secret for log ids);
//! 2. `apps::load`: the routes with their flows or upstreams, the IVRs, and the sample
//!    records of an empty store;
//! 3. `start_sessions`: the actor shards and the registry of dialogues;
//! 4. `bind`: the public and admin listeners (nothing answers yet);
//! 5. `serve`: the SMPP front, then the public routes (`public`) and the admin API;
//! 6. `jobs::spawn`: the sweep, the outbox sender, retention, the commits, metrics upkeep.
//!
//! [`Running::shutdown`] stops accepting, lets hops in flight finish, stops the SMPP front and
//! the jobs, flushes the store and stops the actors.

mod apps;
mod flow_watch;
mod jobs;
mod public;

pub use apps::{load_ivrs, load_routes};
pub use flow_watch::FlowWatch;

use crate::config::Config;
use crate::front::http::{self, admin};
use crate::front::smpp::SmppFront;
use crate::session::{self, Registry, Settings, Shards};
use crate::store::Store;
use crate::text::Limit;
use crate::voice::{IvrSet, RenderOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

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

/// Starts the gateway described by `config`, phase by phase (the module's docs).
///
/// # Errors
/// Invalid flows (every diagnostic, one per line) or IVRs, a store that cannot be opened, or an
/// address that cannot be bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let shared = match config.store.backend {
        crate::config::Backend::Redis => Some(connect_redis(&config).await?),
        crate::config::Backend::Sled => None,
    };
    let secret = match shared.as_ref().map(|shared| &shared.dialogues) {
        Some(dialogues) => Some(
            dialogues
                .installation_secret()
                .await
                .map_err(|e| anyhow::anyhow!("[store.redis] {e}"))?,
        ),
        None => None,
    };
    let store = open_store(&config, secret)?;
    let store = match shared.as_ref().map(|shared| shared.records.clone()) {
        Some(records) => store.share_records(records),
        None => store,
    };
    crate::seed::into_cluster(&store, &config).await?;
    let apps = apps::load(&config, &store)?;
    let (shards, registry, started) = start_sessions(&config, &store, apps.routes, shared)?;
    let listeners = bind(&config).await?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let served = serve(
        &config,
        &registry,
        &store,
        apps.ivrs,
        listeners,
        &shutdown_rx,
    )
    .await?;
    let jobs = jobs::spawn(
        &config,
        apps.calling_number,
        &registry,
        &store,
        served.smpp.as_ref(),
        started,
        &shutdown_rx,
    );
    let mut tasks = served.tasks;
    tasks.extend(jobs.awaited);
    Ok(Running {
        public_addr: served.public_addr,
        admin_addr: served.admin_addr,
        registry,
        shutdown,
        tasks,
        background: jobs.aborted,
        shards: Some(shards),
        store,
        reload: served.reload,
        smpp: served.smpp,
    })
}

/// What cluster mode shares in Redis.
#[derive(Debug)]
pub struct Shared {
    /// The dialogues, their tombstones and end records.
    pub dialogues: crate::store::shared_dialogues::SharedDialogues,
    /// Flow records, the ledger, call records and resume points.
    pub records: crate::store::shared_records::SharedRecords,
    /// The outbox.
    pub outbox: crate::store::shared_outbox::SharedOutbox,
    /// Messages for another node's SMPP connection.
    pub relay: crate::store::shared_relay::SharedRelay,
}

/// What `config` shares in Redis, connected and checked as `serve` does, or `None` on one
/// node (sled), for the commands that read or write it (`export`, `seed`).
///
/// # Errors
/// Redis unreachable or not durable.
pub async fn shared(config: &Config) -> anyhow::Result<Option<Shared>> {
    if config.store.backend != crate::config::Backend::Redis {
        return Ok(None);
    }
    Ok(Some(connect_redis(config).await?))
}

/// Connects to the Redis of `[store.redis]` and checks that it keeps what the gateway
/// confirms; the error says what to set. Returns what the nodes share there.
async fn connect_redis(config: &Config) -> anyhow::Result<Shared> {
    use crate::store::redis::{Redis, RedisSettings};
    let redis_config = &config.store.redis;
    let settings = RedisSettings {
        urls: redis_config.urls.clone(),
        cluster: redis_config.cluster,
        timeout: Duration::from_millis(redis_config.timeout_ms),
        sentinel_master: redis_config.sentinel_master.clone(),
        credentials: crate::store::redis::Credentials {
            username: redis_config.username.clone(),
            password: redis_config.password.clone(),
        },
    };
    let urls = redis_config
        .urls
        .iter()
        .map(|u| crate::logsafe::redacted_url(u))
        .collect::<Vec<_>>()
        .join(", ");
    let redis = Redis::connect(&settings)
        .await
        .map_err(|e| anyhow::anyhow!("[store.redis] {urls}: {e}"))?;
    redis
        .check_durability(redis_config.wait_replicas)
        .await
        .map_err(|e| anyhow::anyhow!("[store.redis] {urls}: {e}"))?;
    let records = crate::store::shared_records::SharedRecords::new(
        redis.clone(),
        redis_config.wait_replicas,
        Duration::from_secs(config.retention.idempotency_days.saturating_mul(86_400)),
    )
    .with_call_records_ttl(Duration::from_secs(
        config.retention.call_records_days.saturating_mul(86_400),
    ));
    let outbox = crate::store::shared_outbox::SharedOutbox::open(
        redis.clone(),
        config.outbox.claim_timeout(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("[store.redis] the shared outbox: {e}"))?;
    Ok(Shared {
        relay: crate::store::shared_relay::SharedRelay::new(redis.clone()),
        dialogues: crate::store::shared_dialogues::SharedDialogues::new(redis),
        records,
        outbox,
    })
}

/// Phase 1: the metrics recorder, warnings about the config's security, and the store.
///
/// `shared_secret` is the cluster's (cluster mode): every node then logs a dialogue under the
/// same log id. A node alone keeps its own in its store.
fn open_store(config: &Config, shared_secret: Option<[u8; 32]>) -> anyhow::Result<Store> {
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
    let secret = match shared_secret {
        Some(secret) => secret,
        None => store.installation_secret()?,
    };
    crate::session::set_log_secret(&secret);
    Ok(store)
}

/// Phase 3: the actor shards and the registry of dialogues, over `routes`.
fn start_sessions(
    config: &Config,
    store: &Store,
    routes: crate::app::RouteTable,
    shared: Option<Shared>,
) -> anyhow::Result<(Shards, Registry, Option<SupersedeQueue>)> {
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
        passivate_after: Duration::from_millis(config.sessions.passivate_after_ms),
        events: config
            .events
            .url
            .clone()
            .map(|url| Arc::new(http::events::AtEvents { url }) as Arc<dyn session::EndEvents>),
    };
    // A node holds a dialogue's lease while it answers a hop: the longest deadline and a
    // margin, so that a hop never outlives its lease.
    let longest = routes
        .routes()
        .iter()
        .map(|r| r.deadline)
        .max()
        .unwrap_or_default();
    let (new_dialogues, queue) = tokio::sync::mpsc::channel(SUPERSEDE_QUEUE);
    let queue = shared.is_some().then_some(queue);
    let cluster = shared.map(|shared| session::core::Cluster {
        new_dialogues,
        guesses: Default::default(),
        dialogues: shared.dialogues,
        outbox: shared.outbox,
        relay: shared.relay,
        lease: longest + Duration::from_secs(2),
        end_record_ttl: Duration::from_secs(config.retention.end_records_days.max(1) * 86_400),
    });
    let core = session::Core::in_cluster(
        store.clone(),
        routes,
        settings,
        session::Limits::from_config(&config.limits),
        cluster,
    );
    let registry = Registry::new(core, &shards);
    Ok((shards, registry, queue))
}

/// Cluster mode: the new dialogues waiting for the supersede job.
type SupersedeQueue = tokio::sync::mpsc::Receiver<session::core::Started>;

/// How many new dialogues may wait for the supersede job.
const SUPERSEDE_QUEUE: usize = 10_000;

/// The two listeners, bound.
struct Listeners {
    public: TcpListener,
    admin: TcpListener,
}

/// Phase 4: binds both listeners, so that a port in use stops the start before anything runs.
async fn bind(config: &Config) -> anyhow::Result<Listeners> {
    let public = TcpListener::bind(config.public.listen)
        .await
        .map_err(|e| anyhow::anyhow!("public front {}: {e}", config.public.listen))?;
    let admin = TcpListener::bind(config.admin.listen)
        .await
        .map_err(|e| anyhow::anyhow!("admin listener {}: {e}", config.admin.listen))?;
    Ok(Listeners { public, admin })
}

/// What [`serve`] started.
struct Served {
    public_addr: SocketAddr,
    admin_addr: SocketAddr,
    /// The public and admin listeners' tasks.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    smpp: Option<Arc<SmppFront>>,
    reload: admin::Reloader,
}

/// Phase 5: the SMPP front (its binds and listener), then the public front and the admin
/// listener on their bound sockets. `/ready` answers 200 once all are up.
async fn serve(
    config: &Config,
    registry: &Registry,
    store: &Store,
    ivrs: IvrSet,
    listeners: Listeners,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Served> {
    let public_addr = listeners.public.local_addr()?;
    let admin_addr = listeners.admin.local_addr()?;
    tracing::info!(%public_addr, "public front listening (POST /ussd, POST /voice/..., GET /health, GET /ready)");
    tracing::info!(%admin_addr, "admin listener listening (GET /metrics, /admin/...)");
    let grace = Duration::from_secs(config.sessions.shutdown_grace_secs);
    let ready = Arc::new(AtomicBool::new(false));

    let smpp = if config.smpp.binds.is_empty() && config.smpp.listener.is_none() {
        None
    } else {
        let front = SmppFront::start(
            &config.smpp,
            registry.clone(),
            config.numbers.default_country_code.clone(),
            shutdown.clone(),
        )
        .await?;
        Some(Arc::new(front))
    };

    let reload: admin::Reloader = {
        let config = config.clone();
        let registry = registry.clone();
        let store = store.clone();
        Arc::new(move || apps::reload_routes(&config, &registry, &store))
    };

    // Checked with the config: resolving again cannot fail.
    let dialects = config.http.resolve().unwrap_or_default();
    let front = Arc::new(public::PublicFront {
        guard: http::guard::Guard {
            allow_from: config.public.allow_from.clone(),
            trusted_proxies: config.public.trusted_proxies.clone(),
            secret: config.public_secret().map(Arc::from),
            secret_header: config.public.secret_header.clone(),
        },
        registry: registry.clone(),
        voice: http::voice::VoiceState {
            ivrs: Arc::new(ivrs),
            store: store.clone(),
            base_url: config.public.base_url.trim_end_matches('/').into(),
            render: Arc::new(RenderOptions {
                ringback_attribute: config.voice.ringback_attribute.clone(),
            }),
            max_body: config.public.max_body_bytes,
            cost_currencies: config.voice.cost_currencies.clone().into(),
        },
        ready: ready.clone(),
        smpp_health: smpp.as_deref().map(SmppFront::health),
        max_body: config.public.max_body_bytes,
        dialects: dialects
            .into_iter()
            .map(|d| {
                let limit = Limit {
                    septets: config.ussd.max_septets,
                    ucs2: config.ussd.max_ucs2_chars,
                };
                http::dialect::Wire::new(d, limit)
            })
            .collect(),
        cc: config.numbers.default_country_code.clone(),
        apology: config.ussd.apology_text.clone(),
    });
    let public_task = tokio::spawn(http::serve(
        listeners.public,
        move |req| {
            let front = front.clone();
            async move { front.route(req).await }
        },
        http::ServeLimits::from_config("public", &config.limits, grace),
        http::Placement::Shards(registry.clone()),
        shutdown.clone(),
    ));

    let state = admin::AdminState {
        registry: registry.clone(),
        token: config.admin_token().map(Arc::from),
        reload: reload.clone(),
        smpp: smpp.clone(),
        max_body: config.public.max_body_bytes,
        ui: Some(http::ui::UiState::new(
            public_addr,
            config.public_secret().map(Arc::from),
            config.public.secret_header.clone(),
        )),
    };
    if state.token.is_none() {
        tracing::warn!("no admin token configured: every /admin call will be refused");
    }
    let admin_task = tokio::spawn(http::serve(
        listeners.admin,
        move |req| admin::handle(req, state.clone()),
        http::ServeLimits::from_config("admin", &config.limits, grace),
        http::Placement::Tokio,
        shutdown.clone(),
    ));
    ready.store(true, Ordering::Release);
    Ok(Served {
        public_addr,
        admin_addr,
        tasks: vec![public_task, admin_task],
        smpp,
        reload,
    })
}
