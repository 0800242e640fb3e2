//! Load tests for ussd-gateway (documented in docs/benchmarks.md):
//!
//! - `ussd-goose`: goose load test of the HTTP front (scenarios `studentwalk` and
//!   `microfinancedeposit`), users, rate and duration as goose options;
//! - `ussd-walk`: a lean generator of walks (the student walk by default), every connection
//!   on one thread, each walking its own dialogues in order, every answer checked;
//! - `smpp-load`: an SMPP load driver that plays the operator's SMSC, accepts the gateway's
//!   binds and drives many concurrent dialogues;
//! - `bare-hyper`: the ceiling, a bare hyper server answering every POST with a fixed `END`;
//! - `dialogues-bench`: resident memory of many live idle dialogues, and time to the first hop
//!   after a restart with many persisted dialogues.

use std::time::Duration;

/// The synthetic subscribers `ussd-gateway seed --synthetic N` creates: `254710000000 + i`.
pub fn synthetic_msisdn(i: u64) -> String {
    format!("2547{:08}", 10_000_000 + i)
}

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
}

impl Percentiles {
    /// Sorts `samples` and reads the percentiles (nearest rank).
    pub fn of(samples: &mut [Duration]) -> Percentiles {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                return Duration::ZERO;
            }
            let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i]
        };
        Percentiles {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max),
            self.count
        )
    }
}

/// Resident set size of this process in bytes (Linux: /proc/self/statm).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// CPU time (user + system) this process has used so far, from /proc/self/stat (Linux; clock
/// ticks are USER_HZ = 100 on every Linux ABI).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// A multi-threaded tokio runtime with `threads` workers (0: one per core), for the ceilings.
///
/// # Errors
/// The runtime cannot start.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        rt.worker_threads(threads);
    }
    rt.enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(synthetic_msisdn(0), "254710000000");
        assert_eq!(synthetic_msisdn(12_345), "254710012345");
    }
}
