//! `gohook record`, `report` and `replay` on a real program: a record of `torture` reports the
//! program's own call counts (the same as a live `--summary`), replays into the same spans as a
//! live run, exports a Chrome trace, survives being cut short, and bad files are one-line errors.

mod cli_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cli_support::{assert_one_line_error, gohook, json_lines, scratch};
use fixtures::{must_build, Toolchain, Variant};
use serde_json::Value;

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Functions of torture whose calls are deterministic.
const HOOKS: [&str; 7] = [
    "main.work",
    "main.recurse",
    "main.mayPanic",
    "main.middle",
    "main.catcher",
    "main.exiter",
    "main.child",
];

fn hook_args() -> Vec<String> {
    HOOKS
        .iter()
        .flat_map(|f| ["-f".to_owned(), (*f).to_owned()])
        .chain([
            "--no-default-scripts".into(),
            "--ring-slots".into(),
            "65536".into(),
        ])
        .collect()
}

/// `calls main.X N` lines printed by torture.
fn torture_counts(stdout: &[u8]) -> BTreeMap<String, u64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("calls "))
        .filter_map(|l| l.split_once(' '))
        .map(|(f, n)| (f.to_owned(), n.parse().unwrap()))
        .collect()
}

fn calls_by_function(summary: &Value) -> BTreeMap<String, u64> {
    summary["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap().to_owned(),
                f["calls"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// (name, status code, status message) → spans, from `--format json` output.
fn span_shapes(path: &Path) -> (BTreeMap<(String, String, String), u64>, usize) {
    let lines = json_lines(&std::fs::read_to_string(path).unwrap());
    let mut shapes = BTreeMap::new();
    let mut n = 0;
    for s in lines.iter().filter(|v| v.get("summary").is_none()) {
        n += 1;
        let key = (
            s["name"].as_str().unwrap().to_owned(),
            s["status"]["code"].as_str().unwrap().to_owned(),
            s["status"]["message"].as_str().unwrap_or("").to_owned(),
        );
        *shapes.entry(key).or_default() += 1;
    }
    (shapes, n)
}

/// Records torture once; (record file, torture's counts).
fn record_torture(name: &str) -> (PathBuf, BTreeMap<String, u64>) {
    let exe = must_build("torture", Variant::Default, &Toolchain::installed());
    let file = scratch(name);
    let out = Command::new(GOHOOK)
        .arg("record")
        .arg("-o")
        .arg(&file)
        .args(hook_args())
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gohook record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (file, torture_counts(&out.stdout))
}

fn report_json(file: &Path) -> Value {
    let out = gohook([OsArg::from("report"), file.into(), "--json".into()]);
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report --json prints one JSON object")
}

type OsArg = std::ffi::OsString;

#[test]
fn a_record_reports_and_replays_what_a_live_run_shows() {
    let exe = must_build("torture", Variant::Default, &Toolchain::installed());
    // The live run: spans as JSON and the summary.
    let live_spans = scratch("live.json");
    let live_summary = scratch("live-summary.json");
    let live = Command::new(GOHOOK)
        .arg("run")
        .args(hook_args())
        .args(["--format", "json", "-o"])
        .arg(&live_spans)
        .arg("--summary-json")
        .arg(&live_summary)
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let live_calls = calls_by_function(
        &serde_json::from_str(&std::fs::read_to_string(&live_summary).unwrap()).unwrap(),
    );

    let (file, expected) = record_torture("torture.gohook");
    let size = std::fs::metadata(&file).unwrap().len();

    // report: the binary's identity, complete, and the program's own counts.
    let rep = report_json(&file);
    assert_eq!(rep["complete"], true, "{rep}");
    assert_eq!(rep["dropped_records"], 0, "{rep}");
    let bin = &rep["binary"];
    assert_eq!(
        bin["size"].as_u64().unwrap(),
        std::fs::metadata(&exe).unwrap().len()
    );
    assert!(
        bin["go_version"].as_str().unwrap().starts_with("go1."),
        "{bin}"
    );
    assert!(!bin["go_build_id"].as_str().unwrap().is_empty(), "{bin}");
    let calls = calls_by_function(&rep["summary"]);
    for f in HOOKS {
        assert_eq!(
            calls[f], expected[f],
            "{f}: reported calls differ from torture's count"
        );
        assert_eq!(
            calls[f], live_calls[f],
            "{f}: reported calls differ from the live summary"
        );
    }
    let records = rep["entries"].as_u64().unwrap() + rep["exits"].as_u64().unwrap();
    eprintln!(
        "record: {size} bytes for {records} records ({:.1} bytes/record)",
        size as f64 / records as f64
    );

    // The text report names the binary and prints the table.
    let text = gohook([OsArg::from("report"), file.clone().into()]);
    let text = cli_support::ok_stdout(&text);
    assert!(text.contains("complete:     yes"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FUNCTION")), "{text}");

    // replay --format json: as many spans, with the same names and statuses, as the live run;
    // and a Chrome trace with one complete event per span.
    let replayed = scratch("replayed.json");
    let chrome = scratch("replayed-chrome.json");
    let out = gohook([
        OsArg::from("replay"),
        file.clone().into(),
        "--format".into(),
        "json".into(),
        "-o".into(),
        replayed.clone().into(),
        "--chrome-trace".into(),
        chrome.clone().into(),
    ]);
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (live_shapes, live_n) = span_shapes(&live_spans);
    let (replay_shapes, replay_n) = span_shapes(&replayed);
    assert_eq!(replay_n, live_n, "span counts differ");
    assert_eq!(replay_shapes, live_shapes, "span names or statuses differ");
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap())
        .expect("the Chrome trace is JSON");
    let complete = trace["traceEvents"]
        .as_array()
        .expect("traceEvents")
        .iter()
        .filter(|e| e["ph"] == "X")
        .count();
    assert_eq!(complete, replay_n, "Chrome trace events ≠ spans");
    eprintln!("replay: {replay_n} spans, same names and statuses as the live run");
}

#[test]
fn a_record_cut_short_still_reports_what_it_holds() {
    let (file, expected) = record_torture("whole.gohook");
    let bytes = std::fs::read(&file).unwrap();
    let cut = scratch("cut.gohook");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let rep = report_json(&cut);
    assert_eq!(rep["complete"], false, "{rep}");
    assert!(
        rep["cut"]["reason"].as_str().unwrap().contains("ends"),
        "{rep}"
    );
    let calls = calls_by_function(&rep["summary"]);
    let held: u64 = calls.values().sum();
    let all: u64 = HOOKS.iter().map(|f| expected[*f]).sum();
    assert!(
        held > 0 && held < all,
        "a 2/3 record holds {held} of {all} calls"
    );
    // replay reads it too, and says it was cut.
    let out = gohook([
        OsArg::from("replay"),
        cut.clone().into(),
        "--format".into(),
        "json".into(),
        "-o".into(),
        "/dev/null".into(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read the first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn garbage_and_future_versions_are_one_line_errors() {
    let garbage = scratch("garbage.gohook");
    std::fs::write(&garbage, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    for cmd in ["report", "replay"] {
        let err = assert_one_line_error(
            &gohook([OsArg::from(cmd), garbage.clone().into()]),
            &format!("{cmd} of garbage"),
        );
        assert!(err.contains("not a gohook record file"), "{err}");
    }
    let future = scratch("future.gohook");
    let mut b = b"\x7fGOHOOKR".to_vec();
    b.extend_from_slice(&7u32.to_le_bytes());
    b.extend_from_slice(&[0; 64]);
    std::fs::write(&future, &b).unwrap();
    let err = assert_one_line_error(
        &gohook([OsArg::from("report"), future.clone().into()]),
        "report of a future version",
    );
    assert!(err.contains("version 7") && err.contains("newer"), "{err}");
    let missing = assert_one_line_error(
        &gohook(["report", "/nonexistent/x.gohook"]),
        "report of a missing file",
    );
    assert!(missing.contains("/nonexistent/x.gohook"), "{missing}");
}

#[test]
fn record_attaches_to_a_running_process_for_a_duration() {
    let exe = must_build("spin", Variant::Default, &Toolchain::installed());
    let mut child = Command::new(&exe)
        .args(["-forever", "-workers=2"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let file = scratch("spin.gohook");
    let out = Command::new(GOHOOK)
        .arg("record")
        .arg("-o")
        .arg(&file)
        .args([
            "-f",
            "main.tick",
            "--no-default-scripts",
            "--duration",
            "0.5",
        ])
        .args(["--pid", &child.id().to_string()])
        .output()
        .unwrap();
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "record --pid failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(alive, "the target died while recorded");
    let rep = report_json(&file);
    assert_eq!(rep["complete"], true, "{rep}");
    assert_eq!(rep["pid"].as_u64().unwrap(), u64::from(child.id()), "{rep}");
    let calls = calls_by_function(&rep["summary"]);
    assert!(calls["main.tick"] > 10, "{rep}");
    let duration = rep["duration_ns"].as_u64().unwrap();
    assert!(
        duration > 100_000_000 && duration < 5_000_000_000,
        "a 0.5 s record spans {duration} ns"
    );
}
