//! Patch sets: code bytes (trampolines) and entry patches applied together while every thread is
//! stopped, and restored exactly later.
//!
//! Applying: the current bytes at every patch must equal the expected originals (otherwise
//! someone else patched the function, or it is another binary, and we refuse). No thread may be
//! inside a range about to change: a thread whose RIP is strictly inside `(addr, addr+len)` is
//! single-stepped (bounded) until it leaves. A thread that looks like it is running Go's signal
//! handler, whose saved context could point into a range (go-runtime.md §0 rule 10), makes us
//! let the process run for a moment and stop it again, a bounded number of times. Then the code
//! is written first and the patches last, and everything is read back.
//!
//! Restoring (after a re-attach): the bytes must still be ours, the same thread checks are made,
//! and the originals go back. Trampoline memory is never unmapped or reused, so a thread still
//! running a trampoline returns safely into the restored function.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::region::{self, CodeWriteMethod};
use crate::syscall::Remote;
use crate::threads::{AttachOptions, World};

/// How many single-steps may be spent moving one thread out of a patch range.
const MAX_STEPS: usize = 64;
/// How many times the process is let run so a thread can leave a signal handler.
const MAX_SETTLE_RUNS: u32 = 8;
/// How long the process runs each time.
const SETTLE_RUN: Duration = Duration::from_millis(2);

/// Signals Go's handler always blocks (its `sa_mask` is every signal) and ordinary Go code
/// never blocks: SIGSEGV (11), SIGURG (23), SIGPROF (27).
const HANDLER_MASK: u64 = (1 << (11 - 1)) | (1 << (23 - 1)) | (1 << (27 - 1));

/// One patch: `new` replaces `original` at `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Address of the first byte.
    pub addr: u64,
    /// Bytes to write (the jump to the trampoline, NOP-padded).
    pub new: Vec<u8>,
    /// Bytes expected there now, restored on revert.
    pub original: Vec<u8>,
}

impl Patch {
    fn range(&self) -> std::ops::Range<u64> {
        self.addr..self.addr + self.new.len() as u64
    }
}

/// Bytes written into trampoline memory before any patch is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeWrite {
    /// Where.
    pub addr: u64,
    /// What.
    pub bytes: Vec<u8>,
}

/// What applying or reverting did.
#[derive(Debug, Clone, Default)]
pub struct PatchReport {
    /// Threads single-stepped out of a patch range, with the number of steps.
    pub stepped: Vec<(i32, usize)>,
    /// Times the process was let run briefly so a thread could leave a signal handler.
    pub settle_runs: u32,
    /// How the bytes were written (the method of the last write).
    pub method: Option<CodeWriteMethod>,
}

/// A set of patches applied and reverted as one transaction.
#[derive(Debug, Clone)]
pub struct PatchSet {
    pid: i32,
    code: Vec<CodeWrite>,
    patches: Vec<Patch>,
    applied: bool,
}

impl PatchSet {
    /// An empty set for process `pid`.
    pub fn new(pid: i32) -> Self {
        PatchSet {
            pid,
            code: Vec::new(),
            patches: Vec::new(),
            applied: false,
        }
    }

    /// Adds trampoline bytes, written before the patches.
    pub fn add_code(&mut self, addr: u64, bytes: Vec<u8>) -> Result<()> {
        if self.applied {
            return Err(Error::InvalidPatch {
                addr,
                what: "set already applied",
            });
        }
        if bytes.is_empty() || addr.checked_add(bytes.len() as u64).is_none() {
            return Err(Error::InvalidPatch {
                addr,
                what: "empty or wrapping code write",
            });
        }
        self.code.push(CodeWrite { addr, bytes });
        Ok(())
    }

