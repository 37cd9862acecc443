//! Stopping the world again and again while a Go program creates goroutines and threads, runs
//! GOGC=1 collections, async preemption (SIGURG) and the CPU profiler (SIGPROF): the program must
//! notice nothing, and its own self-check must pass.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::{Toolchain, Variant};
use injector::{AttachOptions, World};

#[test]
fn repeated_stops_during_the_torture_run_leave_its_results_intact() {
    let path = fixtures::must_build("torture", Variant::Default, &Toolchain::installed());
    let mut child = Command::new(&path)
        .args(["-scale", "4"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let guard = scopeguard(pid);
    let start = Instant::now();
    let (mut cycles, mut reinjected, mut max_threads) = (0, 0, 0);
    let mut signals = std::collections::BTreeSet::new();
    while start.elapsed() < Duration::from_secs(20) {
        match World::stop(pid, AttachOptions::default()) {
            Ok(mut world) => {
                // Every other cycle, let it run traced for a moment: signals (SIGPROF, SIGURG)
                // then arrive as signal-delivery-stops that must be held and re-injected.
                if cycles % 2 == 1 {
                    world
                        .run_for(Duration::from_millis(3))
                        .expect("run traced and stop again");
                }
                let r = world.detach().expect("detach");
                cycles += 1;
                reinjected += r.reinjected.len();
                signals.extend(r.reinjected.iter().map(|&(_, sig)| sig));
                max_threads = max_threads.max(r.threads);
            }
            // It finished between two cycles.
            Err(injector::Error::NoSuchProcess { .. } | injector::Error::ProcessExited { .. }) => {
                break
            }
            Err(e) if child.try_wait().ok().flatten().is_some() => {
                eprintln!("ended during attach: {e}");
                break;
            }
            Err(e) => panic!("stop failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    std::mem::forget(guard);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{cycles} stop/detach cycles, up to {max_threads} threads, {reinjected} signals re-injected {signals:?}");
    assert!(cycles >= 10, "only {cycles} cycles happened");
    assert!(
        out.status.success(),
        "torture failed its self-check: {stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("ok"));
}

struct Guard(i32);
fn scopeguard(pid: i32) -> Guard {
    Guard(pid)
}
impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: signalling a child we started; waitpid in Child::drop is not done, so reap here.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.0), None);
    }
}
