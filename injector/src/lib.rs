//! Everything gohook does to a live process: stopping all its threads with ptrace, running raw
//! syscalls inside it, reading and writing its memory, mapping trampoline and ring memory near
//! its text, patching function entries as one transaction, launching programs stopped at exec,
//! and consuming the shared event ring.
//!
//! Everything read from the target is treated as hostile input, and every wait is bounded.
//! ptrace requests must all come from the thread that attached: [`World`] is `!Send`.

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
