//! A tracer killed in the middle of an injected syscall leaves the thread coherent.
//!
//! A helper process (this test binary, re-run as a helper) attaches to `torture -wait`, picks
//! the thread blocked in `read(stdin)` and injects `getpid` into it over and over, through the
//! self-restoring stub written over `runtime.rt0_go`. The test kills the helper with SIGKILL at
//! a random moment. The kernel detaches the thread wherever it is: before the stub, inside it,
//! at a syscall stop, or back at its own code; in every case its `read` must complete with the
//! line the test then writes, and the program must print exactly what it prints untraced.
//!
//! With the bare gadget (`GOHOOK_TEST_STUB=0` runs the helper that way) the thread is left at
//! the syscall-exit stop with the injected registers in most rounds: `read` "returns" the pid
//! and torture panics in bufio.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::{must_build, Toolchain, Variant};
use gostrings::GoBinary;
use injector::syscall::Scratch;
use injector::{AttachOptions, Remote, World};

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Helper run in a child process by the test below: attaches to `GOHOOK_TEST_PID` and injects
/// `getpid` into its `read` thread until it is killed.
#[test]
#[ignore]
fn helper_inject_until_killed() {
    let Ok(pid) = std::env::var("GOHOOK_TEST_PID") else {
        return;
    };
    let pid: i32 = pid.parse().unwrap();
    let stub = std::env::var("GOHOOK_TEST_STUB").map_or(true, |v| v != "0");
    let bin = GoBinary::open(format!("/proc/{pid}/exe")).unwrap();
    let mut world = World::stop(pid, AttachOptions::default()).unwrap();
    let reader = world
        .tids()
        .into_iter()
        .find(|&t| world.regs(t).unwrap().orig_rax == libc::SYS_read as u64)
        .expect("a thread blocked in read(stdin)");
    let mut remote = Remote::on_thread(&world, reader, None).unwrap();
    if stub {
        let f = bin.pclntab.func_by_name("runtime.rt0_go").unwrap();
        remote = remote
            .with_scratch(
                &world,
                Scratch {
                    addr: f.entry,
                    len: f.size(),
                    no_red_zone: bin.text_range(),
                },
            )
            .unwrap();
        assert!(remote.has_scratch());
    }
    println!("HELPER injecting");
    std::io::stdout().flush().unwrap();
    loop {
        let got = remote
            .raw(&mut world, "getpid", libc::SYS_getpid, [0; 6])
            .unwrap();
        assert_eq!(got, pid as i64);
    }
}

fn helper(pid: u32) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "helper_inject_until_killed",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GOHOOK_TEST_PID", pid.to_string());
    cmd
}

#[test]
fn a_tracer_killed_inside_injected_syscalls_leaves_the_thread_running_its_own_code() {
    let rounds: u64 = std::env::var("GOHOOK_TRACER_DEATH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let exe = must_build("torture", Variant::Default, &Toolchain::installed());
    let plain = Command::new(&exe).output().unwrap();
    assert!(plain.status.success());

    for round in 0..rounds {
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
        // Give the main goroutine time to block in read.
        std::thread::sleep(Duration::from_millis(30));
        let pid = target.0.id();

        let mut h = helper(pid).stdout(Stdio::piped()).spawn().unwrap();
        let out = BufReader::new(h.stdout.take().unwrap());
        let mut h = Reaper(h);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(at) = line.find("HELPER") {
                    let _ = tx.send(line[at..].to_string());
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the helper starts injecting");
        assert_eq!(line.trim(), "HELPER injecting");
        // Each injection takes tens of microseconds: a kill lands anywhere in one.
        let jitter = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        let delay_us = 200 + jitter % 20_000;
        std::thread::sleep(Duration::from_micros(delay_us));
        h.0.kill().unwrap();
        let helper_status = h.0.wait().unwrap();
        assert!(
            !helper_status.success(),
            "round {round}: the helper stopped on its own: {helper_status}"
        );

        let t0 = Instant::now();
        while support::tracer_of(pid as i32) != 0 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            support::tracer_of(pid as i32),
            0,
            "round {round}: left traced"
        );
        let wrote = writeln!(stdin, "go");
        drop(stdin);
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        let status = target.0.wait().unwrap();
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        assert!(
            status.success() && wrote.is_ok(),
            "round {round} (killed after {delay_us} µs): the target failed: {status}; it printed {}\n{err}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(
            String::from_utf8_lossy(&rest),
            String::from_utf8_lossy(&plain.stdout),
            "round {round} (killed after {delay_us} µs): the target's output changed"
        );
    }
}
