//! gohook's sustained capacity: how many records per second its consumer turns into spans, with
//! no script and with a typical script, and the offered rate at which the target starts
//! dropping records. Side by side in one run; it asserts nothing about speed (the machine is
//! shared and noisy): `cargo bench --bench capacity`.
//!
//! The `spin` fixture calls `main.tick` in bursts of B calls 20 ms apart, so the offered rate
//! is about 2·B records (entry and exit) per 20 ms. For each B the table shows what gohook
//! delivered, what the target dropped, and the consumer's own processing rate (records per
//! second of time spent draining and processing, from `GOHOOK_DEBUG_CONSUMER`).

use std::process::Command;
use std::time::Duration;

use fixtures::{must_build, Toolchain, Variant};

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// A typical script: names the span from an argument and sets two attributes.
const TYPICAL: &str = r#"
const HOOK = "main.tick";
fn on_enter(ctx) {
    let b = ctx.arg(1).int();
    ctx.span_start("tick", "internal");
    ctx.set("tick.a", ctx.arg(0).int());
    ctx.set("tick.b", b);
}
"#;

struct Row {
    offered_per_s: f64,
    spans: u64,
    dropped: u64,
    consumer_rate: Option<f64>,
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix("µs") {
        (v, 1e-6)
    } else if let Some(v) = s.strip_suffix("ns") {
        (v, 1e-9)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else {
        return None;
    };
    num.parse::<f64>()
        .ok()
        .map(|v| Duration::from_secs_f64(v * mult))
}

fn one(spin: &str, burst: u64, script: Option<&std::path::Path>) -> Option<Row> {
    let bursts = 50;
    let n = burst * bursts;
    let out_json = std::env::temp_dir().join("gohook-capacity.json");
    let mut cmd = Command::new(GOHOOK);
    cmd.args(["run", "-f", "main.tick", "--format", "json", "-o"])
        .arg(&out_json)
        .env("GOHOOK_DEBUG_CONSUMER", "1");
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .args([
            "--",
            spin,
            "-bench",
            &n.to_string(),
            "-burst",
            &burst.to_string(),
        ])
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ns_per_call: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ns/call "))?
        .trim()
        .parse()
        .ok()?;
    let burst_s = burst as f64 * ns_per_call * 1e-9;
    let offered_per_s = 2.0 * burst as f64 / (0.020 + burst_s);
    let summary = std::fs::read_to_string(&out_json).ok()?;
    let last: serde_json::Value = serde_json::from_str(summary.lines().last()?).ok()?;
    let spans = last["summary"]["spans"].as_u64()?;
    let dropped = last["summary"]["dropped_records"].as_u64()?;
    // "gohook: consumer: I drains, R records, D draining, P processing"
    let consumer_rate = stderr.lines().find_map(|l| {
        let rest = l.strip_prefix("gohook: consumer: ")?;
        let parts: Vec<&str> = rest.split(", ").collect();
        let records: f64 = parts.get(1)?.strip_suffix(" records")?.parse().ok()?;
        let drain = parse_duration(parts.get(2)?.strip_suffix(" draining")?)?;
        let process = parse_duration(parts.get(3)?.strip_suffix(" processing")?)?;
        Some(records / (drain + process).as_secs_f64().max(1e-9))
    });
    Some(Row {
        offered_per_s,
        spans,
        dropped,
        consumer_rate,
    })
}

fn main() {
    let spin = must_build("spin", Variant::Default, &Toolchain::installed());
    let spin = spin.to_str().unwrap().to_owned();
    let script = std::env::temp_dir().join("gohook-capacity-typical.rhai");
    std::fs::write(&script, TYPICAL).unwrap();

    println!(
        "gohook capacity on spin main.tick (entry + exit hooks; 50 bursts of B calls, 20 ms apart)"
    );
    println!(
        "{:<16} {:>8} {:>14} {:>10} {:>10} {:>8} {:>20}",
        "script", "B", "offered rec/s", "spans", "dropped", "drop %", "consumer rec/s"
    );
    for (label, s) in [("none", None), ("typical", Some(script.as_path()))] {
        for burst in [500u64, 2_000, 8_000, 32_000, 128_000] {
            match one(&spin, burst, s) {
                Some(r) => {
                    let total = 2 * r.spans + r.dropped;
                    println!(
                        "{label:<16} {burst:>8} {:>14.0} {:>10} {:>10} {:>7.2}% {:>20}",
                        r.offered_per_s,
                        r.spans,
                        r.dropped,
                        100.0 * r.dropped as f64 / total.max(1) as f64,
                        r.consumer_rate
                            .map_or("n/a".to_string(), |v| format!("{v:.0}")),
                    );
                }
                None => println!("{label:<16} {burst:>8} {:>14}", "run failed"),
            }
        }
    }
    println!("(consumer rec/s: records drained and turned into spans per second of the consumer's busy time)");
}
