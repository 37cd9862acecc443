//! Everything gohook does to a live process: stopping all its threads with ptrace, running raw
//! syscalls inside it, reading and writing its memory, mapping trampoline and ring memory near
//! its text, patching function entries as one transaction, launching programs stopped at exec,
//! and consuming the shared event ring.
//!
//! Everything read from the target is treated as hostile input, and every wait on the target is
//! bounded ([`AttachOptions::timeout`]); only [`launch::wait_exit`] blocks, by design, until the
//! launched program ends. ptrace requests must all come from the thread that attached: [`World`]
//! is `!Send`.
//!
//! Typical use (attach mode):
//! 1. [`World::stop`] seizes and stops every thread;
//! 2. [`Remote::new`] picks a quiet thread and a `syscall` gadget; [`region::map_code_near`] and
//!    [`shm::map_shared`] create the trampoline region and the ring;
//! 3. a [`PatchSet`] writes trampolines then entry patches ([`PatchSet::apply`]);
//! 4. [`World::detach`] resumes everything untraced and reports the pause;
//! 5. on exit, SIGINT or SIGTERM the CLI calls [`PatchSet::revert_in`], which stops the world
//!    again, checks the bytes are still ours and restores the originals.
//!
//! If gohook is killed with SIGKILL, the kernel detaches the tracees (a launched program that was
//! never detached dies with it: `PTRACE_O_EXITKILL`); applied patches stay in place and keep
//! working, trampolines keep writing into the ring, and once it is full every further record is
//! dropped and counted in the ring's drop counters. Nothing in the target waits for gohook.

#![deny(missing_docs)]

pub mod error;
pub mod launch;
pub mod maps;
pub mod mem;
pub mod patch;
pub mod procfs;
pub mod region;
pub mod ring;
pub mod shm;
pub mod syscall;
pub mod threads;

pub use error::{Error, Result};
pub use launch::{launch, launch_with, wait_exit, ExitStatus, LaunchOptions, Launched};
pub use mem::ProcessMemory;
pub use patch::{Patch, PatchSet};
pub use region::CodeRegion;
pub use ring::RingReader;
pub use shm::SharedRegion;
pub use syscall::Remote;
pub use threads::{AttachOptions, StopReport, World};
