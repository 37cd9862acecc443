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

    // Added for the side-by-side report (BENCHMARKS.md): an entry hook whose string argument is
    // copied at the call, and a debugger-style ptrace breakpoint on main.tick.
    let (str_plain, str_hooked) = string_capture_ns(reps, &burst_n);
    rows.push((
        "gohook entry hook, string arg captured".into(),
        str_hooked.zip(str_plain).map(|(h, p)| plain + (h - p)),
    ));
    let bp_calls = (calls / 1000).max(2000);
    rows.push((
        "ptrace breakpoint stop (int3 + step)".into(),
        ptrace_breakpoint_ns(&spin, bp_calls),
    ));
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
        "(string row: main.spinStr(string, int) of benchsvc, entry hook, its added ns shown on top of"
    );
    println!(" the plain main.tick call; ptrace row: 1 run of {bp_calls} calls, each trap, restore, single-step, re-arm)");
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
    attach_table(&spin_s);
}

/// ns/call of benchsvc's `main.spinStr` (a string argument in registers) plain and under a
/// gohook entry hook, which copies the string into the record at the call (DWARF build):
/// medians of `reps` runs of 20,000 calls in bursts of 1,000, every call recorded.
fn string_capture_ns(reps: usize, burst_n: &str) -> (Option<f64>, Option<f64>) {
    let svc = match fixtures::build("benchsvc", Variant::Default, &Toolchain::installed()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("benchsvc did not build: {e}");
            return (None, None);
        }
    };
    let args = ["-spin", burst_n, "-burst", "1000"];
    let runs = |hooked: bool| -> Option<f64> {
        let v: Vec<f64> = (0..reps)
            .filter_map(|_| {
                let out = if hooked {
                    Command::new(GOHOOK)
                        .args([
                            "run",
                            "--no-default-scripts",
                            "--no-exit",
                            "-f",
                            "main.spinStr",
                        ])
                        .args(["--format", "json", "-o", "/dev/null", "--"])
                        .arg(&svc)
                        .args(args)
                        .stderr(Stdio::null())
                        .output()
                } else {
                    Command::new(&svc).args(args).output()
                };
                ns_per_call(&out.ok()?.stdout)
            })
            .collect();
        (!v.is_empty()).then(|| median(v))
    };
    (runs(false), runs(true))
}

/// The address of `func` in a non-PIE Go binary, from `go tool nm`.
fn symbol_addr(exe: &std::path::Path, func: &str) -> Option<u64> {
    let out = Command::new("go")
        .args(["tool", "nm"])
        .arg(exe)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[2] == func)
            .then(|| u64::from_str_radix(f[0], 16).ok())
            .flatten()
    })
}

/// ns/call of spin's main.tick with a debugger-style breakpoint on it: int3 at the entry; on
/// each hit the tracer restores the byte, backs up RIP, single-steps, re-arms and continues.
/// Async preemption is off for this run, so no SIGURG lands during a step.
fn ptrace_breakpoint_ns(spin: &std::path::Path, calls: u64) -> Option<f64> {
    use nix::sys::ptrace::{self, Options};
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;
    use std::io::Read;
    use std::os::unix::process::CommandExt;

    let addr = symbol_addr(spin, "main.tick")?;
    let mut cmd = Command::new(spin);
    cmd.args(["-bench", &calls.to_string()])
        .env("GODEBUG", "asyncpreemptoff=1")
        .stdout(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and only calls ptrace(2),
    // which is async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| ptrace::traceme().map_err(|e| std::io::Error::from_raw_os_error(e as i32)));
    }
    let mut child = cmd.spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    let pid = Pid::from_raw(child.id() as i32);
    let fail = |why: &str| {
        eprintln!("ptrace breakpoint run: {why}");
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        None
    };
    match waitpid(pid, None) {
        Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {}
        other => return fail(&format!("no exec stop: {other:?}")),
    }
    if ptrace::setoptions(
        pid,
        Options::PTRACE_O_TRACECLONE | Options::PTRACE_O_EXITKILL,
    )
    .is_err()
    {
        return fail("setoptions");
    }
    let at = addr as ptrace::AddressType;
    let Ok(orig) = ptrace::read(pid, at) else {
        return fail("reading main.tick");
    };
    let armed = (orig & !0xff) | 0xcc;
    if ptrace::write(pid, at, armed).is_err() || ptrace::cont(pid, None).is_err() {
        return fail("arming the breakpoint");
    }
    let mut hits = 0u64;
    loop {
        let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(st) => st,
            Err(_) => break,
        };
        match st {
            WaitStatus::Stopped(tid, Signal::SIGTRAP) => {
                let Ok(mut regs) = ptrace::getregs(tid) else {
                    return fail("getregs");
                };
                if regs.rip == addr + 1 {
                    hits += 1;
                    regs.rip = addr;
                    let stepped = ptrace::write(tid, at, orig).is_ok()
                        && ptrace::setregs(tid, regs).is_ok()
                        && ptrace::step(tid, None).is_ok()
                        && matches!(
                            waitpid(tid, Some(WaitPidFlag::__WALL)),
                            Ok(WaitStatus::Stopped(_, Signal::SIGTRAP))
                        )
                        && ptrace::write(tid, at, armed).is_ok();
                    if !stepped {
                        return fail("stepping over the breakpoint");
                    }
                }
                let _ = ptrace::cont(tid, None);
            }
            WaitStatus::PtraceEvent(tid, _, _) => {
                let _ = ptrace::cont(tid, None);
            }
            WaitStatus::Stopped(tid, Signal::SIGSTOP) => {
                let _ = ptrace::cont(tid, None);
            }
            WaitStatus::Stopped(tid, sig) => {
                let _ = ptrace::cont(tid, Some(sig));
            }
            WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _) if p == pid => break,
            _ => {}
        }
    }
    let mut out = Vec::new();
    let _ = stdout.read_to_end(&mut out);
    if hits < calls {
        return fail(&format!("{hits} breakpoint hits for {calls} calls"));
    }
    ns_per_call(&out)
}

