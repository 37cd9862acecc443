//! A soak: millions of hooked calls through a hook script and OTLP export to a real
//! OpenTelemetry Collector, with gohook's memory sampled all along. Two things are pinned:
//!
//! - gohook's memory is flat: its RSS (VmRSS, sampled every 100 ms while the target runs) in
//!   the last third of the run never exceeds the first third's peak by more than 16 MiB or 20 %
//!   (whichever is larger). Its buffers are bounded (rings, the export queue), so a growth
//!   beyond that is a leak.
//! - every call is accounted for: the program makes a known number of calls (`spin -bench N
//!   -burst B`: a warm-up pass and a timed pass of N calls each), the script makes one span per
//!   call, and calls = spans + calls lost to dropped ring records (each such call lost at least
//!   one record, so calls − spans ≤ dropped records, equality of calls and spans when none were
//!   dropped); spans = spans in the collector's file + spans OTLP export reported lost.
//!
//! `GOHOOK_SOAK_CALLS=N` sets the number of calls (default 300,000: about half a minute);
//! RELIABILITY.md records a run of 10 million.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fixtures::{must_build, Toolchain, Variant};

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Calls per burst; spin pauses 20 ms between bursts. A burst's records (entry and exit:
/// 4,000) fit a ring of the default 8,192 slots.
const BURST: u64 = 2000;

