//! Raw syscalls injected into a stopped thread of the target: no libc, no code of ours needed
//! beforehand, so it works on static Go binaries and cgo ones alike.
//!
//! The thread's registers are saved and `orig_rax` is set to -1 so the kernel does not apply
//! syscall-restart logic to the register set we give it. The thread is then driven with
//! `PTRACE_SYSCALL` to the syscall-entry and the syscall-exit stop, where RAX holds the result,
//! and its registers are put back, with one deliberate change: if it had been interrupted inside
//! a restartable syscall (`rax` = -ERESTART*), we perform the kernel's restart rewrite ourselves
//! (rip -= 2, rax = orig_rax or `restart_syscall`, orig_rax = -1), because the thread now
//! resumes from our syscall-exit stop, a path on which the kernel's own rewrite would not run.
//!
//! Two ways to make the call:
//! - **Through a self-restoring stub** ([`Remote::with_scratch`], the normal case when attaching):
//!   a stub written over code that never runs again ([`Scratch`], `runtime.rt0_go`) saves the
//!   registers the call clobbers, makes it, restores them and jumps back. The thread enters it
//!   with its own registers, so if gohook is killed at any instant the kernel detaches a thread
//!   that completes the call once and returns to its own code unchanged.
//! - **Through a bare gadget**, an existing `syscall` instruction (in the vDSO or the program's
//!   text, found by decoding at real instruction boundaries) with the call's number and
//!   arguments in the thread's registers. Between the syscall-exit stop and the restore, the
//!   thread holds foreign registers: a tracer killed then leaves it running with them. Used only
//!   where no scratch code is available: a process caught before its runtime started, or the exec
//!   stop of `gohook run`, whose target dies with gohook (`PTRACE_O_EXITKILL`).

use gostrings::ElfFile;
use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use nix::errno::Errno;
use nix::sys::wait::WaitStatus;

use crate::error::{Error, Result};
use crate::maps::{self, Mapping};
use crate::mem::ProcessMemory;
use crate::threads::{resume, PtraceResume, StopKind, World};

const ERESTARTSYS: i64 = 512;
const ERESTARTNOINTR: i64 = 513;
const ERESTARTNOHAND: i64 = 514;
const ERESTART_RESTARTBLOCK: i64 = 516;

/// Where a gadget was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GadgetSource {
    /// Given by the caller.
    Caller,
    /// The vDSO's `.text`.
    Vdso,
    /// The main executable's `.text`.
    Executable,
}

/// A `syscall` instruction in the target's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gadget {
    /// Address of the `0f 05`.
    pub addr: u64,
    /// Where it came from.
    pub source: GadgetSource,
}

/// Finds a `syscall` instruction at a real instruction boundary: first in the vDSO (decoding
/// its `.text` from the start), then in the main executable's `.text`. The two bytes are checked
/// in live memory before the gadget is returned.
pub fn find_gadget(pid: i32) -> Result<Gadget> {
    find_gadget_in(pid, GadgetSource::Vdso)
        .or_else(|_| find_gadget_in(pid, GadgetSource::Executable))
}

/// Finds a gadget in one place only (`Caller` finds nothing).
pub fn find_gadget_in(pid: i32, source: GadgetSource) -> Result<Gadget> {
    find_gadget_in_inner(pid, source).map_err(|e| e.or_exited(pid))
}

fn find_gadget_in_inner(pid: i32, source: GadgetSource) -> Result<Gadget> {
    let maps = maps::read_maps(pid)?;
    let mem = ProcessMemory::new(pid);
    let addr = match source {
        GadgetSource::Vdso => maps
            .iter()
            .find(|m| m.path == "[vdso]" && m.exec)
            .and_then(|vdso| vdso_gadget(&mem, vdso)),
        GadgetSource::Executable => exe_gadget(pid, &maps, &mem),
        GadgetSource::Caller => None,
    };
    addr.map(|addr| Gadget { addr, source })
        .ok_or(Error::NoSyscallGadget { pid })
}

