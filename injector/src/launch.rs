//! `gohook run`: start a program stopped at its exec, before the Go runtime has run one
//! instruction, so hooks can be installed first; then let it run untraced while gohook stays its
//! real parent and collects the exit status.
//!
//! The child blocks on a pipe right after `fork`; the parent `PTRACE_SEIZE`s it with
//! `TRACEEXEC|TRACECLONE|EXITKILL` (so it dies with gohook until detached) and releases it; the
//! child `execv`s and the parent catches `PTRACE_EVENT_EXEC`. No signals are used, so there are
//! no group-stop side effects. Stdio is inherited.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::threads::{AttachOptions, World};

/// A launched child stopped at its exec: the main executable and the interpreter are mapped, no
/// user code has run.
#[derive(Debug)]
pub struct Launched {
    /// The child's pid.
    pub pid: i32,
    /// The stopped world (one thread), ready for injected syscalls and patches.
    pub world: World,
}

/// How a launched program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128 + signal.
    pub fn code(&self) -> i32 {
        match *self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled { signal, .. } => 128 + signal,
        }
    }
}

/// Options of [`launch_with`].
#[derive(Debug)]
pub struct LaunchOptions {
    /// Upper bound for reaching the exec stop.
    pub timeout: Duration,
    /// Replaces the child's stdout (inherited when `None`).
    pub stdout: Option<OwnedFd>,
    /// Replaces the child's stderr (inherited when `None`).
    pub stderr: Option<OwnedFd>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            timeout: Duration::from_secs(5),
            stdout: None,
            stderr: None,
        }
    }
}

/// Starts `program` with `args` (not including `argv[0]`, which is `program`), stdio inherited,
/// and returns it stopped at exec. `program` without a slash is searched in `PATH`.
pub fn launch(program: &Path, args: &[impl AsRef<OsStr>], timeout: Duration) -> Result<Launched> {
    launch_with(
        program,
        args,
        LaunchOptions {
            timeout,
            ..LaunchOptions::default()
        },
    )
}

