//! `--otlp [URL]`: spans sent to an OpenTelemetry collector over OTLP/HTTP with protobuf.
//!
//! The OpenTelemetry SDK's tracer always makes up its own span ids, so spans are not recorded
//! through it: each gohook [`Span`] is rebuilt as an SDK [`SpanData`] with gohook's trace, span
//! and parent ids (the ones every other output shows) and handed to `opentelemetry-otlp`'s
//! [`SpanExporter`], whose default transport is a blocking HTTP client: no async runtime runs
//! in gohook.
//!
//! The consumer loop must never wait on the network: [`OtlpSink::emit`] only puts the span on
//! a bounded queue ([`QUEUE_SPANS`]); a background thread converts and exports in batches of
//! [`BATCH_SIZE`], or whatever is queued after [`EXPORT_INTERVAL`]. A full queue drops the
//! span and counts it. At the end the queue is flushed for at most [`FLUSH_TIMEOUT`]; an
//! endpoint that is down costs at most that long, and the lost spans are counted.
//!
//! What standard error shows: one line when an export first fails while tracing goes on (with
//! the reason, e.g. "connection refused"; not when the `--format` output streams to standard
//! error, see [`OtlpSink::quiet_until_end`]), and one line at the end: how many spans reached
//! the endpoint, and how many did not and why.
//!
//! Configuration, as the OpenTelemetry SDKs take it (see [`resolve_endpoint`]):
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` when `--otlp` has no
//! URL, `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (`k=v,k2=v2`),
//! `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds per export), `OTEL_SERVICE_NAME` (default: the
//! target's executable name) and `OTEL_RESOURCE_ATTRIBUTES`.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, SpanContext, SpanId as OtelSpanId, SpanKind as OtelKind, Status as OtelStatus,
    TraceFlags, TraceId as OtelTraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;

use super::{ExportError, Process};
use crate::collector::Stats;
use crate::spans::{AttrValue, Span, SpanKind, Status};

/// Spans per export request (the OpenTelemetry SDK's default batch size).
pub const BATCH_SIZE: usize = 512;
/// Spans waiting for export before new ones are dropped: about 20 MB of queued spans, a
/// fraction of a second of gohook's peak rate, many seconds of a busy service's.
pub const QUEUE_SPANS: usize = 65_536;
/// A partial batch is sent after waiting this long, so spans show up while tracing goes on.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How long the end of a trace waits for queued spans to be sent.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-request timeout unless `OTEL_EXPORTER_OTLP_TIMEOUT` (or its `TRACES_` form) says
/// otherwise: below [`FLUSH_TIMEOUT`], so a stalled endpoint fails a request before the end
/// stops waiting.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(4);

/// The traces endpoint for `--otlp` given `flag` (the URL after `--otlp`, empty when none was
/// given) and the environment `env`. The rule:
/// - `--otlp URL`: URL is the collector's base address, like `OTEL_EXPORTER_OTLP_ENDPOINT`:
///   `/v1/traces` is appended unless the URL already ends with it;
/// - `--otlp` alone: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, else
///   `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else `http://localhost:4318/v1/traces`.
///
/// The environment alone never turns export on: `--otlp` does.
pub fn resolve_endpoint(flag: &str, env: impl Fn(&str) -> Option<String>) -> String {
    let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if !flag.trim().is_empty() {
        return with_traces_path(flag.trim());
    }
    if let Some(e) = nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return e.trim().to_owned();
    }
    if let Some(e) = nonempty("OTEL_EXPORTER_OTLP_ENDPOINT") {
        return with_traces_path(e.trim());
    }
    "http://localhost:4318/v1/traces".to_owned()
}

