//! `--otlp`: what an OpenTelemetry Collector receives from `gohook run`, and how gohook behaves
//! when the endpoint is down or never answers.
//!
//! The collector is the upstream one (`fixtures::otelcol`: OTLP/HTTP receiver, file exporter
//! writing OTLP JSON), built once from the Go module proxy and cached like the fixtures.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fixtures::otelcol::{free_port, Collector};
use fixtures::{must_build, Toolchain, Variant};
use serde_json::Value;

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn values() -> PathBuf {
    must_build("values", Variant::Default, &Toolchain::installed())
}

/// `gohook` with no OTEL_* variables inherited from the environment that runs the tests.
fn gohook() -> Command {
    let mut c = Command::new(GOHOOK);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            c.env_remove(k);
        }
    }
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The pid from gohook's "gohook: pid N: hooked ..." line.
fn traced_pid(err: &str) -> i64 {
    err.lines()
        .find_map(|l| {
            l.strip_prefix("gohook: pid ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no 'gohook: pid N:' line in {err}"))
}

/// `--format json` spans by span id.
fn json_spans(path: &Path) -> HashMap<String, Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("summary").is_none())
        .map(|v| (v["span_id"].as_str().unwrap().to_owned(), v))
        .collect()
}

/// An OTLP JSON `AnyValue` as plain JSON (int64s are strings in OTLP JSON).
fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        s.clone()
    } else if let Some(i) = v.get("intValue") {
        let n: i64 = match i {
            Value::String(s) => s.parse().unwrap(),
            other => other.as_i64().unwrap(),
        };
        n.into()
    } else if let Some(d) = v.get("doubleValue") {
        d.clone()
    } else if let Some(b) = v.get("boolValue") {
        b.clone()
    } else {
        panic!("unexpected attribute value {v}")
    }
}

