//! gohook needs only the right to ptrace its target: an unprivileged user (no capabilities)
//! hooks its own processes with `run` and `attach` and gets spans, and is refused someone
//! else's process with one line naming CAP_SYS_PTRACE and ptrace_scope.
//!
//! The user is `gohook-ci`, which `.ci/run` creates (`useradd --system --no-create-home`).
//! When it is missing the test fails under `CI`, and elsewhere falls back to `nobody` (65534).
//! When the tests themselves run unprivileged, they run as that user directly.
//!
//! Yama: with `/proc/sys/kernel/yama/ptrace_scope` at 1, an unprivileged `attach` to a process
//! that is not its descendant is refused by the kernel; the attach test then checks the refusal
//! names ptrace_scope. At 0, or without Yama (the CI kernel has none), it must succeed.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use fixtures::{must_build, Toolchain, Variant};

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");
const CI_USER: &str = "gohook-ci";

struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn am_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// (uid, gid) of the unprivileged user to test as, when the tests run as root.
fn test_user() -> (u32, u32) {
    let name = std::ffi::CString::new(CI_USER).unwrap();
    // SAFETY: getpwnam with a valid C string; the result is read at once, before any other
    // getpw* call (tests in this file do not call it concurrently with a different name).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if !pw.is_null() {
        // SAFETY: non-null result of getpwnam points to a valid passwd.
        let pw = unsafe { &*pw };
        return (pw.pw_uid, pw.pw_gid);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "user {CI_USER} is missing: .ci/run creates it (useradd --system --no-create-home {CI_USER})"
    );
    eprintln!("user {CI_USER} is missing (.ci/run creates it): testing as nobody (65534)");
    (65534, 65534)
}

/// The Yama ptrace scope, or None without Yama.
fn ptrace_scope() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// A 0755 directory owned by the test user, holding copies of gohook and `fixtures`: the
/// checkout and the fixture cache may sit where the user cannot go.
struct Sandbox {
    dir: PathBuf,
    user: Option<(u32, u32)>,
}

impl Sandbox {
    fn new(name: &str, fixtures: &[(&str, &Path)]) -> Sandbox {
        let user = am_root().then(test_user);
        let dir = std::env::temp_dir().join(format!("gohook-priv-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut copies: Vec<(&str, &Path)> = vec![("gohook", Path::new(GOHOOK))];
        copies.extend_from_slice(fixtures);
        for (file, from) in copies {
            let to = dir.join(file);
            std::fs::copy(from, &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        Sandbox { dir, user }
    }

    /// A command running `file` of the sandbox as the test user.
    fn command(&self, file: &str) -> Command {
        let mut c = Command::new(self.dir.join(file));
        c.current_dir(&self.dir).env("HOME", &self.dir);
        if let Some((uid, gid)) = self.user {
            c.uid(uid).gid(gid);
        }
        c
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spans(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("summary").is_none())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_test_user_has_no_capabilities() {
    let sb = Sandbox::new("caps", &[]);
    let mut c = Command::new("/bin/cat");
    c.arg("/proc/self/status");
    if let Some((uid, gid)) = sb.user {
        c.uid(uid).gid(gid);
    }
    let status = String::from_utf8(c.output().unwrap().stdout).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} in {status}"))
            .to_owned()
    };
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("CapPrm:"), "0000000000000000", "{status}");
    assert_ne!(field("Uid:").split_whitespace().next(), Some("0"));
}

#[test]
fn an_unprivileged_user_runs_its_own_program_under_hooks() {
    let values = must_build("values", Variant::Default, &Toolchain::installed());
    let sb = Sandbox::new("run", &[("values", &values)]);
    let out_file = sb.dir.join("spans.json");
    let out = sb
        .command("gohook")
        .args(["run", "-f", "main.Concat", "--format", "json", "-o"])
        .arg(&out_file)
        .args(["--", "./values"])
        .output()
        .unwrap();
    assert!(out.status.success(), "gohook run: {}", stderr(&out));
    let concat: Vec<_> = spans(&out_file)
        .into_iter()
        .filter(|s| s["function"] == "main.Concat")
        .collect();
    assert_eq!(concat.len(), 3, "one span per call (3 rounds)");
    assert!(!String::from_utf8_lossy(&out.stdout).is_empty());
}

#[test]
fn an_unprivileged_user_attaches_to_its_own_process() {
    let spin = must_build("spin", Variant::Default, &Toolchain::installed());
    let sb = Sandbox::new("attach", &[("spin", &spin)]);
    let target = Reaper(
        sb.command("spin")
            .args(["-forever", "-workers=2"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let out_file = sb.dir.join("spans.json");
    let out = sb
        .command("gohook")
        .args([
            "attach",
            "--pid",
            &target.0.id().to_string(),
            "-f",
            "main.tick",
        ])
        .args(["--duration", "0.5", "--format", "json", "-o"])
        .arg(&out_file)
        .output()
        .unwrap();
    let err = stderr(&out);
    let restricted = sb.user.is_some() && ptrace_scope().is_some_and(|s| s >= 1);
    if restricted {
        // Yama allows only descendants (or nothing): the kernel's refusal, explained.
        assert!(!out.status.success());
        assert!(err.contains("ptrace_scope"), "{err}");
        eprintln!("Yama ptrace_scope >= 1: unprivileged attach refused as expected");
        return;
    }
    assert!(out.status.success(), "gohook attach: {err}");
    let ticks = spans(&out_file)
        .into_iter()
        .filter(|s| s["function"] == "main.tick")
        .count();
    assert!(ticks > 0, "spans from the user's own process: {err}");
    eprintln!("unprivileged attach: {ticks} spans of main.tick in 0.5 s");
    // gohook left its own process running, and unhooked.
    let state = std::fs::read_to_string(format!("/proc/{}/status", target.0.id())).unwrap();
    assert!(!state.contains("State:\tt"), "{state}");
}

#[test]
fn an_unprivileged_user_is_refused_another_users_process_with_the_reason() {
    if !am_root() {
        // Our own processes are allowed; pid 1 is never ours.
        let out = Command::new(GOHOOK)
            .args(["attach", "--pid", "1", "-f", "main.tick"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(
            err.contains("CAP_SYS_PTRACE") && err.contains("ptrace_scope"),
            "{err}"
        );
        return;
    }
    let spin = must_build("spin", Variant::Default, &Toolchain::installed());
    // root's process.
    let target = Reaper(
        Command::new(&spin)
            .arg("-forever")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let sb = Sandbox::new("refused", &[]);
    let out = sb
        .command("gohook")
        .args([
            "attach",
            "--pid",
            &target.0.id().to_string(),
            "-f",
            "main.tick",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{err}"
    );
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("CAP_SYS_PTRACE"), "{err}");
    assert!(err.contains("ptrace_scope"), "{err}");
}
