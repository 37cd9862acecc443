//! The side-by-side service benchmark behind `bench/run`: what it measures, how it reads the
//! tools' output, and how it turns a run's results into `BENCHMARKS.md` and its plots.
//!
//! The measuring itself (processes, pinning, load) is in `main.rs`; everything here is pure
//! (text in, values or text out) so it is unit-tested on canned input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod report;

/// What one load phase against one service produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Load {
    /// Requests completed.
    pub requests: u64,
    /// Requests that failed: socket errors, timeouts and non-2xx answers.
    pub errors: u64,
    /// Wall-clock seconds of the phase.
    pub seconds: f64,
    /// Completed requests per second.
    pub rps: f64,
    /// Latency percentiles in milliseconds: p50, p95, p99.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One scenario measured once (one round).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub scenario: String,
    pub round: u32,
    /// The saturation phase (closed loop, as fast as the service answers).
    pub saturation: Load,
    /// The fixed-rate phase (open loop at `Results::rate` requests per second).
    pub fixed: Load,
    /// CPU seconds (user + system) of the service during each phase.
    pub svc_cpu_sat: f64,
    pub svc_cpu_fixed: f64,
    /// CPU seconds of the agent (gohook, bpftrace, the eBPF agent) during each phase; None when
    /// the scenario has no agent process.
    pub agent_cpu_sat: Option<f64>,
    pub agent_cpu_fixed: Option<f64>,
    /// Peak resident set (VmHWM) in KiB.
    pub svc_rss_kb: u64,
    pub agent_rss_kb: Option<u64>,
    /// gohook: records dropped in the rings (from its final message; 0 when it printed none).
    pub dropped_records: Option<u64>,
    /// What the agent printed at the end that matters (gohook's OTLP line, bpftrace's counts).
    pub agent_note: Option<String>,
}

/// A whole run of `bench/run`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// `/proc/loadavg` before and after the run.
    pub loadavg_before: String,
    pub loadavg_after: String,
    /// Machine, kernel, tool versions, pinning: name → value, printed as given.
    pub setup: BTreeMap<String, String>,
    /// Seconds per load phase.
    pub phase_seconds: u64,
    /// Fixed-rate requests per second.
    pub rate: u64,
    /// Scenarios in the order they were run in each round.
    pub scenarios: Vec<Scenario>,
    /// Scenarios that could not be measured, and why (the error text).
    pub unavailable: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

/// A scenario's name and one line saying what it runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub what: String,
}

/// The line the wrk Lua script prints at the end (see `bench/mix.lua`), starting `WRKJSON `.
#[derive(Debug, Deserialize)]
struct WrkJson {
    requests: u64,
    duration_us: f64,
    errors_connect: u64,
    errors_read: u64,
    errors_write: u64,
    errors_status: u64,
    errors_timeout: u64,
    p50_us: f64,
    p95_us: f64,
    p99_us: f64,
}

/// Reads wrk's output as printed with `bench/mix.lua`: the `WRKJSON {...}` line its `done`
/// function writes. None when the line is missing or malformed.
pub fn parse_wrk(out: &str) -> Option<Load> {
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("WRKJSON "))?;
    let w: WrkJson = serde_json::from_str(line).ok()?;
    let seconds = w.duration_us / 1e6;
    if seconds <= 0.0 {
        return None;
    }
    Some(Load {
        requests: w.requests,
        errors: w.errors_connect
            + w.errors_read
            + w.errors_write
            + w.errors_status
            + w.errors_timeout,
        seconds,
        rps: w.requests as f64 / seconds,
        p50_ms: w.p50_us / 1e3,
        p95_ms: w.p95_us / 1e3,
        p99_ms: w.p99_us / 1e3,
    })
}