fn with_traces_path(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// The service name: `OTEL_SERVICE_NAME`, else `service.name` from `OTEL_RESOURCE_ATTRIBUTES`
/// (`from_resource_env`), else the target's executable name.
pub fn service_name(
    env: impl Fn(&str) -> Option<String>,
    from_resource_env: Option<String>,
    process: &Process,
) -> String {
    env("OTEL_SERVICE_NAME")
        .filter(|s| !s.trim().is_empty())
        .or(from_resource_env)
        .unwrap_or_else(|| process.executable_name())
}

/// The OTLP resource of the traced process: `service.name`, `process.*` (pid, executable name
/// and path, runtime `go` and its version), `telemetry.sdk.*` as the SDK sets them, and
/// whatever `OTEL_RESOURCE_ATTRIBUTES` adds (the process facts win over it).
pub fn resource(process: &Process) -> Resource {
    let from_env = EnvResourceDetector::new();
    let env_resource = Resource::builder_empty()
        .with_detector(Box::new(from_env))
        .build();
    let env_service = env_resource
        .get(&Key::from_static_str("service.name"))
        .map(|v| v.as_str().into_owned());
    let name = service_name(env_var, env_service, process);
    Resource::builder_empty()
        .with_detector(Box::new(EnvResourceDetector::new()))
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes([
            KeyValue::new("process.pid", i64::from(process.pid)),
            KeyValue::new("process.executable.name", process.executable_name()),
            KeyValue::new(
                "process.executable.path",
                process.executable.to_string_lossy().into_owned(),
            ),
            KeyValue::new("process.runtime.name", "go"),
            KeyValue::new("process.runtime.version", process.go_version.clone()),
        ])
        .with_service_name(name)
        .build()
}

fn otel_value(v: &AttrValue) -> Value {
    match v {
        AttrValue::Str(s) => Value::from(s.clone()),
        AttrValue::Int(i) => Value::I64(*i),
        AttrValue::Float(f) => Value::F64(*f),
        AttrValue::Bool(b) => Value::Bool(*b),
    }
}

fn attributes(attrs: &[(String, AttrValue)]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), otel_value(v)))
        .collect()
}

fn system_time(unix_nano: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_nanos(unix_nano)
}

/// `span` as the SDK's exportable form, with gohook's ids. Besides the span's own attributes
/// it carries `code.function.name` (the Go function) and `go.goroutine.id`, unless the span
/// already sets those keys.
pub fn span_data(span: Span, scope: &InstrumentationScope) -> SpanData {
    let mut attrs = attributes(&span.attributes);
    if !span
        .attributes
        .iter()
        .any(|(k, _)| k == "code.function.name")
    {
        attrs.push(KeyValue::new("code.function.name", span.function.clone()));
    }
    if !span.attributes.iter().any(|(k, _)| k == "go.goroutine.id") {
        attrs.push(KeyValue::new(
            "go.goroutine.id",
            i64::try_from(span.goroutine).unwrap_or(i64::MAX),
        ));
    }
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|e| {
            Event::new(
                e.name.clone(),
                system_time(e.time_unix_nano),
                attributes(&e.attributes),
                0,
            )
        })
        .collect();
    SpanData {
        span_context: SpanContext::new(
            OtelTraceId::from_bytes(span.trace_id.0),
            OtelSpanId::from_bytes(span.span_id.0),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: span
            .parent_span_id
            .map(|p| OtelSpanId::from_bytes(p.0))
            .unwrap_or(OtelSpanId::INVALID),
        parent_span_is_remote: false,
        span_kind: match span.kind {
            SpanKind::Internal => OtelKind::Internal,
            SpanKind::Server => OtelKind::Server,
            SpanKind::Client => OtelKind::Client,
            SpanKind::Producer => OtelKind::Producer,
            SpanKind::Consumer => OtelKind::Consumer,
        },
        name: span.name.into(),
        start_time: system_time(span.start_unix_nano),
        end_time: system_time(span.end_unix_nano),
        attributes: attrs,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: match span.status {
            Status::Unset => OtelStatus::Unset,
            Status::Ok => OtelStatus::Ok,
            Status::Error(m) => OtelStatus::error(m),
        },
        instrumentation_scope: scope.clone(),
    }
}

