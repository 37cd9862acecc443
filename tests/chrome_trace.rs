//! `--chrome-trace FILE`: the Chrome trace event JSON of a real run matches the spans gohook
//! printed for the same run, one track per goroutine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use fixtures::{must_build, Toolchain, Variant};
use serde_json::Value;

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-chrome-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

#[test]
fn every_span_is_a_complete_event_on_its_goroutine_s_named_track() {
    // torture's main.work runs on 8 goroutines started by main.spawner's caller.
    let torture = must_build("torture", Variant::Default, &Toolchain::installed());
    let spans_path = scratch("torture-spans.json");
    let trace_path = scratch("torture-trace.json");
    let out = Command::new(GOHOOK)
        .args(["run", "-f", "main.work", "-f", "main.spawner"])
        .args(["--format", "json", "-o"])
        .arg(&spans_path)
        .arg("--chrome-trace")
        .arg(&trace_path)
        .arg("--")
        .arg(&torture)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let pid: u64 = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("gohook: pid ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .expect("pid line");

    let spans: Vec<Value> = std::fs::read_to_string(&spans_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("summary").is_none())
        .collect();
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&trace_path).unwrap())
        .expect("the trace file is one JSON document");
    let origin = trace["otherData"]["time_origin_unix_nano"]
        .as_u64()
        .unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let complete: BTreeMap<&str, &Value> = events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| (e["args"]["span_id"].as_str().unwrap(), e))
        .collect();
    assert!(spans.len() > 8, "{err}");
    assert_eq!(
        complete.len(),
        spans.len(),
        "one complete event per span, no more"
    );

    let mut goroutines = BTreeSet::new();
    for s in &spans {
        let id = s["span_id"].as_str().unwrap();
        let e = complete[id];
        let start = s["start_time_unix_nano"].as_u64().unwrap();
        let end = s["end_time_unix_nano"].as_u64().unwrap();
        assert_eq!(e["name"], s["name"]);
        assert_eq!(e["pid"], pid);
        assert_eq!(e["tid"], s["goroutine"]);
        let ts = e["ts"].as_f64().unwrap();
        let dur = e["dur"].as_f64().unwrap();
        assert!(
            (ts - micros(start - origin)).abs() < 0.002,
            "ts {ts} of {id}"
        );
        assert!(
            (dur - micros(end - start)).abs() < 0.002,
            "dur {dur} of {id}"
        );
        assert_eq!(e["args"]["trace_id"], s["trace_id"]);
        assert_eq!(e["args"]["status"], s["status"]["code"]);
        for (k, v) in s["attributes"].as_object().unwrap() {
            assert_eq!(&e["args"][k], v, "attribute {k}");
        }
        goroutines.insert(s["goroutine"].as_u64().unwrap());
    }
    assert!(goroutines.len() >= 8, "spans on {goroutines:?}");

    let named: BTreeMap<u64, &str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            assert_eq!(e["pid"], pid);
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named.keys().copied().collect::<BTreeSet<_>>(),
        goroutines,
        "every goroutine track, and only those, is named"
    );
    for (g, name) in named {
        assert_eq!(name, format!("goroutine {g}"));
    }
    let process = events
        .iter()
        .find(|e| e["ph"] == "M" && e["name"] == "process_name")
        .expect("process_name metadata");
    assert_eq!(
        process["args"]["name"],
        format!("torture (pid {pid})"),
        "the process track is named after the program"
    );
}
