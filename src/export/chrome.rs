//! `--chrome-trace FILE`: spans as Chrome trace event JSON, which Perfetto (ui.perfetto.dev)
//! and `chrome://tracing` open.
//!
//! The file is one object `{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}`:
//! - one complete event (`"ph": "X"`) per span: `pid` is the target's pid, `tid` the goroutine
//!   id, `ts`/`dur` in microseconds (three decimals, so nanoseconds are kept exactly), `args`
//!   the span's attributes plus `status` (`unset`/`ok`/`error`), `status.message`, and the
//!   trace, span and parent span ids (the same as in every other output);
//! - one instant event (`"ph": "i"`, thread scope) per span event;
//! - metadata events (`"ph": "M"`) naming each goroutine's track `goroutine N` (sorted by id)
//!   and the process track after the executable.
//!
//! `ts` counts from `otherData.time_origin_unix_nano`, the moment the file was opened (before
//! the target ran any hooked code), so every timestamp is non-negative and exact: absolute Unix
//! microseconds would not fit a double at nanosecond precision. Events are streamed as spans
//! arrive; the metadata and the closing brackets are written at the end.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::collector::{SpanSink, Stats};
use crate::export::Process;
use crate::spans::{AttrValue, Span, Status};

/// Streams Chrome trace events to `out`.
pub struct ChromeSink<W: Write> {
    out: W,
    origin_ns: u64,
    pid: i32,
    process_name: String,
    goroutines: BTreeSet<u64>,
    events: u64,
    started: bool,
}

impl<W: Write> ChromeSink<W> {
    /// Writes to `out`; timestamps count from now.
    pub fn new(out: W) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::with_origin(out, now)
    }

    /// Writes to `out`; timestamps count from `origin_unix_nano`.
    pub fn with_origin(out: W, origin_unix_nano: u64) -> Self {
        ChromeSink {
            out,
            origin_ns: origin_unix_nano,
            pid: 0,
            process_name: String::new(),
            goroutines: BTreeSet::new(),
            events: 0,
            started: false,
        }
    }

    /// Names the traced process: its pid becomes every event's `pid`.
    pub fn set_process(&mut self, process: &Process) {
        self.pid = process.pid;
        self.process_name = format!("{} (pid {})", process.executable_name(), process.pid);
    }

    /// Microseconds since the origin, exactly, as a JSON number (`12.345`).
    fn micros(&self, unix_nano: u64) -> String {
        let ns = unix_nano.saturating_sub(self.origin_ns);
        format!("{}.{:03}", ns / 1000, ns % 1000)
    }

    /// Starts the next array element.
    fn begin_event(&mut self) -> io::Result<()> {
        if !self.started {
            self.out.write_all(b"{\"traceEvents\":[\n")?;
            self.started = true;
        } else {
            self.out.write_all(b",\n")?;
        }
        self.events += 1;
        Ok(())
    }

    /// Writes one event for `span` (and its span events) without taking it.
    pub fn emit_ref(&mut self, span: &Span) -> io::Result<()> {
        self.goroutines.insert(span.goroutine);
        let mut args: Map<String, Value> = span
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), attr_json(v)))
            .collect();
        let (code, message) = match &span.status {
            Status::Unset => ("unset", None),
            Status::Ok => ("ok", None),
            Status::Error(m) => ("error", Some(m)),
        };
        args.insert("status".into(), code.into());
        if let Some(m) = message {
            args.insert("status.message".into(), m.clone().into());
        }
        args.insert("trace_id".into(), span.trace_id.to_string().into());
        args.insert("span_id".into(), span.span_id.to_string().into());
        if let Some(p) = span.parent_span_id {
            args.insert("parent_span_id".into(), p.to_string().into());
        }
        if span.name != span.function {
            args.insert("function".into(), span.function.clone().into());
        }
        let ts = self.micros(span.start_unix_nano);
        let dur = {
            let d = span.duration_ns();
            format!("{}.{:03}", d / 1000, d % 1000)
        };
        self.begin_event()?;
        write!(self.out, "{{\"ph\":\"X\",\"cat\":\"gohook\",\"name\":")?;
        serde_json::to_writer(&mut self.out, &span.name)?;
        write!(
            self.out,
            ",\"pid\":{},\"tid\":{},\"ts\":{ts},\"dur\":{dur},\"args\":",
            self.pid, span.goroutine
        )?;
        serde_json::to_writer(&mut self.out, &args)?;
        self.out.write_all(b"}")?;
        for ev in &span.events {
            let args: Map<String, Value> = ev
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), attr_json(v)))
                .collect();
            let ts = self.micros(ev.time_unix_nano);
            self.begin_event()?;
            write!(
                self.out,
                "{{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"gohook\",\"name\":"
            )?;
            serde_json::to_writer(&mut self.out, &ev.name)?;
            write!(
                self.out,
                ",\"pid\":{},\"tid\":{},\"ts\":{ts},\"args\":",
                self.pid, span.goroutine
            )?;
            serde_json::to_writer(&mut self.out, &args)?;
            self.out.write_all(b"}")?;
        }
        Ok(())
    }

    fn metadata(&mut self, name: &str, tid: u64, args: Value) -> io::Result<()> {
        self.begin_event()?;
        let v =
            serde_json::json!({"ph": "M", "name": name, "pid": self.pid, "tid": tid, "args": args});
        serde_json::to_writer(&mut self.out, &v)?;
        Ok(())
    }
}

