//! ussd-gateway: an actor-based USSD gateway.
//!
//! The path of one hop (see `docs/` and the design notes):
//!
//! ```text
//! AT POST /ussd --> front::http --> hop::Hop --> session::Registry --> SessionActor
//!                                                (find or spawn;       | app.step(state, input)
//!                                                 resume from sled)    |   flow engine (pure)
//!                                                                      | persist state (sled)
//! "CON ..." / "END ..." <-- front::http <--------------------------- hop::Reply { text, end }
//! ```
//!
//! Crate map:
//! - [`config`]: `gateway.toml`, validated before anything binds.
//! - [`msisdn`]: the one canonical phone number form, made at the edge.
//! - [`clock`]: the wall clock, in milliseconds since the epoch as everything persisted.
//! - [`hop`]: `Hop`, `Reply` and `Front`, the shapes shared by fronts, sessions and apps.
//! - [`front`]: wire formats in and out (the AT HTTP callback; admin listener).
//! - [`session`]: one actix actor per dialogue, registry, persistence, idle timeout, sweep.
//! - [`app`]: the `App` interface and service code routing; flows run through it.
//! - [`flow`]: declarative YAML flows: model, validation, the pure engine, templates.
//! - [`text`]: GSM-7 counting and pagination.
//! - [`txn`]: what a flow asks of the record store and the ledger (`TxOp`, `Address`).
//! - [`store`]: the sled database and the record store flows use.
//! - [`metrics`]: every exported metric, registered once.
//! - [`logsafe`]: untrusted text in log fields, escaped and capped.
//! - [`voice`]: AT voice callbacks answered with IVR XML (quick-xml), IVRs from config.
//! - [`effect`]: the side effects that leave the process, and the outbox item carrying one.
//! - [`outbox`]: side effects (SMS, airtime, calls) written with the change they belong to.
//! - [`retention`]: what expires and when, and exports before it does.
//! - [`seed`]: sample records loaded at start-up and by the `seed` command.
//! - [`gateway`]: assembly, start and graceful shutdown.
//! - [`sim`]: simulators of the aggregator (`dial`) and of an operator's SMSC (`operator-sim`).

#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]

/// mimalloc for every program built on the gateway (the gateway, its tests and load tools).
/// Under load glibc's malloc took about a sixth of the gateway's CPU (its arenas' locking and
/// consolidation, with allocations made on the actor shards and freed on other threads);
/// docs/benchmarks.md has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod clock;
pub mod config;
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
