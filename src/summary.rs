//! Per-function call statistics (`--summary`, `gohook report`): calls, total and self time,
//! minimum, median, 99th percentile and maximum duration, errors and panics.
//!
//! Spans are grouped by the Go function they came from (a script may name each call's span
//! differently, the function stays the same). Durations count only calls whose end was observed:
//! a span whose `gohook.end` attribute says its return was not seen (records dropped, or a return
//! gohook could not hook) counts as a call but adds no time.
//!
//! **Self time** is a span's duration minus the durations of its direct children on the same
//! goroutine (children on other goroutines run concurrently, so they take nothing from it).
//! Children end before their parents, so a child's time waits in a table keyed by its parent's
//! span ID until the parent ends; that table holds one entry per open parent, and is cleared if
//! it ever exceeds [`MAX_PENDING`] entries (a parent whose span was dropped never claims its
//! entry).
//!
//! **Percentiles** come from a log-linear histogram (128 sub-buckets per power of two, HDR
//! style): values below 128 ns are exact, larger ones are reported to within 1/256 (0.4 %) of
//! the true value, and memory is at most 7424 counters per function whatever the number of calls.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{json, Value};

use crate::collector::{SpanSink, Stats};
use crate::spans::{human_duration, AttrValue, Span, SpanId, Status};

/// Most parents whose children's time is held at once (see the module documentation).
pub const MAX_PENDING: usize = 1 << 20;

/// Sub-buckets per power of two (as a power of two).
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;

/// Durations in log-linear buckets: exact below 128, within 1/256 of the true value above.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB_BITS
        let mantissa = v >> (e - SUB_BITS); // in [SUB, 2*SUB)
        ((e - SUB_BITS + 1) as u64 * SUB + (mantissa - SUB)) as usize
    }

    /// The smallest and largest value of bucket `i`.
    fn bounds(i: usize) -> (u64, u64) {
        let i = i as u64;
        if i < SUB {
            return (i, i);
        }
        let e = i / SUB + u64::from(SUB_BITS) - 1;
        let mantissa = i % SUB + SUB;
        let shift = e - u64::from(SUB_BITS);
        let low = mantissa << shift;
        (low, low + ((1u64 << shift) - 1))
    }

    /// Counts one value.
    pub fn add(&mut self, v: u64) {
        let i = Self::index(v);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value at quantile `q` (0..=1): the middle of the bucket holding the smallest value
    /// with at least `ceil(q * n)` values at or below it. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = Self::bounds(i);
                return Some(lo + (hi - lo) / 2);
            }
        }
        None
    }
}

/// One function's statistics.
#[derive(Debug, Clone, Default)]
pub struct FuncStats {
    /// Calls (spans) seen.
    pub calls: u64,
    /// Sum of observed durations, ns.
    pub total_ns: u64,
    /// Sum of self times, ns.
    pub self_ns: u64,
    /// Shortest observed duration, ns.
    pub min_ns: Option<u64>,
    /// Longest observed duration, ns.
    pub max_ns: Option<u64>,
    /// Calls whose end was not observed (they add no time).
    pub unobserved: u64,
    /// Calls with an error status other than a panic.
    pub errors: u64,
    /// Calls unwound by a panic.
    pub panics: u64,
    durations: Histogram,
}

impl FuncStats {
    /// Median duration, ns (within the histogram's precision, clamped to the observed range).
    pub fn p50_ns(&self) -> Option<u64> {
        self.quantile(0.5)
    }

    /// 99th percentile duration, ns.
    pub fn p99_ns(&self) -> Option<u64> {
        self.quantile(0.99)
    }

    fn quantile(&self, q: f64) -> Option<u64> {
        let v = self.durations.quantile(q)?;
        Some(v.clamp(self.min_ns.unwrap_or(0), self.max_ns.unwrap_or(u64::MAX)))
    }
}

/// Aggregates spans into per-function statistics.
#[derive(Debug, Default)]
pub struct Summary {
    funcs: HashMap<String, FuncStats>,
    /// Per parent span: (goroutine, summed durations of its children on that goroutine).
    pending: HashMap<SpanId, Vec<(u64, u64)>>,
    stats: Stats,
}