    /// Adds a patch; `new` and `original` must have the same non-zero length and the range must
    /// not overlap another patch.
    pub fn add_patch(&mut self, patch: Patch) -> Result<()> {
        let addr = patch.addr;
        if self.applied {
            return Err(Error::InvalidPatch {
                addr,
                what: "set already applied",
            });
        }
        if patch.new.is_empty() || patch.new.len() != patch.original.len() {
            return Err(Error::InvalidPatch {
                addr,
                what: "new and original bytes differ in length",
            });
        }
        if addr.checked_add(patch.new.len() as u64).is_none() {
            return Err(Error::InvalidPatch {
                addr,
                what: "range wraps",
            });
        }
        let r = patch.range();
        if self
            .patches
            .iter()
            .any(|p| p.range().start < r.end && r.start < p.range().end)
        {
            return Err(Error::InvalidPatch {
                addr,
                what: "overlaps another patch",
            });
        }
        self.patches.push(patch);
        Ok(())
    }

    /// The patches.
    pub fn patches(&self) -> &[Patch] {
        &self.patches
    }

    /// True between a successful [`PatchSet::apply`] and [`PatchSet::revert`].
    pub fn is_applied(&self) -> bool {
        self.applied
    }

    /// Writes the code, then the patches, with every thread of `world` stopped. `remote` enables
    /// the mprotect fallback when forced writes are refused.
    pub fn apply(&mut self, world: &mut World, remote: Option<&Remote>) -> Result<PatchReport> {
        let pid = world.pid();
        self.apply_inner(world, remote)
            .map_err(|e| e.or_exited(pid))
    }

    fn apply_inner(&mut self, world: &mut World, remote: Option<&Remote>) -> Result<PatchReport> {
        self.check_world(world)?;
        if self.applied {
            return Err(Error::InvalidPatch {
                addr: 0,
                what: "set already applied",
            });
        }
        let mem = world.memory();
        for p in &self.patches {
            let found = mem.read_vec(p.addr, p.original.len())?;
            if found != p.original {
                return Err(Error::UnexpectedBytes {
                    pid: self.pid,
                    addr: p.addr,
                    expected: p.original.clone(),
                    found,
                });
            }
        }
        let mut report = self.settle(world)?;
        for c in &self.code {
            report.method = Some(region::write_code(world, remote, c.addr, &c.bytes)?);
        }
        for p in &self.patches {
            report.method = Some(region::write_code(world, remote, p.addr, &p.new)?);
        }
        self.verify(world, |p| &p.new)?;
        for c in &self.code {
            let found = mem.read_vec(c.addr, c.bytes.len())?;
            if found != c.bytes {
                return Err(Error::UnexpectedBytes {
                    pid: self.pid,
                    addr: c.addr,
                    expected: c.bytes.clone(),
                    found,
                });
            }
        }
        self.applied = true;
        Ok(report)
    }

    /// Restores the original bytes of every patch (trampoline memory stays as it is). Refuses if
    /// any patch site no longer holds our bytes.
    pub fn revert(&mut self, world: &mut World, remote: Option<&Remote>) -> Result<PatchReport> {
        self.check_world(world)?;
        self.verify(world, |p| &p.new)?;
        let mut report = self.settle(world)?;
        for p in self.patches.iter().rev() {
            report.method = Some(region::write_code(world, remote, p.addr, &p.original)?);
        }
        self.verify(world, |p| &p.original)?;
        self.applied = false;
        Ok(report)
    }

    /// Stops the process, reverts, and detaches: what the CLI calls on exit or SIGINT/SIGTERM.
    pub fn revert_in(&mut self, opts: AttachOptions) -> Result<PatchReport> {
        let mut world = World::stop(self.pid, opts)?;
        let report = self.revert(&mut world, None)?;
        world.detach()?;
        Ok(report)
    }

    fn check_world(&self, world: &World) -> Result<()> {
        if world.pid() != self.pid {
            return Err(Error::InvalidPatch {
                addr: 0,
                what: "patch set belongs to another process",
            });
        }
        Ok(())
    }

    fn verify(&self, world: &World, want: impl Fn(&Patch) -> &Vec<u8>) -> Result<()> {
        let mem = world.memory();
        for p in &self.patches {
            let found = mem.read_vec(p.addr, p.new.len())?;
            if &found != want(p) {
                return Err(Error::UnexpectedBytes {
                    pid: self.pid,
                    addr: p.addr,
                    expected: want(p).clone(),
                    found,
                });
            }
        }
        Ok(())
    }

