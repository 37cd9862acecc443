//! The span model gohook emits, and its JSON-lines form.
//!
//! A span is one call of a hooked function (or whatever a script makes of it): trace and span
//! IDs, the parent span, name, kind, start and end in Unix nanoseconds, status, attributes, and
//! the goroutine and Go function it came from. The JSON form is one object per line with the
//! field names of OTLP's JSON encoding where they exist.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// A 16-byte trace ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random, non-zero trace ID.
    pub fn random() -> Self {
        loop {
            let b: [u8; 16] = rand::random();
            if b != [0; 16] {
                return TraceId(b);
            }
        }
    }
}

impl SpanId {
    /// A random, non-zero span ID.
    pub fn random() -> Self {
        loop {
            let b: [u8; 8] = rand::random();
            if b != [0; 8] {
                return SpanId(b);
            }
        }
    }
}

/// Lower-case hex of `bytes`. Hot: every span's ids go through it, so no per-byte `format!`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// OpenTelemetry span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    /// An operation inside the process (the default for a hooked call).
    #[default]
    Internal,
    /// Handling a request from a remote client.
    Server,
    /// A request to a remote service.
    Client,
    /// Sending a message.
    Producer,
    /// Receiving a message.
    Consumer,
}

impl SpanKind {
    /// The lowercase name used in JSON and accepted from scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    /// Parses `internal`, `server`, `client`, `producer` or `consumer`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => return None,
        })
    }
}

/// A span's status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Status {
    /// Nothing was said about success.
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed, with a message.
    Error(String),
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// A signed integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}
impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}
impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        AttrValue::Float(v)
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => write!(f, "{s:?}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Float(x) => write!(f, "{x}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// The parent span, if any.
    pub parent_span_id: Option<SpanId>,
    /// Span name (the Go function name unless a script renamed it).
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// End, Unix nanoseconds.
    pub end_unix_nano: u64,
    /// Status.
    pub status: Status,
    /// Attributes in the order they were set (a later set of the same key replaces it).
    pub attributes: Vec<(String, AttrValue)>,
    /// The goroutine ID the call ran on.
    pub goroutine: u64,
    /// The full Go name of the hooked function.
    pub function: String,
    /// How many ancestors this span has (0 for a root): for indented views.
    pub depth: usize,
    /// Timestamped events inside the span (scripts add them with `ctx.event`).
    pub events: Vec<SpanEvent>,
}

/// A named, timestamped point inside a span, with attributes (an OpenTelemetry span event).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// Event name.
    pub name: String,
    /// When it happened, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// Attributes in the order they were set.
    pub attributes: Vec<(String, AttrValue)>,
}

impl Span {
    /// Sets an attribute, replacing an earlier value of the same key.
    pub fn set_attr(&mut self, key: &str, value: impl Into<AttrValue>) {
        let value = value.into();
        if let Some(slot) = self.attributes.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.attributes.push((key.to_owned(), value));
        }
    }

    /// Duration in nanoseconds (0 if the clock went backwards).
    pub fn duration_ns(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    /// The span as one JSON object (the `--format json` line).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Attributes as one JSON object, in the order they were set.
struct Attrs<'a>(&'a [(String, AttrValue)]);

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for AttrValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttrValue::Str(v) => s.serialize_str(v),
            AttrValue::Int(v) => s.serialize_i64(*v),
            AttrValue::Float(v) => s.serialize_f64(*v),
            AttrValue::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl Serialize for SpanEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("time_unix_nano", &self.time_unix_nano)?;
        m.serialize_entry("attributes", &Attrs(&self.attributes))?;
        m.end()
    }
}

/// The `--format json` line, written straight from the span (no intermediate JSON tree: this
/// runs once per span, hundreds of thousands of times a second).
impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct StatusJson<'a>(&'a Status);
        impl Serialize for StatusJson<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                match self.0 {
                    Status::Unset => {
                        m.serialize_entry("code", "unset")?;
                        m.serialize_entry("message", &None::<&str>)?;
                    }
                    Status::Ok => {
                        m.serialize_entry("code", "ok")?;
                        m.serialize_entry("message", &None::<&str>)?;
                    }
                    Status::Error(msg) => {
                        m.serialize_entry("code", "error")?;
                        m.serialize_entry("message", msg)?;
                    }
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(12))?;
        m.serialize_entry("trace_id", &self.trace_id.to_string())?;
        m.serialize_entry("span_id", &self.span_id.to_string())?;
        m.serialize_entry(
            "parent_span_id",
            &self.parent_span_id.map(|p| p.to_string()),
        )?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("kind", self.kind.as_str())?;
        m.serialize_entry("start_time_unix_nano", &self.start_unix_nano)?;
        m.serialize_entry("end_time_unix_nano", &self.end_unix_nano)?;
        m.serialize_entry("status", &StatusJson(&self.status))?;
        m.serialize_entry("attributes", &Attrs(&self.attributes))?;
        m.serialize_entry("goroutine", &self.goroutine)?;
        m.serialize_entry("function", &self.function)?;
        m.serialize_entry("events", &self.events)?;
        m.end()
    }
}

/// Formats nanoseconds the way people read durations: `850ns`, `12.3µs`, `4.56ms`, `1.20s`.
pub fn human_duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span {
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]),
            parent_span_id: None,
            name: "main.step".into(),
            kind: SpanKind::Internal,
            start_unix_nano: 1_000,
            end_unix_nano: 3_500,
            status: Status::Unset,
            attributes: vec![],
            goroutine: 1,
            function: "main.step".into(),
            depth: 0,
            events: Vec::new(),
        }
    }

    #[test]
    fn json_has_the_documented_fields_and_hex_ids() {
        let mut s = span();
        s.status = Status::Error("panic".into());
        s.set_attr("n", 3i64);
        s.set_attr("n", 4i64);
        let v = s.to_json();
        assert_eq!(v["trace_id"].as_str().unwrap().len(), 32);
        assert_eq!(v["span_id"], "0102030405060708");
        assert!(v["parent_span_id"].is_null());
        assert_eq!(v["kind"], "internal");
        assert_eq!(v["start_time_unix_nano"], 1000);
        assert_eq!(v["end_time_unix_nano"], 3500);
        assert_eq!(v["status"]["code"], "error");
        assert_eq!(v["status"]["message"], "panic");
        assert_eq!(v["attributes"]["n"], 4);
        assert_eq!(v["goroutine"], 1);
        assert_eq!(v["function"], "main.step");
    }

    #[test]
    fn ids_print_as_lower_case_hex_with_leading_zeros() {
        let id = SpanId([0xab, 0xcd, 0xef, 0x10, 0x00, 0x01, 0xff, 0x7f]);
        assert_eq!(id.to_string(), "abcdef100001ff7f");
        let mut t = [0u8; 16];
        t[15] = 0x0a;
        assert_eq!(TraceId(t).to_string(), format!("{}0a", "0".repeat(30)));
    }

    #[test]
    fn random_ids_differ_and_are_never_zero() {
        let a = SpanId::random();
        let b = SpanId::random();
        assert_ne!(a, b);
        assert_ne!(a.0, [0; 8]);
        assert_ne!(TraceId::random().0, [0; 16]);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(850), "850ns");
        assert_eq!(human_duration(12_340), "12.3µs");
        assert_eq!(human_duration(4_560_000), "4.56ms");
        assert_eq!(human_duration(1_200_000_000), "1.20s");
    }
}
