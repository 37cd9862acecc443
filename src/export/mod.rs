//! Exporters: where spans go besides the `--format` output.
//!
//! - [`otlp::OtlpSink`] sends spans to an OpenTelemetry collector over OTLP/HTTP (protobuf),
//!   in batches, on a background thread, with the ids gohook assigned.
//! - [`chrome::ChromeSink`] writes Chrome trace event JSON (one track per goroutine) that
//!   Perfetto and `chrome://tracing` open.
//!
//! [`Outputs`] feeds every span to the `--format` sink and to each exporter that was asked for.
//! Exporters learn about the traced process (pid, executable, Go version) through
//! [`Outputs::started`] once the target is known, before the first span arrives.

pub mod chrome;
pub mod otlp;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use gostrings::GoBinary;

use crate::collector::{SpanSink, Stats};
use crate::spans::Span;

/// Errors setting up an exporter (reported before the target is started or stopped).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The OTLP exporter could not be built (bad endpoint, bad configuration).
    #[error("cannot export OTLP to {endpoint}: {reason}")]
    Otlp {
        /// The endpoint as gohook resolved it.
        endpoint: String,
        /// What the OpenTelemetry SDK said.
        reason: String,
    },
    /// The Chrome trace file could not be created.
    #[error("creating {path}: {source}")]
    ChromeFile {
        /// The file named by `--chrome-trace`.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The traced process, as exporters describe it (OTLP resource attributes, Chrome trace pid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: i32,
    /// Its executable, as the kernel reports it (`/proc/PID/exe`).
    pub executable: PathBuf,
    /// The Go release that built it, as `runtime.Version()` says it (`go1.26.8`).
    pub go_version: String,
}

impl Process {
    /// Describes process `pid`, running `binary`.
    pub fn of(pid: i32, binary: &GoBinary) -> Self {
        let go_version = match &binary.buildinfo {
            Some(b) if !b.go_version.is_empty() => b.go_version.clone(),
            _ => binary.go_version().to_string(),
        };
        // The process may have exited already (a short `run`): then the file gohook opened.
        let executable = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .or_else(|| {
                let p = binary.path()?;
                (!p.starts_with("/proc")).then(|| p.canonicalize().unwrap_or_else(|_| p.to_owned()))
            })
            .unwrap_or_default();
        Process {
            pid,
            executable,
            go_version,
        }
    }

    /// The executable's file name (`spin`), or `unknown` when it cannot be read.
    pub fn executable_name(&self) -> String {
        self.executable
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// The `--format` sink plus the exporters, fed every span in turn.
pub struct Outputs {
    primary: Box<dyn SpanSink>,
    otlp: Option<otlp::OtlpSink>,
    chrome: Option<chrome::ChromeSink<BufWriter<File>>>,
}

impl Outputs {
    /// Sets up the outputs: `primary` (the `--format` sink), OTLP export when `otlp` is given
    /// (an empty string means "from the environment", see [`otlp::resolve_endpoint`]), and a
    /// Chrome trace file when `chrome_trace` is given. Fails before anything is traced if an
    /// exporter cannot be set up.
    pub fn open(
        primary: Box<dyn SpanSink>,
        otlp: Option<&str>,
        chrome_trace: Option<&Path>,
    ) -> Result<Self, ExportError> {
        let otlp = match otlp {
            Some(url) => Some(otlp::OtlpSink::new(url)?),
            None => None,
        };
        let chrome = match chrome_trace {
            Some(path) => {
                let file = File::create(path).map_err(|source| ExportError::ChromeFile {
                    path: path.to_owned(),
                    source,
                })?;
                Some(chrome::ChromeSink::new(BufWriter::new(file)))
            }
            None => None,
        };
        Ok(Outputs {
            primary,
            otlp,
            chrome,
        })
    }

    /// Says whether the `--format` output streams to standard error: exporters then keep their
    /// messages for the end, where they cannot land inside one of its lines.
    pub fn stderr_shared(mut self, shared: bool) -> Self {
        if let (true, Some(o)) = (shared, &mut self.otlp) {
            o.quiet_until_end();
        }
        self
    }

    /// Tells the exporters which process is traced. Call once, before the first span.
    pub fn started(mut self, process: &Process) -> Self {
        if let Some(o) = &mut self.otlp {
            o.start(process);
        }
        if let Some(c) = &mut self.chrome {
            c.set_process(process);
        }
        self
    }
}

impl SpanSink for Outputs {
    fn emit(&mut self, span: Span) -> std::io::Result<()> {
        // A failing exporter does not keep the span from the others.
        let chrome = match &mut self.chrome {
            Some(c) => c.emit_ref(&span),
            None => Ok(()),
        };
        let otlp = match &mut self.otlp {
            Some(o) => o.emit(span.clone()),
            None => Ok(()),
        };
        self.primary.emit(span).and(chrome).and(otlp)
    }

    fn finish(&mut self, stats: &Stats) -> std::io::Result<()> {
        // The `--format` output first, so its summary is not held up by the OTLP flush (at
        // most a few seconds) and the exporters' own lines come last.
        let mut result = self.primary.finish(stats);
        if let Some(c) = &mut self.chrome {
            let r = c.finish(stats);
            result = result.and(r);
        }
        if let Some(o) = &mut self.otlp {
            let r = o.finish(stats);
            result = result.and(r);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::{SpanId, SpanKind, Status, TraceId};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl SpanSink for Recorder {
        fn emit(&mut self, span: Span) -> std::io::Result<()> {
            self.0.lock().unwrap().push(span.name);
            Ok(())
        }
        fn finish(&mut self, _: &Stats) -> std::io::Result<()> {
            self.0.lock().unwrap().push("finish".into());
            Ok(())
        }
    }

    fn span(name: &str) -> Span {
        Span {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([1; 8]),
            parent_span_id: None,
            name: name.into(),
            kind: SpanKind::Internal,
            start_unix_nano: 1_000_000,
            end_unix_nano: 2_000_000,
            status: Status::Unset,
            attributes: vec![],
            goroutine: 9,
            function: name.into(),
            depth: 0,
            events: vec![],
        }
    }

    #[test]
    fn every_span_reaches_the_format_sink_and_the_chrome_file() {
        let dir = std::env::temp_dir().join(format!("gohook-outputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.json");
        let rec = Recorder::default();
        let mut out = Outputs::open(Box::new(rec.clone()), None, Some(&path))
            .unwrap()
            .started(&Process {
                pid: 42,
                executable: PathBuf::from("/bin/prog"),
                go_version: "go1.26.8".into(),
            });
        out.emit(span("main.a")).unwrap();
        out.emit(span("main.b")).unwrap();
        out.finish(&Stats::default()).unwrap();
        assert_eq!(*rec.0.lock().unwrap(), ["main.a", "main.b", "finish"]);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let complete: Vec<_> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .collect();
        assert_eq!(complete.len(), 2);
        assert!(complete.iter().all(|e| e["pid"] == 42 && e["tid"] == 9));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_chrome_file_that_cannot_be_created_is_an_error_naming_it() {
        let err = Outputs::open(
            Box::new(Recorder::default()),
            None,
            Some(Path::new("/nonexistent-dir/trace.json")),
        )
        .err()
        .expect("must fail");
        assert!(
            err.to_string().contains("/nonexistent-dir/trace.json"),
            "{err}"
        );
    }

    #[test]
    fn process_name_is_the_executable_file_name() {
        let p = Process {
            pid: 1,
            executable: PathBuf::from("/opt/app/server"),
            go_version: "go1.22.1".into(),
        };
        assert_eq!(p.executable_name(), "server");
    }
}
