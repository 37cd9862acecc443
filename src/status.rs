//! The live status line: while gohook traces and its standard error is a terminal, one line
//! redrawn about once a second,
//!
//! ```text
//! gohook: 12 hooks · 48.2k events/s · 1,204 spans · 0 drops
//! ```
//!
//! It is never written when standard error is not a terminal (a pipe, a file). gohook's own
//! output to standard error goes through [`Erasing`], which wipes the status line before
//! writing, so the two never mix; the line is redrawn only at the start of a line.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::collector::{SpanSink, Stats};
use crate::spans::Span;

/// The status line is on the terminal now (to be erased before other output).
static VISIBLE: AtomicBool = AtomicBool::new(false);
/// gohook's last write to standard error ended a line (or nothing was written yet).
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

/// Erases the status line (carriage return, clear to end of line).
const ERASE: &[u8] = b"\r\x1b[K";

/// How often the line is redrawn.
pub const PERIOD: Duration = Duration::from_secs(1);

/// A writer to standard error (or any terminal stream) that wipes the status line first.
pub struct Erasing<W: Write>(pub W);

impl<W: Write> Write for Erasing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if VISIBLE.swap(false, Ordering::SeqCst) {
            self.0.write_all(ERASE)?;
        }
        let n = self.0.write(buf)?;
        if n > 0 {
            AT_LINE_START.store(buf[n - 1] == b'\n', Ordering::SeqCst);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Counts the spans passing to a sink (the status line's span count).
pub struct CountSpans {
    inner: Box<dyn SpanSink>,
    count: Rc<Cell<u64>>,
}

impl CountSpans {
    /// Counts into `count` what goes to `inner`.
    pub fn new(inner: Box<dyn SpanSink>, count: Rc<Cell<u64>>) -> Self {
        CountSpans { inner, count }
    }
}

impl SpanSink for CountSpans {
    fn emit(&mut self, span: Span) -> std::io::Result<()> {
        self.count.set(self.count.get() + 1);
        self.inner.emit(span)
    }
    fn finish(&mut self, stats: &Stats) -> std::io::Result<()> {
        self.inner.finish(stats)
    }
}

/// A sink that keeps nothing (the primary output of `--format lines`, whose lines come from
/// the records rather than from spans).
pub struct NullSink;

impl SpanSink for NullSink {
    fn emit(&mut self, _: Span) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &Stats) -> std::io::Result<()> {
        Ok(())
    }
}

/// The live status of one trace.
pub struct LiveStatus {
    hooks: usize,
    spans: Rc<Cell<u64>>,
    since: Instant,
    events: u64,
    /// The text last drawn (redrawn after other output wiped it).
    last: Option<String>,
}

impl LiveStatus {
    /// A status for `hooks` installed hooks counting spans in `spans`, when standard error is
    /// a terminal; `None` otherwise.
    pub fn if_terminal(hooks: usize, spans: Rc<Cell<u64>>) -> Option<Self> {
        std::io::stderr().is_terminal().then(|| LiveStatus {
            hooks,
            spans,
            since: Instant::now(),
            events: 0,
            last: None,
        })
    }

    /// Adds `events` records read; redraws when a period has passed (`drops`: records dropped
    /// so far), or when other output wiped the line since, so it stays below that output.
    pub fn tick(&mut self, events: u64, drops: u64) {
        self.events += events;
        if !AT_LINE_START.load(Ordering::SeqCst) {
            return;
        }
        let elapsed = self.since.elapsed();
        if elapsed >= PERIOD {
            let rate = self.events as f64 / elapsed.as_secs_f64();
            self.last = Some(format_status(self.hooks, rate, self.spans.get(), drops));
            self.since = Instant::now();
            self.events = 0;
        } else if VISIBLE.load(Ordering::SeqCst) {
            return;
        }
        let Some(text) = &self.last else { return };
        let mut err = std::io::stderr().lock();
        // Best effort: a terminal that cannot be written to only loses the status.
        let _ = err.write_all(ERASE);
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        VISIBLE.store(true, Ordering::SeqCst);
    }

    /// Wipes the line (at the end of the trace, before the final messages).
    pub fn clear(&mut self) {
        if self.last.is_some() && VISIBLE.swap(false, Ordering::SeqCst) {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(ERASE);
            let _ = err.flush();
        }
    }
}

/// `gohook: 12 hooks · 48.2k events/s · 1,204 spans · 0 drops`.
pub fn format_status(hooks: usize, events_per_sec: f64, spans: u64, drops: u64) -> String {
    format!(
        "gohook: {} hook{} · {} events/s · {} span{} · {} drop{}",
        grouped(hooks as u64),
        if hooks == 1 { "" } else { "s" },
        rate(events_per_sec),
        grouped(spans),
        if spans == 1 { "" } else { "s" },
        grouped(drops),
        if drops == 1 { "" } else { "s" },
    )
}

/// `950`, `48.2k`, `1.3M`.
fn rate(r: f64) -> String {
    let r = if r.is_finite() { r.max(0.0) } else { 0.0 };
    if r < 1000.0 {
        format!("{r:.0}")
    } else if r < 999_950.0 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{:.1}M", r / 1e6)
    }
}

/// `1,204,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_reads_like_a_sentence() {
        assert_eq!(
            format_status(12, 48_200.0, 1204, 0),
            "gohook: 12 hooks · 48.2k events/s · 1,204 spans · 0 drops"
        );
        assert_eq!(
            format_status(1, 3.4, 1, 1),
            "gohook: 1 hook · 3 events/s · 1 span · 1 drop"
        );
        assert_eq!(
            format_status(2, 2_345_678.0, 1_000_000, 12_345),
            "gohook: 2 hooks · 2.3M events/s · 1,000,000 spans · 12,345 drops"
        );
        assert_eq!(rate(f64::NAN), "0");
        assert_eq!(rate(999_999.0), "1.0M");
    }

    #[test]
    fn spans_are_counted_on_their_way_to_the_sink() {
        let n = Rc::new(Cell::new(0));
        let mut s = CountSpans::new(Box::new(NullSink), n.clone());
        let span = Span {
            trace_id: crate::spans::TraceId([1; 16]),
            span_id: crate::spans::SpanId([2; 8]),
            parent_span_id: None,
            name: "main.f".into(),
            kind: crate::spans::SpanKind::Internal,
            start_unix_nano: 1,
            end_unix_nano: 2,
            status: crate::spans::Status::Unset,
            attributes: vec![],
            goroutine: 1,
            function: "main.f".into(),
            depth: 0,
            events: Vec::new(),
        };
        s.emit(span.clone()).unwrap();
        s.emit(span).unwrap();
        s.finish(&Stats::default()).unwrap();
        assert_eq!(n.get(), 2);
    }
}
