//! Stopping the world: every thread of a process ptrace-seized and stopped, signals that arrive
//! meanwhile remembered and re-injected on resume, and every thread detached right after the
//! work so the target runs untraced.
//!
//! Protocol (trampolines.md §5.2, go-runtime.md §8): `PTRACE_SEIZE` each task with
//! `TRACECLONE|TRACESYSGOOD` (plus `EXITKILL` for processes we launched), `PTRACE_INTERRUPT` it,
//! `waitpid(tid, WNOHANG|__WALL)` with a deadline until it reports a stop, then re-read
//! `/proc/<pid>/task` until no unknown thread appears. Threads created meanwhile by a seized
//! thread are auto-attached through `PTRACE_EVENT_CLONE`; threads that exit are dropped.
//!
//! ptrace requires every request to come from the thread that attached, so [`World`] is `!Send`.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result, PERMISSION_HINT};
use crate::mem::ProcessMemory;
use crate::procfs::{self, Status};

/// How to attach.
#[derive(Debug, Clone, Copy)]
pub struct AttachOptions {
    /// Kill the target if gohook exits while attached (`PTRACE_O_EXITKILL`): only for processes
    /// gohook launched itself, never for `attach`.
    pub exit_kill: bool,
    /// Upper bound for stopping every thread (and for each later wait).
    pub timeout: Duration,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            exit_kill: false,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Why a thread is currently in a ptrace-stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// Our `PTRACE_INTERRUPT` (or an auto-attached new thread's first stop).
    Interrupt,
    /// A group-stop (someone sent SIGSTOP/SIGTSTP/...): the signal number.
    Group(i32),
    /// A signal-delivery-stop: the signal is held here and delivered when the thread resumes.
    Signal(i32),
    /// A syscall-entry or syscall-exit stop (after an injected syscall).
    Syscall,
    /// The `PTRACE_EVENT_EXEC` stop of a launched program.
    Exec,
    /// Stopped after a `PTRACE_EVENT_CLONE` (it created a thread).
    Clone,
    /// Our own single-step trap.
    Step,
}

/// One traced thread.
#[derive(Debug)]
struct Thread {
    /// `None` while seized but not yet stopped.
    stop: Option<StopKind>,
    /// siginfo of the signal held in a `StopKind::Signal` stop.
    held: Option<libc::siginfo_t>,
    /// Signals taken out of the thread's path while we ran it; re-sent before it resumes.
    deferred: Vec<libc::siginfo_t>,
}

/// What happened while the world was stopped, reported at detach.
#[derive(Debug, Clone, Default)]
pub struct StopReport {
    /// Threads that were stopped (and detached).
    pub threads: usize,
    /// Time from the first `PTRACE_INTERRUPT` until every thread was stopped.
    pub stop_latency: Duration,
    /// Time from the first `PTRACE_INTERRUPT` until the last thread was resumed: how long the
    /// target was (at least partly) frozen.
    pub pause: Duration,
    /// Signals that arrived while attached and were re-injected, as `(tid, signal)`.
    pub reinjected: Vec<(i32, i32)>,
}

/// A process whose threads are all ptrace-stopped by us.
///
/// Dropping it detaches every thread (re-injecting held signals); prefer [`World::detach`], which
/// reports errors and timing.
#[derive(Debug)]
pub struct World {
    pid: i32,
    opts: AttachOptions,
    threads: BTreeMap<i32, Thread>,
    first_interrupt: Option<Instant>,
    stop_latency: Duration,
    reinjected: Vec<(i32, i32)>,
    detached: bool,
    _not_send: PhantomData<*const ()>,
}

impl World {
    /// Seizes and stops every thread of `pid`.
    ///
    /// Errors: [`Error::NoSuchProcess`], [`Error::PermissionDenied`], [`Error::AlreadyTraced`],
    /// [`Error::ProcessExited`] (it died while we attached), [`Error::Timeout`] (a thread did not
    /// stop, e.g. stuck in uninterruptible sleep). On error every thread seized so far is
    /// detached again.
    pub fn stop(pid: i32, opts: AttachOptions) -> Result<World> {
        if pid <= 0 {
            return Err(Error::NoSuchProcess { pid });
        }
        let status = Status::read(pid, None)?;
        let tracer = status.tracer_pid();
        if tracer != 0 && !procfs::is_own_thread(tracer) {
            return Err(Error::AlreadyTraced {
                pid,
                tracer,
                tracer_name: procfs::comm(tracer),
            });
        }
        let mut world = World::empty(pid, opts);
        world.stop_all()?;
        Ok(world)
    }

