//! Shared helpers of the injector's integration tests: fixture targets that are always killed,
//! and small /proc readers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use fixtures::{Toolchain, Variant};

/// A running fixture process, killed and reaped when dropped (also when a test fails).
pub struct Target {
    pub child: Child,
    pub lines: Receiver<String>,
}

impl Target {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next stdout line, or panics after `timeout`.
    pub fn expect_line(&self, timeout: Duration) -> String {
        self.lines.recv_timeout(timeout).unwrap_or_else(|e| {
            panic!(
                "no output line from pid {} within {timeout:?}: {e}",
                self.pid()
            )
        })
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of the `spin` fixture for a variant, built with the installed Go.
pub fn spin(variant: Variant) -> PathBuf {
    spin_with(variant, &Toolchain::installed())
}

/// Path of the `spin` fixture built with a given toolchain.
pub fn spin_with(variant: Variant, toolchain: &Toolchain) -> PathBuf {
    // Tests of one binary run in parallel; build each fixture once at a time.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    fixtures::must_build("spin", variant, toolchain)
}

/// Starts `program args…` with stdout piped into a line channel.
pub fn start(program: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Target {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start fixture");
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Target { child, lines: rx }
}

/// `spin -forever` with extra options, after it has had time to start its threads.
pub fn start_spin(variant: Variant, extra: &[&str], env: &[(&str, &str)]) -> Target {
    start_spin_with(variant, &Toolchain::installed(), extra, env)
}

/// [`start_spin`] for a given toolchain.
pub fn start_spin_with(
    variant: Variant,
    toolchain: &Toolchain,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Target {
    let mut args = vec!["-forever"];
    args.extend_from_slice(extra);
    let t = start(&spin_with(variant, toolchain), &args, env);
    if extra.contains(&"-usr1") {
        assert_eq!(t.expect_line(Duration::from_secs(10)), "spin ready");
    } else {
        std::thread::sleep(Duration::from_millis(100));
    }
    t
}

/// User plus system CPU time of `pid` in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // The command name may contain spaces; fields are counted after the closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// This thread's id (what `TracerPid` shows for a tracee we attached from this thread).
pub fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// `TracerPid` of `pid`.
pub fn tracer_of(pid: i32) -> i32 {
    injector::procfs::Status::read(pid, None)
        .unwrap()
        .tracer_pid()
}
