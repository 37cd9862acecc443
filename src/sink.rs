//! Where spans go: JSON lines or a readable indented tree, to a file or standard error.

use std::collections::HashMap;
use std::io::Write;

use crate::collector::{SpanSink, Stats};
use crate::spans::{human_duration, Span, SpanId, Status};

/// One JSON object per span per line, then one summary line `{"summary": {...}}`.
pub struct JsonSink<W: Write> {
    out: W,
}

impl<W: Write> JsonSink<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        JsonSink { out }
    }
}

impl<W: Write> SpanSink for JsonSink<W> {
    fn emit(&mut self, span: Span) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &span)?;
        self.out.write_all(b"\n")
    }

    fn finish(&mut self, stats: &Stats) -> std::io::Result<()> {
        let v = serde_json::json!({"summary": {
            "spans": stats.spans,
            "dropped_records": stats.dropped,
            "orphan_exits": stats.orphan_exits,
            "bad_records": stats.bad_records,
        }});
        serde_json::to_writer(&mut self.out, &v)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// An indented tree per trace, printed when the trace's root span ends (children end before
/// their parents, so a trace is held until it is complete). Traces that grow past
/// `MAX_HELD` spans are printed as they are, so a long-running root cannot hold memory forever.
pub struct PrettySink<W: Write> {
    out: W,
    held: HashMap<SpanId, Vec<Span>>,
    held_count: usize,
}

const MAX_HELD: usize = 10_000;

impl<W: Write> PrettySink<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        PrettySink {
            out,
            held: HashMap::new(),
            held_count: 0,
        }
    }

    fn line(span: &Span) -> String {
        let mut s = format!(
            "{:indent$}{} [g{}] {}",
            "",
            span.name,
            span.goroutine,
            human_duration(span.duration_ns()),
            indent = span.depth * 2
        );
        if span.name != span.function {
            s.push_str(&format!(" ({})", span.function));
        }
        match &span.status {
            Status::Unset => {}
            Status::Ok => s.push_str(" ok"),
            Status::Error(m) => s.push_str(&format!(" ERROR {m}")),
        }
        for (k, v) in &span.attributes {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }

    /// Prints `root` and every held descendant in start order.
    fn print_tree(&mut self, root: Span) -> std::io::Result<()> {
        let mut stack = vec![root];
        while let Some(span) = stack.pop() {
            writeln!(self.out, "{}", Self::line(&span))?;
            if let Some(mut children) = self.held.remove(&span.span_id) {
                self.held_count -= children.len();
                // Pop order must be start order: push the latest-starting child first.
                children.sort_by_key(|c| std::cmp::Reverse(c.start_unix_nano));
                stack.extend(children);
            }
        }
        Ok(())
    }
}

impl<W: Write> SpanSink for PrettySink<W> {
    fn emit(&mut self, span: Span) -> std::io::Result<()> {
        match span.parent_span_id {
            Some(parent) if self.held_count < MAX_HELD => {
                self.held.entry(parent).or_default().push(span);
                self.held_count += 1;
                Ok(())
            }
            _ => self.print_tree(span),
        }
    }

    fn finish(&mut self, stats: &Stats) -> std::io::Result<()> {
        // Orphaned subtrees (their root was never hooked or never ended) are printed last.
        let mut rest: Vec<Span> = self.held.drain().flat_map(|(_, v)| v).collect();
        self.held_count = 0;
        rest.sort_by_key(|s| s.start_unix_nano);
        for s in rest {
            writeln!(self.out, "{}", Self::line(&s))?;
        }
        writeln!(
            self.out,
            "gohook: {} spans, {} records dropped, {} exits without entry",
            stats.spans, stats.dropped, stats.orphan_exits
        )?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::{SpanKind, TraceId};

    fn span(name: &str, id: u8, parent: Option<u8>, depth: usize, start: u64) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: name.into(),
            kind: SpanKind::Internal,
            start_unix_nano: start,
            end_unix_nano: start + 1500,
            status: Status::Unset,
            attributes: vec![],
            goroutine: 3,
            function: name.into(),
            depth,
            events: Vec::new(),
        }
    }

    #[test]
    fn json_lines_end_with_a_summary() {
        let mut buf = Vec::new();
        let mut s = JsonSink::new(&mut buf);
        s.emit(span("main.a", 1, None, 0, 10)).unwrap();
        s.finish(&Stats {
            spans: 1,
            dropped: 2,
            ..Stats::default()
        })
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["name"], "main.a");
        assert_eq!(lines[1]["summary"]["dropped_records"], 2);
    }

    #[test]
    fn pretty_prints_a_trace_as_an_indented_tree_in_start_order() {
        let mut buf = Vec::new();
        let mut s = PrettySink::new(&mut buf);
        s.emit(span("main.second", 3, Some(1), 1, 30)).unwrap();
        s.emit(span("main.first", 2, Some(1), 1, 20)).unwrap();
        let mut root = span("main.root", 1, None, 0, 10);
        root.status = Status::Error("panic".into());
        s.emit(root).unwrap();
        s.finish(&Stats::default()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "main.root [g3] 1.5µs ERROR panic");
        assert_eq!(lines[1], "  main.first [g3] 1.5µs");
        assert_eq!(lines[2], "  main.second [g3] 1.5µs");
        assert!(lines[3].starts_with("gohook: 0 spans"));
    }
}
