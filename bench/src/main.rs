//! `gohook-bench`: the measuring half of `bench/run`.
//!
//! ```text
//! gohook-bench measure --bins DIR --gohook PATH --out DIR [--rounds 3] [--seconds 10]
//!                      [--rate N] [--only a,b,...]
//! gohook-bench report  --out DIR --md BENCHMARKS.md
//! ```
//!
//! `measure` starts the OpenTelemetry Collector (fixtures/go/otelcol) on core 0, then for each
//! round runs every scenario once: the service pinned to core 1, the out-of-process agents on
//! core 0 (but for `gohook-shared`, which measures gohook on the service's core), a 2 s warm-up, a saturation phase (wrk on core 0), a fixed-rate phase (oha on
//! core 0); CPU from /proc/PID/stat, peak RSS from /proc/PID/status. It writes
//! `DIR/results.json`. `report` turns that and the micro benchmarks' saved output
//! (`DIR/hook_overhead.txt`, `DIR/capacity.txt`) into the Markdown file and two SVG plots
//! beside it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gohook_bench::report::{self, Micro};
use gohook_bench::{
    parse_gohook_drops, parse_oha, parse_stat_ticks, parse_status_kb, parse_wrk, Load, Results,
    Sample, Scenario,
};

type Res<T> = Result<T, String>;

/// Core of the service; core of the load generators and the collector.
const SVC_CORE: &str = "1";
const LOAD_CORE: &str = "0";
/// Core of the out-of-process agents (gohook, bpftrace, the eBPF agent's user-space half): off
/// the service's core, as an operator would place them; in-process work (the SDK, Orchestrion,
/// uprobe and BPF programs, which run in the service's threads) stays on the service's core.
/// The `gohook-shared` scenario keeps gohook on the service's core to show that cost too.
const AGENT_CORE: &str = LOAD_CORE;
/// Connections of both load generators.
const CONNS: &str = "32";

struct Args {
    map: BTreeMap<String, String>,
}

impl Args {
    fn parse(v: &[String]) -> Res<Args> {
        let mut map = BTreeMap::new();
        let mut it = v.iter();
        while let Some(k) = it.next() {
            let k = k
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {k}"))?;
            let val = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
            map.insert(k.to_string(), val.clone());
        }
        Ok(Args { map })
    }
    fn path(&self, k: &str) -> Res<PathBuf> {
        self.map
            .get(k)
            .map(PathBuf::from)
            .ok_or_else(|| format!("--{k} is required"))
    }
    fn num(&self, k: &str, default: u64) -> Res<u64> {
        match self.map.get(k) {
            Some(v) => v.parse().map_err(|_| format!("--{k}: not a number: {v}")),
            None => Ok(default),
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        Some("measure") => Args::parse(&argv[1..]).and_then(|a| measure(&a)),
        Some("report") => Args::parse(&argv[1..]).and_then(|a| write_report(&a)),
        _ => Err("usage: gohook-bench measure|report --out DIR ... (see bench/run)".into()),
    };
    if let Err(e) = result {
        eprintln!("gohook-bench: {e}");
        std::process::exit(1);
    }
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.trim().to_string()
        })
        .unwrap_or_default()
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn cpu_s(pid: u32) -> Option<f64> {
    let st = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&st).map(|t| t as f64 / ticks_per_s())
}

fn hwm_kb(pid: u32) -> Option<u64> {
    parse_status_kb(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmHWM",
    )
}

/// The children of `pid` (all its threads'), from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; pid is a child this program started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

fn wait_timeout(child: &mut Child, t: Duration) -> bool {
    let end = Instant::now() + t;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Stops a child: `sig`, then SIGKILL after `grace`.
fn stop(child: &mut Child, sig: i32, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), sig);
    if !wait_timeout(child, grace) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits until `file` contains `needle` (or the process exits, or time runs out).
