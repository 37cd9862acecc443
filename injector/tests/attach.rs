//! Attaching to a running Go program: stop every thread, inject syscalls, map memory near the
//! text, detach; signals, repeated cycles and the error cases.

mod support;

use std::process::Command;
use std::time::Duration;

use fixtures::Variant;
use injector::region::map_code_near;
use injector::syscall::restart_fixup;
use injector::{maps, AttachOptions, Error, Remote, World};
use support::{cpu_ticks, start_spin, tracer_of};

fn regs_tuple(r: &libc::user_regs_struct) -> [u64; 21] {
    [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.eflags, r.rsp, r.fs_base, r.gs_base,
    ]
}

fn attach_map_detach(variant: Variant) {
    attach_map_detach_with(variant, &fixtures::Toolchain::installed());
}

fn attach_map_detach_with(variant: Variant, toolchain: &fixtures::Toolchain) {
    let mut target = support::start_spin_with(variant, toolchain, &["-usr1", "-workers=2"], &[]);
    let pid = target.pid();
    let mut world = World::stop(pid, AttachOptions::default()).expect("stop the world");
    assert_eq!(
        tracer_of(pid),
        support::gettid(),
        "TracerPid names the attaching thread"
    );
    let tasks = injector::procfs::tasks(pid).unwrap();
    assert_eq!(world.tids(), tasks, "every thread is stopped, none missing");
    for tid in world.tids() {
        assert_ne!(world.regs(tid).unwrap().rip, 0);
    }

    let remote = Remote::new(&world, None).expect("gadget and thread");
    let before = world.regs(remote.tid()).unwrap();
    let region = map_code_near(&mut world, &remote, None, 64 * 1024).expect("map near text");
    let after = world.regs(remote.tid()).unwrap();
    assert_eq!(
        regs_tuple(&after),
        regs_tuple(&restart_fixup(before)),
        "registers restored exactly"
    );

    let all = maps::read_maps(pid).unwrap();
    let m = all
        .iter()
        .find(|m| m.start == region.addr)
        .expect("region in /proc/pid/maps");
    assert_eq!(m.perms(), "r-xp");
    assert!(m.end >= region.end());
    let text = maps::main_text(pid, &all).unwrap();
    assert!(
        maps::within_reach(region.addr, region.len, text),
        "{:#x} not within ±2 GiB of {text:x?}",
        region.addr
    );
    assert!(
        all.iter().all(|m| !(m.write && m.exec)),
        "no W+X mapping anywhere"
    );

    let report = world.detach().expect("detach");
    eprintln!(
        "{variant:?}: {} threads, stop latency {:?}, pause {:?}, gadget {:?}",
        report.threads,
        report.stop_latency,
        report.pause,
        remote.gadget().source
    );
    assert_eq!(tracer_of(pid), 0, "no longer traced");

    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert!(cpu_ticks(pid) > t0, "the target keeps running after detach");
    // SAFETY-free: kill(2) through nix.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    assert_eq!(
        target.expect_line(Duration::from_secs(5)),
        "usr1 1",
        "still handles signals"
    );
    assert!(target.alive());
}

#[test]
fn attach_maps_rx_memory_near_text_and_detaches_static() {
    attach_map_detach(Variant::Default);
}

#[test]
fn attach_maps_rx_memory_near_text_and_detaches_pie() {
    attach_map_detach(Variant::Pie);
}

#[test]
fn attach_maps_rx_memory_near_text_and_detaches_cgo() {
    attach_map_detach(Variant::Cgo);
}

#[test]
fn attach_maps_rx_memory_near_text_across_go_releases() {
    for toolchain in fixtures::toolchains() {
        eprintln!("toolchain {}", toolchain.gotoolchain());
        attach_map_detach_with(Variant::Default, &toolchain);
    }
}