    /// Makes sure no thread is inside a range about to change, nor in a signal handler.
    fn settle(&self, world: &mut World) -> Result<PatchReport> {
        let mut report = PatchReport::default();
        let text = region::main_text(self.pid).ok();
        loop {
            let mut in_handler = None;
            for tid in world.tids() {
                let rip = world.regs(tid)?.rip;
                if looks_in_signal_handler(self.pid, tid, rip, text) {
                    in_handler = Some((tid, rip));
                    break;
                }
            }
            match in_handler {
                None => break,
                Some((tid, rip)) if report.settle_runs >= MAX_SETTLE_RUNS => {
                    return Err(Error::ThreadInSignalHandler {
                        pid: self.pid,
                        tid,
                        rip,
                    });
                }
                Some(_) => {
                    world.run_for(SETTLE_RUN)?;
                    report.settle_runs += 1;
                }
            }
        }
        for tid in world.tids() {
            let mut steps = 0;
            loop {
                let rip = world.regs(tid)?.rip;
                let Some(addr) = self.inside(rip) else { break };
                if steps >= MAX_STEPS {
                    return Err(Error::ThreadInPatch {
                        pid: self.pid,
                        tid,
                        rip,
                        addr,
                    });
                }
                world.single_step(tid)?;
                steps += 1;
            }
            if steps > 0 {
                report.stepped.push((tid, steps));
            }
        }
        Ok(report)
    }

    /// The patch whose interior holds `rip`.
    ///
    /// Code writes (trampolines) are not patch ranges: they go into fresh memory no thread can
    /// be executing when the set is applied, and they are never rewritten on revert, so a thread
    /// inside a trampoline while the patches are removed simply finishes it and jumps back to
    /// code after the (restored) patch range.
    fn inside(&self, rip: u64) -> Option<u64> {
        let strictly = |start: u64, len: usize| rip > start && rip < start + len as u64;
        self.patches
            .iter()
            .find(|p| strictly(p.addr, p.new.len()))
            .map(|p| p.addr)
    }
}

/// True when `tid` blocks the signals Go's handler always blocks while its RIP is in the Go
/// program's text: the signature of a thread inside `runtime.sigtramp`/`sighandler` (or a brief
/// runtime critical section, which resolves just the same by letting it run).
fn looks_in_signal_handler(pid: i32, tid: i32, rip: u64, text: Option<(u64, u64)>) -> bool {
    let in_text = text.is_none_or(|(s, e)| rip >= s && rip < e);
    if !in_text {
        return false;
    }
    match crate::procfs::Status::read(pid, Some(tid)) {
        Ok(s) => s.blocked() & HANDLER_MASK == HANDLER_MASK,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_must_match_in_length_and_not_overlap() {
        let mut set = PatchSet::new(1);
        let p = |addr, n: usize| Patch {
            addr,
            new: vec![0x90; n],
            original: vec![0xcc; n],
        };
        set.add_patch(p(0x1000, 5)).unwrap();
        assert!(matches!(
            set.add_patch(p(0x1004, 5)),
            Err(Error::InvalidPatch {
                what: "overlaps another patch",
                ..
            })
        ));
        set.add_patch(p(0x1005, 5)).unwrap();
        let bad = Patch {
            addr: 0x2000,
            new: vec![1, 2],
            original: vec![1],
        };
        assert!(set.add_patch(bad).is_err());
        assert!(set.add_patch(p(u64::MAX - 2, 5)).is_err());
        assert_eq!(set.patches().len(), 2);
    }

    #[test]
    fn interior_means_strictly_inside_a_patch() {
        let mut set = PatchSet::new(1);
        set.add_patch(Patch {
            addr: 0x1000,
            new: vec![0xe9, 0, 0, 0, 0],
            original: vec![0; 5],
        })
        .unwrap();
        assert_eq!(
            set.inside(0x1000),
            None,
            "a thread at the entry executes the new jump"
        );
        assert_eq!(set.inside(0x1004), Some(0x1000));
        assert_eq!(set.inside(0x1005), None);
    }
}