/// What the export thread knows, shared with the sink.
#[derive(Default)]
struct Progress {
    exported: u64,
    failed: u64,
    first_error: Option<String>,
}

enum Msg {
    Span(Box<Span>),
    Flush,
}

/// Sends spans to an OTLP/HTTP endpoint from a background thread (see the module docs).
pub struct OtlpSink {
    endpoint: String,
    exporter: Option<SpanExporter>,
    tx: Option<SyncSender<Msg>>,
    done_rx: Option<Receiver<()>>,
    progress: Arc<Mutex<Progress>>,
    /// Set when the end has come, or when the `--format` output streams to standard error
    /// (a line from the export thread could land inside one of its lines): a failure is then
    /// reported in the final line only.
    quiet: Arc<AtomicBool>,
    queued: u64,
    dropped: u64,
}

impl OtlpSink {
    /// An exporter to the endpoint [`resolve_endpoint`] makes of `flag`. Nothing is sent until
    /// [`OtlpSink::start`] names the process.
    pub fn new(flag: &str) -> Result<Self, ExportError> {
        let endpoint = resolve_endpoint(flag, env_var);
        let err = |reason: String| ExportError::Otlp {
            endpoint: endpoint.clone(),
            reason,
        };
        if endpoint.starts_with("https://") {
            return Err(err(
                "this gohook has no TLS support: export over http:// (e.g. to a local collector)"
                    .into(),
            ));
        }
        if !endpoint.starts_with("http://") {
            return Err(err("the URL must start with http://".into()));
        }
        let mut builder = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone());
        let timeout_set = [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .iter()
        .any(|k| env_var(k).is_some_and(|v| v.trim().parse::<u64>().is_ok()));
        if !timeout_set {
            builder = builder.with_timeout(EXPORT_TIMEOUT);
        }
        let exporter = builder.build().map_err(|e| err(e.to_string()))?;
        Ok(OtlpSink {
            endpoint,
            exporter: Some(exporter),
            tx: None,
            done_rx: None,
            progress: Arc::default(),
            quiet: Arc::default(),
            queued: 0,
            dropped: 0,
        })
    }

    /// Keeps the export thread from printing the first failure as it happens: it is then only
    /// in the final line. For when something else streams to standard error.
    pub fn quiet_until_end(&mut self) {
        self.quiet.store(true, Ordering::SeqCst);
    }

    /// The traces URL spans go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Starts the export thread with `process` as the resource. Later calls do nothing.
    pub fn start(&mut self, process: &Process) {
        let Some(mut exporter) = self.exporter.take() else {
            return;
        };
        exporter.set_resource(&resource(process));
        let (tx, rx) = mpsc::sync_channel(QUEUE_SPANS);
        let (done_tx, done_rx) = mpsc::channel();
        let worker = Worker {
            exporter,
            endpoint: self.endpoint.clone(),
            progress: self.progress.clone(),
            quiet: self.quiet.clone(),
            scope: InstrumentationScope::builder("gohook")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        };
        let spawned = thread::Builder::new()
            .name("gohook-otlp".into())
            .spawn(move || {
                worker.run(rx);
                let _ = done_tx.send(());
            });
        match spawned {
            Ok(_) => {
                self.tx = Some(tx);
                self.done_rx = Some(done_rx);
            }
            Err(e) => {
                let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
                p.first_error = Some(format!("cannot start the export thread: {e}"));
            }
        }
    }