/// Attach time (gohook attach started → hooks live) and the stop-the-world pause it reports,
/// against the number of hooks and of threads in the target.
fn attach_table(spin: &str) {
    use std::io::{BufRead, BufReader};
    let many = ["fmt.*", "strconv.*", "main.*", "os.*", "sync.*"];
    println!("attach time and stop-the-world pause, by hooks and threads (1 run each)");
    println!(
        "{:>8} {:>7} {:>13} {:>14} {:>10}",
        "threads", "hooks", "return sites", "attach ms", "pause ms"
    );
    for extra_threads in [0, 50, 200] {
        for globs in [&["main.tick"][..], &many[..]] {
            let mut child = match Command::new(spin)
                .args([
                    "-forever",
                    "-workers=2",
                    &format!("-threads={}", extra_threads.max(1)),
                ])
                .stdout(Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(_) => continue,
            };
            std::thread::sleep(Duration::from_millis(300));
            let threads = std::fs::read_dir(format!("/proc/{}/task", child.id()))
                .map(|d| d.count())
                .unwrap_or(0);
            let started = std::time::Instant::now();
            let mut cmd = Command::new(GOHOOK);
            cmd.args([
                "attach",
                "--pid",
                &child.id().to_string(),
                "--duration",
                "0.2",
            ])
            .args([
                "--no-default-scripts",
                "--format",
                "json",
                "-o",
                "/dev/null",
            ]);
            for g in globs {
                cmd.args(["-f", g]);
            }
            let line = cmd.stderr(Stdio::piped()).spawn().ok().and_then(|mut g| {
                let err = g.stderr.take()?;
                let mut found = None;
                for l in BufReader::new(err).lines().map_while(Result::ok) {
                    if found.is_none() && l.contains(" stopped") {
                        found = Some((started.elapsed(), l));
                    }
                }
                let _ = g.wait();
                found
            });
            let _ = child.kill();
            let _ = child.wait();
            // "gohook: pid P: hooked N functions (M return sites) in X ms stopped"
            let parsed = line.as_ref().and_then(|(t, l)| {
                let hooks = l.split("hooked ").nth(1)?.split(' ').next()?.to_string();
                let rets = l.split('(').nth(1)?.split(' ').next()?.to_string();
                let pause = l.split(" in ").nth(1)?.split(" ms").next()?.to_string();
                Some((hooks, rets, t.as_secs_f64() * 1e3, pause))
            });
            match parsed {
                Some((h, r, t, p)) => {
                    println!("{threads:>8} {h:>7} {r:>13} {t:>14.1} {p:>10}")
                }
                None => println!("{threads:>8} {:>7} attach failed", globs.len()),
            }
        }
    }
}
