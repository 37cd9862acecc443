//! The target's memory as scripts read it: live memory of the process (`process_vm_readv`, which
//! works after gohook detached), except for the executable's read-only segments (code, constant
//! strings, type metadata), which are read from the file: they cannot change, reading them costs
//! no system call, and they stay readable after the target exited. Everything else fails with a
//! memory error once the process is gone.

use gostrings::elf::ElfFile;
use gostrings::{MemError, MemoryReader};
use std::cell::Cell;
use std::rc::Rc;

use injector::mem::ProcessMemory;

/// `PF_W`: the segment is writable.
const PF_W: u32 = 2;

/// Live memory of one process over its executable's read-only segments.
pub struct TargetMemory {
    live: Option<ProcessMemory>,
    file: ElfFile,
    bias: u64,
    /// Link-time `[start, end)` of the read-only `PT_LOAD` segments' file-backed bytes.
    readonly: Vec<(u64, u64)>,
    gone: Rc<Cell<bool>>,
}

impl TargetMemory {
    /// Memory of process `pid` (none: file only), whose executable `file` is loaded at `bias`.
    pub fn new(pid: Option<i32>, file: ElfFile, bias: u64) -> Self {
        let readonly = file
            .segments
            .iter()
            .filter(|s| s.flags & PF_W == 0)
            .map(|s| (s.vaddr, s.vaddr.saturating_add(s.filesz.min(s.memsz))))
            .collect();
        TargetMemory {
            live: pid.map(ProcessMemory::new),
            file,
            bias,
            readonly,
            gone: Rc::new(Cell::new(false)),
        }
    }

    /// A switch to say the process has exited: from then on only the file is read (its pid may
    /// be reused by another process).
    pub fn gone_switch(&self) -> Rc<Cell<bool>> {
        self.gone.clone()
    }

    fn in_readonly(&self, link: u64, len: usize) -> bool {
        let Some(end) = link.checked_add(len as u64) else {
            return false;
        };
        self.readonly.iter().any(|&(a, b)| link >= a && end <= b)
    }
}

impl MemoryReader for TargetMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let link = addr.wrapping_sub(self.bias);
        if self.in_readonly(link, buf.len()) {
            return self.file.read(link, buf);
        }
        match &self.live {
            Some(m) if !self.gone.get() => m.read(addr, buf),
            Some(_) => Err(MemError::Process("the target has exited".into())),
            None => Err(MemError::Process("the target is not running".into())),
        }
    }
}
