//! Target memory: reads through `process_vm_readv` (an unmapped address is an error, never a
//! crash), writes through `/proc/<pid>/mem` with a `PTRACE_POKEDATA` fallback. Both write paths
//! use the kernel's FOLL_FORCE, so they can write read-only/executable private mappings (the
//! kernel copies the page on write): code never has to be made writable.

use std::fs::{File, OpenOptions};
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;

use gostrings::memory::{MemError, MemoryReader};
use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// How a write reached the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    /// `pwrite` on `/proc/<pid>/mem`.
    ProcMem,
    /// Word-by-word `PTRACE_POKEDATA` (used when `/proc/<pid>/mem` refuses, e.g. with
    /// `proc_mem.force_override=never`).
    PokeData,
}

/// Reads and writes one process's memory.
#[derive(Debug)]
pub struct ProcessMemory {
    pid: i32,
    mem: Option<File>,
    poke_tid: Option<i32>,
}

impl ProcessMemory {
    /// Memory of `pid`; writes go through `/proc/<pid>/mem` only.
    pub fn new(pid: i32) -> Self {
        let mem = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .ok();
        ProcessMemory {
            pid,
            mem,
            poke_tid: None,
        }
    }

    /// Memory of `pid` whose writes may fall back to `PTRACE_POKEDATA` through `tid`, a thread
    /// we trace and that is ptrace-stopped for as long as this value is used.
    pub fn with_poke_tid(pid: i32, tid: i32) -> Self {
        ProcessMemory {
            poke_tid: Some(tid),
            ..Self::new(pid)
        }
    }

    /// The same, with `/proc/<pid>/mem` writes disabled: every write goes through
    /// `PTRACE_POKEDATA` (for systems booted with `proc_mem.force_override=never`, and to test
    /// that path).
    pub fn poke_only(mut self) -> Self {
        self.mem = None;
        self
    }

    /// The process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Reads exactly `buf.len()` bytes at `addr`.
    pub fn read_bytes(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let fail = |errno| Error::ReadMemory {
            pid: self.pid,
            addr,
            len: buf.len(),
            errno,
        };
        if buf.is_empty() {
            return Ok(());
        }
        if addr.checked_add(buf.len() as u64).is_none() {
            return Err(fail(Errno::EFAULT));
        }
        let len = buf.len();
        let remote = [RemoteIoVec {
            base: addr as usize,
            len,
        }];
        let mut done = 0usize;
        // process_vm_readv stops at the first unreadable page; a short read means "not mapped".
        while done < len {
            let remote = [RemoteIoVec {
                base: remote[0].base + done,
                len: len - done,
            }];
            let mut local = [IoSliceMut::new(&mut buf[done..])];
            match process_vm_readv(Pid::from_raw(self.pid), &mut local, &remote) {
                Ok(0) => {
                    return Err(Error::ReadMemory {
                        pid: self.pid,
                        addr,
                        len,
                        errno: Errno::EFAULT,
                    })
                }
                Ok(n) => done += n,
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(Error::ReadMemory {
                        pid: self.pid,
                        addr,
                        len,
                        errno,
                    })
                }
            }
        }
        Ok(())
    }

    /// Reads `len` bytes into a new vector.
    pub fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_bytes(addr, &mut v)?;
        Ok(v)
    }

    /// Writes `bytes` at `addr`, including into read-only or executable private mappings.
    /// Returns the method that worked.
    pub fn write_bytes(&self, addr: u64, bytes: &[u8]) -> Result<WriteMethod> {
        let len = bytes.len();
        let mut last = Errno::EIO;
        if let Some(mem) = &self.mem {
            match write_all_at(mem, bytes, addr) {
                Ok(()) => return Ok(WriteMethod::ProcMem),
                Err(e) => last = e,
            }
        }
        if let Some(tid) = self.poke_tid {
            match poke_bytes(tid, addr, bytes) {
                Ok(()) => return Ok(WriteMethod::PokeData),
                Err(e) => last = e,
            }
        }
        Err(Error::WriteMemory {
            pid: self.pid,
            addr,
            len,
            errno: last,
        })
    }
}

fn write_all_at(mem: &File, bytes: &[u8], addr: u64) -> std::result::Result<(), Errno> {
    let mut done = 0usize;
    while done < bytes.len() {
        match mem.write_at(&bytes[done..], addr + done as u64) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }
    Ok(())
}

/// Writes with aligned word read-modify-writes, so bytes around the range are preserved.
fn poke_bytes(tid: i32, addr: u64, bytes: &[u8]) -> std::result::Result<(), Errno> {
    let pid = Pid::from_raw(tid);
    let end = addr.checked_add(bytes.len() as u64).ok_or(Errno::EFAULT)?;
    let mut word_addr = addr & !7;
    while word_addr < end {
        let old = ptrace::read(pid, word_addr as ptrace::AddressType)? as u64;
        let mut w = old.to_le_bytes();
        for (i, b) in w.iter_mut().enumerate() {
            let a = word_addr + i as u64;
            if a >= addr && a < end {
                *b = bytes[(a - addr) as usize];
            }
        }
        let new = u64::from_le_bytes(w);
        if new != old {
            ptrace::write(pid, word_addr as ptrace::AddressType, new as libc::c_long)?;
        }
        word_addr += 8;
    }
    Ok(())
}

impl MemoryReader for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::result::Result<(), MemError> {
        let len = buf.len();
        self.read_bytes(addr, buf).map_err(|e| match e {
            Error::ReadMemory {
                errno: Errno::EFAULT | Errno::EIO,
                ..
            } => MemError::Unmapped { addr, len },
            other => MemError::Process(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_and_rejects_unmapped_addresses() {
        let me = ProcessMemory::new(std::process::id() as i32);
        let data: Vec<u8> = (0..=255u8).collect();
        let got = me.read_vec(data.as_ptr() as u64, data.len()).unwrap();
        assert_eq!(got, data);
        assert!(matches!(
            me.read_u64(8),
            Err(MemError::Unmapped { addr: 8, len: 8 })
        ));
        assert!(me.read_u64(u64::MAX - 3).is_err());
    }
}