fn vdso_gadget(mem: &ProcessMemory, vdso: &Mapping) -> Option<u64> {
    if vdso.len() > 1 << 20 {
        return None;
    }
    let image = mem.read_vec(vdso.start, vdso.len() as usize).ok()?;
    let elf = ElfFile::from_bytes(image).ok()?;
    let text = elf.section(".text")?.clone();
    let bytes = elf.section_data(&text)?;
    // The vDSO is linked at 0 (or at its link base); its image is mapped from offset 0.
    let off = first_syscall(bytes, text.addr)? - text.addr + text_file_offset(&elf, text.addr)?;
    let addr = vdso.start.checked_add(off)?;
    verify(mem, addr).then_some(addr)
}

fn exe_gadget(pid: i32, maps: &[Mapping], mem: &ProcessMemory) -> Option<u64> {
    let elf = ElfFile::open(format!("/proc/{pid}/exe")).ok()?;
    let text = elf.section(".text")?.clone();
    let bytes = elf.section_data(&text)?;
    let link = first_syscall(bytes, text.addr)?;
    let file_off = link - text.addr + text_file_offset(&elf, text.addr)?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_string_lossy();
    let m = maps.iter().find(|m| {
        m.exec && m.path.starts_with(&*exe) && file_off >= m.offset && file_off - m.offset < m.len()
    })?;
    let addr = m.start + (file_off - m.offset);
    verify(mem, addr).then_some(addr)
}

/// File offset of link-time address `addr` through the PT_LOAD segment containing it.
fn text_file_offset(elf: &ElfFile, addr: u64) -> Option<u64> {
    let seg = elf
        .segments
        .iter()
        .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)?;
    Some(addr - seg.vaddr + seg.offset)
}

/// Decodes `code` (at `ip`) from its first byte and returns the first `syscall` instruction.
pub fn first_syscall(code: &[u8], ip: u64) -> Option<u64> {
    let mut dec = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    while dec.can_decode() {
        let ins = dec.decode();
        if ins.mnemonic() == Mnemonic::Syscall {
            return Some(ins.ip());
        }
    }
    None
}

fn verify(mem: &ProcessMemory, addr: u64) -> bool {
    matches!(mem.read_vec(addr, 2).as_deref(), Ok([0x0f, 0x05]))
}

/// Code that no thread of the target will run again (such as `runtime.rt0_go` once the Go
/// runtime has started), lent to the injector for its self-restoring syscall stub
/// ([`trampolines::syscall_stub`]). With it, a tracer killed at any instant of an injected
/// syscall leaves the thread coherent; without it, there is a window between the syscall's exit
/// stop and the restoring of the thread's registers.
#[derive(Debug, Clone)]
pub struct Scratch {
    /// First byte of the lent code.
    pub addr: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Code that never relies on the System V red zone (Go's own text): a thread stopped there
    /// is not given the 128-byte gap below its stack pointer.
    pub no_red_zone: std::ops::Range<u64>,
}

/// Runs syscalls inside the target on one stopped thread.
#[derive(Debug, Clone)]
pub struct Remote {
    tid: i32,
    gadget: Gadget,
    scratch: Option<Lent>,
}

/// A [`Scratch`] in use, with the bytes to put back.
#[derive(Debug, Clone)]
struct Lent {
    area: Scratch,
    original: Vec<u8>,
}

impl Remote {
    /// Picks a quiet stopped thread of `world` and a gadget (the caller's, or [`find_gadget`]).
    pub fn new(world: &World, gadget: Option<u64>) -> Result<Remote> {
        Self::new_inner(world, gadget).map_err(|e| e.or_exited(world.pid()))
    }

    fn new_inner(world: &World, gadget: Option<u64>) -> Result<Remote> {
        let pid = world.pid();
        let tid =
            world
                .quiet_thread()
                .ok_or(Error::ptrace("pick thread", pid, pid, Errno::ESRCH))?;
        let gadget = match gadget {
            Some(addr) => {
                if !verify(&world.memory(), addr) {
                    return Err(Error::NoSyscallGadget { pid });
                }
                Gadget {
                    addr,
                    source: GadgetSource::Caller,
                }
            }
            None => find_gadget(pid)?,
        };
        Ok(Remote {
            tid,
            gadget,
            scratch: None,
        })
    }

    /// The same, running its syscalls on thread `tid` (which must be stopped).
    pub fn on_thread(world: &World, tid: i32, gadget: Option<u64>) -> Result<Remote> {
        let mut r = Self::new(world, gadget)?;
        if world.stop_kind(tid).is_none() {
            return Err(Error::ptrace("pick thread", world.pid(), tid, Errno::ESRCH));
        }
        r.tid = tid;
        Ok(r)
    }

