//! `gohook attach` against targets it cannot or must not take: one already traced by someone
//! else, one it has no right to trace, and one that exits while gohook is attaching. Each ends
//! with one clear line, no panic, and no process left stopped.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fixtures::{must_build, Toolchain, Variant};
use nix::sys::ptrace;
use nix::unistd::Pid;

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn busy_spin() -> Reaper {
    let spin = must_build("spin", Variant::Default, &Toolchain::installed());
    let child = Command::new(spin)
        .args(["-forever", "-workers=2"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Let the Go runtime start its threads.
    std::thread::sleep(Duration::from_millis(200));
    Reaper(child)
}

/// The `State:` letter of a process (R, S, T, t, Z...), or None once it is gone.
fn state(pid: u32) -> Option<char> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .and_then(|s| s.trim().chars().next())
}

fn attach(pid: u32, extra: &[&str]) -> Output {
    Command::new(GOHOOK)
        .args(["attach", "--pid", &pid.to_string(), "-f", "main.tick"])
        .args(["--format", "json", "-o", "/dev/null"])
        .args(extra)
        .output()
        .unwrap()
}

fn assert_one_clear_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "gohook panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty() && lines.len() <= 3,
        "expected a short, clear message, got: {err}"
    );
    err
}

#[test]
fn an_already_traced_target_is_refused_naming_its_tracer() {
    let target = busy_spin();
    let pid = target.0.id();
    // A tracer thread in this test process holds the target until told to let go; when the
    // thread ends the kernel detaches the target.
    let (release, released) = mpsc::channel::<()>();
    let (seized, is_seized) = mpsc::channel::<i32>();
    let tracer = std::thread::spawn(move || {
        ptrace::seize(Pid::from_raw(pid as i32), ptrace::Options::empty()).unwrap();
        seized.send(nix::unistd::gettid().as_raw()).unwrap();
        let _ = released.recv();
    });
    let tracer_tid = is_seized.recv().unwrap();

    let out = attach(pid, &["--duration", "0.2"]);
    assert!(!out.status.success());
    let err = assert_one_clear_line(&out);
    assert!(err.contains("already traced"), "{err}");
    assert!(
        err.contains(&tracer_tid.to_string()),
        "names the tracer {tracer_tid}: {err}"
    );

    release.send(()).unwrap();
    tracer.join().unwrap();
    assert_ne!(state(pid), Some('t'), "the target is not left stopped");
    assert_ne!(state(pid), None, "the refused target runs on");
}

#[test]
fn permission_denied_names_cap_sys_ptrace_and_ptrace_scope() {
    let target = busy_spin();
    let pid = target.0.id();
    // /proc/self belongs to our effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    // The checkout may sit in a directory only root can enter (a mktemp dir is 0700): give the
    // unprivileged user its own copy of gohook in a directory anyone can reach.
    let exe = if root {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gohook-unprivileged-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join("gohook");
        std::fs::copy(GOHOOK, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    } else {
        std::path::PathBuf::from(GOHOOK)
    };
    let mut cmd = Command::new(&exe);
    cmd.args(["attach", "--pid", &pid.to_string(), "-f", "main.tick"]);
    if root {
        // As an unprivileged user, against root's process.
        cmd.uid(65534).gid(65534);
    } else {
        // Not root: our own spin would be allowed; pid 1 never is.
        cmd.args(["--pid", "1"]);
    }
    let out = cmd.output().unwrap();
    if root {
        let _ = std::fs::remove_dir_all(exe.parent().unwrap());
    }
    assert!(!out.status.success());
    let err = assert_one_clear_line(&out);
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("CAP_SYS_PTRACE"), "{err}");
    assert!(err.contains("ptrace_scope"), "{err}");
    assert_ne!(state(pid), None, "the target runs on");
}

#[test]
fn a_target_exiting_during_attach_ends_gohook_with_one_line_and_nothing_stuck() {
    // Kill the target at moments spread over gohook's attach: before it reads the binary,
    // while it stops threads and patches, and after. Every run must end promptly and cleanly.
    for delay_ms in [0u64, 30, 100, 160, 200, 230, 260, 290, 330, 400, 600] {
        let mut target = busy_spin();
        let pid = target.0.id();
        let gohook = Command::new(GOHOOK)
            .args(["attach", "--pid", &pid.to_string(), "-f", "main.*"])
            .args(["--format", "json", "-o", "/dev/null", "--duration", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut gohook = Reaper(gohook);
        std::thread::sleep(Duration::from_millis(delay_ms));
        target.0.kill().unwrap();
        target.0.wait().unwrap();

        let start = Instant::now();
        let status = loop {
            if let Some(s) = gohook.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "gohook still running 10 s after its target died (killed at {delay_ms} ms)"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        use std::io::Read;
        gohook
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!err.contains("panicked"), "at {delay_ms} ms: {err}");
        // Besides the usual attach report (hooked, its indented details, drops): one line about
        // the end.
        let lines = err
            .lines()
            .filter(|l| !l.starts_with("gohook:   ") && !l.contains("records dropped"))
            .count();
        assert!(
            lines <= 2,
            "at {delay_ms} ms: expected one clear line, got: {err}"
        );
        // Either it never got going or it saw the exit: both are said in words naming the pid.
        assert!(
            err.contains(&pid.to_string())
                && (err.contains("exited")
                    || err.contains("no such process")
                    || err.contains("no process with pid")),
            "at {delay_ms} ms (exit {status}): says the target is gone: {err}"
        );
    }
}