/// True when the span's end was not observed (its duration means nothing).
fn unobserved(span: &Span) -> bool {
    span.attributes.iter().any(|(k, v)| {
        k == "gohook.end" && matches!(v, AttrValue::Str(s) if s.starts_with("not observed"))
    })
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one finished span (children must come before their parents, as collectors emit).
    pub fn add(&mut self, span: &Span) {
        let observed = !unobserved(span);
        let dur = if observed { span.duration_ns() } else { 0 };
        let children = self
            .pending
            .remove(&span.span_id)
            .and_then(|v| v.into_iter().find(|(g, _)| *g == span.goroutine))
            .map_or(0, |(_, t)| t);
        if let Some(parent) = span.parent_span_id {
            if self.pending.len() >= MAX_PENDING {
                self.pending.clear();
            }
            let list = self.pending.entry(parent).or_default();
            match list.iter_mut().find(|(g, _)| *g == span.goroutine) {
                Some((_, t)) => *t = t.saturating_add(dur),
                None => list.push((span.goroutine, dur)),
            }
        }
        let f = self.funcs.entry(span.function.clone()).or_default();
        f.calls += 1;
        match &span.status {
            Status::Error(m) if m == "panic" => f.panics += 1,
            Status::Error(_) => f.errors += 1,
            _ => {}
        }
        if !observed {
            f.unobserved += 1;
            return;
        }
        f.total_ns = f.total_ns.saturating_add(dur);
        f.self_ns = f.self_ns.saturating_add(dur.saturating_sub(children));
        f.min_ns = Some(f.min_ns.map_or(dur, |m| m.min(dur)));
        f.max_ns = Some(f.max_ns.map_or(dur, |m| m.max(dur)));
        f.durations.add(dur);
    }

    /// Keeps the collector's final counters (shown with the table).
    pub fn set_stats(&mut self, stats: &Stats) {
        self.stats = *stats;
    }

    /// The functions, most total time first (then most calls, then name).
    pub fn functions(&self) -> Vec<(&str, &FuncStats)> {
        let mut v: Vec<(&str, &FuncStats)> =
            self.funcs.iter().map(|(k, f)| (k.as_str(), f)).collect();
        v.sort_by(|a, b| {
            b.1.total_ns
                .cmp(&a.1.total_ns)
                .then(b.1.calls.cmp(&a.1.calls))
                .then(a.0.cmp(b.0))
        });
        v
    }

    /// The statistics of `function`, if it was called.
    pub fn function(&self, function: &str) -> Option<&FuncStats> {
        self.funcs.get(function)
    }

    /// The summary as one JSON object: `{"functions": [...], "spans": N, "dropped_records": N}`;
    /// times in nanoseconds, `null` where no call of the function had an observed end.
    pub fn to_json(&self) -> Value {
        let functions: Vec<Value> = self
            .functions()
            .into_iter()
            .map(|(name, f)| {
                json!({
                    "function": name,
                    "calls": f.calls,
                    "total_ns": f.total_ns,
                    "self_ns": f.self_ns,
                    "min_ns": f.min_ns,
                    "p50_ns": f.p50_ns(),
                    "p99_ns": f.p99_ns(),
                    "max_ns": f.max_ns,
                    "errors": f.errors,
                    "panics": f.panics,
                    "unobserved": f.unobserved,
                })
            })
            .collect();
        json!({
            "functions": functions,
            "spans": self.stats.spans,
            "dropped_records": self.stats.dropped,
        })
    }

    /// The summary as an aligned table, one line per function.
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), human_duration);
        let rows: Vec<[String; 10]> = self
            .functions()
            .into_iter()
            .map(|(name, f)| {
                [
                    name.to_owned(),
                    f.calls.to_string(),
                    human_duration(f.total_ns),
                    human_duration(f.self_ns),
                    opt(f.min_ns),
                    opt(f.p50_ns()),
                    opt(f.p99_ns()),
                    opt(f.max_ns),
                    f.errors.to_string(),
                    f.panics.to_string(),
                ]
            })
            .collect();
        let head = [
            "FUNCTION", "CALLS", "TOTAL", "SELF", "MIN", "P50", "P99", "MAX", "ERRORS", "PANICS",
        ];
        let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[&str]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
                let pad = w.saturating_sub(c.chars().count());
                if i == 0 {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str("  ");
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
            }
            s
        };
        writeln!(out, "{}", line(&head))?;
        for r in &rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            writeln!(out, "{}", line(&cells))?;
        }
        let unobserved: u64 = self.funcs.values().map(|f| f.unobserved).sum();
        let mut tail = format!(
            "{} call{}",
            self.stats.spans,
            if self.stats.spans == 1 { "" } else { "s" }
        );
        if self.stats.dropped > 0 {
            tail.push_str(&format!(", {} records dropped", self.stats.dropped));
        }
        if unobserved > 0 {
            tail.push_str(&format!(
                ", {unobserved} without an observed end (no time counted)"
            ));
        }
        writeln!(out, "{tail}")
    }
}

/// Where `--summary` output goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryOptions {
    /// Print the table to standard error at the end.
    pub table: bool,
    /// Write the JSON form to this file at the end (`-` for standard output).
    pub json: Option<std::path::PathBuf>,
}

impl SummaryOptions {
    /// True when some summary is wanted.
    pub fn wanted(&self) -> bool {
        self.table || self.json.is_some()
    }
}

