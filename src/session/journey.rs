//! A dialogue's journey: the screens it was shown, in order, and when each came up, kept in the
//! live dialogue and written into its end record with the time spent on each (screen ids
//! only: never what was typed, so nothing sensitive). Per-screen arrivals and exits are counted
//! as they happen (`ussd_screen_arrivals_total`, `ussd_screen_exits_total`), so a screen's
//! drop-off is a PromQL query; `GET /admin/journeys` sums the end records.

use super::counts::Count;
use super::state::{Dialogue, EndReason};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The most screens kept per dialogue: past it the journey keeps its start and its last
/// screens (a looping dialogue must not grow without bound).
const MAX_STEPS: usize = 64;

/// One screen of an ended dialogue's journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyStep {
    /// The screen's id in its flow.
    pub screen: String,
    /// Time spent on it, in milliseconds (until the next screen, or the end).
    pub ms: u64,
}

/// The dialogue `d` shows `screen` from `now_ms`: a new step unless it is the screen already
/// on display (a menu shown again after a wrong key, the next page of the same screen). Returns
/// what the hop counts ([`Count`]s, counted once the hop is kept): the screen left and the one
/// arrived at.
pub fn arrive(d: &mut Dialogue, screen: &Arc<str>, now_ms: u64) -> [Option<Count>; 2] {
    if d.journey.last().is_some_and(|(s, _)| s == screen) {
        return [None, None];
    }
    let left = d.journey.last().map(|(left, _)| Count::Exit {
        route: d.route.clone(),
        screen: left.clone(),
        outcome: "next",
    });
    let arrived = Count::Arrival {
        route: d.route.clone(),
        screen: screen.clone(),
    };
    if d.journey.len() >= MAX_STEPS {
        d.journey.remove(1);
    }
    // Exact room, one step at a time: a live dialogue keeps its journey while it waits, and a
    // million of them waiting would otherwise each hold room for four steps they rarely get.
    d.journey.reserve_exact(1);
    d.journey.push((screen.clone(), now_ms));
    [left, Some(arrived)]
}

/// The exit of the last screen of `d`, ending for `reason` (counted with the end).
pub fn last_exit(d: &Dialogue, reason: EndReason) -> Option<Count> {
    d.journey.last().map(|(last, _)| Count::Exit {
        route: d.route.clone(),
        screen: last.clone(),
        outcome: reason.as_str(),
    })
}

/// The journey of `d`, ending at `ended_ms`: the steps with their times.
pub fn finish(d: &Dialogue, ended_ms: u64) -> Vec<JourneyStep> {
    d.journey
        .iter()
        .enumerate()
        .map(|(i, (screen, at))| {
            let until = d.journey.get(i + 1).map_or(ended_ms, |(_, next)| *next);
            JourneyStep {
                screen: screen.to_string(),
                ms: until.saturating_sub(*at),
            }
        })
        .collect()
}

/// What the dialogues that reached one screen did there (`GET /admin/journeys`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScreenStats {
    pub screen: String,
    /// Dialogues shown it.
    pub arrived: u64,
    /// Went on to another screen.
    pub went_on: u64,
    /// Ended there with the app's END (an answer screen, or "Goodbye").
    pub ended: u64,
    /// Left idle there until the idle timeout.
    pub timed_out: u64,
    /// Aborted there (the subscriber hung up, the network cut it, a new dial replaced it).
    pub aborted: u64,
    /// The gateway failed to answer there.
    pub failed: u64,
    /// The median time spent on it, in milliseconds, by dialogues that did not end on it
    /// with END (an END screen is left at once).
    pub median_ms: Option<u64>,
}