fn attributes(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap().to_owned(),
                        any_value(&kv["value"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every span the collector wrote, with its resource's attributes and its scope name.
struct Received {
    resource: BTreeMap<String, Value>,
    scope: String,
    span: Value,
}

fn received(lines: &[String]) -> Vec<Received> {
    let mut all = Vec::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap();
        for rs in v["resourceSpans"].as_array().unwrap() {
            let resource = attributes(&rs["resource"]["attributes"]);
            for ss in rs["scopeSpans"].as_array().unwrap() {
                let scope = ss["scope"]["name"].as_str().unwrap_or("").to_owned();
                for span in ss["spans"].as_array().unwrap() {
                    all.push(Received {
                        resource: resource.clone(),
                        scope: scope.clone(),
                        span: span.clone(),
                    });
                }
            }
        }
    }
    all
}

fn nanos(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_u64().unwrap(),
    }
}

#[test]
fn a_collector_receives_every_span_with_gohook_s_ids_parents_attributes_and_the_process() {
    let collector = Collector::start(&scratch("otelcol")).unwrap_or_else(|e| panic!("{e}"));
    let endpoint = collector.endpoint();
    let json = scratch("values-spans.json");
    let exe = values();
    let out = gohook()
        .args(["run", "-f", "main.*", "--otlp", &endpoint])
        .args(["--format", "json", "-o"])
        .arg(&json)
        .arg("--")
        .arg(&exe)
        .args(["-rounds", "1"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "gohook failed: {err}");
    let lines = collector.stop().unwrap_or_else(|e| panic!("{e}"));
    let ours = json_spans(&json);
    let theirs = received(&lines);
    assert!(ours.len() >= 40, "only {} spans: {err}", ours.len());
    assert!(
        err.contains(&format!(
            "gohook: OTLP: {} spans sent to {}/v1/traces",
            ours.len(),
            endpoint
        )),
        "{err}"
    );

    // The same spans, with the same ids, names, times, kinds, statuses and attributes.
    assert_eq!(theirs.len(), ours.len(), "collector got a different count");
    let mut with_parent = 0;
    for r in &theirs {
        let s = &r.span;
        let id = s["spanId"].as_str().unwrap();
        let mine = ours
            .get(id)
            .unwrap_or_else(|| panic!("collector has span {id} that gohook did not print"));
        assert_eq!(s["traceId"], mine["trace_id"]);
        assert_eq!(s["name"], mine["name"]);
        assert_eq!(
            nanos(&s["startTimeUnixNano"]),
            nanos(&mine["start_time_unix_nano"])
        );
        assert_eq!(
            nanos(&s["endTimeUnixNano"]),
            nanos(&mine["end_time_unix_nano"])
        );
        assert_eq!(s["kind"], 1, "SPAN_KIND_INTERNAL");
        assert_eq!(mine["status"]["code"], "unset");
        assert!(
            s["status"].get("code").is_none(),
            "unset status: {}",
            s["status"]
        );
        match mine["parent_span_id"].as_str() {
            Some(parent) => {
                with_parent += 1;
                assert_eq!(s["parentSpanId"], parent, "span {id}");
                assert!(ours.contains_key(parent), "parent {parent} of {id} unknown");
            }
            None => assert!(s["parentSpanId"].as_str().unwrap_or("").is_empty()),
        }
        let attrs = attributes(&s["attributes"]);
        for (k, v) in mine["attributes"].as_object().unwrap() {
            assert_eq!(attrs.get(k), Some(v), "attribute {k} of {id}");
        }
        assert_eq!(attrs["code.function.name"], mine["function"]);
        assert_eq!(attrs["go.goroutine.id"], mine["goroutine"]);
        assert_eq!(r.scope, "gohook");
    }
    assert!(with_parent > 0, "no parent links to check");
    let concat = theirs
        .iter()
        .find(|r| r.span["name"] == "main.Concat")
        .expect("main.Concat span");
    let attrs = attributes(&concat.span["attributes"]);
    assert_eq!(
        attrs["arg.a"], "go",
        "string arguments arrive as attributes"
    );

    // One resource: the traced process.
    let resource = &theirs[0].resource;
    assert!(theirs.iter().all(|r| &r.resource == resource));
    assert_eq!(resource["service.name"], "values");
    assert_eq!(resource["process.pid"], traced_pid(&err));
    assert_eq!(resource["process.executable.name"], "values");
    assert_eq!(
        resource["process.executable.path"],
        exe.canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(resource["process.runtime.name"], "go");
    assert_eq!(
        resource["process.runtime.version"],
        Toolchain::installed().version().unwrap()
    );
    assert_eq!(resource["telemetry.sdk.name"], "opentelemetry");
    assert_eq!(resource["telemetry.sdk.language"], "rust");
    assert!(resource["telemetry.sdk.version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
}

/// A hook script giving a span a kind, an error status, typed attributes and an event.
const SCRIPT: &str = r#"
const HOOK = "main.Concat";
fn on_enter(ctx) {
    ctx.span_start("concat", "server");
    ctx.set("ratio", 0.25);
    ctx.set("flag", true);
    ctx.set("n", 42);
    ctx.event("checkpoint", #{ step: 1, what: "enter" });
    ctx.error("boom");
}
"#;

#[test]
fn kinds_statuses_typed_attributes_and_events_from_scripts_reach_the_collector() {
    let collector = Collector::start(&scratch("otelcol-script")).unwrap_or_else(|e| panic!("{e}"));
    let endpoint = collector.endpoint();
    let script = scratch("concat.rhai");
    std::fs::write(&script, SCRIPT).unwrap();
    let json = scratch("script-spans.json");
    let out = gohook()
        .args(["run", "--no-default-scripts", "-s"])
        .arg(&script)
        .args(["--otlp", &endpoint, "--format", "json", "-o"])
        .arg(&json)
        .arg("--")
        .arg(values())
        .args(["-rounds", "1"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines = collector.stop().unwrap_or_else(|e| panic!("{e}"));
    let ours = json_spans(&json);
    let mine = ours
        .values()
        .find(|s| s["name"] == "concat")
        .unwrap_or_else(|| panic!("no concat span: {err}"));
    let theirs = received(&lines);
    let r = theirs
        .iter()
        .find(|r| r.span["spanId"] == mine["span_id"])
        .expect("the collector got the concat span");
    let s = &r.span;
    assert_eq!(s["name"], "concat");
    assert_eq!(s["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(s["status"]["code"], 2, "STATUS_CODE_ERROR");
    assert_eq!(s["status"]["message"], "boom");
    let attrs = attributes(&s["attributes"]);
    assert_eq!(attrs["ratio"], 0.25);
    assert_eq!(attrs["flag"], true);
    assert_eq!(attrs["n"], 42);
    let events = s["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["name"], "checkpoint");
    assert_eq!(
        nanos(&events[0]["timeUnixNano"]),
        mine["events"][0]["time_unix_nano"].as_u64().unwrap()
    );
    let ev_attrs = attributes(&events[0]["attributes"]);
    assert_eq!(ev_attrs["step"], 1);
    assert_eq!(ev_attrs["what"], "enter");
}

/// One HTTP request as a tiny test server saw it.
struct Request {
    request_line: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Reads HTTP/1.1 requests from one connection and answers each with an empty 200.
fn serve(stream: TcpStream, tx: mpsc::Sender<Request>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        let len: usize = headers
            .get("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
            )
            .unwrap();
        let _ = tx.send(Request {
            request_line: request_line.trim_end().to_owned(),
            headers,
            body,
        });
    }
}

#[test]
fn otlp_without_a_url_takes_endpoint_headers_and_service_name_from_the_environment() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, tx));
        }
    });
    let json = scratch("env-spans.json");
    let spin = must_build("spin", Variant::Default, &Toolchain::installed());
    let out = gohook()
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-gohook-test=from-env")
        .env("OTEL_SERVICE_NAME", "checkout-test")
        .args(["run", "-f", "main.tick", "--format", "json", "-o"])
        .arg(&json)
        .args(["--otlp", "--"])
        .arg(&spin)
        .arg("3")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "spin 3");
    let requests: Vec<Request> = rx.try_iter().collect();
    assert!(!requests.is_empty(), "no request reached the server: {err}");
    let body: Vec<u8> = requests.iter().flat_map(|r| r.body.clone()).collect();
    for r in &requests {
        assert_eq!(r.request_line, "POST /v1/traces HTTP/1.1");
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
        assert_eq!(r.headers["x-gohook-test"], "from-env");
    }
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"checkout-test"),
        "OTEL_SERVICE_NAME not in the resource"
    );
    let spans = json_spans(&json);
    assert_eq!(spans.len(), 3, "{err}");
    for id in spans.keys() {
        let bytes: Vec<u8> = (0..8)
            .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert!(contains(&bytes), "span id {id} not in the protobuf body");
    }
    assert!(
        err.contains(&format!(
            "gohook: OTLP: 3 spans sent to http://127.0.0.1:{port}/v1/traces"
        )),
        "{err}"
    );
}

#[test]
fn an_unreachable_endpoint_costs_one_line_and_changes_nothing_else() {
    let exe = values();
    let plain = Command::new(&exe).args(["-rounds", "2"]).output().unwrap();
    assert!(plain.status.success());
    let port = free_port().unwrap();
    let started = Instant::now();
    let out = gohook()
        .args(["run", "-f", "main.*", "--format", "json", "-o"])
        .arg(scratch("unreachable.json"))
        .args(["--otlp", &format!("http://127.0.0.1:{port}"), "--"])
        .arg(&exe)
        .args(["-rounds", "2"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), plain.status.code(), "{err}");
    assert_eq!(out.stdout, plain.stdout, "the program's output changed");
    assert!(took < Duration::from_secs(8), "took {took:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let otlp_lines: Vec<&str> = err.lines().filter(|l| l.contains("OTLP")).collect();
    assert_eq!(otlp_lines.len(), 1, "{err}");
    let line = otlp_lines[0];
    assert!(
        line.starts_with(&format!(
            "gohook: OTLP export to http://127.0.0.1:{port}/v1/traces failed"
        )),
        "{line}"
    );
    assert!(line.contains("refused"), "the reason is given: {line}");
    assert!(line.contains("spans not delivered"), "{line}");
}

#[test]
fn an_endpoint_that_never_answers_delays_the_exit_by_a_bounded_time() {
    // Accepts connections (the kernel completes the handshake) but never reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let exe = values();
    let started = Instant::now();
    let out = gohook()
        .args(["run", "-f", "main.*", "--format", "json", "-o"])
        .arg(scratch("silent.json"))
        .args(["--otlp", &format!("http://127.0.0.1:{port}"), "--"])
        .arg(&exe)
        .args(["-rounds", "1"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(took < Duration::from_secs(9), "took {took:?}: {err}");
    let otlp_lines: Vec<&str> = err.lines().filter(|l| l.contains("OTLP")).collect();
    assert_eq!(otlp_lines.len(), 1, "{err}");
    assert!(otlp_lines[0].contains("spans not delivered"), "{err}");
    assert!(
        otlp_lines[0].contains(&format!("127.0.0.1:{port} accepts connections")),
        "the reason is given: {err}"
    );
    drop(silent);
}