/// A sink that counts every span into a [`Summary`] and passes it on; at the end, after the
/// inner sink finished, it prints the table and writes the JSON as asked.
pub struct SummarySink {
    inner: Box<dyn SpanSink>,
    summary: Summary,
    opts: SummaryOptions,
}

impl SummarySink {
    /// Counts spans on their way to `inner`.
    pub fn new(inner: Box<dyn SpanSink>, opts: SummaryOptions) -> Self {
        SummarySink {
            inner,
            summary: Summary::new(),
            opts,
        }
    }
}

impl SpanSink for SummarySink {
    fn emit(&mut self, span: Span) -> std::io::Result<()> {
        self.summary.add(&span);
        self.inner.emit(span)
    }

    fn finish(&mut self, stats: &Stats) -> std::io::Result<()> {
        let inner = self.inner.finish(stats);
        self.summary.set_stats(stats);
        if self.opts.table {
            let mut err = std::io::stderr().lock();
            self.summary.write_table(&mut err)?;
        }
        if let Some(path) = &self.opts.json {
            write_json(&self.summary.to_json(), path)?;
        }
        inner
    }
}

/// Writes `v` and a newline to `path` (`-`: standard output).
pub fn write_json(v: &Value, path: &std::path::Path) -> std::io::Result<()> {
    let text = format!("{v}\n");
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    } else {
        std::fs::write(path, text)
            .map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::{SpanKind, TraceId};

    fn span(function: &str, id: u8, parent: Option<u8>, goid: u64, start: u64, end: u64) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: function.into(),
            kind: SpanKind::Internal,
            start_unix_nano: start,
            end_unix_nano: end,
            status: Status::Unset,
            attributes: vec![],
            goroutine: goid,
            function: function.into(),
            depth: 0,
            events: vec![],
        }
    }

    #[test]
    fn buckets_are_exact_below_128_and_within_a_256th_above() {
        for v in (0..128).chain([
            128,
            129,
            255,
            256,
            1000,
            123_456_789,
            u64::MAX / 3,
            u64::MAX,
        ]) {
            let (lo, hi) = Histogram::bounds(Histogram::index(v));
            assert!(lo <= v && v <= hi, "{v} not in [{lo}, {hi}]");
            assert!((hi - lo) as f64 <= v as f64 / 128.0, "{v}: bucket too wide");
        }
        for i in 1..7000 {
            assert_eq!(
                Histogram::bounds(i).0,
                Histogram::bounds(i - 1).1 + 1,
                "gap at {i}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread_are_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.add(v * 10);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.01, "p50 {p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.01, "p99 {p99}");
        let max = h.quantile(1.0).unwrap() as f64;
        assert!((max / 1_000_000.0 - 1.0).abs() < 0.01, "max {max}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn self_time_subtracts_direct_children_on_the_same_goroutine_only() {
        let mut s = Summary::new();
        s.add(&span("main.child", 2, Some(1), 1, 100, 400)); // 300 on g1
        s.add(&span("main.other", 3, Some(1), 7, 100, 900)); // 800 on g7: concurrent
        s.add(&span("main.parent", 1, None, 1, 0, 1000));
        let p = s.function("main.parent").unwrap();
        assert_eq!(p.total_ns, 1000);
        assert_eq!(p.self_ns, 700);
        assert_eq!(s.function("main.child").unwrap().self_ns, 300);
        assert!(
            s.pending.is_empty(),
            "the parent claimed its children's time"
        );
    }

    #[test]
    fn panics_errors_and_unobserved_ends_are_counted_apart() {
        let mut s = Summary::new();
        let mut a = span("main.f", 1, None, 1, 0, 50);
        a.status = Status::Error("panic".into());
        let mut b = span("main.f", 2, None, 1, 0, 70);
        b.status = Status::Error("boom".into());
        let mut c = span("main.f", 3, None, 1, 10, 10);
        c.set_attr("gohook.end", "not observed (records dropped)");
        for x in [&a, &b, &c] {
            s.add(x);
        }
        let f = s.function("main.f").unwrap();
        assert_eq!((f.calls, f.panics, f.errors, f.unobserved), (3, 1, 1, 1));
        assert_eq!((f.min_ns, f.max_ns, f.total_ns), (Some(50), Some(70), 120));
        let v = s.to_json();
        assert_eq!(v["functions"][0]["calls"], 3);
        assert_eq!(v["functions"][0]["panics"], 1);
        let mut table = Vec::new();
        s.write_table(&mut table).unwrap();
        let text = String::from_utf8(table).unwrap();
        assert!(text.lines().next().unwrap().starts_with("FUNCTION"));
        assert!(text.contains("main.f"), "{text}");
    }
}