/// Per screen, what the ended dialogues of `route` (every route when `None`) that ended at
/// `since_ms` or later did there; the most visited screens first.
pub fn summarize<'a>(
    records: impl IntoIterator<Item = &'a super::state::EndRecord>,
    route: Option<&str>,
    since_ms: u64,
) -> (u64, Vec<ScreenStats>) {
    let mut stats: std::collections::HashMap<&str, (ScreenStats, Vec<u64>)> = Default::default();
    let mut dialogues = 0;
    for r in records {
        if r.ended_ms < since_ms || route.is_some_and(|c| c != r.service_code) {
            continue;
        }
        dialogues += 1;
        let last = r.journey.len().saturating_sub(1);
        for (i, step) in r.journey.iter().enumerate() {
            let (s, times) = stats.entry(step.screen.as_str()).or_default();
            s.arrived += 1;
            let counted_time = if i < last {
                s.went_on += 1;
                true
            } else {
                match r.reason {
                    EndReason::End => s.ended += 1,
                    EndReason::IdleTimeout => s.timed_out += 1,
                    EndReason::Abort => s.aborted += 1,
                    EndReason::Error => s.failed += 1,
                }
                r.reason != EndReason::End
            };
            if counted_time {
                times.push(step.ms);
            }
        }
    }
    let mut out: Vec<ScreenStats> = stats
        .into_iter()
        .map(|(screen, (mut s, mut times))| {
            s.screen = screen.to_string();
            times.sort_unstable();
            s.median_ms = (!times.is_empty()).then(|| times[times.len() / 2]);
            s
        })
        .collect();
    out.sort_by(|a, b| {
        b.arrived
            .cmp(&a.arrived)
            .then_with(|| a.screen.cmp(&b.screen))
    });
    (dialogues, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::state::EndRecord;

    fn record(route: &str, ended_ms: u64, reason: EndReason, steps: &[(&str, u64)]) -> EndRecord {
        let mut r: EndRecord = serde_json::from_value(serde_json::json!({
            "session": "http:x", "msisdn": "254700000001", "front": "http",
            "service_code": route, "dialled": route, "started_ms": 0, "ended_ms": ended_ms,
            "duration_ms": ended_ms, "hops": 1, "reason": reason.as_str(), "input": "",
            "last_reply": "",
        }))
        .unwrap();
        r.journey = steps
            .iter()
            .map(|(s, ms)| JourneyStep {
                screen: s.to_string(),
                ms: *ms,
            })
            .collect();
        r
    }

    #[test]
    fn each_screen_counts_who_went_on_ended_timed_out_or_aborted_there() {
        let records = [
            record(
                "*1#",
                100,
                EndReason::End,
                &[("home", 4000), ("results", 2000), ("done", 0)],
            ),
            record(
                "*1#",
                100,
                EndReason::IdleTimeout,
                &[("home", 6000), ("results", 180_000)],
            ),
            record("*1#", 100, EndReason::Abort, &[("home", 1000)]),
            record("*2#", 100, EndReason::Abort, &[("home", 1000)]),
            record("*1#", 5, EndReason::Abort, &[("home", 1000)]),
        ];
        let (n, stats) = summarize(&records, Some("*1#"), 50);
        assert_eq!(n, 3);
        let home = &stats[0];
        assert_eq!(
            (
                home.screen.as_str(),
                home.arrived,
                home.went_on,
                home.aborted
            ),
            ("home", 3, 2, 1)
        );
        assert_eq!(home.median_ms, Some(4000));
        let results = stats.iter().find(|s| s.screen == "results").unwrap();
        assert_eq!(
            (results.arrived, results.went_on, results.timed_out),
            (2, 1, 1)
        );
        let done = stats.iter().find(|s| s.screen == "done").unwrap();
        assert_eq!((done.arrived, done.ended, done.median_ms), (1, 1, None));
    }

    #[test]
    fn a_screen_shown_again_is_one_step_and_a_long_journey_keeps_its_start_and_end() {
        let mut d: Dialogue = serde_json::from_value(serde_json::json!({
            "msisdn": "254700000001", "front": "http", "dialled": "*1#", "route": "*1#",
            "started_ms": 0, "last_hop_ms": 0, "idle_timeout_ms": 1000, "hops": 0,
            "seen_text": "", "last_reply": { "text": "", "end": false }, "app_version": "v",
        }))
        .unwrap();
        let home: Arc<str> = Arc::from("home");
        arrive(&mut d, &home, 10);
        arrive(&mut d, &home, 20);
        assert_eq!(d.journey, [(home.clone(), 10)]);
        for i in 0..100 {
            arrive(&mut d, &Arc::from(format!("s{i}")), 30 + i);
        }
        assert_eq!(d.journey.len(), MAX_STEPS);
        assert_eq!(d.journey[0], (home, 10));
        assert_eq!(&*d.journey[MAX_STEPS - 1].0, "s99");
        let steps = finish(&d, 1000);
        assert_eq!(steps.last().unwrap().ms, 1000 - 129);
    }
}