    /// Runs later syscalls through a self-restoring stub written over `area` (see [`Scratch`])
    /// instead of the bare gadget. Refused if a thread is stopped inside `area` or the area is
    /// too small. Call [`Remote::release`] when done to put the area's bytes back.
    pub fn with_scratch(mut self, world: &World, area: Scratch) -> Result<Remote> {
        let pid = world.pid();
        let longest = stub_at(pid, area.addr, u64::MAX, [u64::MAX; 6], u64::MAX, true)?;
        if (longest.code.len() as u64) > area.len {
            return Err(Error::BadMapping {
                pid,
                addr: area.addr,
                what: format!(
                    "{} bytes lent for the syscall stub, {} needed",
                    area.len,
                    longest.code.len()
                ),
            });
        }
        for tid in world.tids() {
            let rip = world.regs(tid)?.rip;
            if rip >= area.addr && rip - area.addr < area.len {
                return Err(Error::BadMapping {
                    pid,
                    addr: area.addr,
                    what: format!("thread {tid} is running the code lent for the syscall stub"),
                });
            }
        }
        let original = world.memory().read_vec(area.addr, area.len as usize)?;
        self.scratch = Some(Lent { area, original });
        Ok(self)
    }

    /// Whether syscalls run through the self-restoring stub.
    pub fn has_scratch(&self) -> bool {
        self.scratch.is_some()
    }

    /// Puts back the bytes of the area lent by [`Remote::with_scratch`] (no-op without one).
    /// The stub is idle between syscalls, so this is safe whenever every thread is stopped.
    pub fn release(&mut self, world: &World) -> Result<()> {
        if let Some(lent) = self.scratch.take() {
            world.memory().write_bytes(lent.area.addr, &lent.original)?;
        }
        Ok(())
    }

    /// The thread that runs the syscalls.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// The gadget in use.
    pub fn gadget(&self) -> Gadget {
        self.gadget
    }

    /// Runs syscall `nr` with `args` and returns the raw RAX (negative errno on failure).
    pub fn raw(
        &self,
        world: &mut World,
        name: &'static str,
        nr: i64,
        args: [u64; 6],
    ) -> Result<i64> {
        let tid = self.tid;
        self.finish_pending_syscall(world)?;
        let saved = world.regs(tid)?;
        // What the thread resumes with afterwards, and what it holds while it is ours.
        let back = restart_fixup(saved);
        let (regs, syscall_at) = match &self.scratch {
            Some(lent) => {
                // The thread enters the stub with its own registers: only RIP differs.
                let skip_red_zone = !lent.area.no_red_zone.contains(&back.rip);
                let stub = stub_at(
                    world.pid(),
                    lent.area.addr,
                    nr as u64,
                    args,
                    back.rip,
                    skip_red_zone,
                )?;
                world.memory().write_bytes(lent.area.addr, &stub.code)?;
                let mut regs = back;
                regs.rip = lent.area.addr;
                (regs, stub.syscall_at)
            }
            None => {
                let mut regs = saved;
                regs.rip = self.gadget.addr;
                regs.orig_rax = u64::MAX;
                regs.rax = nr as u64;
                regs.rdi = args[0];
                regs.rsi = args[1];
                regs.rdx = args[2];
                regs.r10 = args[3];
                regs.r8 = args[4];
                regs.r9 = args[5];
                (regs, self.gadget.addr)
            }
        };
        world.set_regs(tid, &regs)?;
        let outcome = self.drive(world, name, syscall_at);
        // Whatever happened, put the thread's own registers back (if it still exists).
        let restored = world.set_regs(tid, &back);
        let rax = outcome?;
        restored?;
        Ok(rax)
    }

    /// A thread stopped at `PTRACE_EVENT_EXEC` or `PTRACE_EVENT_CLONE` is still inside that
    /// syscall: the kernel would overwrite RAX with its return value after we set it. Run it to
    /// that syscall's exit stop first, so the saved registers are the ones user code will see.
    fn finish_pending_syscall(&self, world: &mut World) -> Result<()> {
        let (pid, tid) = (world.pid(), self.tid);
        if !matches!(world.stop_kind(tid), Some(StopKind::Exec | StopKind::Clone)) {
            return Ok(());
        }
        for _ in 0..8 {
            world.take_for_running(tid)?;
            resume(PtraceResume::Syscall, tid, 0)
                .map_err(|e| Error::ptrace("syscall", pid, tid, e))?;
            match world.wait_next(tid, "leave the exec/clone syscall")? {
                WaitStatus::PtraceSyscall(_) => return Ok(()),
                WaitStatus::Stopped(..) => world.defer_held(tid),
                _ => {}
            }
        }
        Err(Error::UnexpectedStop {
            pid,
            tid,
            doing: "leaving exec/clone",
            status: "no syscall-exit stop".into(),
        })
    }

