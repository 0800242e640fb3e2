//! The journey families: arrivals at and exits from each screen a dialogue is shown, by route
//! and screen id (labels bounded by the flows' screens), exits also by how the screen was
//! left (`next`: on to another screen; `end`, `idle_timeout`, `abort`, `error`: the dialogue
//! ended there). A screen's drop-off is then one PromQL query:
//! `sum by (route, screen) (rate(ussd_screen_exits_total{outcome=~"idle_timeout|abort"}[1h]))
//! / sum by (route, screen) (rate(ussd_screen_arrivals_total[1h]))`.

use super::Kept;
use metrics::{Counter, counter, describe_counter};
use std::sync::Arc;

/// Dialogues arriving at a screen, by route and screen.
pub const SCREEN_ARRIVALS: &str = "ussd_screen_arrivals_total";
/// Dialogues leaving a screen, by route, screen and outcome (next, end, idle_timeout, abort,
/// error).
pub const SCREEN_EXITS: &str = "ussd_screen_exits_total";

pub(super) fn describe() {
    describe_counter!(
        SCREEN_ARRIVALS,
        "Dialogues arriving at a shown screen, by route and screen"
    );
    describe_counter!(
        SCREEN_EXITS,
        "Dialogues leaving a shown screen, by route, screen and outcome (next, end, idle_timeout, abort, error)"
    );
}

/// The handles of the arrival counters, by route and screen.
static ARRIVAL_HANDLES: Kept<(Arc<str>, Arc<str>), Counter> = Kept::new();
/// The handles of the exit counters, by route, screen and outcome.
type ExitKey = (Arc<str>, Arc<str>, &'static str);
static EXIT_HANDLES: Kept<ExitKey, Counter> = Kept::new();

/// A dialogue of `route` was shown `screen`.
pub fn screen_arrival(route: &Arc<str>, screen: &Arc<str>) {
    ARRIVAL_HANDLES.with(
        (route.clone(), screen.clone()),
        || counter!(SCREEN_ARRIVALS, "route" => route.clone(), "screen" => screen.clone()),
        |c| c.increment(1),
    );
}

/// A dialogue of `route` left `screen` with `outcome`.
pub fn screen_exit(route: &Arc<str>, screen: &Arc<str>, outcome: &'static str) {
    EXIT_HANDLES.with(
        (route.clone(), screen.clone(), outcome),
        || {
            counter!(
                SCREEN_EXITS,
                "route" => route.clone(),
                "screen" => screen.clone(),
                "outcome" => outcome
            )
        },
        |c| c.increment(1),
    );
}

/// How a screen can be left, as [`SCREEN_EXITS`]'s `outcome`.
const OUTCOMES: [&str; 5] = ["next", "end", "idle_timeout", "abort", "error"];

/// Puts the series of every shown screen of `route` at zero (a route loaded or reloaded), so
/// a funnel lists the screens nobody reached yet and every family exists from start-up.
pub fn screens<'a>(route: &str, screens: impl IntoIterator<Item = &'a str>) {
    for screen in screens {
        screen_arrivals_zero(route, screen);
    }
}

fn screen_arrivals_zero(route: &str, screen: &str) {
    counter!(SCREEN_ARRIVALS, "route" => route.to_string(), "screen" => screen.to_string())
        .increment(0);
    for outcome in OUTCOMES {
        counter!(
            SCREEN_EXITS,
            "route" => route.to_string(),
            "screen" => screen.to_string(),
            "outcome" => outcome
        )
        .increment(0);
    }
}