/// Reads oha's `--output-format json` report: success and error counts, the duration, and the
/// latency percentiles (oha reports seconds). None when a field is missing.
pub fn parse_oha(out: &str) -> Option<Load> {
    let start = out.find('{')?;
    let v: serde_json::Value = serde_json::from_str(&out[start..]).ok()?;
    let summary = &v["summary"];
    let seconds = summary["total"].as_f64()?;
    let pct = &v["latencyPercentiles"];
    let p = |k: &str| pct[k].as_f64().map(|s| s * 1e3);
    // Answers by status code; errors by kind (connection errors, timeouts).
    let mut ok = 0u64;
    let mut bad_status = 0u64;
    if let Some(codes) = v["statusCodeDistribution"].as_object() {
        for (code, n) in codes {
            let n = n.as_u64().unwrap_or(0);
            if code.starts_with('2') {
                ok += n;
            } else {
                bad_status += n;
            }
        }
    }
    let failed: u64 = v["errorDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0);
    if seconds <= 0.0 {
        return None;
    }
    let requests = ok + bad_status;
    Some(Load {
        requests,
        errors: bad_status + failed,
        seconds,
        rps: requests as f64 / seconds,
        p50_ms: p("p50")?,
        p95_ms: p("p95")?,
        p99_ms: p("p99")?,
    })
}

/// CPU time (utime + stime) in clock ticks from the text of `/proc/PID/stat`. The command
/// name in parentheses may contain spaces and parentheses, so fields are counted after the
/// last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime is field 14 of the file, index 11 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key: N kB` value (VmHWM, VmRSS) from the text of `/proc/PID/status`.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// gohook's records-dropped count from its standard error: the number in
/// `gohook: N records dropped (...)`, or 0 when it printed no such line.
pub fn parse_gohook_drops(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("gohook: ")?;
            let (n, tail) = rest.split_once(' ')?;
            tail.starts_with("records dropped")
                .then(|| n.parse().ok())?
        })
        .unwrap_or(0)
}

/// Median, minimum and maximum of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The spread of `v`, None when empty. The median of an even count is the mean of the middle
/// two.
pub fn spread(v: &[f64]) -> Option<Spread> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: s[0],
        max: s[n - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_summary_line_becomes_a_load_with_all_error_kinds_summed() {
        let out = "Running 10s test @ http://127.0.0.1:1/\n  1 threads and 32 connections\n\
                   WRKJSON {\"requests\":200000,\"duration_us\":10000000,\"errors_connect\":1,\
                   \"errors_read\":2,\"errors_write\":0,\"errors_status\":3,\"errors_timeout\":4,\
                   \"p50_us\":1500,\"p95_us\":3000,\"p99_us\":4500}\n";
        let l = parse_wrk(out).unwrap();
        assert_eq!(l.requests, 200_000);
        assert_eq!(l.errors, 10);
        assert!((l.rps - 20_000.0).abs() < 1e-6);
        assert!((l.p99_ms - 4.5).abs() < 1e-9);
        assert!(parse_wrk("Requests/sec: 10\n").is_none());
    }

    #[test]
    fn oha_json_counts_non_2xx_and_connection_errors_as_errors() {
        let out = r#"{"summary":{"successRate":0.99,"total":10.0,"requestsPerSec":100.0},
            "latencyPercentiles":{"p10":0.0001,"p50":0.0002,"p95":0.0005,"p99":0.001},
            "statusCodeDistribution":{"200":990,"500":5},
            "errorDistribution":{"connection closed":5}}"#;
        let l = parse_oha(out).unwrap();
        assert_eq!(l.requests, 995);
        assert_eq!(l.errors, 10);
        assert!((l.p50_ms - 0.2).abs() < 1e-9);
        assert!((l.p99_ms - 1.0).abs() < 1e-9);
        assert!((l.rps - 99.5).abs() < 1e-9);
        assert!(parse_oha("{\"summary\":{}}").is_none());
    }

    #[test]
    fn stat_ticks_survive_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 8 0 99";
        assert_eq!(parse_stat_ticks(stat), Some(22));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_values_are_read_by_exact_key() {
        let st = "Name:\tx\nVmHWM:\t  12345 kB\nVmRSS:\t  999 kB\n";
        assert_eq!(parse_status_kb(st, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kb(st, "VmRSS"), Some(999));
        assert_eq!(parse_status_kb(st, "VmPeak"), None);
    }

    #[test]
    fn gohook_drops_come_from_its_final_message() {
        let err = "gohook: OTLP: 10 spans sent to http://x\n\
                   gohook: 1234 records dropped (rings full: gohook could not keep up)\n";
        assert_eq!(parse_gohook_drops(err), 1234);
        assert_eq!(parse_gohook_drops("gohook: OTLP: 10 spans sent\n"), 0);
    }

    #[test]
    fn spread_takes_the_middle_value_and_the_extremes() {
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[1.0, 4.0]).unwrap().median, 2.5);
        assert!(spread(&[]).is_none());
    }
}