    /// A world holding one thread that the launcher already traces and that is stopped at
    /// `PTRACE_EVENT_EXEC`.
    pub(crate) fn adopt_exec_stop(pid: i32, opts: AttachOptions) -> World {
        let mut world = World::empty(pid, opts);
        world.first_interrupt = Some(Instant::now());
        world.threads.insert(
            pid,
            Thread {
                stop: Some(StopKind::Exec),
                held: None,
                deferred: Vec::new(),
            },
        );
        world
    }

    fn empty(pid: i32, opts: AttachOptions) -> World {
        World {
            pid,
            opts,
            threads: BTreeMap::new(),
            first_interrupt: None,
            stop_latency: Duration::ZERO,
            reinjected: Vec::new(),
            detached: false,
            _not_send: PhantomData,
        }
    }

    fn options(&self) -> Options {
        let mut o = Options::PTRACE_O_TRACECLONE | Options::PTRACE_O_TRACESYSGOOD;
        if self.opts.exit_kill {
            o |= Options::PTRACE_O_EXITKILL;
        }
        o
    }

    /// Seizes every task not yet traced, interrupts it and waits until all are stopped; repeats
    /// until `/proc/<pid>/task` lists nothing new.
    fn stop_all(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.opts.timeout;
        // Every tid handled in this call, including zombies and threads that exited: a tid that
        // stays listed in /proc without ever becoming traceable must not count as new forever.
        let mut seen: std::collections::BTreeSet<i32> = self.threads.keys().copied().collect();
        loop {
            let tids = match procfs::tasks(self.pid) {
                Ok(t) => t,
                Err(Error::NoSuchProcess { .. }) if !self.threads.is_empty() => {
                    return Err(self.exited("task list vanished"));
                }
                Err(e) => return Err(e),
            };
            let mut new = false;
            for tid in tids {
                if !seen.insert(tid) || self.threads.contains_key(&tid) {
                    continue;
                }
                new = true;
                self.seize_one(tid)?;
            }
            seen.extend(self.threads.keys().copied());
            self.wait_until_stopped(deadline)?;
            if !new {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    pid: self.pid,
                    tid: self.pid,
                    what: "stop creating threads",
                    after: self.opts.timeout,
                });
            }
        }
        if self.threads.is_empty() {
            return match Status::read(self.pid, None) {
                Ok(s) if matches!(s.state(), 'Z' | 'X') => {
                    Err(self.exited("zombie, not yet reaped by its parent"))
                }
                Ok(_) => Err(Error::NoSuchProcess { pid: self.pid }),
                Err(e) => Err(e),
            };
        }
        self.stop_latency = self
            .first_interrupt
            .map(|t| t.elapsed())
            .unwrap_or_default();
        Ok(())
    }

    fn seize_one(&mut self, tid: i32) -> Result<()> {
        let pid = self.pid;
        match ptrace::seize(Pid::from_raw(tid), self.options()) {
            Ok(()) => {}
            Err(Errno::ESRCH) => {
                // The thread exited between listing and seizing.
                if tid == pid && self.threads.is_empty() {
                    return Err(Error::NoSuchProcess { pid });
                }
                return Ok(());
            }
            Err(Errno::EPERM) => {
                let st = Status::read(pid, Some(tid));
                let me = nix::unistd::gettid().as_raw();
                match st {
                    // Auto-attached through PTRACE_EVENT_CLONE before we saw the event.
                    Ok(s) if s.tracer_pid() == me => {
                        self.threads.insert(tid, Thread::running());
                        return Ok(());
                    }
                    Ok(s) if matches!(s.state(), 'Z' | 'X') => return Ok(()),
                    Ok(s) if s.tracer_pid() != 0 => {
                        let tracer = s.tracer_pid();
                        return Err(Error::AlreadyTraced {
                            pid,
                            tracer,
                            tracer_name: procfs::comm(tracer),
                        });
                    }
                    Err(_) => return Ok(()),
                    Ok(_) => {
                        return Err(Error::PermissionDenied {
                            pid,
                            hint: PERMISSION_HINT,
                        })
                    }
                }
            }
            Err(errno) => return Err(Error::ptrace("seize", pid, tid, errno)),
        }
        self.threads.insert(tid, Thread::running());
        self.first_interrupt.get_or_insert_with(Instant::now);
        match ptrace::interrupt(Pid::from_raw(tid)) {
            Ok(()) => Ok(()),
            // It exited right after the seize; its exit is reaped by the wait loop.
            Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(Error::ptrace("interrupt", pid, tid, errno)),
        }
    }

    /// Polls every not-yet-stopped thread until each has stopped (or exited).
    fn wait_until_stopped(&mut self, deadline: Instant) -> Result<()> {
        let mut backoff = Duration::from_micros(20);
        loop {
            let running: Vec<i32> = self
                .threads
                .iter()
                .filter(|(_, t)| t.stop.is_none())
                .map(|(&k, _)| k)
                .collect();
            if running.is_empty() {
                return Ok(());
            }
            let mut progressed = false;
            for tid in running {
                if let Some(status) = self.poll(tid)? {
                    progressed = true;
                    self.record_stop(tid, status)?;
                }
            }
            if !progressed {
                if backoff >= Duration::from_millis(1) && thread_dead(self.pid, self.pid) {
                    return Err(self.exited("killed while gohook was attaching"));
                }
                if Instant::now() >= deadline {
                    let tid = self
                        .threads
                        .iter()
                        .find(|(_, t)| t.stop.is_none())
                        .map_or(self.pid, |(&k, _)| k);
                    return Err(Error::Timeout {
                        pid: self.pid,
                        tid,
                        what: "stop",
                        after: self.opts.timeout,
                    });
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(1));
            }
        }
    }

    /// One non-blocking wait on `tid`. `Ok(None)`: nothing to report yet.
    fn poll(&mut self, tid: i32) -> Result<Option<WaitStatus>> {
        match waitpid(
            Pid::from_raw(tid),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(Errno::EINTR) => Ok(None),
            Err(Errno::ECHILD) => {
                // Not (or no longer) our tracee: it is gone.
                self.forget(tid)?;
                Ok(None)
            }
            Err(errno) => Err(Error::Wait {
                pid: self.pid,
                tid,
                errno,
            }),
        }
    }

    /// Books a wait status for `tid`: new threads from clone events, exits, held signals.
    fn record_stop(&mut self, tid: i32, status: WaitStatus) -> Result<()> {
        let kind = match status {
            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                if tid == self.pid {
                    self.threads.remove(&tid);
                    crate::launch::remember_exit(tid, &status);
                    return Err(self.exited(&describe(&status)));
                }
                self.threads.remove(&tid);
                return Ok(());
            }
            WaitStatus::PtraceEvent(_, sig, ev) => match ev {
                libc::PTRACE_EVENT_STOP => {
                    if matches!(
                        sig,
                        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                    ) {
                        StopKind::Group(sig as i32)
                    } else {
                        StopKind::Interrupt
                    }
                }
                libc::PTRACE_EVENT_CLONE => {
                    if let Ok(new) = ptrace::getevent(Pid::from_raw(tid)) {
                        self.threads
                            .entry(new as i32)
                            .or_insert_with(Thread::running);
                    }
                    StopKind::Clone
                }
                libc::PTRACE_EVENT_EXEC => StopKind::Exec,
                _ => StopKind::Interrupt,
            },
            WaitStatus::PtraceSyscall(_) => StopKind::Syscall,
            WaitStatus::Stopped(_, sig) => {
                let info = ptrace::getsiginfo(Pid::from_raw(tid)).ok();
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.held = info;
                }
                StopKind::Signal(sig as i32)
            }
            WaitStatus::Continued(_) | WaitStatus::StillAlive => return Ok(()),
        };
        if let Some(t) = self.threads.get_mut(&tid) {
            t.stop = Some(kind);
            if !matches!(kind, StopKind::Signal(_)) {
                t.held = None;
            }
        }
        Ok(())
    }

    fn forget(&mut self, tid: i32) -> Result<()> {
        self.threads.remove(&tid);
        if tid == self.pid && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists() {
            return Err(self.exited("gone"));
        }
        Ok(())
    }

    fn exited(&self, status: &str) -> Error {
        Error::ProcessExited {
            pid: self.pid,
            status: status.to_string(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The ids of every stopped thread, ascending.
    pub fn tids(&self) -> Vec<i32> {
        self.threads
            .iter()
            .filter(|(_, t)| t.stop.is_some())
            .map(|(&k, _)| k)
            .collect()
    }

    /// Why `tid` is stopped.
    pub fn stop_kind(&self, tid: i32) -> Option<StopKind> {
        self.threads.get(&tid).and_then(|t| t.stop)
    }

    /// Time from the first interrupt until every thread was stopped.
    pub fn stop_latency(&self) -> Duration {
        self.stop_latency
    }

    /// The timeout every wait uses.
    pub fn timeout(&self) -> Duration {
        self.opts.timeout
    }

    /// General-purpose registers of a stopped thread (including `orig_rax` and `fs_base`).
    pub fn regs(&self, tid: i32) -> Result<libc::user_regs_struct> {
        ptrace::getregs(Pid::from_raw(tid)).map_err(|e| Error::ptrace("getregs", self.pid, tid, e))
    }

    /// Sets the general-purpose registers of a stopped thread.
    pub fn set_regs(&self, tid: i32, regs: &libc::user_regs_struct) -> Result<()> {
        ptrace::setregs(Pid::from_raw(tid), *regs)
            .map_err(|e| Error::ptrace("setregs", self.pid, tid, e))
    }

    /// Memory access whose writes can fall back to `PTRACE_POKEDATA` through a stopped thread.
    pub fn memory(&self) -> ProcessMemory {
        match self.tids().first() {
            Some(&tid) => ProcessMemory::with_poke_tid(self.pid, tid),
            None => ProcessMemory::new(self.pid),
        }
    }

    /// A thread suitable for running injected code: one stopped by our interrupt (or at exec)
    /// and holding no signal, so nothing the target expects is disturbed.
    pub fn quiet_thread(&self) -> Option<i32> {
        let pick = |want: fn(StopKind) -> bool| {
            self.threads
                .iter()
                .find(|(_, t)| t.stop.is_some_and(want) && t.deferred.is_empty())
                .map(|(&k, _)| k)
        };
        pick(|k| matches!(k, StopKind::Interrupt | StopKind::Exec | StopKind::Syscall))
            .or_else(|| pick(|k| !matches!(k, StopKind::Signal(_) | StopKind::Group(_))))
    }

    /// Prepares `tid` to be run by us: a signal held in its stop is moved to the deferred list
    /// (it is re-sent before the thread finally resumes). Returns an error if it is not stopped.
    pub(crate) fn take_for_running(&mut self, tid: i32) -> Result<()> {
        let pid = self.pid;
        let t = self
            .threads
            .get_mut(&tid)
            .ok_or(Error::ptrace("run", pid, tid, Errno::ESRCH))?;
        if t.stop.is_none() {
            return Err(Error::ptrace("run", pid, tid, Errno::ESRCH));
        }
        if let (Some(StopKind::Signal(_)), Some(info)) = (t.stop, t.held.take()) {
            t.deferred.push(info);
        }
        t.stop = None;
        Ok(())
    }

    /// Waits (bounded) for the next stop of `tid`, which we just resumed, and books it.
    /// Signal-delivery stops other than `expect_trap` SIGTRAPs are deferred for re-injection.
    pub(crate) fn wait_next(&mut self, tid: i32, what: &'static str) -> Result<WaitStatus> {
        let deadline = Instant::now() + self.opts.timeout;
        let mut backoff = Duration::from_micros(5);
        loop {
            match waitpid(
                Pid::from_raw(tid),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                Ok(status) => {
                    self.record_stop(tid, status)?;
                    if !self.threads.contains_key(&tid) {
                        return Err(Error::UnexpectedStop {
                            pid: self.pid,
                            tid,
                            doing: what,
                            status: describe(&status),
                        });
                    }
                    // New threads from a clone event must stop before anything else happens.
                    if matches!(
                        status,
                        WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_CLONE)
                    ) {
                        self.wait_until_stopped(deadline)?;
                    }
                    return Ok(status);
                }
                Err(Errno::ECHILD) => {
                    self.forget(tid)?;
                    return Err(Error::UnexpectedStop {
                        pid: self.pid,
                        tid,
                        doing: what,
                        status: "thread gone".into(),
                    });
                }
                Err(errno) => {
                    return Err(Error::Wait {
                        pid: self.pid,
                        tid,
                        errno,
                    })
                }
            }
            // A killed thread group reports its leader's exit only once every other thread is
            // reaped: look at the thread itself rather than wait out the timeout.
            if backoff >= Duration::from_micros(500) && thread_dead(self.pid, tid) {
                return Err(self.exited("killed while gohook was attached"));
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    pid: self.pid,
                    tid,
                    what,
                    after: self.opts.timeout,
                });
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_micros(500));
        }
    }

    /// Moves the signal held in `tid`'s current signal-delivery-stop to its deferred list, so
    /// the next resume does not deliver it now.
    pub(crate) fn defer_held(&mut self, tid: i32) {
        if let Some(t) = self.threads.get_mut(&tid) {
            if let Some(info) = t.held.take() {
                t.deferred.push(info);
            }
            if matches!(t.stop, Some(StopKind::Signal(_))) {
                t.stop = Some(StopKind::Interrupt);
            }
        }
    }

    /// Marks `tid`'s current stop (a SIGTRAP signal-delivery-stop we caused) as ours.
    pub(crate) fn mark_own_trap(&mut self, tid: i32) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.held = None;
            t.stop = Some(StopKind::Step);
        }
    }

    /// Executes one instruction of `tid` (`PTRACE_SINGLESTEP`), bounded; returns the new RIP.
    /// Signals that arrive meanwhile are deferred, not lost.
    pub fn single_step(&mut self, tid: i32) -> Result<u64> {
        self.take_for_running(tid)?;
        for _ in 0..16 {
            resume(PtraceResume::Step, tid, 0)
                .map_err(|e| Error::ptrace("singlestep", self.pid, tid, e))?;
            let status = self.wait_next(tid, "single-step")?;
            match status {
                WaitStatus::Stopped(_, Signal::SIGTRAP) => {
                    self.mark_own_trap(tid);
                    return Ok(self.regs(tid)?.rip);
                }
                WaitStatus::Stopped(..) => self.defer_held(tid),
                _ => {}
            }
            self.take_for_running(tid)?;
        }
        Err(Error::UnexpectedStop {
            pid: self.pid,
            tid,
            doing: "single-step",
            status: "never completed".into(),
        })
    }

    /// Lets the whole process run for `d` (re-injecting held signals), then stops it again.
    /// Used to let a thread leave a signal handler before patching.
    pub fn run_for(&mut self, d: Duration) -> Result<()> {
        let tids = self.tids();
        for tid in tids {
            self.resume_thread(tid, false)?;
        }
        std::thread::sleep(d);
        let tids: Vec<i32> = self.threads.keys().copied().collect();
        for tid in tids {
            match ptrace::interrupt(Pid::from_raw(tid)) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(errno) => return Err(Error::ptrace("interrupt", self.pid, tid, errno)),
            }
        }
        self.stop_all()
    }

    /// Resumes (or detaches) one stopped thread, first re-sending deferred signals and then
    /// delivering the signal held in its stop.
    fn resume_thread(&mut self, tid: i32, detach: bool) -> Result<()> {
        let pid = self.pid;
        let Some(t) = self.threads.get_mut(&tid) else {
            return Ok(());
        };
        let Some(kind) = t.stop else { return Ok(()) };
        for info in t.deferred.drain(..) {
            let sig = info.si_signo;
            if resend(pid, tid, &info).is_ok() {
                self.reinjected.push((tid, sig));
            }
        }
        let deliver = match kind {
            StopKind::Signal(sig) => sig,
            _ => 0,
        };
        if deliver != 0 {
            self.reinjected.push((tid, deliver));
        }
        let req = if detach {
            PtraceResume::Detach
        } else {
            PtraceResume::Cont
        };
        t.stop = None;
        t.held = None;
        match resume(req, tid, deliver) {
            Ok(()) => {}
            Err(Errno::ESRCH) => {
                // Gone (or not in a ptrace-stop any more): reap a zombie if there is one.
                let _ = waitpid(
                    Pid::from_raw(tid),
                    Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
                );
            }
            Err(errno) => {
                return Err(Error::ptrace(
                    if detach { "detach" } else { "cont" },
                    pid,
                    tid,
                    errno,
                ))
            }
        }
        if detach {
            self.threads.remove(&tid);
        }
        Ok(())
    }

    /// Resumes and detaches every thread; the target runs untraced afterwards.
    pub fn detach(mut self) -> Result<StopReport> {
        self.detach_all()
    }

    fn detach_all(&mut self) -> Result<StopReport> {
        self.detached = true;
        let count = self.threads.len();
        // A thread that never reported its stop cannot be detached; give it one more chance.
        let _ = self.wait_until_stopped(Instant::now() + Duration::from_millis(200));
        let mut first_err = None;
        // A thread that is still running cannot be detached; it stays traced (with our interrupt
        // pending) until gohook exits. Say so instead of pretending.
        if let Some((&tid, _)) = self.threads.iter().find(|(_, t)| t.stop.is_none()) {
            first_err = Some(Error::Timeout {
                pid: self.pid,
                tid,
                what: "stop so it can be detached",
                after: Duration::from_millis(200),
            });
        }
        let tids: Vec<i32> = self.threads.keys().copied().collect();
        for tid in tids {
            if let Err(e) = self.resume_thread(tid, true) {
                first_err.get_or_insert(e);
            }
        }
        let report = StopReport {
            threads: count,
            stop_latency: self.stop_latency,
            pause: self
                .first_interrupt
                .map(|t| t.elapsed())
                .unwrap_or_default(),
            reinjected: std::mem::take(&mut self.reinjected),
        };
        match first_err {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !self.detached {
            let _ = self.detach_all();
        }
    }
}

