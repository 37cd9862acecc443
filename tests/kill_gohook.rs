//! gohook killed with SIGKILL at moments spread over `attach` (reading the binary, stopping the
//! threads, injected syscalls, patching, steady state): the target always runs on, untraced,
//! with exactly the output it has without gohook.
//!
//! Rounds: 100, or `GOHOOK_KILL_ROUNDS`. gohook is given `--duration 0.3`, so the kills, spread
//! over its first 600 ms, land while it reads the binary, stops the threads, injects syscalls
//! (through the self-restoring stub over `runtime.rt0_go`), patches, runs, restores the code
//! and detaches, and after it has exited.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fixtures::{must_build, Toolchain, Variant};

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tracer_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn the_target_runs_on_with_its_own_output_whenever_gohook_is_killed() {
    let rounds: u64 = std::env::var("GOHOOK_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let exe = must_build("torture", Variant::Default, &Toolchain::installed());
    let plain = Command::new(&exe).output().unwrap();
    assert!(plain.status.success());

    // Three rounds at a time: each is mostly waiting (for the kill moment, for torture's run).
    let next = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let round = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if round >= rounds {
                    break;
                }
                one_round(round, rounds, &exe, &plain.stdout);
            });
        }
    });
}

/// Starts `torture -wait`, attaches gohook, kills gohook after a moment chosen by `round`, then
/// lets torture run and compares its output with `plain`.
fn one_round(round: u64, rounds: u64, exe: &std::path::Path, plain: &[u8]) {
    {
        // Spread the kills over the first 600 ms of gohook's life, with a little jitter.
        let delay_ms = round * 600 / rounds + rand::random::<u64>() % 25;
        let mut target = Command::new(&exe)
            .arg("-wait")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = target.stderr.take().unwrap();
        let mut stdin = target.stdin.take().unwrap();
        let mut stdout = BufReader::new(target.stdout.take().unwrap());
        let mut target = Reaper(target);
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready");
        let pid = target.0.id();

        let mut gohook = Reaper(
            Command::new(GOHOOK)
                .args(["attach", "--pid", &pid.to_string(), "--duration", "0.3"])
                .args([
                    "-f",
                    "main.work",
                    "-f",
                    "main.recurse",
                    "-f",
                    "main.mayPanic",
                ])
                .args([
                    "-f",
                    "main.catcher",
                    "-f",
                    "main.spawner",
                    "-f",
                    "main.child",
                ])
                .args(["--format", "json", "-o", "/dev/null"])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(delay_ms));
        gohook.0.kill().unwrap();
        gohook.0.wait().unwrap();

        // The kernel detaches a dead tracer's tracees; nothing may stay stopped or traced.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            tracer_of(pid),
            Some(0),
            "round {round} ({delay_ms} ms): the target is left traced"
        );
        // Let it do its work, hooked or not, and compare with the run without gohook.
        let wrote = writeln!(stdin, "go");
        drop(stdin);
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        let status = target.0.wait().unwrap();
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        assert!(
            status.success() && wrote.is_ok(),
            "round {round} ({delay_ms} ms): the target failed: {status} ({wrote:?}); it printed {}\n{err}",
            String::from_utf8_lossy(&rest)
        );
        // The plain run printed no "ready" line (no -wait).
        assert_eq!(
            String::from_utf8_lossy(&rest),
            String::from_utf8_lossy(plain),
            "round {round} ({delay_ms} ms): the target's output changed"
        );
    }
}