/// The hook script: one span per call of main.tick, with an argument read from the target.
const SCRIPT: &str = r#"
const HOOK = "main.tick";
fn on_enter(ctx) {
    ctx.span_start("tick", "internal");
    ctx.set("tick.b", ctx.arg("b").int());
}
"#;

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn calls_wanted() -> u64 {
    std::env::var("GOHOOK_SOAK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000)
}

/// The Collector fixture with the file exporter writing OTLP JSON to `dir/traces.jsonl`. Run
/// here rather than through `fixtures::otelcol::Collector`, whose `stop` reads the whole file
/// into memory: at 10 million spans it is gigabytes, so this test streams it.
struct Otelcol {
    child: Reaper,
    port: u16,
    file: PathBuf,
}

impl Otelcol {
    fn start(dir: &Path) -> Otelcol {
        let exe = fixtures::otelcol::must_build();
        let port = fixtures::otelcol::free_port().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join("traces.jsonl");
        let _ = std::fs::remove_file(&file);
        let config = dir.join("otelcol.yaml");
        std::fs::write(
            &config,
            format!(
                "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
                 exporters:\n  file:\n    path: {file:?}\n    format: json\n\
                 service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n\
                 \x20 telemetry:\n    metrics:\n      level: none\n",
                file = file.display().to_string()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("otelcol.log")).unwrap();
        let child = Reaper(
            Command::new(exe)
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the collector did not listen: {}",
                std::fs::read_to_string(dir.join("otelcol.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Otelcol { child, port, file }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the collector gracefully (the file exporter flushes) and counts the spans in its
    /// file, one export request per line, streaming.
    fn stop_and_count(mut self) -> u64 {
        let pid = self.child.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the collector ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        let f = std::fs::File::open(&self.file).unwrap();
        let mut spans = 0u64;
        for line in BufReader::new(f).lines() {
            let line = line.unwrap();
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            for rs in v["resourceSpans"].as_array().unwrap() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for s in ss["spans"].as_array().unwrap() {
                        assert_eq!(s["name"], "tick", "a span the script did not make: {s}");
                        spans += 1;
                    }
                }
            }
        }
        spans
    }
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// From gohook's OTLP line, the spans export reported lost (0 when it says all were sent).
fn otlp_lost(err: &str, spans: u64) -> u64 {
    let line = err
        .lines()
        .find(|l| l.starts_with("gohook: OTLP"))
        .unwrap_or_else(|| panic!("no OTLP line: {err}"));
    if line.starts_with("gohook: OTLP: ") {
        let sent: u64 = line["gohook: OTLP: ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(sent, spans, "every span handed to export was sent: {line}");
        return 0;
    }
    // "...: L of T spans not delivered: ..."
    let (lost, rest) = line
        .split_once(": ")
        .and_then(|_| line.rsplit_once(" spans not delivered"))
        .and_then(|(head, rest)| {
            let words: Vec<&str> = head.split_whitespace().collect();
            let n = words.len();
            (n >= 3 && words[n - 2] == "of").then(|| {
                let lost: u64 = words[n - 3].parse().unwrap();
                let total: u64 = words[n - 1].parse().unwrap();
                assert_eq!(total, spans, "export saw every span: {line}");
                (lost, rest)
            })
        })
        .unwrap_or_else(|| panic!("unexpected OTLP line {line:?}"));
    eprintln!("OTLP lost {lost}:{rest}");
    lost
}

#[test]
fn a_soak_of_hooked_calls_through_a_script_and_otlp_keeps_memory_flat_and_accounts_for_every_call()
{
    let wanted = calls_wanted();
    let n = (wanted / 2).max(BURST);
    let calls = 2 * n;
    let exe = must_build("spin", Variant::Default, &Toolchain::installed());
    let collector = Otelcol::start(&scratch("otelcol"));
    let script = scratch("tick.rhai");
    std::fs::write(&script, SCRIPT).unwrap();
    let summary = scratch("summary.json");
    let started = Instant::now();
    let mut gohook = Reaper(
        Command::new(GOHOOK)
            .args(["run", "--no-default-scripts", "-s"])
            .arg(&script)
            .args(["--otlp", &collector.endpoint()])
            .args(["--format", "json", "-o", "/dev/null", "--summary-json"])
            .arg(&summary)
            .arg("--")
            .arg(&exe)
            .args(["-bench", &n.to_string(), "-burst", &BURST.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let gpid = gohook.0.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = vm_rss_kib(gpid) {
                    samples.push(kib);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };
    let mut stderr = gohook.0.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let out = gohook.0.wait_with_output_ref();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    let err = err_reader.join().unwrap();
    let elapsed = started.elapsed();
    assert!(out.0.success(), "gohook run: {}: {err}", out.0);
    assert!(out.1.starts_with("ns/call "), "spin said {:?}", out.1);
    assert!(!err.contains("hook-script error"), "{err}");

    let sum: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let spans = sum["spans"].as_u64().unwrap();
    let dropped = sum["dropped_records"].as_u64().unwrap();
    let lost = otlp_lost(&err, spans);
    let delivered = collector.stop_and_count();

    // Every call: a span, or a call that lost records to a full ring (counted).
    assert!(spans <= calls, "{spans} spans from {calls} calls");
    assert!(
        calls - spans <= dropped,
        "{} calls made no span but only {dropped} records were counted as dropped",
        calls - spans
    );
    if dropped == 0 {
        assert_eq!(spans, calls, "no drops: one span per call");
    }
    // Every span: in the collector's file, or counted as lost by the exporter.
    assert_eq!(
        delivered + lost,
        spans,
        "collector has {delivered}, export lost {lost}, gohook made {spans}"
    );

    // Memory flat: the last third's peak against the first third's.
    assert!(samples.len() >= 6, "too few RSS samples: {samples:?}");
    let third = samples.len() / 3;
    let first = *samples[..third].iter().max().unwrap();
    let last = *samples[samples.len() - third..].iter().max().unwrap();
    let allowed = first + (16 * 1024).max(first / 5);
    assert!(
        last <= allowed,
        "gohook's RSS grew: first-third peak {first} KiB, last-third peak {last} KiB \
         (allowed {allowed} KiB); samples: {samples:?}"
    );
    eprintln!(
        "soak: {calls} calls in {:.1} s, {spans} spans ({dropped} ring records dropped), \
         {delivered} delivered to the collector, {lost} lost by export; gohook RSS first-third \
         peak {first} KiB, last-third peak {last} KiB, min {} KiB, max {} KiB over {} samples",
        elapsed.as_secs_f64(),
        samples.iter().min().unwrap(),
        samples.iter().max().unwrap(),
        samples.len()
    );
}

/// `wait` that also reads stdout: (status, stdout).
trait WaitRef {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String);
}
impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String) {
        let mut s = String::new();
        if let Some(mut o) = self.stdout.take() {
            std::io::Read::read_to_string(&mut o, &mut s).unwrap();
        }
        (self.wait().unwrap(), s)
    }
}