fn attr_json(v: &AttrValue) -> Value {
    match v {
        AttrValue::Str(s) => Value::String(s.clone()),
        AttrValue::Int(i) => (*i).into(),
        AttrValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            // JSON has no NaN or infinity: keep them readable.
            .unwrap_or_else(|| Value::String(f.to_string())),
        AttrValue::Bool(b) => (*b).into(),
    }
}

impl<W: Write> SpanSink for ChromeSink<W> {
    fn emit(&mut self, span: Span) -> io::Result<()> {
        self.emit_ref(&span)
    }

    fn finish(&mut self, _stats: &Stats) -> io::Result<()> {
        if !self.process_name.is_empty() {
            let name = self.process_name.clone();
            self.metadata("process_name", 0, serde_json::json!({ "name": name }))?;
        }
        let goroutines: Vec<u64> = self.goroutines.iter().copied().collect();
        for g in goroutines {
            self.metadata(
                "thread_name",
                g,
                serde_json::json!({ "name": format!("goroutine {g}") }),
            )?;
            self.metadata(
                "thread_sort_index",
                g,
                serde_json::json!({ "sort_index": g }),
            )?;
        }
        if !self.started {
            self.out.write_all(b"{\"traceEvents\":[\n")?;
            self.started = true;
        }
        write!(
            self.out,
            "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{{\"producer\":\"gohook\",\"time_origin_unix_nano\":{}}}}}\n",
            self.origin_ns
        )?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::{SpanEvent, SpanId, SpanKind, TraceId};
    use std::path::PathBuf;

    fn span(id: u8, parent: Option<u8>, goroutine: u64, start: u64, end: u64) -> Span {
        Span {
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: format!("main.f{id}"),
            kind: SpanKind::Internal,
            start_unix_nano: start,
            end_unix_nano: end,
            status: Status::Unset,
            attributes: vec![],
            goroutine,
            function: format!("main.f{id}"),
            depth: 0,
            events: vec![],
        }
    }

    fn render(spans: Vec<Span>) -> Value {
        let mut buf = Vec::new();
        let mut sink = ChromeSink::with_origin(&mut buf, 1_000_000_000);
        sink.set_process(&Process {
            pid: 4321,
            executable: PathBuf::from("/tmp/spin"),
            go_version: "go1.26.8".into(),
        });
        for s in spans {
            sink.emit(s).unwrap();
        }
        sink.finish(&Stats::default()).unwrap();
        serde_json::from_slice(&buf).expect("valid JSON")
    }

    fn events<'a>(v: &'a Value, ph: &str) -> Vec<&'a Value> {
        v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == ph)
            .collect()
    }

    #[test]
    fn a_span_is_a_complete_event_on_its_goroutine_track_in_microseconds() {
        let mut s = span(2, Some(1), 7, 1_000_012_345, 1_000_015_845);
        s.status = Status::Error("boom \"quoted\"".into());
        s.set_attr("n", 3i64);
        s.set_attr("ok", true);
        s.set_attr("ratio", 0.5);
        s.set_attr("who", "gopher");
        let v = render(vec![s]);
        let x = events(&v, "X");
        assert_eq!(x.len(), 1);
        let e = x[0];
        assert_eq!(e["name"], "main.f2");
        assert_eq!(e["pid"], 4321);
        assert_eq!(e["tid"], 7);
        assert_eq!(e["ts"].as_f64().unwrap(), 12.345);
        assert_eq!(e["dur"].as_f64().unwrap(), 3.5);
        assert_eq!(e["args"]["n"], 3);
        assert_eq!(e["args"]["ok"], true);
        assert_eq!(e["args"]["ratio"], 0.5);
        assert_eq!(e["args"]["who"], "gopher");
        assert_eq!(e["args"]["status"], "error");
        assert_eq!(e["args"]["status.message"], "boom \"quoted\"");
        assert_eq!(e["args"]["span_id"], "0202020202020202");
        assert_eq!(e["args"]["parent_span_id"], "0101010101010101");
        assert_eq!(v["otherData"]["time_origin_unix_nano"], 1_000_000_000u64);
    }

    #[test]
    fn every_goroutine_track_is_named_and_the_process_too() {
        let v = render(vec![
            span(1, None, 1, 1_000_001_000, 1_000_002_000),
            span(2, None, 18, 1_000_001_000, 1_000_002_000),
            span(3, None, 18, 1_000_003_000, 1_000_004_000),
        ]);
        let names: Vec<(u64, String)> = events(&v, "M")
            .into_iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| {
                (
                    e["tid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (1, "goroutine 1".to_owned()),
                (18, "goroutine 18".to_owned())
            ]
        );
        let process = events(&v, "M")
            .into_iter()
            .find(|e| e["name"] == "process_name")
            .expect("process_name");
        assert_eq!(process["args"]["name"], "spin (pid 4321)");
    }

    #[test]
    fn span_events_are_instant_events_on_the_same_track() {
        let mut s = span(1, None, 5, 1_000_000_000, 1_000_010_000);
        s.events.push(SpanEvent {
            name: "retry".into(),
            time_unix_nano: 1_000_002_000,
            attributes: vec![("attempt".into(), AttrValue::Int(2))],
        });
        let v = render(vec![s]);
        let i = events(&v, "i");
        assert_eq!(i.len(), 1);
        assert_eq!(i[0]["name"], "retry");
        assert_eq!(i[0]["tid"], 5);
        assert_eq!(i[0]["ts"].as_f64().unwrap(), 2.0);
        assert_eq!(i[0]["args"]["attempt"], 2);
    }

    #[test]
    fn no_spans_is_still_a_valid_trace_file() {
        let v = render(vec![]);
        assert!(events(&v, "X").is_empty());
        assert!(v["traceEvents"].is_array());
    }
}