    /// Queues `span` for export; drops and counts it when the queue is full.
    pub fn emit(&mut self, span: Span) -> std::io::Result<()> {
        if self.tx.is_none() && self.exporter.is_some() {
            // Never told the process (a caller's mistake): export without process attributes.
            self.start(&Process {
                pid: 0,
                executable: Default::default(),
                go_version: String::new(),
            });
        }
        match &self.tx {
            Some(tx) => match tx.try_send(Msg::Span(Box::new(span))) {
                Ok(()) => self.queued += 1,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped += 1
                }
            },
            None => self.dropped += 1,
        }
        Ok(())
    }

    /// Flushes for at most [`FLUSH_TIMEOUT`] and prints the one-line report on standard error.
    pub fn finish(&mut self, _stats: &Stats) -> std::io::Result<()> {
        self.quiet.store(true, Ordering::SeqCst);
        let mut timed_out = false;
        if let Some(tx) = self.tx.take() {
            // The flush message may wait behind a full queue: that wait counts too.
            let deadline = Instant::now() + FLUSH_TIMEOUT;
            let mut msg = Msg::Flush;
            loop {
                match tx.try_send(msg) {
                    Ok(()) => break,
                    Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                        msg = m;
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            drop(tx);
            if let Some(done) = self.done_rx.take() {
                let left = deadline.saturating_duration_since(Instant::now());
                // Disconnected means the thread ended (it cannot panic silently: it owns
                // nothing that panics); a timeout leaves it to die with the process.
                timed_out = matches!(done.recv_timeout(left), Err(RecvTimeoutError::Timeout));
            }
        }
        let p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!("{}", self.report(&p, timed_out));
        Ok(())
    }

    fn report(&self, p: &Progress, timed_out: bool) -> String {
        let unsent = self.queued.saturating_sub(p.exported + p.failed);
        let lost = p.failed + self.dropped + unsent;
        if lost == 0 && p.first_error.is_none() {
            return format!(
                "gohook: OTLP: {} span{} sent to {}",
                p.exported,
                if p.exported == 1 { "" } else { "s" },
                self.endpoint
            );
        }
        let mut parts = Vec::new();
        if p.failed > 0 {
            parts.push(format!("{} failed", p.failed));
        }
        if self.dropped > 0 {
            parts.push(format!(
                "{} dropped (export queue full: the endpoint did not keep up)",
                self.dropped
            ));
        }
        if unsent > 0 {
            parts.push(format!(
                "{unsent} still queued{}",
                if timed_out {
                    format!(" after waiting {}s", FLUSH_TIMEOUT.as_secs())
                } else {
                    String::new()
                }
            ));
        }
        let why = p
            .first_error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        format!(
            "gohook: OTLP export to {} failed{why}: {} of {} spans not delivered: {}",
            self.endpoint,
            lost,
            self.queued + self.dropped,
            parts.join(", ")
        )
    }
}

/// The export thread's state.
struct Worker {
    exporter: SpanExporter,
    endpoint: String,
    progress: Arc<Mutex<Progress>>,
    quiet: Arc<AtomicBool>,
    scope: InstrumentationScope,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH_SIZE);
        let mut oldest: Option<Instant> = None;
        loop {
            let wait = match oldest {
                Some(t) => (t + EXPORT_INTERVAL).saturating_duration_since(Instant::now()),
                None => EXPORT_INTERVAL,
            };
            let flush = match rx.recv_timeout(wait) {
                Ok(Msg::Span(span)) => {
                    batch.push(span_data(*span, &self.scope));
                    oldest.get_or_insert_with(Instant::now);
                    batch.len() >= BATCH_SIZE
                }
                Ok(Msg::Flush) | Err(RecvTimeoutError::Disconnected) => {
                    self.export(&mut batch);
                    let _ = self.exporter.shutdown();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => true,
            };
            if flush && !batch.is_empty() {
                self.export(&mut batch);
                oldest = None;
            }
        }
    }

    fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let spans = std::mem::replace(batch, Vec::with_capacity(BATCH_SIZE));
        let result = block_on(self.exporter.export(spans));
        let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => p.exported += n,
            Err(e) => {
                p.failed += n;
                if p.first_error.is_none() {
                    let why = explain(&self.endpoint, &e.to_string());
                    if !self.quiet.load(Ordering::SeqCst) {
                        eprintln!(
                            "gohook: OTLP export to {} failed ({why}); tracing goes on, lost spans are counted at the end",
                            self.endpoint
                        );
                    }
                    p.first_error = Some(why);
                }
            }
        }
    }
}

