//! Hook-engine benchmark: the cost a hook adds to a call, side by side in one run.
//!
//! On the `spin` fixture's `main.tick` (a small function with a stack check, called in a tight
//! loop), it measures ns per call for: the plain call; gohook with an entry hook only; gohook
//! with entry and exit hooks; a bpftrace uprobe counting the same function (when bpftrace is
//! installed and works here). Then the stop-the-world pause of attaching ~100 hooks to a process
//! with 50 threads. It prints a table with ratios; it asserts nothing about speed (the machine
//! is shared and noisy): run it with `cargo bench --bench hook_overhead`.

use std::process::{Command, Stdio};
use std::time::Duration;

use fixtures::{must_build, Toolchain, Variant};

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

fn ns_per_call(out: &[u8]) -> Option<f64> {
    String::from_utf8_lossy(out)
        .lines()
        .find_map(|l| l.strip_prefix("ns/call "))
        .and_then(|v| v.trim().parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let calls: u64 = std::env::var("GOHOOK_BENCH_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000_000);
    let reps = 5;
    let spin = must_build("spin", Variant::Default, &Toolchain::installed());
    let spin_s = spin.to_str().unwrap().to_owned();
    let n = calls.to_string();
    let uprobe_calls = calls / 200;

    // Two regimes. "recorded": bursts of 1,000 calls with a pause between them, so gohook drains
    // the ring and every call is recorded (checked: the summary must show no drops). "saturated":
    // one run of back-to-back calls, where the ring fills and most calls take the drop path.
    let burst = ["-burst", "1000"];
    let mut rows: Vec<(String, Option<f64>)> = Vec::new();
    // Bursts of 1,000 calls, 20 ms apart, 20,000 calls in all (after an untimed warm-up pass):
    // each burst's records fit in a ring, and gohook drains them before the next burst.
    let burst_n = "20000".to_owned();
    let plain_run_n = |extra: &[&str], n: &str| -> f64 {
        median(
            (0..reps)
                .filter_map(|_| {
                    ns_per_call(
                        &Command::new(&spin)
                            .args(["-bench", n])
                            .args(extra)
                            .output()
                            .ok()?
                            .stdout,
                    )
                })
                .collect(),
        )
    };
    let plain_run = |extra: &[&str]| plain_run_n(extra, &n);
    let plain = plain_run_n(&burst, &burst_n);
    let plain_sat = plain_run(&[]);
    rows.push(("plain call".into(), Some(plain)));
    let out_json = std::env::temp_dir().join("gohook-bench-spans.json");
    for (label, hook_extra, spin_extra) in [
        ("gohook entry hook", vec!["--no-exit"], &burst[..]),
        ("gohook entry + exit hooks", vec![], &burst[..]),
    ] {
        let v: Vec<f64> = (0..reps)
            .filter_map(|_| {
                let out = Command::new(GOHOOK)
                    .args(["run", "-f", "main.tick", "--format", "json", "-o"])
                    .arg(&out_json)
                    .args(&hook_extra)
                    .args(["--", &spin_s, "-bench", &burst_n])
                    .args(spin_extra)
                    .stderr(Stdio::null())
                    .output()
                    .ok()?;
                let summary = std::fs::read_to_string(&out_json).ok()?;
                let dropped = summary
                    .lines()
                    .last()
                    .map(|l| l.contains("\"dropped_records\":0"))
                    .unwrap_or(false);
                if !dropped {
                    eprintln!("{label}: records were dropped; not a recorded-path figure");
                    return None;
                }
                ns_per_call(&out.stdout)
            })
            .collect();
        rows.push((
            format!("{label} (recorded)"),
            (!v.is_empty()).then(|| median(v)),
        ));
    }
    let sat: Vec<f64> = (0..reps)
        .filter_map(|_| {
            let out = Command::new(GOHOOK)
                .args([
                    "run",
                    "-f",
                    "main.tick",
                    "--format",
                    "json",
                    "-o",
                    "/dev/null",
                ])
                .args(["--", &spin_s, "-bench", &n])
                .stderr(Stdio::null())
                .output()
                .ok()?;
            ns_per_call(&out.stdout)
        })
        .collect();
    rows.push((
        "gohook entry+exit, saturated".into(),
        (!sat.is_empty()).then(|| median(sat) - plain_sat + plain),
    ));

    // A uprobe applies to every process mapping the file, so bpftrace attaches first and spin
    // runs afterwards; fewer calls, since each one traps into the kernel.
    let uprobe = (|| {
        let mut bt = Command::new("bpftrace")
            .args([
                "-B",
                "line",
                "-e",
                &format!("uprobe:{spin_s}:main.tick {{ @calls = count(); }}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut stdout = std::io::BufReader::new(bt.stdout.take()?);
        let mut line = String::new();
        use std::io::{BufRead, Read};
        while stdout.read_line(&mut line).ok()? > 0 && !line.contains("Attaching") {
            line.clear();
        }
        std::thread::sleep(Duration::from_millis(500));
        let out = Command::new(&spin)
            .args(["-bench", &uprobe_calls.to_string()])
            .output()
            .ok();
        let _ = Command::new("kill")
            .args(["-INT", &bt.id().to_string()])
            .status();
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        let _ = bt.wait();
        // Only a run in which the probe saw every call is a uprobe figure.
        let counted: u64 = rest
            .lines()
            .find_map(|l| l.trim().strip_prefix("@calls: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if counted < uprobe_calls {
            eprintln!("bpftrace counted {counted} of {uprobe_calls} calls: no uprobe figure");
            return None;
        }
        ns_per_call(&out?.stdout)
    })();
    rows.push(("bpftrace uprobe (count)".into(), uprobe));

    println!("hook overhead on main.tick, median of {reps} runs (bpftrace: 1 run of {uprobe_calls} calls)");
    println!(
        "{:<36} {:>12} {:>14} {:>10}",
        "variant", "ns/call", "added ns/call", "x plain"
    );
    for (label, v) in &rows {
        match v {
            Some(v) => println!(
                "{label:<36} {v:>12.2} {:>14.2} {:>10.2}",
                v - plain,
                v / plain
            ),
            None => println!("{label:<36} {:>12}", "n/a"),
        }
    }
    let added = |i: usize| rows[i].1.map(|v| v - plain);
    if let (Some(g), Some(u)) = (added(1), added(4)) {
        println!(
            "a uprobe adds {:.0}x what a gohook entry hook adds per call",
            u / g.max(0.01)
        );
    }
    println!(
        "(recorded rows: 20,000 calls in bursts of 1,000, every call recorded; saturated row:"
    );
    println!(" {calls} back-to-back calls, rings full, most calls take the drop path; plain {plain_sat:.2} ns)");

    // Stop-the-world pause: ~100 hooks into a process with 50 threads.
    let mut child = Command::new(&spin)
        .args(["-forever", "-workers=2", "-threads=50"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start spin");
    std::thread::sleep(Duration::from_millis(300));
    let threads = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .map(|d| d.count())
        .unwrap_or(0);
    let out = Command::new(GOHOOK)
        .args([
            "attach",
            "--pid",
            &child.id().to_string(),
            "--duration",
            "0.2",
            "--format",
            "json",
            "-o",
            "/dev/null",
        ])
        .args([
            "-f",
            "fmt.*",
            "-f",
            "strconv.*",
            "-f",
            "main.*",
            "-f",
            "os.*",
            "-f",
            "sync.*",
        ])
        .output()
        .expect("run gohook attach");
    let _ = child.kill();
    let _ = child.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    match err.lines().find(|l| l.contains(" stopped")) {
        Some(line) => println!(
            "attach with {threads} threads: {}",
            line.trim_start_matches("gohook: ")
        ),
        None => println!("attach with {threads} threads failed: {err}"),
    }
}
