//! Memory shared between the target and gohook: a memfd created *inside* the target (so the
//! target owns it and nothing depends on gohook's file descriptors), mapped `MAP_SHARED` read-write
//! there, then fetched by gohook with `pidfd_getfd` (Linux ≥ 5.6) or `/proc/<pid>/fd/N` and
//! mapped locally. The target's fd is closed afterwards; the mapping keeps the memory alive. The
//! region is never unmapped from the target: trampolines may still write to it.

use std::fs::{File, OpenOptions};
use std::os::fd::{FromRawFd, OwnedFd};

use memmap2::MmapMut;
use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::maps;
use crate::region;
use crate::syscall::Remote;
use crate::threads::World;

/// How gohook got hold of the target's memfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdFetch {
    /// `pidfd_open` + `pidfd_getfd`.
    PidfdGetfd,
    /// `open("/proc/<pid>/fd/N")`.
    ProcFd,
}

/// A read-write region mapped both in the target and in gohook.
#[derive(Debug)]
pub struct SharedRegion {
    /// Address of the region in the target.
    pub target_addr: u64,
    /// Size in bytes.
    pub len: u64,
    /// How the fd was obtained.
    pub fetch: FdFetch,
    /// gohook's view of the same bytes.
    pub local: MmapMut,
}

/// Creates a memfd called `name` in the target, sizes it to `len`, maps it `MAP_SHARED` RW in the
/// target (within ±2 GiB of `near` when given and possible, so trampolines can address it
/// RIP-relatively; anywhere otherwise) and in gohook.
pub fn map_shared(
    world: &mut World,
    remote: &Remote,
    name: &str,
    len: u64,
    near: Option<(u64, u64)>,
) -> Result<SharedRegion> {
    let pid = world.pid();
    map_shared_inner(world, remote, name, len, near).map_err(|e| e.or_exited(pid))
}

fn map_shared_inner(
    world: &mut World,
    remote: &Remote,
    name: &str,
    len: u64,
    near: Option<(u64, u64)>,
) -> Result<SharedRegion> {
    let pid = world.pid();
    let len = (len.max(1) + 4095) & !4095;
    let fd = create_memfd(world, remote, name)?;
    let result = (|| {
        remote.ftruncate(world, fd, len)?;
        let target_addr = map_in_target(world, remote, fd, len, near)?;
        let (file, fetch) = fetch_fd(pid, fd)?;
        // SAFETY: the file is a memfd of exactly `len` bytes that nobody truncates (only the
        // target holds it, and its fd is closed below); concurrent writes by the target are the
        // point of the mapping and are read with volatile/atomic accesses by the ring consumer.
        let local = unsafe { MmapMut::map_mut(&file) }.map_err(|e| Error::LocalSyscall {
            call: "mmap",
            pid,
            errno: io_errno(&e),
        })?;
        if local.len() as u64 != len {
            return Err(Error::Ring(format!(
                "local mapping is {} bytes, expected {len}",
                local.len()
            )));
        }
        Ok(SharedRegion {
            target_addr,
            len,
            fetch,
            local,
        })
    })();
    // The target never needs the fd again (its mapping holds the memory).
    let closed = remote.close(world, fd);
    let region = result?;
    closed?;
    Ok(region)
}

fn create_memfd(world: &mut World, remote: &Remote, name: &str) -> Result<i32> {
    // Scratch page for the name: memfd_create reads it from the target's memory.
    let page = remote.mmap(
        world,
        0,
        4096,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
        0,
    )?;
    let mut bytes: Vec<u8> = name.bytes().filter(|&b| b != 0).take(240).collect();
    bytes.push(0);
    let written = world.memory().write_bytes(page, &bytes);
    let fd = written.and_then(|_| remote.memfd_create(world, page, libc::MFD_CLOEXEC));
    let unmapped = remote.munmap(world, page, 4096);
    let fd = fd?;
    if let Err(e) = unmapped {
        let _ = remote.close(world, fd);
        return Err(e);
    }
    Ok(fd)
}

fn map_in_target(
    world: &mut World,
    remote: &Remote,
    fd: i32,
    len: u64,
    near: Option<(u64, u64)>,
) -> Result<u64> {
    let pid = world.pid();
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    if let Some(text) = near {
        let maps = maps::read_maps(pid)?;
        if let Some(hint) = maps::near_gap(&maps, text, len, maps::mmap_min_addr()) {
            let flags = libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE;
            if let Ok(addr) = remote.mmap(world, hint, len, prot, flags, fd, 0) {
                if addr == hint {
                    region::check_mapping(
                        pid,
                        addr,
                        len,
                        |m| m.shared && m.read && m.write && !m.exec,
                        "rw-s",
                    )?;
                    return Ok(addr);
                }
                let _ = remote.munmap(world, addr, len);
            }
        }
    }
    let addr = remote.mmap(world, 0, len, prot, libc::MAP_SHARED, fd, 0)?;
    region::check_mapping(
        pid,
        addr,
        len,
        |m| m.shared && m.read && m.write && !m.exec,
        "rw-s",
    )?;
    Ok(addr)
}

/// Duplicates the target's `fd` into gohook.
fn fetch_fd(pid: i32, fd: i32) -> Result<(File, FdFetch)> {
    if let Ok(file) = pidfd_getfd(pid, fd) {
        return Ok((file, FdFetch::PidfdGetfd));
    }
    let path = format!("/proc/{pid}/fd/{fd}");
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map(|f| (f, FdFetch::ProcFd))
        .map_err(|source| Error::Proc {
            path: path.into(),
            source,
        })
}

fn pidfd_getfd(pid: i32, fd: i32) -> std::result::Result<File, Errno> {
    // SAFETY: plain integer arguments; the returned fd is ours and wrapped immediately.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `pidfd` is a fresh fd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    use std::os::fd::AsRawFd;
    // SAFETY: plain integer arguments; the returned fd is ours and wrapped immediately.
    let local = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if local < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `local` is a fresh fd we own.
    Ok(unsafe { File::from_raw_fd(local as i32) })
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