/// The SDK's error, made specific when it only says "network error": the reason a plain TCP
/// connection to the endpoint fails (refused, unreachable, unknown host...).
fn explain(endpoint: &str, sdk_error: &str) -> String {
    let sdk_error = sdk_error
        .trim_start_matches("Operation failed: ")
        .trim()
        .to_owned();
    if !sdk_error.contains("network error") {
        return sdk_error;
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return sdk_error;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
    }) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addrs = match with_port.to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return format!("cannot resolve {authority}: {e}"),
    };
    for addr in &addrs {
        if let Err(e) = TcpStream::connect_timeout(addr, Duration::from_secs(1)) {
            return format!("cannot connect to {addr}: {e}");
        }
    }
    // It accepts connections: the request itself failed or got no answer in time.
    format!(
        "{authority} accepts connections but gave no usable answer: timed out, or not an \
         OTLP/HTTP receiver"
    )
}

/// Drives `fut` to completion on this thread. The blocking HTTP client finishes its work
/// inside `poll`, so this rarely parks; the waker unparks the thread if it ever must.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::{SpanEvent, SpanId, TraceId};
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn a_url_on_the_command_line_is_a_base_address_like_the_environment_variable() {
        let none = env(&[]);
        assert_eq!(
            resolve_endpoint("http://127.0.0.1:4318", &none),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            resolve_endpoint("http://c:4318/", &none),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            resolve_endpoint("http://c:4318/v1/traces", &none),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            resolve_endpoint("http://c/otlp", &none),
            "http://c/otlp/v1/traces"
        );
    }

    #[test]
    fn the_flag_wins_over_the_environment_which_wins_over_the_default() {
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://envhost:4318")]);
        assert_eq!(
            resolve_endpoint("http://flag:1", &e),
            "http://flag:1/v1/traces"
        );
        assert_eq!(resolve_endpoint("", &e), "http://envhost:4318/v1/traces");
        let t = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://envhost:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9/custom"),
        ]);
        assert_eq!(resolve_endpoint("", &t), "http://t:9/custom");
        assert_eq!(
            resolve_endpoint("", env(&[])),
            "http://localhost:4318/v1/traces"
        );
    }

    fn process() -> Process {
        Process {
            pid: 77,
            executable: PathBuf::from("/srv/bin/checkout"),
            go_version: "go1.26.8".into(),
        }
    }

    #[test]
    fn service_name_is_the_environment_s_else_the_program_s_file_name() {
        assert_eq!(service_name(env(&[]), None, &process()), "checkout");
        assert_eq!(
            service_name(env(&[]), Some("from-attrs".into()), &process()),
            "from-attrs"
        );
        assert_eq!(
            service_name(
                env(&[("OTEL_SERVICE_NAME", "cart")]),
                Some("from-attrs".into()),
                &process()
            ),
            "cart"
        );
    }

    #[test]
    fn the_resource_describes_the_go_process_and_the_sdk() {
        let r = resource(&process());
        let get = |k: &'static str| r.get(&Key::from_static_str(k));
        assert_eq!(get("process.pid"), Some(Value::I64(77)));
        assert_eq!(
            get("process.executable.name"),
            Some(Value::from("checkout"))
        );
        assert_eq!(
            get("process.executable.path"),
            Some(Value::from("/srv/bin/checkout"))
        );
        assert_eq!(get("process.runtime.name"), Some(Value::from("go")));
        assert_eq!(
            get("process.runtime.version"),
            Some(Value::from("go1.26.8"))
        );
        assert_eq!(get("telemetry.sdk.language"), Some(Value::from("rust")));
        assert!(get("service.name").is_some());
    }

    #[test]
    fn a_span_keeps_its_ids_times_kind_status_attributes_and_events() {
        let span = Span {
            trace_id: TraceId([0x11; 16]),
            span_id: SpanId([0x22; 8]),
            parent_span_id: Some(SpanId([0x33; 8])),
            name: "main.handle".into(),
            kind: SpanKind::Server,
            start_unix_nano: 1_700_000_000_000_000_123,
            end_unix_nano: 1_700_000_000_000_900_456,
            status: Status::Error("timeout".into()),
            attributes: vec![
                ("s".into(), AttrValue::Str("x".into())),
                ("i".into(), AttrValue::Int(-4)),
                ("f".into(), AttrValue::Float(2.5)),
                ("b".into(), AttrValue::Bool(true)),
            ],
            goroutine: 19,
            function: "main.(*S).handle".into(),
            depth: 1,
            events: vec![SpanEvent {
                name: "retry".into(),
                time_unix_nano: 1_700_000_000_000_500_000,
                attributes: vec![("n".into(), AttrValue::Int(2))],
            }],
        };
        let scope = InstrumentationScope::builder("gohook").build();
        let d = span_data(span, &scope);
        assert_eq!(d.span_context.trace_id().to_bytes(), [0x11; 16]);
        assert_eq!(d.span_context.span_id().to_bytes(), [0x22; 8]);
        assert!(d.span_context.is_sampled());
        assert_eq!(d.parent_span_id.to_bytes(), [0x33; 8]);
        assert_eq!(d.span_kind, OtelKind::Server);
        assert_eq!(d.name, "main.handle");
        let ns = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_nanos();
        assert_eq!(ns(d.start_time), 1_700_000_000_000_000_123);
        assert_eq!(ns(d.end_time), 1_700_000_000_000_900_456);
        assert_eq!(d.status, OtelStatus::error("timeout"));
        let attr = |k: &str| {
            d.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(attr("s"), Some(Value::from("x")));
        assert_eq!(attr("i"), Some(Value::I64(-4)));
        assert_eq!(attr("f"), Some(Value::F64(2.5)));
        assert_eq!(attr("b"), Some(Value::Bool(true)));
        assert_eq!(
            attr("code.function.name"),
            Some(Value::from("main.(*S).handle"))
        );
        assert_eq!(attr("go.goroutine.id"), Some(Value::I64(19)));
        assert_eq!(d.events.len(), 1);
        assert_eq!(d.events[0].name, "retry");
        assert_eq!(ns(d.events[0].timestamp), 1_700_000_000_000_500_000);
        assert_eq!(d.events[0].attributes, vec![KeyValue::new("n", 2i64)]);
    }

    #[test]
    fn a_root_span_has_no_parent() {
        let span = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            name: "main.main".into(),
            kind: SpanKind::Internal,
            start_unix_nano: 1,
            end_unix_nano: 2,
            status: Status::Ok,
            attributes: vec![],
            goroutine: 1,
            function: "main.main".into(),
            depth: 0,
            events: vec![],
        };
        let d = span_data(span, &InstrumentationScope::builder("gohook").build());
        assert_eq!(d.parent_span_id, OtelSpanId::INVALID);
        assert_eq!(d.status, OtelStatus::Ok);
    }

    #[test]
    fn https_is_refused_up_front_with_the_reason() {
        let err = OtlpSink::new("https://collector.example:4318")
            .err()
            .expect("no TLS");
        let msg = err.to_string();
        assert!(
            msg.contains("https://collector.example:4318/v1/traces"),
            "{msg}"
        );
        assert!(msg.contains("TLS"), "{msg}");
    }

    #[test]
    fn a_refused_connection_is_explained() {
        // A port nobody listens on: bind, note the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let why = explain(
            &format!("http://127.0.0.1:{port}/v1/traces"),
            "Operation failed: HTTP export failed: network error",
        );
        assert!(why.contains("refused"), "{why}");
    }
}
