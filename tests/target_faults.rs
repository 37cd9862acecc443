//! What `gohook attach` does when its target exits, crashes, replaces its program (exec) or
//! forks while gohook is attached, and at moments spread over the attach itself (while gohook
//! reads, stops threads and patches). Every case must end gohook promptly with one clear line
//! about the event, without a panic, with the target never left traced; bytes are restored only
//! into the image gohook patched; a forked child keeps working code.
//!
//! The faults come from `spin -forever` options (`fixtures/go/spin`): `-exit-after=MS`,
//! `-crash-after=MS` (a nil dereference: Go's panic, status 2), `-exec-after=MS` (the same
//! binary again through `syscall.Exec`: same addresses, fresh bytes) and `-fork-after=MS` (a raw
//! `fork` whose child calls the hooked `main.forked` and exits; see `forkChild` there).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fixtures::{must_build, Toolchain, Variant};
use serde_json::Value;

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn spin_exe() -> PathBuf {
    must_build("spin", Variant::Default, &Toolchain::installed())
}

/// `spin -forever` with `args`, its stdout piped (the test reads what it and a forked child
/// print).
fn spin(args: &[&str]) -> Reaper {
    Reaper(
        Command::new(spin_exe())
            .arg("-forever")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `gohook attach` on `pid`, hooking `func`, spans as JSON to `out`.
fn attach(pid: u32, func: &str, out: &Path, duration: &str) -> Reaper {
    Reaper(
        Command::new(GOHOOK)
            .args(["attach", "--pid", &pid.to_string(), "-f", func])
            .args(["--duration", duration, "--format", "json", "-o"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Reads gohook's stderr up to its "hooked" line (what it printed so far), or to its end.
fn until_hooked(err: &mut BufReader<ChildStderr>) -> String {
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            return said;
        }
        said.push_str(&line);
        if line.contains(" hooked ") {
            return said;
        }
    }
}

/// Waits at most `limit` for the child to end.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `TracerPid:` of a process (None once it is gone).
fn tracer(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|s| s.trim().parse().ok())
}

/// The bytes of `[addr, addr+len)` in the running process.
fn live_bytes(pid: u32, addr: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, addr).unwrap();
    buf
}

/// The link-time text of `exe` and where it lies: (vaddr, bytes). spin is not PIE, so this is
/// where the process has it too.
fn elf_text(exe: &Path) -> (u64, Vec<u8>) {
    let elf = gostrings::ElfFile::open(exe).unwrap();
    let text = elf.section(".text").unwrap().clone();
    (text.addr, elf.section_data(&text).unwrap().to_vec())
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

/// gohook's stderr, checked: no panic, and besides the attach report (the "hooked" line, its
/// indented details, a drop count) at most one line: the one about the end.
fn one_clear_line(err: &str, what: &str) {
    assert!(!err.contains("panicked"), "{what}: gohook panicked: {err}");
    let other: Vec<&str> = err
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.contains(" hooked ")
                && !l.starts_with("gohook:   ")
                && !l.contains("records dropped")
        })
        .collect();
    assert!(
        other.len() <= 1,
        "{what}: expected one clear line, got: {err}"
    );
}

/// `s = main.forked(s, i)` for i in 0..n, as spin computes it (Go's int wraps).
fn forked_sum(n: u64) -> u64 {
    (0..n).fold(0u64, |s, i| {
        s.wrapping_mul(31).wrapping_add(i).wrapping_add(1)
    })
}

/// An exit (`-exit-after`) or a crash (`-crash-after`) 4 s into an attach with `--duration
/// 30`: gohook ends within 5 s of it, says how the target ended, and exits 0 with its spans.
fn ends_with_the_target(flag: &str, want_status: i32, says: &str) {
    let mut target = spin(&["-workers=2", &format!("{flag}=4000")]);
    let pid = target.0.id();
    let out = tmp(&format!("ends{flag}.json"));
    let mut g = attach(pid, "main.tick", &out, "30");
    let mut err = BufReader::new(g.0.stderr.take().unwrap());
    let mut said = until_hooked(&mut err);
    assert!(said.contains(" hooked "), "{flag}: never hooked: {said}");
    // The target is not reaped until gohook is done: gohook can read its exit status.
    let status = wait_within(&mut g.0, Duration::from_secs(8), flag);
    err.read_to_string(&mut said).unwrap();
    let target_status = target.0.wait().unwrap();
    assert_eq!(
        target_status.code(),
        Some(want_status),
        "{flag}: the hooked target ended as it would unhooked"
    );
    assert!(status.success(), "{flag}: gohook exit {status}: {said}");
    one_clear_line(&said, flag);
    assert!(
        said.contains(&format!("gohook: pid {pid} {says}")),
        "{flag}: says how the target ended: {said}"
    );
    let (spans, summary) = read_spans(&out);
    assert!(
        !spans.is_empty(),
        "{flag}: spans before the end are written"
    );
    assert!(summary.is_object(), "{flag}: the summary line is written");
    eprintln!("{flag}: {said}");
}

#[test]
fn a_target_exiting_while_attached_ends_gohook_with_its_status() {
    ends_with_the_target("-exit-after", 0, "exited with status 0");
}

#[test]
fn a_target_crashing_while_attached_ends_gohook_with_its_status() {
    ends_with_the_target("-crash-after", 2, "exited with status 2");
}

/// The moments (ms after the target and gohook start together) at which the fault tests
/// strike, spread around gohook's own timing on this machine: one attach is timed first (from
/// spawn to its "hooked ... in X ms stopped" line), and the moments cover before it reads the
/// binary, the stop-and-patch window (the last X ms before the line) and after.
fn moments() -> Vec<u64> {
    use std::sync::OnceLock;
    static M: OnceLock<Vec<u64>> = OnceLock::new();
    M.get_or_init(|| {
        let mut target = spin(&["-workers=2"]);
        let start = Instant::now();
        let mut g = attach(target.0.id(), "main.*", Path::new("/dev/null"), "0.1");
        let mut err = BufReader::new(g.0.stderr.take().unwrap());
        let said = until_hooked(&mut err);
        let hooked = start.elapsed().as_millis() as u64;
        let _ = g.0.wait();
        let _ = target.0.kill();
        let pause: f64 = said
            .split(" in ")
            .nth(1)
            .and_then(|r| r.split(" ms").next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("no pause in {said:?}"));
        let pause = pause.ceil() as u64;
        let stop = hooked.saturating_sub(pause);
        let mut m = vec![
            0,
            hooked / 2,
            stop.saturating_sub(50),
            stop.saturating_sub(10),
        ];
        m.extend((0..=4).map(|i| stop + pause * i / 4));
        m.push(hooked + 100);
        m.push(hooked + 400);
        eprintln!(
            "gohook attach: hooked line after {hooked} ms, {pause} ms stopped; moments {m:?}"
        );
        m
    })
    .clone()
}

/// The line of gohook's stderr that says how it ended (not the drop count).
fn last_word(said: &str) -> &str {
    said.lines()
        .rfind(|l| !l.contains("records dropped") && !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Exits or crashes at [`moments`] of an attach: gohook never hangs, never panics, says one
/// line; the target's own exit status is what it would be without gohook.
fn ends_at_moments(flag: &str, want_status: i32) {
    let mut summary = Vec::new();
    for ms in moments() {
        let mut target = spin(&["-workers=2", &format!("{flag}={ms}")]);
        let pid = target.0.id();
        let out = tmp(&format!("moment{flag}-{ms}.json"));
        let mut g = attach(pid, "main.*", &out, "20");
        let mut err = g.0.stderr.take().unwrap();
        let what = format!("{flag}={ms}");
        let target_status = target.0.wait().unwrap();
        let status = wait_within(&mut g.0, Duration::from_secs(10), &what);
        let mut said = String::new();
        err.read_to_string(&mut said).unwrap();
        assert_eq!(
            target_status.code(),
            Some(want_status),
            "{what}: the target's own status ({said})"
        );
        one_clear_line(&said, &what);
        assert!(
            said.contains(&pid.to_string())
                && (said.contains("exited")
                    || said.contains("no such process")
                    || said.contains("no process with pid")),
            "{what} (gohook {status}): says the target is gone: {said}"
        );
        summary.push(format!("{ms} ms: {}", last_word(&said)));
    }
    eprintln!("{flag}:\n  {}", summary.join("\n  "));
}

#[test]
fn exits_at_moments_spread_over_the_attach_end_gohook_promptly() {
    ends_at_moments("-exit-after", 0);
}

#[test]
fn crashes_at_moments_spread_over_the_attach_end_gohook_promptly() {
    ends_at_moments("-crash-after", 2);
}

/// The target's stdout, read on a thread (the pipe must not fill), as one string at the end.
fn collect_stdout(target: &mut Reaper) -> std::thread::JoinHandle<String> {
    let mut out = target.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    })
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<u64> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

#[test]
fn a_target_replacing_its_program_while_attached_is_reported_and_nothing_is_written_into_the_new_image(
) {
    let exe = spin_exe();
    let (text_addr, text) = elf_text(&exe);
    let mut target = spin(&["-workers=2", "-exec-after=4000"]);
    let pid = target.0.id();
    let stdout = collect_stdout(&mut target);
    let out = tmp("exec.json");
    let mut g = attach(pid, "main.tick", &out, "30");
    let mut err = BufReader::new(g.0.stderr.take().unwrap());
    let mut said = until_hooked(&mut err);
    assert!(said.contains(" hooked "), "never hooked: {said}");
    assert_ne!(
        live_bytes(pid, text_addr, text.len()),
        text,
        "the old image is patched"
    );
    let status = wait_within(
        &mut g.0,
        Duration::from_secs(8),
        "gohook after its target's exec",
    );
    err.read_to_string(&mut said).unwrap();
    assert!(status.success(), "gohook exit {status}: {said}");
    one_clear_line(&said, "exec");
    assert!(
        said.contains(&format!("gohook: pid {pid} replaced its program (exec)")),
        "says the program was replaced: {said}"
    );
    // The new image is the same binary, freshly loaded: its text is the ELF's, untouched.
    assert_eq!(tracer(pid), Some(0), "the new program is not traced");
    assert!(
        live_bytes(pid, text_addr, text.len()) == text,
        "nothing was written into the new image"
    );
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(500));
    assert!(cpu_ticks(pid) > before, "the new program runs");
    assert!(target.0.try_wait().unwrap().is_none(), "and is alive");
    target.0.kill().unwrap();
    target.0.wait().unwrap();
    let printed = stdout.join().unwrap();
    assert!(printed.contains("spin exec'd"), "{printed}");
    eprintln!("exec: {said}");
}

#[test]
fn execs_at_moments_spread_over_the_attach_leave_the_new_image_untouched_and_untraced() {
    let exe = spin_exe();
    let (text_addr, text) = elf_text(&exe);
    let mut summary = Vec::new();
    for ms in moments() {
        let what = format!("exec at {ms} ms");
        let mut target = spin(&["-workers=2", &format!("-exec-after={ms}")]);
        let pid = target.0.id();
        let stdout = collect_stdout(&mut target);
        let out = tmp(&format!("exec-{ms}.json"));
        let mut g = attach(pid, "main.*", &out, "1.5");
        let mut err = g.0.stderr.take().unwrap();
        let status = wait_within(&mut g.0, Duration::from_secs(12), &what);
        let mut said = String::new();
        err.read_to_string(&mut said).unwrap();
        one_clear_line(&said, &what);
        assert!(
            target.0.try_wait().unwrap().is_none(),
            "{what}: the target died (gohook {status}): {said}"
        );
        assert_eq!(tracer(pid), Some(0), "{what}: left traced: {said}");
        // Whether gohook hooked the old image (and saw the exec) or the new one (and restored
        // it at the end), the running image's text is the ELF's once gohook is gone.
        assert!(
            live_bytes(pid, text_addr, text.len()) == text,
            "{what}: text differs from the ELF after gohook ended: {said}"
        );
        target.0.kill().unwrap();
        target.0.wait().unwrap();
        let printed = stdout.join().unwrap();
        assert!(printed.contains("spin exec'd"), "{what}: {printed}");
        summary.push(format!("{ms} ms: gohook {status}: {}", last_word(&said)));
    }
    eprintln!("exec moments:\n  {}", summary.join("\n  "));
}

/// A raw fork while `main.forked` is hooked: the child runs the patched code (the trampoline
/// and the ring are in its copy of the address space; the ring is a shared memfd, so its
/// records reach gohook), computes the right result and exits 0; the parent runs on hooked.
fn fork_while_attached(fork_ms: u64, attach_for: &str) -> (String, Vec<Value>, Value, String) {
    let exe = spin_exe();
    let (text_addr, text) = elf_text(&exe);
    let mut target = spin(&[&format!("-fork-after={fork_ms}"), "-fork-calls=1000"]);
    let pid = target.0.id();
    let stdout = collect_stdout(&mut target);
    let out = tmp(&format!("fork-{fork_ms}.json"));
    let mut g = attach(pid, "main.forked", &out, attach_for);
    let mut err = g.0.stderr.take().unwrap();
    let what = format!("fork at {fork_ms} ms");
    let status = wait_within(&mut g.0, Duration::from_secs(15), &what);
    let mut said = String::new();
    err.read_to_string(&mut said).unwrap();
    assert!(status.success(), "{what}: gohook {status}: {said}");
    one_clear_line(&said, &what);
    assert!(
        target.0.try_wait().unwrap().is_none(),
        "{what}: the parent died"
    );
    assert_eq!(tracer(pid), Some(0), "{what}: left traced");
    assert!(
        live_bytes(pid, text_addr, text.len()) == text,
        "{what}: the parent's text is restored exactly"
    );
    target.0.kill().unwrap();
    target.0.wait().unwrap();
    let printed = stdout.join().unwrap();
    let sum = forked_sum(1000);
    assert!(
        printed.contains(&format!("child 1000 {sum}\n")),
        "{what}: the child computed the right result: {printed:?}"
    );
    assert!(
        printed.contains("fork child exited 0\n"),
        "{what}: the child exited 0: {printed:?}"
    );
    assert!(
        printed.contains(&format!("parent 1000 {sum}\n")),
        "{what}: the parent computed the right result: {printed:?}"
    );
    let (spans, summary) = read_spans(&out);
    (said, spans, summary, printed)
}

#[test]
fn a_forked_child_runs_the_hooked_code_correctly_and_its_calls_reach_gohook() {
    let (said, spans, summary, _) = fork_while_attached(4000, "6");
    let forked = spans
        .iter()
        .filter(|s| s["function"] == "main.forked")
        .count();
    assert_eq!(summary["dropped_records"], 0, "{summary}");
    assert_eq!(summary["bad_records"], 0, "{summary}");
    // 1000 calls in the child (written to the shared ring while the parent's thread of that
    // ring waits in wait4), then 1000 in the parent.
    assert_eq!(forked, 2000, "child and parent calls: {said}");
    eprintln!("fork: {forked} spans of main.forked (child + parent); {said}");
}

#[test]
fn forks_at_moments_spread_over_the_attach_leave_child_and_parent_working() {
    let mut seen = Vec::new();
    for ms in moments() {
        let (_, spans, summary, _) = fork_while_attached(ms, "1.5");
        seen.push(format!("{ms} ms: {} spans", spans.len()));
        assert_eq!(summary["bad_records"], 0, "fork at {ms} ms: {summary}");
        assert!(
            spans.len() <= 2000,
            "fork at {ms} ms: {} spans",
            spans.len()
        );
    }
    eprintln!(
        "fork moments (child and parent right every time): {}",
        seen.join(", ")
    );
}
