//! End-to-end tests of the hook engine through the `gohook` binary: `run` and `attach` on real
//! Go programs of several releases and build modes, checked against the programs' own counts
//! and against the ELF file's bytes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::{must_build, toolchains, Toolchain, Variant};
use serde_json::Value;

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// The functions of `torture` that its header lists as meant to be hooked.
const TORTURE_HOOKS: [&str; 12] = [
    "main.work",
    "main.recurse",
    "main.mayPanic",
    "main.middle",
    "main.catcher",
    "main.spin",
    "main.exiter",
    "main.spawner",
    "main.child",
    "main.viaC",
    "main.callback",
    "main.parked",
];

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Parses `--format json` output: (spans, summary).
fn read_spans(path: &Path) -> (Vec<Value>, Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut spans = Vec::new();
    let mut summary = Value::Null;
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"));
        if v.get("summary").is_some() {
            summary = v["summary"].clone();
        } else {
            spans.push(v);
        }
    }
    (spans, summary)
}

/// `calls main.X N` lines printed by torture.
fn torture_counts(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("calls "))
        .filter_map(|l| l.split_once(' '))
        .map(|(f, n)| (f.to_owned(), n.parse().unwrap()))
        .collect()
}

/// The functions matching `glob` that `gohook funcs` says can be hooked.
fn hookable_functions(exe: &Path, glob: &str) -> Vec<String> {
    let out = Command::new(GOHOOK)
        .arg("funcs")
        .arg(exe)
        .args([glob, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["hookable"] == true)
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

fn hook_args(funcs: &[&str]) -> Vec<String> {
    funcs
        .iter()
        .flat_map(|f| ["-f".to_owned(), (*f).to_owned()])
        .collect()
}

/// Runs torture plain and under `gohook run` with its hot functions hooked; checks the exit
/// status, the output, and one span per call of every hooked function.
fn torture_under_run(tc: &Toolchain, variant: Variant) {
    let exe = must_build("torture", variant, tc);
    let plain = Command::new(&exe).output().unwrap();
    assert!(plain.status.success(), "torture failed unhooked: {plain:?}");
    let expected = torture_counts(&String::from_utf8_lossy(&plain.stdout));
    let hookable = hookable_functions(&exe, "main.*");
    let hooks: Vec<&str> = TORTURE_HOOKS
        .iter()
        .copied()
        .filter(|f| expected.contains_key(*f) && hookable.iter().any(|h| h == f))
        .collect();
    assert!(
        hooks.len() >= 8,
        "too few hookable torture functions: {hooks:?} of {expected:?}"
    );

    let out = tmp(&format!(
        "torture-{}-{}.json",
        variant.name(),
        tc.gotoolchain()
    ));
    let hooked = Command::new(GOHOOK)
        .arg("run")
        .args(hook_args(&hooks))
        .args(["--format", "json", "--ring-slots", "65536", "-o"])
        .arg(&out)
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    let what = format!("{} {}", variant.name(), tc.gotoolchain());
    assert!(
        hooked.status.success(),
        "{what}: hooked torture failed: {}\n{}",
        hooked.status,
        String::from_utf8_lossy(&hooked.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&hooked.stdout),
        String::from_utf8_lossy(&plain.stdout),
        "{what}: output differs under hooks"
    );
    let (spans, summary) = read_spans(&out);
    assert_eq!(
        summary["dropped_records"], 0,
        "{what}: records were dropped: {summary}"
    );
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for s in &spans {
        *seen
            .entry(s["function"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for f in &hooks {
        assert_eq!(
            seen.get(*f).copied().unwrap_or(0),
            expected[*f],
            "{what}: spans of {f} differ from its own call count"
        );
    }
    eprintln!(
        "{what}: {} spans, counts match for {} functions",
        spans.len(),
        hooks.len()
    );
}

#[test]
fn torture_under_run_yields_one_span_per_call_with_identical_output() {
    for tc in toolchains() {
        for variant in [Variant::Default, Variant::Stripped, Variant::Pie] {
            torture_under_run(&tc, variant);
        }
    }
}

#[test]
fn torture_cgo_build_under_run_yields_one_span_per_call() {
    torture_under_run(&Toolchain::installed(), Variant::Cgo);
    torture_under_run(&Toolchain::release("go1.21.13"), Variant::Cgo);
}

/// The bytes of `[addr, addr+len)` in the running process.
fn live_bytes(pid: u32, addr: u64, len: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    f.seek(SeekFrom::Start(addr)).unwrap();
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// The link-time text of `exe` and where it lies: (vaddr, bytes).
fn elf_text(exe: &Path) -> (u64, Vec<u8>) {
    let elf = gostrings::ElfFile::open(exe).unwrap();
    let text = elf.section(".text").unwrap().clone();
    (text.addr, elf.section_data(&text).unwrap().to_vec())
}

#[test]
fn a_hundred_attach_hook_detach_cycles_leave_a_busy_process_intact() {
    let exe = must_build("spin", Variant::Default, &Toolchain::installed());
    let mut child = Reaper(
        Command::new(&exe)
            .args(["-forever", "-workers=2"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    std::thread::sleep(Duration::from_millis(200));
    let (text_addr, text) = elf_text(&exe);
    let out = tmp("cycles.json");
    let started = Instant::now();
    let mut spans_total = 0;
    for cycle in 0..100 {
        let r = Command::new(GOHOOK)
            .args([
                "attach",
                "--pid",
                &pid.to_string(),
                "-f",
                "main.tick",
                "--duration",
                "0.02",
                "--ring-slots",
                "256",
            ])
            .args(["--format", "json", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "cycle {cycle}: attach failed: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let (spans, _) = read_spans(&out);
        spans_total += spans.len();
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "cycle {cycle}: the target died"
        );
        assert!(
            live_bytes(pid, text_addr, text.len()) == text,
            "cycle {cycle}: text differs from the ELF file after detach"
        );
    }
    assert!(
        spans_total > 100,
        "hooks produced only {spans_total} spans in 100 cycles"
    );
    eprintln!(
        "100 cycles in {:.1} s, {spans_total} spans, text restored every time",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn run_reports_the_exit_status_and_passes_output_through() {
    let exe = must_build("spin", Variant::Default, &Toolchain::installed());
    let out = tmp("spin-run.json");
    let r = Command::new(GOHOOK)
        .args(["run", "-f", "main.tick", "--format", "json", "-o"])
        .arg(&out)
        .arg("--")
        .arg(&exe)
        .arg("2000")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(String::from_utf8_lossy(&r.stdout), "spin 2000\n");
    let (spans, summary) = read_spans(&out);
    assert_eq!(spans.len(), 2000, "one span per call of main.tick");
    assert_eq!(summary["dropped_records"], 0);
    let s = &spans[0];
    assert_eq!(s["function"], "main.tick");
    assert_eq!(s["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(s["span_id"].as_str().unwrap().len(), 16);
    assert!(s["end_time_unix_nano"].as_u64() >= s["start_time_unix_nano"].as_u64());

    let bad = Command::new(GOHOOK)
        .args([
            "run",
            "-f",
            "main.tick",
            "--",
            exe.to_str().unwrap(),
            "not-a-number",
        ])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "the program's own exit status comes back"
    );
}

#[test]
fn a_glob_matching_nothing_hookable_names_the_closest_functions_or_the_refusals() {
    let exe = must_build("spin", Variant::Default, &Toolchain::installed());
    let r = Command::new(GOHOOK)
        .args(["run", "-f", "main.tic", "--"])
        .arg(&exe)
        .output()
        .unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("main.tick"),
        "closest names are offered: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let r = Command::new(GOHOOK)
        .args(["run", "-f", "main.step", "--"])
        .arg(&exe)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("no stack check"),
        "the refusal reason is shown: {err}"
    );
}

#[test]
fn attach_errors_are_one_clear_line() {
    let r = Command::new(GOHOOK)
        .args(["attach", "--pid", "999999999", "-f", "main.*"])
        .output()
        .unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("999999999"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let mut sleeper = Reaper(Command::new("sleep").arg("30").spawn().unwrap());
    let r = Command::new(GOHOOK)
        .args([
            "attach",
            "--pid",
            &sleeper.0.id().to_string(),
            "-f",
            "main.*",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("not a Go binary") || err.contains("no pclntab"),
        "{err}"
    );
    assert!(
        sleeper.0.try_wait().unwrap().is_none(),
        "a refused target is left running"
    );
}

fn wait_for(mut cond: impl FnMut() -> bool, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the comm.
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

/// A `spin -forever` process with `gohook attach` hooking `main.tick` in it, returned once the
/// patched bytes are visible in the target's text.
struct Attached {
    target: Reaper,
    pid: u32,
    text_addr: u64,
    text: Vec<u8>,
    gohook: Reaper,
}

fn attach_to_spin(output: &Path) -> Attached {
    let exe = must_build("spin", Variant::Default, &Toolchain::installed());
    let target = Reaper(
        Command::new(&exe)
            .arg("-forever")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = target.0.id();
    std::thread::sleep(Duration::from_millis(200));
    let (text_addr, text) = elf_text(&exe);
    let gohook = Reaper(
        Command::new(GOHOOK)
            .args(["attach", "--pid", &pid.to_string(), "-f", "main.tick"])
            .args(["--ring-slots", "256", "--format", "json", "-o"])
            .arg(output)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_for(
            || live_bytes(pid, text_addr, text.len()) != text,
            Duration::from_secs(10)
        ),
        "the hooks never appeared"
    );
    Attached {
        target,
        pid,
        text_addr,
        text,
        gohook,
    }
}

#[test]
fn sigint_ends_attach_and_restores_the_text() {
    let out = tmp("sigint.json");
    let mut a = attach_to_spin(&out);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.gohook.0.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    let status = a.gohook.0.wait().unwrap();
    assert!(status.success(), "gohook attach ended by SIGINT: {status}");
    assert!(
        live_bytes(a.pid, a.text_addr, a.text.len()) == a.text,
        "text restored exactly"
    );
    let (spans, _) = read_spans(&out);
    assert!(!spans.is_empty(), "spans were written before the end");
}

#[test]
fn the_target_runs_on_when_gohook_is_killed() {
    let mut a = attach_to_spin(Path::new("/dev/null"));
    a.gohook.0.kill().unwrap(); // SIGKILL: no chance to restore anything
    a.gohook.0.wait().unwrap();
    let before = cpu_ticks(a.pid);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        a.target.0.try_wait().unwrap().is_none(),
        "the target died with gohook"
    );
    assert!(
        cpu_ticks(a.pid) > before,
        "the target keeps running its hooked loop"
    );
    let status = Command::new("grep")
        .args(["-q", "TracerPid:\t0", &format!("/proc/{}/status", a.pid)])
        .status()
        .unwrap();
    assert!(status.success(), "the target is not left traced");
}

#[test]
fn run_reports_a_program_killed_by_a_signal() {
    let exe = must_build("spin", Variant::Default, &Toolchain::installed());
    let gohook = Command::new(GOHOOK)
        .args([
            "run",
            "-f",
            "main.tick",
            "--ring-slots",
            "256",
            "--format",
            "json",
            "-o",
            "/dev/null",
            "--",
        ])
        .arg(&exe)
        .arg("-forever")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut gohook = gohook;
    let gpid = gohook.id();
    let child = || -> Option<u32> {
        let kids = std::fs::read_to_string(format!("/proc/{gpid}/task/{gpid}/children")).ok()?;
        kids.split_whitespace().next()?.parse().ok()
    };
    // Kill it once it runs hooked (gohook says so), not while it is still being set up.
    let mut stderr = std::io::BufReader::new(gohook.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        use std::io::BufRead;
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("gohook ended before hooking: {said}");
        }
        said.push_str(&line);
        if line.contains(" hooked ") {
            break;
        }
    }
    let pid = child().expect("the hooked child");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = gohook.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 9),
        "exit status as a shell reports it"
    );
    assert!(rest.contains("killed by signal 9"), "{said}{rest}");
}

#[test]
fn string_arguments_are_copied_at_the_call_when_dwarf_gives_the_types() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let out = tmp("values-strings.json");
    let r = Command::new(GOHOOK)
        .args([
            "run",
            "-f",
            "main.Concat",
            "-f",
            "main.Join",
            "--format",
            "json",
            "-o",
        ])
        .arg(&out)
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (spans, _) = read_spans(&out);
    let concat = spans
        .iter()
        .find(|s| s["function"] == "main.Concat")
        .expect("a Concat span");
    assert_eq!(concat["attributes"]["arg.a"], "go");
    assert_eq!(concat["attributes"]["arg.b"], "hook");
    let join = spans
        .iter()
        .find(|s| s["function"] == "main.Join")
        .expect("a Join span");
    assert_eq!(join["attributes"]["arg.sep"], "-");
}
