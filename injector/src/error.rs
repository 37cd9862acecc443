//! The injector's error type: every variant names the process, thread, address or syscall a
//! user needs to understand what went wrong in the target.

use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Hint printed with permission errors.
pub const PERMISSION_HINT: &str = "gohook needs CAP_SYS_PTRACE (run as root or grant the capability) \
and /proc/sys/kernel/yama/ptrace_scope must allow attaching (0, or 1 when gohook is the target's ancestor)";

/// Everything that can go wrong while touching a live process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pid does not exist (or is not visible in this pid namespace).
    #[error("no such process: pid {pid}")]
    NoSuchProcess {
        /// The requested pid.
        pid: i32,
    },
    /// The kernel refused to let us trace the process.
    #[error("permission denied attaching to pid {pid}: {hint}")]
    PermissionDenied {
        /// The requested pid.
        pid: i32,
        /// What to check ([`PERMISSION_HINT`]).
        hint: &'static str,
    },
    /// Another tracer (a debugger, strace, another gohook) is attached.
    #[error("pid {pid} is already traced by pid {tracer} ({tracer_name}); detach it first")]
    AlreadyTraced {
        /// The requested pid.
        pid: i32,
        /// `TracerPid` from `/proc/<pid>/status`.
        tracer: i32,
        /// The tracer's command name, if readable.
        tracer_name: String,
    },
    /// The whole process exited while we were working on it.
    #[error("pid {pid} exited while gohook was attached ({status})")]
    ProcessExited {
        /// The process.
        pid: i32,
        /// How it ended, as far as we saw.
        status: String,
    },
    /// A ptrace request failed.
    #[error("ptrace {request} on tid {tid} of pid {pid} failed: {errno}")]
    Ptrace {
        /// The ptrace request (`"seize"`, `"getregs"`, ...).
        request: &'static str,
        /// The process.
        pid: i32,
        /// The thread the request addressed.
        tid: i32,
        /// The kernel's answer.
        errno: Errno,
    },
    /// `waitpid` on a traced thread failed.
    #[error("waitpid on tid {tid} of pid {pid} failed: {errno}")]
    Wait {
        /// The process.
        pid: i32,
        /// The thread.
        tid: i32,
        /// The kernel's answer.
        errno: Errno,
    },
    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for tid {tid} of pid {pid} to {what}")]
    Timeout {
        /// The process.
        pid: i32,
        /// The thread that did not answer.
        tid: i32,
        /// What we were waiting for.
        what: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// A thread stopped in a way we did not expect at this point.
    #[error("tid {tid} of pid {pid}: unexpected stop while {doing}: {status}")]
    UnexpectedStop {
        /// The process.
        pid: i32,
        /// The thread.
        tid: i32,
        /// What we were doing.
        doing: &'static str,
        /// The wait status as reported.
        status: String,
    },
    /// A file under `/proc` could not be read or parsed.
    #[error("cannot read {path}: {source}")]
    Proc {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A syscall made by gohook itself (not injected) failed.
    #[error("{call} failed for pid {pid}: {errno}")]
    LocalSyscall {
        /// The syscall (`"pidfd_open"`, `"mmap"`, ...).
        call: &'static str,
        /// The target process it concerned.
        pid: i32,
        /// The kernel's answer.
        errno: Errno,
    },
    /// A syscall injected into the target returned an error.
    #[error("injected {call} in tid {tid} of pid {pid} failed: {errno}")]
    InjectedSyscall {
        /// The syscall name.
        call: &'static str,
        /// The process.
        pid: i32,
        /// The thread that ran it.
        tid: i32,
        /// The error the target's kernel returned.
        errno: Errno,
    },
    /// The injected syscall was answered with SIGSYS: a seccomp filter forbids it.
    #[error("injected {call} in tid {tid} of pid {pid} was blocked by seccomp (SIGSYS)")]
    SeccompBlocked {
        /// The syscall name.
        call: &'static str,
        /// The process.
        pid: i32,
        /// The thread that ran it.
        tid: i32,
    },
    /// No `syscall` instruction usable as a gadget was found in the target's code.
    #[error("no syscall instruction found in the text of pid {pid} or its vDSO")]
    NoSyscallGadget {
        /// The process.
        pid: i32,
    },
    /// Reading target memory failed.
    #[error("cannot read {len} bytes at {addr:#x} in pid {pid}: {errno}")]
    ReadMemory {
        /// The process.
        pid: i32,
        /// Start of the read.
        addr: u64,
        /// Length of the read.
        len: usize,
        /// The kernel's answer (EFAULT: not mapped).
        errno: Errno,
    },
    /// Writing target memory failed with every method.
    #[error("cannot write {len} bytes at {addr:#x} in pid {pid}: {errno}")]
    WriteMemory {
        /// The process.
        pid: i32,
        /// Start of the write.
        addr: u64,
        /// Length of the write.
        len: usize,
        /// The last method's error.
        errno: Errno,
    },
    /// No free address range of the requested size lies within ±2 GiB of the text.
    #[error("no free {len}-byte range within ±2 GiB of text {text_start:#x}..{text_end:#x} in pid {pid}")]
    NoNearGap {
        /// The process.
        pid: i32,
        /// Requested size.
        len: u64,
        /// Start of the text that must be reachable.
        text_start: u64,
        /// End of the text.
        text_end: u64,
    },
    /// The kernel placed a mapping somewhere other than requested, or it is not what we mapped.
    #[error("mapping at {addr:#x} in pid {pid} is wrong: {what}")]
    BadMapping {
        /// The process.
        pid: i32,
        /// The mapping address.
        addr: u64,
        /// What is wrong.
        what: String,
    },
    /// The bytes at a patch site are not the ones expected (someone else patched it, or the wrong
    /// binary).
    #[error("bytes at {addr:#x} in pid {pid} are {found:02x?}, expected {expected:02x?}; refusing to patch")]
    UnexpectedBytes {
        /// The process.
        pid: i32,
        /// The patch address.
        addr: u64,
        /// What should be there.
        expected: Vec<u8>,
        /// What is there.
        found: Vec<u8>,
    },
    /// A patch is malformed (lengths differ, overlapping patches, ...).
    #[error("invalid patch at {addr:#x}: {what}")]
    InvalidPatch {
        /// The patch address.
        addr: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A thread could not be moved out of a range about to be patched.
    #[error(
        "tid {tid} of pid {pid} stays at {rip:#x} inside the patch at {addr:#x}; refusing to patch"
    )]
    ThreadInPatch {
        /// The process.
        pid: i32,
        /// The thread.
        tid: i32,
        /// Its instruction pointer.
        rip: u64,
        /// The patch it is inside.
        addr: u64,
    },
    /// A thread appears to be inside a signal handler, whose saved context could point into a
    /// patch range, and did not leave it after retries.
    #[error("tid {tid} of pid {pid} stays in a Go signal handler (all signals blocked, rip {rip:#x}); refusing to patch")]
    ThreadInSignalHandler {
        /// The process.
        pid: i32,
        /// The thread.
        tid: i32,
        /// Its instruction pointer.
        rip: u64,
    },
    /// The program to launch could not be started.
    #[error("cannot start {program}: {what}")]
    Launch {
        /// The program.
        program: PathBuf,
        /// What failed.
        what: String,
    },
    /// The shared ring is not usable.
    #[error("shared ring: {0}")]
    Ring(String),
}

impl Error {
    /// Builds a [`Error::Ptrace`].
    pub(crate) fn ptrace(request: &'static str, pid: i32, tid: i32, errno: Errno) -> Self {
        Error::Ptrace {
            request,
            pid,
            tid,
            errno,
        }
    }
}

impl Error {
    /// This error, or [`Error::ProcessExited`] when process `pid` has meanwhile exited: a target
    /// killed in the middle of an operation makes reads, writes and waits fail in many ways,
    /// and the user needs to hear the cause, not the symptom.
    pub fn or_exited(self, pid: i32) -> Error {
        if matches!(self, Error::ProcessExited { .. }) || !crate::threads::thread_dead(pid, pid) {
            return self;
        }
        Error::ProcessExited {
            pid,
            status: "exited while gohook was attached".into(),
        }
    }
}