fn wait_for_text(file: &Path, needle: &str, child: &mut Child, t: Duration) -> Res<()> {
    let end = Instant::now() + t;
    loop {
        let text = fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("exited ({st}) before '{needle}': {}", tail(&text)));
        }
        if Instant::now() > end {
            return Err(format!("no '{needle}' within {t:?}: {}", tail(&text)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" / ")
}

/// Reads the child's stdout until "listening on HOST:PORT"; keeps draining it afterwards.
fn listening_port(child: &mut Child) -> Res<u16> {
    let out = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        let mut sent = false;
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if !sent {
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                    let _ = tx.send(port);
                    sent = true;
                }
            }
            line.clear();
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Some(p)) => Ok(p),
        _ => Err("the service did not print 'listening on' within 120 s".into()),
    }
}

/// A tiny HTTP sink answering `200 {}` to every request: the Datadog agent the Orchestrion
/// build's tracer reports to (the payloads are read and thrown away).
fn start_sink() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || serve_sink(conn));
        }
    });
    Ok(port)
}

fn serve_sink(mut c: TcpStream) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // Headers.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + len);
        let body = b"{}";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if c.write_all(resp.as_bytes()).is_err() || c.write_all(body).is_err() {
            return;
        }
    }
}

/// The collector: OTLP/HTTP in, the `debug` exporter (counts only) out, on the load core. Its
/// log sampling is off: with it on, the debug exporter's lines (which the span counts are read
/// from) were dropped above about 10,000 spans.
fn start_collector(dir: &Path) -> Res<(Child, u16)> {
    let exe = fixtures::otelcol::build()?;
    let port = fixtures::otelcol::free_port()?;
    let cfg = dir.join("otelcol.yaml");
    fs::write(
        &cfg,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
             exporters:\n  debug:\n    verbosity: basic\n\
             service:\n  telemetry:\n    metrics:\n      level: none\n    logs:\n      sampling:\n        \
             enabled: false\n  pipelines:\n    traces:\n      \
             receivers: [otlp]\n      exporters: [debug]\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let log = fs::File::create(dir.join("otelcol.log")).map_err(|e| e.to_string())?;
    let child = Command::new("taskset")
        .args(["-c", LOAD_CORE])
        .arg(&exe)
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting the collector: {e}"))?;
    let end = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > end {
            return Err(format!(
                "the collector did not listen: {}",
                tail(&fs::read_to_string(dir.join("otelcol.log")).unwrap_or_default())
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((child, port))
}

/// Spans the collector has received so far, from its debug exporter's log lines.
fn collector_spans(dir: &Path) -> u64 {
    let log = fs::read_to_string(dir.join("otelcol.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| {
            let i = l.find("\"spans\": ")?;
            l[i + 9..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

struct Env {
    bins: PathBuf,
    gohook: PathBuf,
    work: PathBuf,
    mix: PathBuf,
    otlp: String,
    sink_port: u16,
}

/// A scenario started: the service and, maybe, its agent.
struct Running {
    svc: Option<Child>,
    svc_pid: u32,
    agent: Option<Child>,
    agent_log: PathBuf,
    port: u16,
}

fn svc_cmd(bin: &Path) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", SVC_CORE])
        .arg(bin)
        .args(["-addr", "127.0.0.1:0"]);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

fn spawn_svc(mut c: Command) -> Res<(Child, u16)> {
    let mut child = c
        .spawn()
        .map_err(|e| format!("starting the service: {e}"))?;
    match listening_port(&mut child) {
        Ok(p) => Ok((child, p)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

fn log_file(p: &Path) -> Res<(fs::File, fs::File)> {
    let f = fs::File::create(p).map_err(|e| e.to_string())?;
    Ok((f.try_clone().map_err(|e| e.to_string())?, f))
}

fn start(name: &str, env: &Env, round: u32) -> Res<Running> {
    let base = env.bins.join("benchsvc");
    let agent_log = env.work.join(format!("{name}-{round}.agent.log"));
    match name {
        "baseline" | "manual" | "orchestrion" => {
            let bin = env.bins.join(match name {
                "baseline" => "benchsvc",
                "manual" => "benchsvc-manual",
                _ => "benchsvc-orchestrion",
            });
            let mut c = svc_cmd(&bin);
            c.env("OTEL_EXPORTER_OTLP_ENDPOINT", &env.otlp)
                .env("OTEL_SERVICE_NAME", format!("benchsvc-{name}"))
                .env(
                    "DD_TRACE_AGENT_URL",
                    format!("http://127.0.0.1:{}", env.sink_port),
                )
                .env("DD_SERVICE", "benchsvc-orchestrion")
                .env("DD_TRACE_STARTUP_LOGS", "false")
                .env("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
                .env("DD_REMOTE_CONFIGURATION_ENABLED", "false")
                .env("DD_PROFILING_ENABLED", "false");
            let (child, port) = spawn_svc(c)?;
            let pid = child.id();
            Ok(Running {
                svc_pid: pid,
                svc: Some(child),
                agent: None,
                agent_log,
                port,
            })
        }
        "gohook-otlp" | "gohook-json" | "gohook-shared" => {
            let (o, e) = log_file(&agent_log)?;
            drop(o);
            // The service inherits the service core from `taskset`; gohook's own threads move
            // to the agent core once the service runs (unless the scenario shares the core).
            let mut c = Command::new("taskset");
            c.args(["-c", SVC_CORE]).arg(&env.gohook).arg("run");
            c.args(["--format", "json", "-o", "/dev/null"]);
            if name != "gohook-json" {
                c.args(["--otlp", &env.otlp]);
            }
            c.arg("--").arg(&base).args(["-addr", "127.0.0.1:0"]);
            c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(e);
            let (mut agent, port) = spawn_svc(c)?;
            let Some(&svc_pid) = children(agent.id()).first() else {
                stop(&mut agent, libc::SIGKILL, Duration::from_secs(1));
                return Err("gohook run has no child process".into());
            };
            if name != "gohook-shared" {
                let moved = Command::new("taskset")
                    .args(["-a", "-p", "-c", AGENT_CORE, &agent.id().to_string()])
                    .stdout(Stdio::null())
                    .status()
                    .map_err(|e| format!("taskset: {e}"))?;
                if !moved.success() {
                    stop(&mut agent, libc::SIGKILL, Duration::from_secs(1));
                    return Err(format!("taskset could not move gohook: {moved}"));
                }
            }
            Ok(Running {
                svc: None,
                svc_pid,
                agent: Some(agent),
                agent_log,
                port,
            })
        }
        "uprobe" => {
            let (svc, port) = spawn_svc(svc_cmd(&base))?;
            let b = base.display();
            let prog = format!(
                "uprobe:{b}:\"net/http.serverHandler.ServeHTTP\" {{ @calls[\"ServeHTTP\"] = count(); }} \
                 uprobe:{b}:\"database/sql.(*DB).execDC\" {{ @calls[\"execDC\"] = count(); }}"
            );
            let (o, e) = log_file(&agent_log)?;
            let mut agent = Command::new("taskset")
                .args(["-c", AGENT_CORE, "bpftrace", "-e", &prog])
                .stdin(Stdio::null())
                .stdout(o)
                .stderr(e)
                .spawn()
                .map_err(|e| format!("starting bpftrace: {e}"))?;
            let mut r = Running {
                svc_pid: svc.id(),
                svc: Some(svc),
                agent: None,
                agent_log: agent_log.clone(),
                port,
            };
            if let Err(e) =
                wait_for_text(&agent_log, "Attaching", &mut agent, Duration::from_secs(60))
            {
                stop(&mut agent, libc::SIGKILL, Duration::from_secs(1));
                finish(&mut r);
                return Err(format!("bpftrace: {e}"));
            }
            std::thread::sleep(Duration::from_secs(1));
            r.agent = Some(agent);
            Ok(r)
        }
        "otel-auto" => {
            let (svc, port) = spawn_svc(svc_cmd(&base))?;
            let (o, e) = log_file(&agent_log)?;
            let mut agent = Command::new("taskset")
                .args(["-c", AGENT_CORE])
                .arg(env.bins.join("otel-go-instrumentation"))
                .args(["-target-pid", &svc.id().to_string()])
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", &env.otlp)
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
                .env("OTEL_SERVICE_NAME", "benchsvc-otel-auto")
                .stdin(Stdio::null())
                .stdout(o)
                .stderr(e)
                .spawn()
                .map_err(|e| format!("starting the eBPF agent: {e}"))?;
            let mut r = Running {
                svc_pid: svc.id(),
                svc: Some(svc),
                agent: None,
                agent_log: agent_log.clone(),
                port,
            };
            if let Err(e) = wait_for_text(
                &agent_log,
                "instrumentation loaded successfully",
                &mut agent,
                Duration::from_secs(120),
            ) {
                stop(&mut agent, libc::SIGKILL, Duration::from_secs(1));
                finish(&mut r);
                return Err(format!("otel-go-instrumentation: {e}"));
            }
            std::thread::sleep(Duration::from_secs(1));
            r.agent = Some(agent);
            Ok(r)
        }
        other => Err(format!("unknown scenario {other}")),
    }
}

/// Stops a scenario: the agent first when it is separate (so it flushes), then the service.
/// Returns the agent's log.
fn finish(r: &mut Running) -> String {
    if let Some(svc) = r.svc.as_mut() {
        if let Some(a) = r.agent.as_mut() {
            stop(a, libc::SIGINT, Duration::from_secs(30));
        }
        stop(svc, libc::SIGTERM, Duration::from_secs(15));
    } else if let Some(a) = r.agent.as_mut() {
        // gohook run: SIGTERM reaches the service through gohook, which then flushes and exits.
        stop(a, libc::SIGTERM, Duration::from_secs(60));
    }
    fs::read_to_string(&r.agent_log).unwrap_or_default()
}

fn wrk(port: u16, secs: u64, mix: &Path) -> Res<Load> {
    let out = Command::new("taskset")
        .args([
            "-c",
            LOAD_CORE,
            "wrk",
            "-t1",
            "-c",
            CONNS,
            "--timeout",
            "5s",
        ])
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(mix)
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .map_err(|e| format!("running wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).ok_or_else(|| format!("wrk printed no result: {}", tail(&text)))
}

/// Whether oha is installed; without it the fixed-rate phase falls back to wrk with
/// `bench/rate.lua` (closed loop, paced).
fn have_oha() -> bool {
    Command::new("oha")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn wrk_paced(port: u16, secs: u64, rate: u64, mix: &Path) -> Res<Load> {
    let conns: u64 = CONNS.parse().unwrap_or(32);
    let delay_ms = (conns * 1000 / rate.max(1)).max(1);
    let out = Command::new("taskset")
        .args([
            "-c",
            LOAD_CORE,
            "wrk",
            "-t1",
            "-c",
            CONNS,
            "--timeout",
            "5s",
        ])
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(mix.with_file_name("rate.lua"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .env("BENCH_DELAY_MS", delay_ms.to_string())
        .output()
        .map_err(|e| format!("running wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).ok_or_else(|| format!("wrk printed no result: {}", tail(&text)))
}

fn oha(port: u16, secs: u64, rate: u64) -> Res<Load> {
    let out = Command::new("taskset")
        .args([
            "-c",
            LOAD_CORE,
            "oha",
            "--no-tui",
            "--output-format",
            "json",
        ])
        .args(["-c", CONNS, "-q", &rate.to_string(), "--latency-correction"])
        .args(["-z", &format!("{secs}s"), "--rand-regex-url"])
        // oha's --rand-regex-url takes dots literally ("dot is disabled"); escaping them made
        // it generate a random host.
        .arg(format!("http://127.0.0.1:{port}/(hello|insert)"))
        .output()
        .map_err(|e| format!("running oha: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_oha(&text).ok_or_else(|| {
        format!(
            "oha printed no result: {} {}",
            tail(&text),
            tail(&String::from_utf8_lossy(&out.stderr))
        )
    })
}

fn one(name: &str, env: &Env, round: u32, secs: u64, rate: &mut Option<u64>) -> Res<Sample> {
    let mut r = start(name, env, round)?;
    let res = (|| -> Res<Sample> {
        let agent_pid = r.agent.as_ref().map(|a| a.id());
        wrk(r.port, 2, &env.mix)?; // warm-up
        let cpu = |pid: Option<u32>| pid.and_then(cpu_s);
        let (s0, a0) = (cpu(Some(r.svc_pid)), cpu(agent_pid));
        let saturation = wrk(r.port, secs, &env.mix)?;
        let (s1, a1) = (cpu(Some(r.svc_pid)), cpu(agent_pid));
        let rate = *rate
            // A quarter of the bare service's maximum: below every instrumented scenario's own
            // maximum (the slowest measured reach about a third), so latency is not queueing.
            .get_or_insert_with(|| ((saturation.rps * 0.25 / 100.0).round() as u64).max(1) * 100);
        let fixed = if have_oha() {
            oha(r.port, secs, rate)?
        } else {
            wrk_paced(r.port, secs, rate, &env.mix)?
        };
        let (s2, a2) = (cpu(Some(r.svc_pid)), cpu(agent_pid));
        for (phase, l) in [("saturation", &saturation), ("fixed-rate", &fixed)] {
            if l.errors * 10 > l.requests.max(1) {
                return Err(format!(
                    "{phase} phase: {} of {} requests failed: the load did not reach the service",
                    l.errors, l.requests
                ));
            }
        }
        let d = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        Ok(Sample {
            scenario: name.into(),
            round,
            saturation,
            fixed,
            svc_cpu_sat: d(s0, s1).unwrap_or(0.0),
            svc_cpu_fixed: d(s1, s2).unwrap_or(0.0),
            agent_cpu_sat: d(a0, a1),
            agent_cpu_fixed: d(a1, a2),
            svc_rss_kb: hwm_kb(r.svc_pid).unwrap_or(0),
            agent_rss_kb: agent_pid.and_then(hwm_kb),
            ..Sample::default()
        })
    })();
    let log = finish(&mut r);
    let mut s = res?;
    if name.starts_with("gohook") {
        s.dropped_records = Some(parse_gohook_drops(&log));
        s.agent_note = log
            .lines()
            .filter(|l| l.starts_with("gohook: "))
            .map(str::to_string)
            .reduce(|a, b| a + " / " + &b);
    } else if name == "uprobe" {
        let counts: Vec<&str> = log.lines().filter(|l| l.starts_with("@calls")).collect();
        s.agent_note = (!counts.is_empty()).then(|| counts.join(" "));
    }
    Ok(s)
}

fn version_lines(bins: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Ok(t) = fs::read_to_string(bins.join("versions.txt")) {
        for l in t.lines() {
            if let Some((k, v)) = l.split_once('=') {
                m.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    m
}

fn measure(a: &Args) -> Res<()> {
    let out = a.path("out")?;
    let bins = a.path("bins")?;
    let work = out.join("work");
    fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let rounds = a.num("rounds", 3)? as u32;
    let secs = a.num("seconds", 10)?;
    let mut rate = match a.num("rate", 0)? {
        0 => None,
        r => Some(r),
    };
    let all = [
        ("baseline", "benchsvc as built, no instrumentation"),
        ("manual", "benchsvc built with `-tags otel`: otelhttp on both handlers, a manual client span around the INSERT, OTel Go SDK batch processor, OTLP/HTTP to the collector"),
        ("gohook-otlp", "the baseline binary under `gohook run --format json -o /dev/null --otlp URL` (bundled scripts: net/http.serverHandler.ServeHTTP and database/sql.(*DB).execDC, entry and exit), spans to the collector"),
        ("gohook-json", "the same without `--otlp`: spans formatted as JSON lines to /dev/null, to separate the export cost"),
        ("gohook-shared", "gohook-otlp with gohook's own process left on the service's core (every other agent runs on the load core): what gohook costs when it cannot be placed elsewhere"),
        ("uprobe", "the baseline binary with bpftrace counting entry uprobes on the same two functions (`@calls[...] = count()`, no exit probes, no span)"),
        ("otel-auto", "the baseline binary with OpenTelemetry Go auto-instrumentation (go.opentelemetry.io/auto CLI, eBPF) attached by PID, OTLP/HTTP to the collector"),
        ("orchestrion", "benchsvc rebuilt with `orchestrion go build` (Datadog's compile-time injection, dd-trace-go); its tracer reports to a local sink that answers 200 to everything (it speaks the Datadog agent protocol, not OTLP)"),
    ];
    let only: Option<Vec<String>> = a
        .map
        .get("only")
        .map(|s| s.split(',').map(str::to_string).collect());
    let mut results = Results {
        started: sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        loadavg_before: fs::read_to_string("/proc/loadavg").unwrap_or_default(),
        phase_seconds: secs,
        ..Results::default()
    };
    let mut scenarios = Vec::new();
    for (name, what) in all {
        if let Some(o) = &only {
            if name != "baseline" && !o.iter().any(|x| x == name) {
                continue;
            }
        }
        let needs = match name {
            "manual" => Some("benchsvc-manual"),
            "otel-auto" => Some("otel-go-instrumentation"),
            "orchestrion" => Some("benchsvc-orchestrion"),
            "uprobe" => None,
            _ => None,
        };
        if let Some(bin) = needs {
            if !bins.join(bin).exists() {
                let why = fs::read_to_string(bins.join(format!("{name}.unavailable")))
                    .unwrap_or_else(|_| format!("{bin} was not built"));
                results
                    .unavailable
                    .insert(name.into(), why.trim().to_string());
                continue;
            }
        }
        if name == "uprobe" && sh("command -v bpftrace").is_empty() {
            results
                .unavailable
                .insert(name.into(), "bpftrace is not installed".into());
            continue;
        }
        scenarios.push(Scenario {
            name: name.into(),
            what: what.into(),
        });
    }
    let (mut collector, cport) = start_collector(&work)?;
    let env = Env {
        bins: bins.clone(),
        gohook: a.path("gohook")?,
        work: work.clone(),
        mix: a.path("mix")?,
        otlp: format!("http://127.0.0.1:{cport}"),
        sink_port: start_sink()?,
    };
    let mut setup = BTreeMap::new();
    setup.insert(
        "CPU".into(),
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
    );
    setup.insert("cores".into(), sh("nproc"));
    setup.insert(
        "memory".into(),
        sh("grep MemTotal /proc/meminfo | tr -s ' '"),
    );
    setup.insert("kernel".into(), sh("uname -r"));
    setup.insert("Go".into(), sh("go version"));
    setup.insert("wrk".into(), sh("wrk -v 2>&1 | head -1"));
    if have_oha() {
        setup.insert("oha".into(), sh("oha --version"));
    } else {
        setup.insert(
            "fixed-rate load".into(),
            format!(
                "oha is not installed: wrk with bench/rate.lua instead, each of the {CONNS} \
                 connections pausing 32000/RATE ms after every answer (closed loop: the \
                 achieved rate is a little below RATE and queueing is not corrected for)"
            ),
        );
    }
    setup.insert("bpftrace".into(), sh("bpftrace --version"));
    setup.insert("gohook".into(), sh("git rev-parse --short HEAD"));
    setup.insert(
        "pinning".into(),
        format!(
            "service on core {SVC_CORE} (taskset; in-process instrumentation, uprobe and BPF \
             programs run in its threads there); the out-of-process agents (gohook, bpftrace, \
             otel-go-instrumentation) on core {AGENT_CORE}, except in gohook-shared; wrk, oha and \
             the OTel Collector on core {LOAD_CORE}"
        ),
    );
    setup.insert(
        "load".into(),
        format!(
            "requests alternate GET /hello and GET /insert; saturation: wrk -t1 -c{CONNS} -d{secs}s \
             (closed loop); fixed rate: {}; 2 s wrk warm-up before each scenario",
            if have_oha() {
                format!("oha -c{CONNS} -q RATE -z {secs}s --latency-correction (open loop, latency from the scheduled start)")
            } else {
                format!("wrk -t1 -c{CONNS} -d{secs}s -s bench/rate.lua (paced closed loop)")
            }
        ),
    );
    setup.insert(
        "collector".into(),
        "OpenTelemetry Collector (fixtures/go/otelcol) with the OTLP/HTTP receiver and the debug exporter at basic verbosity".into(),
    );
    setup.extend(version_lines(&bins));
    results.setup = setup;
    results.scenarios = scenarios.clone();
    let save = |r: &Results| -> Res<()> {
        fs::write(
            out.join("results.json"),
            serde_json::to_string_pretty(r).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())
    };
    for round in 0..rounds {
        for sc in &scenarios {
            eprintln!("round {round}: {} ...", sc.name);
            let spans_before = collector_spans(&work);
            match one(&sc.name, &env, round, secs, &mut rate) {
                Ok(s) => {
                    std::thread::sleep(Duration::from_millis(1500));
                    let spans = collector_spans(&work) - spans_before;
                    eprintln!(
                        "  {:.0} req/s, p99 {:.2} ms at {} req/s; svc cpu {:.2}+{:.2}s agent {:?}; collector got {spans} spans",
                        s.saturation.rps,
                        s.fixed.p99_ms,
                        rate.unwrap_or(0),
                        s.svc_cpu_sat,
                        s.svc_cpu_fixed,
                        s.agent_cpu_fixed
                    );
                    let mut s = s;
                    if ["manual", "gohook-otlp", "gohook-shared", "otel-auto"]
                        .contains(&sc.name.as_str())
                    {
                        let note = format!("collector received {spans} spans");
                        s.agent_note = Some(match s.agent_note {
                            Some(n) => format!("{n} / {note}"),
                            None => note,
                        });
                    }
                    results.samples.push(s);
                }
                Err(e) => {
                    eprintln!("  failed: {e}");
                    results
                        .unavailable
                        .entry(sc.name.clone())
                        .or_insert_with(|| format!("round {round} failed: {e}"));
                }
            }
            results.rate = rate.unwrap_or(0);
            save(&results)?;
        }
    }
    stop(&mut collector, libc::SIGTERM, Duration::from_secs(10));
    results.loadavg_after = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    save(&results)
}

fn write_report(a: &Args) -> Res<()> {
    let out = a.path("out")?;
    let md = a.path("md")?;
    let text = fs::read_to_string(out.join("results.json")).map_err(|e| e.to_string())?;
    let r: Results = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let read = |n: &str| {
        fs::read_to_string(out.join(n))
            .ok()
            .filter(|t| !t.trim().is_empty())
    };
    let micro = Micro {
        hook_overhead: read("hook_overhead.txt"),
        capacity: read("capacity.txt"),
    };
    let dir = md.parent().unwrap_or(Path::new(".")).join("bench");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (tp, lat) = report::plots(&r);
    fs::write(dir.join("throughput.svg"), tp).map_err(|e| e.to_string())?;
    fs::write(dir.join("latency.svg"), lat).map_err(|e| e.to_string())?;
    fs::write(
        &md,
        report::markdown(&r, &micro, ("bench/throughput.svg", "bench/latency.svg")),
    )
    .map_err(|e| e.to_string())
}