    /// Drives the thread from the gadget to the syscall-exit stop and returns RAX there.
    fn drive(&self, world: &mut World, name: &'static str, syscall_at: u64) -> Result<i64> {
        let (pid, tid) = (world.pid(), self.tid);
        let mut syscall_stops = 0;
        for _ in 0..32 {
            world.take_for_running(tid)?;
            resume(PtraceResume::Syscall, tid, 0)
                .map_err(|e| Error::ptrace("syscall", pid, tid, e))?;
            match world.wait_next(tid, "finish an injected syscall")? {
                WaitStatus::PtraceSyscall(_) => {
                    let regs = world.regs(tid)?;
                    // Both stops of our syscall are at the instruction after it.
                    if regs.rip != syscall_at + 2 {
                        return Err(Error::UnexpectedStop {
                            pid,
                            tid,
                            doing: "injected syscall",
                            status: format!(
                                "syscall stop at {:#x}, expected {:#x}",
                                regs.rip,
                                syscall_at + 2
                            ),
                        });
                    }
                    syscall_stops += 1;
                    if syscall_stops == 2 {
                        return Ok(regs.rax as i64);
                    }
                }
                WaitStatus::Stopped(_, nix::sys::signal::Signal::SIGSYS) => {
                    // Ours: a seccomp filter trapped the syscall. Do not let the target see it.
                    world.mark_own_trap(tid);
                    return Err(Error::SeccompBlocked {
                        call: name,
                        pid,
                        tid,
                    });
                }
                WaitStatus::Stopped(..) => world.defer_held(tid),
                _ => {}
            }
        }
        Err(Error::UnexpectedStop {
            pid,
            tid,
            doing: "injected syscall",
            status: "no syscall-exit stop".into(),
        })
    }

    fn checked(
        &self,
        world: &mut World,
        name: &'static str,
        nr: i64,
        args: [u64; 6],
    ) -> Result<u64> {
        let r = self.raw(world, name, nr, args)?;
        if (-4095..0).contains(&r) {
            return Err(Error::InjectedSyscall {
                call: name,
                pid: world.pid(),
                tid: self.tid,
                errno: Errno::from_raw(-r as i32),
            });
        }
        Ok(r as u64)
    }

    /// `mmap(addr, len, prot, flags, fd, offset)` in the target; returns the mapping address.
    #[allow(clippy::too_many_arguments, reason = "mirrors mmap(2) plus the world")]
    pub fn mmap(
        &self,
        world: &mut World,
        addr: u64,
        len: u64,
        prot: i32,
        flags: i32,
        fd: i32,
        offset: u64,
    ) -> Result<u64> {
        self.checked(
            world,
            "mmap",
            libc::SYS_mmap,
            [
                addr,
                len,
                prot as u64,
                flags as u64,
                fd as i64 as u64,
                offset,
            ],
        )
    }

    /// `mprotect(addr, len, prot)` in the target.
    pub fn mprotect(&self, world: &mut World, addr: u64, len: u64, prot: i32) -> Result<()> {
        self.checked(
            world,
            "mprotect",
            libc::SYS_mprotect,
            [addr, len, prot as u64, 0, 0, 0],
        )
        .map(drop)
    }

    /// `munmap(addr, len)` in the target.
    pub fn munmap(&self, world: &mut World, addr: u64, len: u64) -> Result<()> {
        self.checked(world, "munmap", libc::SYS_munmap, [addr, len, 0, 0, 0, 0])
            .map(drop)
    }

    /// `memfd_create(name, flags)` in the target; `name_addr` is a NUL-terminated string already
    /// in target memory. Returns the target's fd.
    pub fn memfd_create(&self, world: &mut World, name_addr: u64, flags: u32) -> Result<i32> {
        self.checked(
            world,
            "memfd_create",
            libc::SYS_memfd_create,
            [name_addr, flags as u64, 0, 0, 0, 0],
        )
        .map(|fd| fd as i32)
    }