#[test]
fn a_thread_inside_a_patch_range_is_single_stepped_out_before_writing() {
    use injector::{Patch, PatchSet};
    let target = start_spin(Variant::Default, &[], &[]);
    let pid = target.pid();
    let mut world = World::stop(pid, AttachOptions::default()).unwrap();
    let text = injector::region::main_text(pid).unwrap();
    // The spinning goroutine's thread: in user code (not in a syscall), inside the Go text.
    let (tid, rip) = world
        .tids()
        .into_iter()
        .map(|t| (t, world.regs(t).unwrap()))
        .find(|(_, r)| r.orig_rax == u64::MAX && r.rip >= text.0 && r.rip < text.1)
        .map(|(t, r)| (t, r.rip))
        .expect("a thread running Go code");
    // A byte-identical "patch" over [rip-1, rip+1): harmless to the program, but the thread
    // sits strictly inside it and must be moved out first.
    let here = world.memory().read_vec(rip - 1, 2).unwrap();
    let mut set = PatchSet::new(pid);
    set.add_patch(Patch {
        addr: rip - 1,
        new: here.clone(),
        original: here,
    })
    .unwrap();
    let report = set.apply(&mut world, None).unwrap();
    let after = world.regs(tid).unwrap().rip;
    assert!(
        report.stepped.iter().any(|&(t, n)| t == tid && n >= 1),
        "{:?}",
        report.stepped
    );
    assert!(
        !(after > rip - 1 && after < rip + 1),
        "thread left the range: {after:#x}"
    );
    world.detach().unwrap();
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(200));
    assert!(cpu_ticks(pid) > t0);
}

#[test]
fn a_syscall_gadget_in_the_program_text_works_like_the_vdso_one() {
    use injector::syscall::{find_gadget_in, GadgetSource};
    for variant in [Variant::Default, Variant::Pie] {
        let target = start_spin(variant, &[], &[]);
        let pid = target.pid();
        let mut world = World::stop(pid, AttachOptions::default()).unwrap();
        let gadget = find_gadget_in(pid, GadgetSource::Executable).expect("syscall in .text");
        let text = injector::region::main_text(pid).unwrap();
        assert!(gadget.addr >= text.0 && gadget.addr < text.1);
        let remote = Remote::new(&world, Some(gadget.addr)).unwrap();
        assert_eq!(remote.gadget().source, GadgetSource::Caller);
        let got = remote
            .raw(&mut world, "getpid", libc::SYS_getpid, [0; 6])
            .unwrap();
        assert_eq!(
            got, pid as i64,
            "getpid run inside the target returns its pid"
        );
        world.detach().unwrap();
    }
}

#[test]
fn a_signal_arriving_while_attached_is_delivered_after_resume() {
    let target = start_spin(Variant::Default, &["-usr1"], &[]);
    let pid = target.pid();
    let mut world = World::stop(pid, AttachOptions::default()).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    // Let the (traced) process take the signal: it becomes a signal-delivery-stop we must hold.
    world.run_for(Duration::from_millis(50)).unwrap();
    // Injected syscalls meanwhile must not swallow it either.
    let remote = Remote::new(&world, None).unwrap();
    let page = remote
        .mmap(
            &mut world,
            0,
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    remote.munmap(&mut world, page, 4096).unwrap();
    assert!(
        target.lines.try_recv().is_err(),
        "not delivered while stopped"
    );
    let report = world.detach().unwrap();
    assert!(
        report
            .reinjected
            .iter()
            .any(|&(_, sig)| sig == libc::SIGUSR1),
        "SIGUSR1 was held and re-injected: {:?}",
        report.reinjected
    );
    assert_eq!(target.expect_line(Duration::from_secs(5)), "usr1 1");
}

#[test]
fn hundred_stop_detach_cycles_leave_a_busy_process_running() {
    let mut target = start_spin(Variant::Default, &["-usr1", "-workers=4"], &[]);
    let pid = target.pid();
    let mut pauses = Vec::new();
    let mut threads = 0;
    for _ in 0..100 {
        let world = World::stop(pid, AttachOptions::default()).expect("stop");
        for tid in world.tids() {
            world.regs(tid).expect("regs of a stopped thread");
        }
        let r = world.detach().expect("detach");
        threads = threads.max(r.threads);
        pauses.push(r.pause);
    }
    pauses.sort();
    eprintln!(
        "100 cycles, up to {threads} threads: pause median {:?}, p99 {:?}, max {:?}",
        pauses[50], pauses[98], pauses[99]
    );
    assert!(threads >= 4, "a multi-threaded target ({threads} threads)");
    assert!(target.alive(), "survived 100 cycles");
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(200));
    assert!(cpu_ticks(pid) > t0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    assert_eq!(target.expect_line(Duration::from_secs(5)), "usr1 1");
}

#[test]
fn a_dead_pid_is_reported_as_no_such_process() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    let err = World::stop(pid, AttachOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::NoSuchProcess { pid: p } if p == pid),
        "{err}"
    );
    assert!(matches!(
        World::stop(-5, AttachOptions::default()),
        Err(Error::NoSuchProcess { .. })
    ));
}

