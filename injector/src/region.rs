//! The trampoline region: anonymous memory mapped inside the target within ±2 GiB of its text,
//! `PROT_READ|PROT_EXEC` from birth and never writable and executable at once. Code is written
//! through `/proc/<pid>/mem` (FOLL_FORCE), falling back to `PTRACE_POKEDATA`, and as a last
//! resort to an injected `mprotect` RW → write → `mprotect` back.

use crate::error::{Error, Result};
use crate::maps::{self, Mapping};
use crate::mem::WriteMethod;
use crate::syscall::Remote;
use crate::threads::World;

/// How [`write_code`] got bytes into non-writable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeWriteMethod {
    /// A forced write (`/proc/<pid>/mem` or `PTRACE_POKEDATA`); protections never changed.
    Forced(WriteMethod),
    /// Injected `mprotect(RW)`, write, `mprotect` back to the original protection.
    Mprotect,
}

/// An executable region in the target reserved for trampolines. It is never unmapped: a thread
/// may still be executing in it after the hooks are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRegion {
    /// First address.
    pub addr: u64,
    /// Length in bytes (page multiple).
    pub len: u64,
    /// The text range it was placed near.
    pub text: (u64, u64),
}

impl CodeRegion {
    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.addr + self.len
    }
}

/// The main executable's text range in `pid` (first to last executable mapping of the file).
pub fn main_text(pid: i32) -> Result<(u64, u64)> {
    let maps = maps::read_maps(pid)?;
    maps::main_text(pid, &maps).ok_or_else(|| Error::BadMapping {
        pid,
        addr: 0,
        what: "no executable mapping of the main program".into(),
    })
}

/// Maps `len` bytes `PROT_READ|PROT_EXEC` in a free gap within ±2 GiB of `text` (the main
/// program's text if `None`), with `MAP_FIXED_NOREPLACE` at the chosen address, and checks the
/// result in `/proc/<pid>/maps`: right place, `r-x`, never writable.
pub fn map_code_near(
    world: &mut World,
    remote: &Remote,
    text: Option<(u64, u64)>,
    len: u64,
) -> Result<CodeRegion> {
    let pid = world.pid();
    map_code_near_inner(world, remote, text, len).map_err(|e| e.or_exited(pid))
}

fn map_code_near_inner(
    world: &mut World,
    remote: &Remote,
    text: Option<(u64, u64)>,
    len: u64,
) -> Result<CodeRegion> {
    let pid = world.pid();
    let text = match text {
        Some(t) => t,
        None => main_text(pid)?,
    };
    let maps = maps::read_maps(pid)?;
    let len = (len.max(1) + 4095) & !4095;
    let hint = maps::near_gap(&maps, text, len, maps::mmap_min_addr()).ok_or(Error::NoNearGap {
        pid,
        len,
        text_start: text.0,
        text_end: text.1,
    })?;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
    let addr = remote.mmap(
        world,
        hint,
        len,
        libc::PROT_READ | libc::PROT_EXEC,
        flags,
        -1,
        0,
    )?;
    if addr != hint {
        // Kernels before 4.17 ignore MAP_FIXED_NOREPLACE and treat the address as a hint.
        let _ = remote.munmap(world, addr, len);
        return Err(Error::BadMapping {
            pid,
            addr,
            what: format!("asked for {hint:#x}, kernel placed it elsewhere"),
        });
    }
    let region = CodeRegion { addr, len, text };
    check_mapping(
        pid,
        addr,
        len,
        |m| m.read && m.exec && !m.write && !m.shared,
        "r-xp",
    )?;
    if !maps::within_reach(addr, len, text) {
        return Err(Error::BadMapping {
            pid,
            addr,
            what: "not within ±2 GiB of the text".into(),
        });
    }
    Ok(region)
}

/// Checks that `[addr, addr+len)` is covered by mappings satisfying `ok`.
pub fn check_mapping(
    pid: i32,
    addr: u64,
    len: u64,
    ok: impl Fn(&Mapping) -> bool,
    want: &str,
) -> Result<()> {
    let maps = maps::read_maps(pid)?;
    let mut at = addr;
    while at < addr + len {
        let m = maps
            .iter()
            .find(|m| m.contains(at))
            .ok_or_else(|| Error::BadMapping {
                pid,
                addr: at,
                what: "not mapped".into(),
            })?;
        if !ok(m) {
            return Err(Error::BadMapping {
                pid,
                addr: at,
                what: format!("mapped {} , expected {want}", m.perms()),
            });
        }
        at = m.end;
    }
    Ok(())
}

/// Writes `bytes` into code at `addr` (trampoline region or program text) without ever making
/// it writable and executable at once. Every thread must be stopped (`world` proves it).
pub fn write_code(
    world: &mut World,
    remote: Option<&Remote>,
    addr: u64,
    bytes: &[u8],
) -> Result<CodeWriteMethod> {
    let mem = world.memory();
    let first_err = match mem.write_bytes(addr, bytes) {
        Ok(m) => return Ok(CodeWriteMethod::Forced(m)),
        Err(e) => e,
    };
    let Some(remote) = remote else {
        return Err(first_err);
    };
    // Last resort: drop X while writing, then restore the original protection.
    let pid = world.pid();
    let maps = maps::read_maps(pid)?;
    let m = maps.iter().find(|m| m.contains(addr)).ok_or(first_err)?;
    let end = addr + bytes.len() as u64;
    if end > m.end {
        return Err(Error::BadMapping {
            pid,
            addr,
            what: "code write spans two mappings".into(),
        });
    }
    let page = addr & !4095;
    let span = ((end + 4095) & !4095) - page;
    let prot =
        (if m.read { libc::PROT_READ } else { 0 }) | (if m.exec { libc::PROT_EXEC } else { 0 });
    remote.mprotect(world, page, span, libc::PROT_READ | libc::PROT_WRITE)?;
    let written = write_via_readwrite(pid, addr, bytes);
    remote.mprotect(world, page, span, prot)?;
    written?;
    Ok(CodeWriteMethod::Mprotect)
}

fn write_via_readwrite(pid: i32, addr: u64, bytes: &[u8]) -> Result<()> {
    use nix::sys::uio::{process_vm_writev, RemoteIoVec};
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: bytes.len(),
    }];
    let local = [std::io::IoSlice::new(bytes)];
    match process_vm_writev(nix::unistd::Pid::from_raw(pid), &local, &remote) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(_) => Err(Error::WriteMemory {
            pid,
            addr,
            len: bytes.len(),
            errno: nix::errno::Errno::EFAULT,
        }),
        Err(errno) => Err(Error::WriteMemory {
            pid,
            addr,
            len: bytes.len(),
            errno,
        }),
    }
}