    /// `ftruncate(fd, len)` in the target.
    pub fn ftruncate(&self, world: &mut World, fd: i32, len: u64) -> Result<()> {
        self.checked(
            world,
            "ftruncate",
            libc::SYS_ftruncate,
            [fd as u64, len, 0, 0, 0, 0],
        )
        .map(drop)
    }

    /// `close(fd)` in the target.
    pub fn close(&self, world: &mut World, fd: i32) -> Result<()> {
        self.checked(world, "close", libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])
            .map(drop)
    }
}

/// The self-restoring stub for syscall `nr(args…)` placed at `addr`, returning to `resume`.
fn stub_at(
    pid: i32,
    addr: u64,
    nr: u64,
    args: [u64; 6],
    resume: u64,
    skip_red_zone: bool,
) -> Result<trampolines::syscall_stub::SyscallStub> {
    trampolines::syscall_stub::syscall_stub(addr, nr, args, resume, skip_red_zone).map_err(|e| {
        Error::BadMapping {
            pid,
            addr,
            what: format!("syscall stub: {e}"),
        }
    })
}

/// The registers to put back after an injected syscall. If the thread had been stopped inside a
/// restartable syscall, apply the kernel's restart rewrite (arch/x86 `arch_do_signal_or_restart`
/// with no handler) so the syscall is re-issued, and clear `orig_rax` so it is not rewritten twice.
pub fn restart_fixup(mut regs: libc::user_regs_struct) -> libc::user_regs_struct {
    if (regs.orig_rax as i64) >= 0 {
        match -(regs.rax as i64) {
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                regs.rax = regs.orig_rax;
                regs.rip = regs.rip.wrapping_sub(2);
            }
            ERESTART_RESTARTBLOCK => {
                regs.rax = libc::SYS_restart_syscall as u64;
                regs.rip = regs.rip.wrapping_sub(2);
            }
            _ => {}
        }
    }
    regs.orig_rax = u64::MAX;
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> libc::user_regs_struct {
        // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
        unsafe { std::mem::zeroed() }
    }

    #[test]
    fn interrupted_futex_is_rewound_to_reissue_the_syscall() {
        let mut r = regs();
        r.orig_rax = 202; // futex
        r.rax = (-ERESTARTSYS) as u64;
        r.rip = 0x401002;
        let f = restart_fixup(r);
        assert_eq!((f.rax, f.rip, f.orig_rax), (202, 0x401000, u64::MAX));
    }

    #[test]
    fn interrupted_nanosleep_restarts_through_restart_syscall() {
        let mut r = regs();
        r.orig_rax = 35;
        r.rax = (-ERESTART_RESTARTBLOCK) as u64;
        r.rip = 0x1002;
        let f = restart_fixup(r);
        assert_eq!((f.rax, f.rip), (libc::SYS_restart_syscall as u64, 0x1000));
    }

    #[test]
    fn user_code_and_finished_syscalls_are_left_alone() {
        let mut r = regs();
        r.orig_rax = u64::MAX;
        r.rax = (-ERESTARTSYS) as u64; // not a syscall: rax is just a value
        r.rip = 0x5000;
        assert_eq!(restart_fixup(r).rip, 0x5000);
        let mut r = regs();
        r.orig_rax = 0;
        r.rax = 17; // read returned 17
        r.rip = 0x6000;
        let f = restart_fixup(r);
        assert_eq!((f.rax, f.rip, f.orig_rax), (17, 0x6000, u64::MAX));
    }

    #[test]
    fn first_syscall_decodes_from_an_instruction_boundary() {
        // mov eax, 0x050f0000 hides "0f 05" inside an immediate; the real syscall follows.
        let code = [0xb8, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x05, 0xc3];
        assert_eq!(first_syscall(&code, 0x1000), Some(0x1005));
        assert_eq!(first_syscall(&[0x90, 0xc3], 0), None);
    }

    #[test]
    fn our_own_vdso_has_a_gadget() {
        let g = find_gadget(std::process::id() as i32).unwrap();
        let mem = ProcessMemory::new(std::process::id() as i32);
        assert_eq!(mem.read_vec(g.addr, 2).unwrap(), [0x0f, 0x05]);
    }
}