#[test]
fn an_exited_but_unreaped_process_is_reported_as_exited_without_hanging() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    // Wait until it is a zombie, without reaping it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while injector::procfs::Status::read(pid, None).unwrap().state() != 'Z' {
        assert!(std::time::Instant::now() < deadline, "child never exited");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = std::time::Instant::now();
    let err = World::stop(pid, AttachOptions::default()).unwrap_err();
    child.wait().unwrap();
    assert!(
        matches!(err, Error::ProcessExited { pid: p, .. } if p == pid),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Helper run in a child process by the tests below (ignored in normal runs): attaches to
/// `GOHOOK_TEST_PID`, prints the outcome, and holds the attachment until stdin closes.
#[test]
#[ignore]
fn helper_attach_from_another_process() {
    let Ok(pid) = std::env::var("GOHOOK_TEST_PID") else {
        return;
    };
    let pid: i32 = pid.parse().unwrap();
    match World::stop(pid, AttachOptions::default()) {
        Ok(world) => {
            println!("HELPER attached");
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
            world.detach().unwrap();
        }
        Err(e @ Error::PermissionDenied { .. }) => println!("HELPER permission-denied: {e}"),
        Err(e) => println!("HELPER other: {e}"),
    }
}

fn helper(pid: i32) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "helper_attach_from_another_process",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GOHOOK_TEST_PID", pid.to_string());
    cmd
}

#[test]
fn a_process_traced_by_someone_else_is_refused_naming_the_tracer() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let target = start_spin(Variant::Default, &[], &[]);
    let pid = target.pid();
    let mut holder = helper(pid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(holder.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // libtest prints "test name ... " without a newline before the test's own output.
        // Keep draining until EOF so the helper never writes into a closed pipe.
        for line in out.lines().map_while(Result::ok) {
            if let Some(at) = line.find("HELPER") {
                let _ = tx.send(line[at..].to_string());
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    if line.is_err() {
        let _ = holder.kill();
        let _ = holder.wait();
    }
    let line = line.expect("helper reports within 20 s");
    assert_eq!(line.trim(), "HELPER attached");
    let err = World::stop(pid, AttachOptions::default()).unwrap_err();
    let holder_pid = holder.id() as i32;
    let tracer_is_holder =
        |t: i32| std::path::Path::new(&format!("/proc/{holder_pid}/task/{t}")).exists();
    let verdict = match &err {
        Error::AlreadyTraced { tracer, .. } => tracer_is_holder(*tracer),
        _ => false,
    };
    drop(holder.stdin.take()); // let the helper detach and exit
    let _ = holder.wait();
    assert!(
        verdict,
        "expected AlreadyTraced naming a thread of pid {holder_pid}, got {err}"
    );
    assert_eq!(tracer_of(pid), 0, "the helper's exit released the target");
}

#[test]
fn an_unprivileged_user_gets_permission_denied_with_a_hint() {
    use std::os::unix::process::CommandExt;
    if
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root to start a helper as user nobody");
        return;
    }
    let target = start_spin(Variant::Default, &[], &[]);
    // The checkout may sit in a directory only root can enter (a mktemp dir is 0700): run a copy
    // of this test binary from a directory anyone can reach.
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("gohook-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("attach-test");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = helper(target.pid());
    // Same arguments and environment, another executable path.
    let mut nobody = Command::new(&copy);
    nobody
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let out = nobody.uid(65534).gid(65534).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.contains("HELPER") {
        eprintln!(
            "skipping: the test binary cannot run as nobody: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert!(stdout.contains("HELPER permission-denied"), "{stdout}");
    assert!(
        stdout.contains("CAP_SYS_PTRACE") && stdout.contains("ptrace_scope"),
        "{stdout}"
    );
}
