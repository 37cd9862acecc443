//! `gohook run` mode: a program launched stopped at exec, prepared before any of its code runs,
//! then released; gohook stays its parent and reports how it ended.

mod support;

use std::os::fd::OwnedFd;
use std::time::Duration;

use fixtures::Variant;
use gostrings::ElfFile;
use injector::launch::{launch_with, try_wait_exit, wait_exit, ExitStatus, LaunchOptions};
use injector::region::map_code_near;
use injector::{maps, Remote};
use support::spin;

fn output_file() -> (std::fs::File, OwnedFd) {
    let dir = std::env::temp_dir().join(format!(
        "gohook-run-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&dir)
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    let fd = OwnedFd::from(f.try_clone().unwrap());
    (f, fd)
}

#[test]
fn run_stops_at_exec_takes_an_injected_mmap_and_exits_normally() {
    let path = spin(Variant::Default);
    let elf = ElfFile::open(&path).unwrap();
    let (mut out, fd) = output_file();
    let opts = LaunchOptions {
        stdout: Some(fd),
        ..LaunchOptions::default()
    };
    let mut launched = launch_with(&path, &["1000"], opts).expect("launch");
    let pid = launched.pid;
    let guard = KillOnDrop(pid);

    // Nothing has run yet: the only thread sits at the ELF entry point of the static binary.
    assert_eq!(launched.world.tids(), vec![pid]);
    assert_eq!(
        launched.world.regs(pid).unwrap().rip,
        elf.entry,
        "stopped at the entry point"
    );

    let remote = Remote::new(&launched.world, None).unwrap();
    let region = map_code_near(&mut launched.world, &remote, None, 8192).expect("mmap at exec");
    let m = maps::read_maps(pid)
        .unwrap()
        .into_iter()
        .find(|m| m.start == region.addr)
        .unwrap();
    assert_eq!(m.perms(), "r-xp");
    launched.world.detach().unwrap();

    let status = wait_exit(pid).unwrap();
    std::mem::forget(guard);
    assert_eq!(status, ExitStatus::Exited(0));
    let mut text = String::new();
    use std::io::{Read, Seek};
    out.rewind().unwrap();
    out.read_to_string(&mut text).unwrap();
    assert_eq!(text, "spin 1000\n");
}

#[test]
fn run_reports_a_killing_signal_and_a_missing_program() {
    let path = spin(Variant::Default);
    let launched = injector::launch(&path, &["-forever"], Duration::from_secs(5)).unwrap();
    let pid = launched.pid;
    let guard = KillOnDrop(pid);
    launched.world.detach().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(try_wait_exit(pid).unwrap(), None, "still running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_exit(pid).unwrap();
    std::mem::forget(guard);
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: libc::SIGTERM,
            core_dumped: false
        }
    );
    assert_eq!(status.code(), 128 + 15);

    let err = injector::launch(
        std::path::Path::new("/nonexistent/gohook-nothing"),
        &[] as &[&str],
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[test]
fn dropping_a_launched_program_detaches_it_and_it_runs_to_completion() {
    let path = spin(Variant::Default);
    let launched = injector::launch(&path, &["5"], Duration::from_secs(5)).unwrap();
    let pid = launched.pid;
    drop(launched);
    assert_eq!(
        wait_exit(pid).unwrap(),
        ExitStatus::Exited(0),
        "detached on drop and ran to completion"
    );
}

#[test]
fn sigterm_sent_to_gohook_is_forwarded_to_the_child() {
    let path = spin(Variant::Default);
    let launched = injector::launch(&path, &["-forever"], Duration::from_secs(5)).unwrap();
    let pid = launched.pid;
    let guard = KillOnDrop(pid);
    launched.world.detach().unwrap();
    injector::launch::forward_signals(pid).unwrap();
    // SAFETY: signalling our own process; the handler just installed forwards and returns.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    let status = wait_exit(pid).unwrap();
    std::mem::forget(guard);
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: libc::SIGTERM,
            core_dumped: false
        }
    );
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.0), None);
    }
}
