//! Converts the target's `RDTSC` timestamps into Unix nanoseconds.
//!
//! The trampolines read the time-stamp counter because it is the only clock a hook can read
//! without a syscall or the vDSO (go-runtime.md §0 rule 6). On machines with an invariant TSC —
//! every x86-64 CPU of the last decade and the VMs built on them — the counter runs at one rate
//! on every core and is shared by all processes, so gohook can read the same counter and relate
//! it to `CLOCK_REALTIME`. The rate is measured, then refined for as long as gohook runs, so the
//! error shrinks with the length of the baseline.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; it is available on every x86-64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn unix_ns_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A TSC ↔ wall-clock relation: one anchor pair and a rate.
#[derive(Debug, Clone)]
pub struct TscClock {
    anchor_tsc: u64,
    anchor_ns: u64,
    ns_per_tick: f64,
    started: Instant,
    refinable: bool,
}

impl TscClock {
    /// Anchors the clock now and measures the rate over `calibration` (20 ms is plenty to start;
    /// [`TscClock::refine`] improves it later).
    pub fn calibrate(calibration: Duration) -> Self {
        let (t0, n0) = Self::sample();
        std::thread::sleep(calibration);
        let (t1, n1) = Self::sample();
        let ticks = t1.saturating_sub(t0).max(1);
        TscClock {
            anchor_tsc: t0,
            anchor_ns: n0,
            ns_per_tick: n1.saturating_sub(n0) as f64 / ticks as f64,
            started: Instant::now(),
            refinable: true,
        }
    }

    /// A clock with a known rate, for tests.
    #[cfg(test)]
    pub fn fixed(anchor_tsc: u64, anchor_ns: u64, ns_per_tick: f64) -> Self {
        TscClock {
            anchor_tsc,
            anchor_ns,
            ns_per_tick,
            started: Instant::now(),
            refinable: false,
        }
    }

    /// A clock with a known anchor and rate that is never re-measured: a recorded calibration
    /// (`gohook replay`), see [`TscClock::parts`].
    pub fn from_parts(anchor_tsc: u64, anchor_ns: u64, ns_per_tick: f64) -> Self {
        let ns_per_tick = if ns_per_tick.is_finite() && ns_per_tick > 0.0 {
            ns_per_tick
        } else {
            1.0
        };
        TscClock {
            anchor_tsc,
            anchor_ns,
            ns_per_tick,
            started: Instant::now(),
            refinable: false,
        }
    }

    /// The calibration: (anchor TSC, anchor Unix ns, ns per tick).
    pub fn parts(&self) -> (u64, u64, f64) {
        (self.anchor_tsc, self.anchor_ns, self.ns_per_tick)
    }

    /// Reads TSC and wall clock as close together as possible (the pair with the shortest gap of
    /// three tries).
    fn sample() -> (u64, u64) {
        let mut best = (u64::MAX, 0, 0);
        for _ in 0..3 {
            let a = rdtsc();
            let n = unix_ns_now();
            let b = rdtsc();
            if b.saturating_sub(a) < best.0 {
                best = (b.saturating_sub(a), a + (b.saturating_sub(a)) / 2, n);
            }
        }
        (best.1, best.2)
    }

    /// Re-measures the rate against the original anchor (a longer baseline is more precise).
    /// Cheap; call it now and then, for example once per drain of the ring.
    pub fn refine(&mut self) {
        if !self.refinable || self.started.elapsed() < Duration::from_millis(200) {
            return;
        }
        let (t, n) = Self::sample();
        let ticks = t.saturating_sub(self.anchor_tsc);
        if ticks > 0 && n > self.anchor_ns {
            self.ns_per_tick = (n - self.anchor_ns) as f64 / ticks as f64;
        }
    }

    /// The Unix time in nanoseconds at which the counter read `tsc`.
    pub fn to_unix_ns(&self, tsc: u64) -> u64 {
        let delta = tsc as i128 - self.anchor_tsc as i128;
        let ns = self.anchor_ns as i128 + (delta as f64 * self.ns_per_tick) as i128;
        ns.clamp(0, u64::MAX as i128) as u64
    }

    /// Converts nanoseconds into ticks.
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        if self.ns_per_tick <= 0.0 {
            return 0;
        }
        (ns as f64 / self.ns_per_tick) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_is_linear_around_the_anchor() {
        let c = TscClock::fixed(1_000_000, 5_000_000_000, 0.5);
        assert_eq!(c.to_unix_ns(1_000_000), 5_000_000_000);
        assert_eq!(c.to_unix_ns(1_000_200), 5_000_000_100);
        assert_eq!(c.to_unix_ns(999_800), 4_999_999_900);
        assert_eq!(c.ns_to_ticks(1_000), 2_000);
    }

    #[test]
    fn a_calibrated_clock_agrees_with_the_system_clock_within_a_millisecond() {
        let c = TscClock::calibrate(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        let now_tsc = rdtsc();
        let now = unix_ns_now();
        let diff = c.to_unix_ns(now_tsc) as i128 - now as i128;
        assert!(
            diff.abs() < 1_000_000,
            "TSC-derived time is off by {diff} ns"
        );
    }
}
