//! How fast is `gohook funcs --json` next to Go's own `go tool nm` on the largest fixture?
//!
//! Not a timed test: it prints medians of several alternating runs of each, and the ratio.
//! `go tool nm` is timed both as users type it (the `go` command resolves the tool first) and
//! as the bare `nm` binary from `go env GOTOOLDIR`. Run with `cargo bench --bench funcs_vs_nm`;
//! `GOHOOK_BENCH_RUNS=N` sets the repetitions (default 9).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::{Toolchain, Variant};

fn time_run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let took = start.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("GOHOOK_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    let program = if fixtures::source_dir("httpsvc").is_dir() {
        "httpsvc"
    } else {
        "spin"
    };
    let bin = fixtures::must_build(program, Variant::Default, &Toolchain::installed());
    let gohook = Path::new(env!("CARGO_BIN_EXE_gohook"));
    let tooldir = Command::new("go")
        .args(["env", "GOTOOLDIR"])
        .output()
        .expect("go env GOTOOLDIR");
    let nm = Path::new(String::from_utf8_lossy(&tooldir.stdout).trim()).join("nm");

    let count = Command::new(gohook)
        .arg("funcs")
        .arg(&bin)
        .output()
        .expect("gohook funcs")
        .stdout;
    let functions = count.iter().filter(|&&b| b == b'\n').count();
    println!(
        "{program}: {} bytes, {functions} functions, {runs} runs each",
        std::fs::metadata(&bin).unwrap().len()
    );

    // Warm the page cache and the go command's tool lookup once.
    time_run(Command::new(gohook).args(["funcs", "--json"]).arg(&bin));
    time_run(Command::new("go").args(["tool", "nm"]).arg(&bin));

    let (mut ours, mut go_tool, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(time_run(
            Command::new(gohook).args(["funcs", "--json"]).arg(&bin),
        ));
        go_tool.push(time_run(Command::new("go").args(["tool", "nm"]).arg(&bin)));
        if nm.is_file() {
            bare.push(time_run(Command::new(&nm).arg(&bin)));
        }
    }
    let ours = median(ours);
    let go_tool = median(go_tool);
    println!("gohook funcs --json   median {:>8.1?}", ours);
    println!(
        "go tool nm            median {:>8.1?}   ratio gohook/go-tool-nm = {:.2}",
        go_tool,
        ours.as_secs_f64() / go_tool.as_secs_f64()
    );
    if !bare.is_empty() {
        let bare = median(bare);
        println!(
            "$GOTOOLDIR/nm         median {:>8.1?}   ratio gohook/nm         = {:.2}",
            bare,
            ours.as_secs_f64() / bare.as_secs_f64()
        );
    }
}
