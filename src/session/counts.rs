//! What a hop counts in the metrics, and the supersede it asks for: done at once on one node;
//! in a cluster, held by the actor until the hop's writes are in Redis, so that a hop whose
//! write failed, or that was answered on a wrong guess and answered again
//! (`actor::guess`), is counted once, as what it finally was.

use super::core::{Cluster, Started};
use crate::metrics;
use std::sync::Arc;
use std::time::Duration;

/// One thing a hop counts.
#[derive(Debug)]
pub enum Count {
    /// The hop (`ussd_hops_total`, `ussd_hop_duration_seconds`).
    Hop {
        front: &'static str,
        dialect: &'static str,
        route: Arc<str>,
        outcome: &'static str,
        took: Duration,
    },
    /// A screen shown (`ussd_screen_arrivals_total`).
    Arrival { route: Arc<str>, screen: Arc<str> },
    /// A screen left (`ussd_screen_exits_total`).
    Exit {
        route: Arc<str>,
        screen: Arc<str>,
        outcome: &'static str,
    },
    /// A dialogue ended (`ussd_dialogues_ended_total`, its duration).
    Ended {
        reason: &'static str,
        duration: Duration,
    },
    /// A dialogue started: it supersedes the same subscriber's on the route, on any node.
    Started(Started),
}

impl Count {
    /// Counts it (hands a start to `cluster`'s supersede job).
    pub fn count(self, cluster: Option<&Cluster>) {
        match self {
            Count::Hop {
                front,
                dialect,
                route,
                outcome,
                took,
            } => metrics::hop(front, dialect, route, outcome, took),
            Count::Arrival { route, screen } => metrics::screen_arrival(&route, &screen),
            Count::Exit {
                route,
                screen,
                outcome,
            } => metrics::screen_exit(&route, &screen, outcome),
            Count::Ended { reason, duration } => metrics::dialogue_ended(reason, duration),
            Count::Started(started) => {
                if let Some(cluster) = cluster {
                    cluster.started(started);
                }
            }
        }
    }
}

/// The counts of the hop being answered: counted at once, or held (cluster mode).
#[derive(Debug, Default)]
pub struct Counts {
    hold: bool,
    held: Vec<Count>,
}

impl Counts {
    /// Counts that are held until [`Counts::settle`] when `hold`.
    pub fn new(hold: bool) -> Counts {
        Counts {
            hold,
            held: Vec::new(),
        }
    }

    /// Counts `c` now, or holds it.
    pub fn add(&mut self, c: Count, cluster: Option<&Cluster>) {
        if self.hold {
            self.held.push(c);
        } else {
            c.count(cluster);
        }
    }

    /// The hop's writes are done (`kept`): everything held is counted. Or they failed: the hop
    /// counts as an error, and nothing else it held counts.
    pub fn settle(&mut self, kept: bool, cluster: Option<&Cluster>) {
        for c in self.held.drain(..) {
            match c {
                _ if kept => c.count(cluster),
                Count::Hop {
                    front,
                    dialect,
                    route,
                    took,
                    ..
                } => metrics::hop(front, dialect, route, "error", took),
                _ => {}
            }
        }
    }

    /// Forgets what is held: the hop is answered again (a wrong guess), which counts anew.
    pub fn forget(&mut self) {
        self.held.clear();
    }
}