impl Thread {
    fn running() -> Thread {
        Thread {
            stop: None,
            held: None,
            deferred: Vec::new(),
        }
    }
}

/// A restarting ptrace request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PtraceResume {
    Cont,
    Detach,
    Step,
    Syscall,
}

/// Restarts a stopped tracee, delivering raw signal number `sig` (0 = none). Raw, because nix's
/// `Signal` cannot express real-time signals, which must be re-injected too.
pub(crate) fn resume(req: PtraceResume, tid: i32, sig: i32) -> std::result::Result<(), Errno> {
    let request = match req {
        PtraceResume::Cont => libc::PTRACE_CONT,
        PtraceResume::Detach => libc::PTRACE_DETACH,
        PtraceResume::Step => libc::PTRACE_SINGLESTEP,
        PtraceResume::Syscall => libc::PTRACE_SYSCALL,
    };
    // SAFETY: these requests take no pointers: `addr` is ignored and `data` is a signal number.
    let r = unsafe {
        libc::ptrace(
            request,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long,
        )
    };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Re-sends a signal we took out of a thread's path, keeping its siginfo where the kernel allows
/// it (negative `si_code` other than SI_TKILL, e.g. POSIX timers' SI_TIMER), else as a plain
/// `tgkill` (SI_TKILL).
fn resend(pid: i32, tid: i32, info: &libc::siginfo_t) -> std::result::Result<(), Errno> {
    let sig = info.si_signo;
    let r = if info.si_code < 0 && info.si_code != libc::SI_TKILL {
        // SAFETY: `info` points to a valid siginfo_t for the duration of the call.
        unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                pid,
                tid,
                sig,
                info as *const libc::siginfo_t,
            )
        }
    } else {
        // SAFETY: plain integer arguments.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) }
    };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A wait status in words.
pub(crate) fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!(
                "killed by {sig:?}{}",
                if *core { " (core dumped)" } else { "" }
            )
        }
        other => format!("{other:?}"),
    }
}

/// True when thread `tid` of `pid` has exited or is exiting (zombie, dead, or gone from /proc).
pub(crate) fn thread_dead(pid: i32, tid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|c| matches!(c, 'Z' | 'X' | 'x')),
        Err(_) => true,
    }
}
