//! ussd-gateway: an actor-based USSD gateway.
//!
//! The path of one hop (see `docs/architecture.md`):
//!
//! ```text
//! AT POST /ussd --> front::http --> hop::Hop --> session::Registry --> SessionActor
//!                                                (find or spawn;       | app.step(state, input)
//!                                                 resume from sled)    |   flow engine (pure)
//!                                                                      | persist state (sled)
//! "CON ..." / "END ..." <-- front::http <--------------------------- hop::Reply { text, end }
//! ```
//!
//! Crate map, in layers: a module imports only from its own layer's lower neighbours and the
//! layers below it, never above (`tests/architecture.rs` checks that no import goes round in a
//! circle and that the store and the flow engine import nothing above them).
//!
//! - Shapes and small tools, used by all:
//!   [`hop`] (`Hop`, `HopInput`, `SessionKey`, `Reply`, `Front`: what fronts, sessions and apps
//!   exchange), [`msisdn`] (the one canonical phone number, made at the edge), [`text`] (GSM-7
//!   counting and pagination), [`clock`] (milliseconds since the epoch, as everything persisted),
//!   [`logsafe`] (untrusted text in log fields), [`metrics`] (every exported metric, registered
//!   once), [`net`] (outgoing HTTP clients), [`config`] (`gateway.toml`, validated before anything
//!   binds: it owns the types of every section, and imports none of what it configures).
//! - The vocabulary between flows and the store: [`effect`] (side effects that leave the
//!   process, and the outbox item carrying one), [`txn`] (what a flow asks of the records and
//!   the ledger: `TxOp`, `Address`) and [`doc`] (a record as read, shared between the store's
//!   parsed copy and the flow variables that hold it).
//! - [`store`]: the database (sled), behind typed operations: dialogues (write-behind, group
//!   commit, tombstones, end records), records, ledger, outbox items, call records, resume
//!   points. Nothing else names sled.
//! - [`flow`]: declarative YAML flows: one module per screen type (`flow::screen`), the pure
//!   engine around them, templates, checks.
//! - Above the store: [`outbox`] (sends the effects), [`voice`] (AT voice callbacks answered
//!   with IVR XML), [`retention`] (what expires, and exports before it does), [`seed`] (sample
//!   records at start-up and for the `seed` command).
//! - [`workbench`]: tools for flow authors: scripted dialogue tests on the pure engine and a
//!   throw-away store (`ussd-gateway test`), the checks `check` adds for them.
//! - [`app`]: what answers a hop (`App`): a flow, with its effects run against the store, or an
//!   upstream AT-style app; the route table.
//! - [`session`]: one actix actor per dialogue; `plan` decides a hop from the state (pure), the
//!   actor does the reads, the app call, the writes and the timers; registry, sweep.
//! - [`front`]: the wire formats in and out: HTTP (AT USSD callbacks and end events, voice, the
//!   admin API) and SMPP (wire, connections, USSD translation).
//! - [`sim`]: simulators of the aggregator (`dial`) and of an operator's SMSC (`operator-sim`).
//! - [`gateway`]: assembly in named phases, and graceful shutdown.

#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]

/// mimalloc for every program built on the gateway (the gateway, its tests and load tools).
/// Under load glibc's malloc took about a sixth of the gateway's CPU (its arenas' locking and
/// consolidation, with allocations made on the actor shards and freed on other threads);
/// docs/benchmarks.md has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The version this binary was built as (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit it was built from (`build.rs`: `git rev-parse`, or the container build's
/// argument), "unknown" when built without git; `--version` and `ussd_build_info` show it.
pub const COMMIT: &str = env!("USSD_GATEWAY_COMMIT");

pub mod app;
pub mod clock;
pub mod config;
pub mod doc;
pub mod effect;
pub mod flow;
pub mod front;
pub mod gateway;
pub mod hop;
pub mod logsafe;
pub mod metrics;
pub mod msisdn;
pub mod net;
pub mod outbox;
pub mod retention;
pub mod seed;
pub mod session;
pub mod sim;
pub mod store;
pub mod text;
pub mod txn;
pub mod voice;
pub mod workbench;
