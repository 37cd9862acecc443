//! Stopping the world again and again while a Go program creates goroutines and threads, runs
//! GOGC=1 collections, async preemption (SIGURG) and the CPU profiler (SIGPROF): the program must
//! notice nothing, and its own self-check must pass.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::{Toolchain, Variant};
use injector::{AttachOptions, Error, ExitStatus, World};

/// True once the process has exited (zombie or gone), without reaping it.
fn exited(pid: i32) -> bool {
    injector::procfs::Status::read(pid, None).map_or(true, |s| matches!(s.state(), 'Z' | 'X'))
}

#[test]
fn repeated_stops_during_the_torture_run_leave_its_results_intact() {
    let path = fixtures::must_build("torture", Variant::Default, &Toolchain::installed());
    let mut child = Command::new(&path)
        .args(["-scale", "4"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let guard = Guard(pid);
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let start = Instant::now();
    let (mut cycles, mut reinjected, mut max_threads) = (0, 0, 0);
    let mut signals = std::collections::BTreeSet::new();
    'cycles: while start.elapsed() < Duration::from_secs(20) && !exited(pid) {
        match World::stop(pid, AttachOptions::default()) {
            Ok(mut world) => {
                // Every other cycle, let it run traced for a moment: signals (SIGPROF, SIGURG)
                // then arrive as signal-delivery-stops that must be held and re-injected.
                if cycles % 2 == 1 {
                    match world.run_for(Duration::from_millis(3)) {
                        Ok(()) => {}
                        Err(Error::ProcessExited { .. }) => break 'cycles,
                        Err(e) => panic!("run traced and stop again: {e}"),
                    }
                }
                let r = world.detach().expect("detach");
                cycles += 1;
                reinjected += r.reinjected.len();
                signals.extend(r.reinjected.iter().map(|&(_, sig)| sig));
                max_threads = max_threads.max(r.threads);
            }
            // It finished between two cycles.
            Err(Error::NoSuchProcess { .. } | Error::ProcessExited { .. }) => break,
            Err(e) if exited(pid) => {
                eprintln!("ended during attach: {e}");
                break;
            }
            Err(e) => panic!("stop failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Our waits may have reaped its exit (we are its parent and were its tracer): the injector
    // remembers such statuses.
    let status = injector::launch::wait_exit(pid).expect("exit status");
    std::mem::forget(guard);
    let stdout = reader.join().unwrap();
    eprintln!("{cycles} stop/detach cycles, up to {max_threads} threads, {reinjected} signals re-injected {signals:?}");
    assert!(cycles >= 10, "only {cycles} cycles happened");
    assert_eq!(
        status,
        ExitStatus::Exited(0),
        "torture failed its self-check: {stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("ok"));
}

struct Guard(i32);

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: signalling a child we started; reaped right after.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.0), None);
    }
}
