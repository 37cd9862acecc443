//! `--summary` and `--summary-json` on a real program: the per-function statistics of `torture`
//! under `gohook run`, checked against the program's own call counts and against the spans of
//! the same run.

mod cli_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cli_support::{json_lines, scratch};
use fixtures::{must_build, Toolchain, Variant};
use serde_json::Value;

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Functions of torture whose calls are deterministic and that are hooked here.
const HOOKS: [&str; 8] = [
    "main.work",
    "main.recurse",
    "main.mayPanic",
    "main.middle",
    "main.catcher",
    "main.exiter",
    "main.spawner",
    "main.child",
];

/// `calls main.X N` and `recovered N` lines printed by torture.
fn torture_counts(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("calls ").unwrap_or(l);
            let (f, n) = l.split_once(' ')?;
            Some((f.to_owned(), n.parse().ok()?))
        })
        .collect()
}

fn hook_args() -> Vec<String> {
    HOOKS
        .iter()
        .flat_map(|f| ["-f".to_owned(), (*f).to_owned()])
        .collect()
}

fn torture() -> std::path::PathBuf {
    must_build("torture", Variant::Default, &Toolchain::installed())
}

fn by_function(summary: &Value) -> BTreeMap<String, Value> {
    summary["functions"]
        .as_array()
        .expect("functions array")
        .iter()
        .map(|f| (f["function"].as_str().unwrap().to_owned(), f.clone()))
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a number"))
}

#[test]
fn summary_counts_every_call_with_consistent_times_and_the_panics() {
    let exe = torture();
    let spans_path = scratch("summary-spans.json");
    let json_path = scratch("summary.json");
    let out = Command::new(GOHOOK)
        .arg("run")
        .args(hook_args())
        .args(["--no-default-scripts", "--ring-slots", "65536"])
        .args(["--format", "json", "-o"])
        .arg(&spans_path)
        .arg("--summary")
        .arg("--summary-json")
        .arg(&json_path)
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gohook run failed: {stderr}");
    let expected = torture_counts(&String::from_utf8_lossy(&out.stdout));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap())
        .expect("--summary-json writes one JSON object");
    assert_eq!(summary["dropped_records"], 0, "records dropped: {summary}");
    let funcs = by_function(&summary);
    for f in HOOKS {
        let s = &funcs[f];
        assert_eq!(
            u(&s["calls"]),
            expected[f],
            "{f}: calls differ from torture's count"
        );
        let (total, own) = (u(&s["total_ns"]), u(&s["self_ns"]));
        assert!(own <= total, "{f}: self {own} > total {total}");
        let (min, p50, p99, max) = (
            u(&s["min_ns"]),
            u(&s["p50_ns"]),
            u(&s["p99_ns"]),
            u(&s["max_ns"]),
        );
        assert!(
            min <= p50 && p50 <= p99 && p99 <= max,
            "{f}: min {min} p50 {p50} p99 {p99} max {max}"
        );
        assert!(max <= total, "{f}: max {max} > total {total}");
    }
    // recurse calls itself: all but the innermost call's time is its callee's.
    let rec = &funcs["main.recurse"];
    assert!(
        u(&rec["self_ns"]) < u(&rec["total_ns"]) / 10,
        "recurse's self time is not mostly subtracted: {rec}"
    );
    // catcher → middle → mayPanic: every third mayPanic panics, unwinding middle too; catcher
    // recovers and returns normally.
    let recovered = expected["recovered"];
    assert_eq!(u(&funcs["main.mayPanic"]["panics"]), recovered);
    assert_eq!(u(&funcs["main.middle"]["panics"]), recovered);
    assert_eq!(u(&funcs["main.catcher"]["panics"]), 0);
    // runtime.Goexit ends exiter's goroutine without a return: an error (unfinished or panic).
    let ex = &funcs["main.exiter"];
    assert_eq!(
        u(&ex["errors"]) + u(&ex["panics"]),
        expected["main.exiter"],
        "{ex}"
    );
    // The same run's spans agree with the summary.
    let spans = json_lines(&std::fs::read_to_string(&spans_path).unwrap());
    let panics_in_spans = spans
        .iter()
        .filter(|s| s["function"] == "main.mayPanic" && s["status"]["message"] == "panic")
        .count() as u64;
    assert_eq!(panics_in_spans, recovered);
    // The table on standard error: a header, then a row per function with its calls.
    let table: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("FUNCTION"))
        .collect();
    assert!(
        table
            .first()
            .is_some_and(|h| h.contains("P99") && h.contains("PANICS")),
        "no summary table on stderr: {stderr}"
    );
    for f in HOOKS {
        let row = table
            .iter()
            .find(|l| l.split_whitespace().next() == Some(f))
            .unwrap_or_else(|| panic!("no row for {f}: {stderr}"));
        let calls: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert_eq!(calls, expected[f], "{f}: table row {row:?}");
    }
    eprintln!(
        "recurse: {} calls, total {} ns, self {} ns; work p50 {} ns p99 {} ns",
        rec["calls"],
        rec["total_ns"],
        rec["self_ns"],
        funcs["main.work"]["p50_ns"],
        funcs["main.work"]["p99_ns"]
    );
}

#[test]
fn summary_json_to_standard_output_is_one_parsable_object() {
    let exe = torture();
    let out = Command::new(GOHOOK)
        .args(["run", "-f", "main.child", "--no-default-scripts"])
        .args(["--format", "json", "-o", "/dev/null", "--summary-json", "-"])
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // torture's own lines come first; the summary is the last line.
    let last = stdout.lines().last().unwrap();
    let v: Value = serde_json::from_str(last).expect("the last line is the summary");
    let expected = torture_counts(&stdout);
    assert_eq!(
        u(&by_function(&v)["main.child"]["calls"]),
        expected["main.child"]
    );
    assert!(!Path::new("-").exists(), "wrote a file named -");
}