/// [`launch`] with redirections.
pub fn launch_with(
    program: &Path,
    args: &[impl AsRef<OsStr>],
    options: LaunchOptions,
) -> Result<Launched> {
    let timeout = options.timeout;
    let path = resolve(program)?;
    let launch_err = |what: String| Error::Launch {
        program: program.to_owned(),
        what,
    };
    let cstr = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| launch_err("argument contains a NUL byte".into()))
    };
    let c_path = cstr(path.as_os_str())?;
    let mut c_args = vec![cstr(program.as_os_str())?];
    for a in args {
        c_args.push(cstr(a.as_ref())?);
    }
    let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());

    let (go_r, go_w) = pipe().map_err(|e| launch_err(format!("pipe: {e}")))?;
    let (err_r, err_w) = pipe().map_err(|e| launch_err(format!("pipe: {e}")))?;
    let redirect = [
        options.stdout.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        options.stderr.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
    ];
    let pid = fork_child(go_r, go_w, err_r, err_w, redirect, &c_path, &argv)
        .map_err(|e| launch_err(format!("fork: {e}")))?;
    drop(options);
    close(go_r);
    close(err_w);

    let opts = Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_EXITKILL;
    let seized = ptrace::seize(Pid::from_raw(pid), opts);
    // Release the child whether or not the seize worked; on failure it execs untraced and we
    // kill it below.
    release(go_w);
    if let Err(errno) = seized {
        kill_and_reap(pid);
        close(err_r);
        return Err(Error::ptrace("seize", pid, pid, errno));
    }
    let deadline = Instant::now() + timeout;
    loop {
        match waitpid(
            Pid::from_raw(pid),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_EXEC)) => break,
            Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => {
                let errno = read_errno(err_r);
                close(err_r);
                let what = match errno {
                    Some(e) => format!("exec failed: {}", Errno::from_raw(e)),
                    None => "child exited before exec".into(),
                };
                return Err(launch_err(what));
            }
            // Anything else before exec (a stray signal) is passed on.
            Ok(WaitStatus::Stopped(_, sig)) => {
                let _ = ptrace::cont(Pid::from_raw(pid), sig);
            }
            Ok(WaitStatus::PtraceEvent(..)) | Ok(WaitStatus::PtraceSyscall(_)) => {
                let _ = ptrace::cont(Pid::from_raw(pid), None);
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => {
                close(err_r);
                kill_and_reap(pid);
                return Err(Error::Wait {
                    pid,
                    tid: pid,
                    errno,
                });
            }
        }
        if Instant::now() >= deadline {
            close(err_r);
            kill_and_reap(pid);
            return Err(Error::Timeout {
                pid,
                tid: pid,
                what: "reach exec",
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    close(err_r);
    let world = World::adopt_exec_stop(
        pid,
        AttachOptions {
            exit_kill: true,
            timeout,
        },
    );
    Ok(Launched { pid, world })
}

/// Exit statuses of our children that a [`World`] consumed while it was waiting on their threads
/// (we are parent and tracer of a launched program, so its exit can be reaped by either wait).
static REAPED: std::sync::Mutex<Vec<(i32, ExitStatus)>> = std::sync::Mutex::new(Vec::new());

/// Remembers an exit status reaped by the tracer's waits, for [`wait_exit`].
pub(crate) fn remember_exit(pid: i32, status: &WaitStatus) {
    let st = match *status {
        WaitStatus::Exited(_, code) => ExitStatus::Exited(code),
        WaitStatus::Signaled(_, sig, core) => ExitStatus::Signaled {
            signal: sig as i32,
            core_dumped: core,
        },
        _ => return,
    };
    if let Ok(mut v) = REAPED.lock() {
        v.retain(|(p, _)| *p != pid);
        v.push((pid, st));
    }
}

fn take_remembered(pid: i32) -> Option<ExitStatus> {
    let mut v = REAPED.lock().ok()?;
    let i = v.iter().position(|(p, _)| *p == pid)?;
    Some(v.swap_remove(i).1)
}

fn exit_status(status: WaitStatus) -> Option<ExitStatus> {
    match status {
        WaitStatus::Exited(_, code) => Some(ExitStatus::Exited(code)),
        WaitStatus::Signaled(_, sig, core) => Some(ExitStatus::Signaled {
            signal: sig as i32,
            core_dumped: core,
        }),
        _ => None,
    }
}

/// Waits (blocking) for a launched child that has been detached, and reports how it ended.
/// Also answers for a child whose exit was already reaped while gohook was attached to it.
pub fn wait_exit(pid: i32) -> Result<ExitStatus> {
    loop {
        if let Some(st) = take_remembered(pid) {
            return Ok(st);
        }
        match waitpid(Pid::from_raw(pid), None) {
            Ok(status) => {
                if let Some(st) = exit_status(status) {
                    return Ok(st);
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => {
                return take_remembered(pid).ok_or(Error::Wait {
                    pid,
                    tid: pid,
                    errno: Errno::ECHILD,
                });
            }
            Err(errno) => {
                return Err(Error::Wait {
                    pid,
                    tid: pid,
                    errno,
                })
            }
        }
    }
}

/// Non-blocking variant of [`wait_exit`]: `None` while it still runs.
pub fn try_wait_exit(pid: i32) -> Result<Option<ExitStatus>> {
    if let Some(st) = take_remembered(pid) {
        return Ok(Some(st));
    }
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => Ok(exit_status(status)),
        Err(Errno::EINTR) => Ok(None),
        Err(errno) => Err(Error::Wait {
            pid,
            tid: pid,
            errno,
        }),
    }
}

static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

/// Forwards SIGINT and SIGTERM received by gohook to `pid` (the launched child), so `gohook run`
/// behaves like the program under a supervisor. SIGINT generated by the terminal (`si_code`
/// SI_KERNEL) already reaches the child through the process group and is not sent twice.
pub fn forward_signals(pid: i32) -> Result<()> {
    FORWARD_TO.store(pid, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        install_forwarder(sig).map_err(|errno| Error::LocalSyscall {
            call: "sigaction",
            pid,
            errno,
        })?;
    }
    Ok(())
}

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; kill is
    // async-signal-safe.
    unsafe {
        let from_tty = !info.is_null() && (*info).si_code == libc::SI_KERNEL;
        if pid > 0 && !from_tty {
            libc::kill(pid, sig);
        }
    }
}

fn install_forwarder(sig: libc::c_int) -> std::result::Result<(), Errno> {
    // SAFETY: `sa` is fully initialised (zeroed, then handler, flags and an empty mask), and the
    // handler only performs async-signal-safe work.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = forward;
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

fn resolve(program: &Path) -> Result<PathBuf> {
    let not_found = || Error::Launch {
        program: program.to_owned(),
        what: "not found".into(),
    };
    if program.as_os_str().as_bytes().contains(&b'/') {
        return if program.is_file() {
            Ok(program.to_owned())
        } else {
            Err(not_found())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(not_found)
}

/// Forks; the child waits for one byte on `go_r`, then `execv`s, writing errno to `err_w` if
/// that fails. Only async-signal-safe calls run in the child.
fn fork_child(
    go_r: i32,
    go_w: i32,
    err_r: i32,
    err_w: i32,
    redirect: [i32; 2],
    path: &CString,
    argv: &[*const libc::c_char],
) -> std::result::Result<i32, Errno> {
    // SAFETY: after fork the child only calls async-signal-safe functions (close, read, execv,
    // write, _exit) on memory prepared before the fork.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(Errno::last());
        }
        if pid == 0 {
            libc::close(go_w);
            libc::close(err_r);
            let mut b = 0u8;
            loop {
                let n = libc::read(go_r, (&mut b as *mut u8).cast(), 1);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break;
                }
            }
            libc::close(go_r);
            for (fd, target) in redirect.iter().zip([1, 2]) {
                if *fd >= 0 {
                    // dup2 clears O_CLOEXEC on the new descriptor.
                    libc::dup2(*fd, target);
                }
            }
            libc::execv(path.as_ptr(), argv.as_ptr());
            let e = *libc::__errno_location();
            libc::write(err_w, (&e as *const i32).cast(), 4);
            libc::_exit(127);
        }
        Ok(pid)
    }
}

fn pipe() -> std::result::Result<(i32, i32), Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Errno::last());
    }
    Ok((fds[0], fds[1]))
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this module created and owns.
    unsafe { libc::close(fd) };
}

fn release(go_w: i32) {
    // SAFETY: writing one byte from a local to a pipe we own, then closing it.
    unsafe {
        libc::write(go_w, b"g".as_ptr().cast(), 1);
        libc::close(go_w);
    }
}

fn read_errno(err_r: i32) -> Option<i32> {
    let mut e = 0i32;
    // SAFETY: reading at most 4 bytes into a local i32.
    let n = unsafe { libc::read(err_r, (&mut e as *mut i32).cast(), 4) };
    (n == 4).then_some(e)
}

fn kill_and_reap(pid: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL));
}
