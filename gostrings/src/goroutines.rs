//! The goroutines of a stopped Go process and every PC where one of them may resume.
//!
//! Patching a few bytes of a function is only safe if no goroutine will ever resume inside the
//! patched range. Threads that are running are checked by their RIP; this module covers the
//! goroutines that are *parked* (not on a thread): with every thread of the target stopped, it
//! walks `runtime.allgs` and, for each live goroutine, reports the PCs where it resumes:
//!
//! * `g.sched.pc`, set by `mcall`/`gosave`/`entersyscall`/`morestack`. It is always a return
//!   address after a CALL (`gopark`, `morestack`, `asyncPreempt2`, a syscall wrapper) or, for a
//!   goroutine that never ran, its function's entry.
//! * For an **async-preempted** goroutine (`sched.pc` inside `runtime.asyncPreempt2`), the PC the
//!   signal handler interrupted. `doSigPreempt` pushed it on the goroutine's stack as the return
//!   address of an injected call to `runtime.asyncPreempt` (`ctxt.pushCall`), which saved the
//!   registers and called `asyncPreempt2`, which called `mcall`. We unwind
//!   `asyncPreempt2 → asyncPreempt → interrupted PC` with the pclntab's pcsp table: the return
//!   address of a frame at `pc` with stack pointer `sp` is at `sp + pcsp(pc)`. This is the PC a
//!   patch must never cover: it is any async safe point (PCDATA_UnsafePoint = -1), such as the
//!   POPQ BP or the RET of an epilogue.
//!
//! A goroutine that was just resumed and is still unwinding through `asyncPreempt2` and
//! `asyncPreempt` is on a thread: its interrupted PC is on its stack but not in any RIP. Use
//! [`GoroutineScanner::thread_resume_pcs`] on every stopped thread's RIP/RSP for that case.
//!
//! Finding `allgs` (Go 1.21 – 1.27; the code involved is unchanged across these releases):
//! * With a `.symtab`: `runtime.allgs` (`[]*g`), `runtime.allglen` (`uintptr`),
//!   `runtime.allgptr` (`**g`).
//! * Stripped: the pclntab still names `runtime.allgadd`, which does
//!   `allgs = append(allgs, gp); if &allgs[0] != allgptr { atomicstorep(&allgptr, &allgs[0]) };
//!   atomic.Storeuintptr(&allglen, len(allgs))`. Every RIP-relative address its code uses is a
//!   candidate (`forEachG`, `forEachGRace`, `allGsSnapshot` and `checkdead` are added if that is
//!   not enough); the answer is the candidate triple whose *memory* agrees: a slice header
//!   `(ptr, len, cap)` with `0 < len ≤ cap`, another variable equal to `len` (allglen), another
//!   equal to `ptr` (allgptr), and every `g` it points to plausible (status in range, stack
//!   `lo < hi`, goids positive and small, goid 1 present). The proof is semantic, not tied to
//!   the compiler's instruction choice, so it survives register allocation and scheduling
//!   changes between releases.
//! * The goroutines are then read the way the runtime's own lock-free readers do
//!   (`atomicAllG`): `allglen` first, then `allgptr`. `allgptr` is published before `allglen` and
//!   old arrays stay valid, so a thread stopped in the middle of `allgadd` cannot tear the
//!   snapshot (the g being added is `_Gdead` and has no resume PC).
//!
//! g-struct offsets come from the binary's DWARF (`runtime.g`) when it has DWARF, otherwise from
//! [`crate::moduledata::GOffsets`] plus this module's offset of `g.asyncSafePoint`, verified
//! against DWARF of Go 1.21, 1.23, 1.26 and 1.27 builds by the tests.
//!
//! Every value read from the target is hostile: counts are bounded before allocating, every
//! address is range-checked, unwinding takes at most two steps, and nothing panics.

use std::collections::BTreeSet;
use std::ops::Range;

use iced_x86::{Decoder, DecoderOptions, Instruction};

use crate::binary::GoBinary;
use crate::dwarf::Dwarf;
use crate::elf::ElfFile;
use crate::gotype::{Shape, TypeTable};
use crate::memory::{MemError, MemoryReader};
use crate::moduledata::{GOffsets, GOffsetsSource};
use crate::version::GoVersion;

/// At most this many goroutines are read; more means `allglen` was misread (or the target is
/// beyond what a stop-the-world scan should walk).
pub const MAX_GOROUTINES: u64 = 4_000_000;
/// Largest goroutine stack accepted as plausible (the runtime's default maximum is 1 GB).
const MAX_STACK: u64 = 1 << 31;
/// Largest goid accepted as plausible.
const MAX_GOID: u64 = 1 << 48;
/// Largest frame (pcsp value) accepted while unwinding the asyncPreempt frames.
const MAX_FRAME: i32 = 1 << 16;
/// Bytes of a runtime function decoded while looking for `allgs`.
const MAX_DECODE: u64 = 1 << 16;

/// `_Gidle`: just allocated.
pub const G_IDLE: u32 = 0;
/// `_Grunnable`: on a run queue, not running.
pub const G_RUNNABLE: u32 = 1;
/// `_Grunning`: owns an M and a P.
pub const G_RUNNING: u32 = 2;
/// `_Gsyscall`: in a system call, owns an M.
pub const G_SYSCALL: u32 = 3;
/// `_Gwaiting`: blocked in the runtime (`gopark`).
pub const G_WAITING: u32 = 4;
/// `_Gdead`: unused (free list, or an idle extra M's g).
pub const G_DEAD: u32 = 6;
/// `_Gcopystack`: its stack is being moved.
pub const G_COPYSTACK: u32 = 8;
/// `_Gpreempted`: stopped by `suspendG` at an async-preemption point.
pub const G_PREEMPTED: u32 = 9;
/// `_Gleaked` (Go 1.27): a goroutine found leaked by the leak detector; parked forever.
pub const G_LEAKED: u32 = 10;
/// `_Gdeadextra` (Go 1.27): a dead g reserved for an extra M.
pub const G_DEADEXTRA: u32 = 11;
/// `_Gscan`: the bit the GC sets on top of a status while it scans the stack.
pub const G_SCAN: u32 = 0x1000;

/// The name of a goroutine status (the scan bit already masked off).
pub fn status_name(status: u32) -> &'static str {
    match status {
        G_IDLE => "idle",
        G_RUNNABLE => "runnable",
        G_RUNNING => "running",
        G_SYSCALL => "syscall",
        G_WAITING => "waiting",
        5 => "moribund",
        G_DEAD => "dead",
        7 => "enqueue",
        G_COPYSTACK => "copystack",
        G_PREEMPTED => "preempted",
        G_LEAKED => "leaked",
        G_DEADEXTRA => "deadextra",
        _ => "unknown",
    }
}

/// Why the goroutines could not be enumerated, or a resume PC could not be proven.
#[derive(Debug, thiserror::Error)]
pub enum GoroutineError {
    /// Neither symbols nor decoding located `runtime.allgs`.
    #[error("cannot locate runtime.allgs: {0}")]
    AllgsNotFound(String),
    /// Several candidate locations pass validation; refusing to guess.
    #[error("runtime.allgs is ambiguous: candidates {0:?} all look valid")]
    AllgsAmbiguous(Vec<u64>),
    /// No `g` layout for this binary.
    #[error("no runtime.g field offsets for Go {version}: {reason}")]
    NoLayout {
        /// The binary's Go version.
        version: GoVersion,
        /// Why neither DWARF nor the table gave one.
        reason: String,
    },
    /// The runtime functions this scan depends on are missing from the pclntab.
    #[error("function {0} is not in the pclntab")]
    MissingFunction(&'static str),
    /// A read of target memory failed.
    #[error("cannot read {what} at {addr:#x}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// Where.
        addr: u64,
        /// The memory error.
        #[source]
        source: MemError,
    },
    /// `allglen` is beyond [`MAX_GOROUTINES`].
    #[error("allglen at {addr:#x} says {count} goroutines, over the limit of {limit}")]
    TooMany {
        /// Address of the count read.
        addr: u64,
        /// The count read.
        count: u64,
        /// [`MAX_GOROUTINES`].
        limit: u64,
    },
    /// A `g` does not look like a goroutine: wrong layout, wrong allgs, or corrupt memory.
    #[error("g #{index} at {addr:#x} is implausible: {reason}")]
    BadG {
        /// Index in allgs.
        index: usize,
        /// Address of the g.
        addr: u64,
        /// What is wrong.
        reason: String,
    },
    /// No goroutine has goid 1 (the main goroutine): the snapshot is not trustworthy.
    #[error("no goroutine with goid 1 among {count} gs: allgs or the g layout is wrong")]
    NoMainGoroutine {
        /// Number of gs read.
        count: usize,
    },
    /// A goroutine was async-preempted but its interrupted PC could not be recovered, so no
    /// patch can be proven safe.
    #[error("goroutine {goid} (g {g:#x}) is async-preempted but its interrupted PC cannot be found: {reason}")]
    Unwind {
        /// The goroutine (0 for a thread).
        goid: u64,
        /// Its g (0 for a thread).
        g: u64,
        /// What went wrong.
        reason: String,
    },
}

fn read_err(what: impl Into<String>, addr: u64) -> impl FnOnce(MemError) -> GoroutineError {
    let what = what.into();
    move |source| GoroutineError::Read { what, addr, source }
}

/// Offsets of the `runtime.g` fields the scan reads (linux/amd64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GLayout {
    /// `g.stack.lo`.
    pub stack_lo: u64,
    /// `g.stack.hi`.
    pub stack_hi: u64,
    /// `g.atomicstatus`.
    pub atomicstatus: u64,
    /// `g.goid`.
    pub goid: u64,
    /// `g.sched.sp` (`sched` at 56, `gobuf.sp` at 0).
    pub sched_sp: u64,
    /// `g.sched.pc` (`gobuf.pc` at 8).
    pub sched_pc: u64,
    /// `g.asyncSafePoint`, when known: true while the goroutine is stopped at an async
    /// safe point (set in `asyncPreempt2`).
    pub async_safe_point: Option<u64>,
    /// Where the offsets come from.
    pub source: GOffsetsSource,
}

impl GLayout {
    /// Bytes of a g to read so every field is covered.
    pub fn read_len(&self) -> u64 {
        [
            self.stack_lo + 8,
            self.stack_hi + 8,
            self.atomicstatus + 4,
            self.goid + 8,
            self.sched_sp + 8,
            self.sched_pc + 8,
            self.async_safe_point.map_or(0, |o| o + 1),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// Offset of `g.asyncSafePoint` for a release: `atomicstatus + 36` in 1.21 – 1.27 (the
    /// fields in between, `stackLock`, `goid`, `schedlink`, `waitsince`, `waitreason`,
    /// `preempt`, `preemptStop`, `preemptShrink`, did not change). Observed in DWARF of 1.21
    /// (180), 1.23 (188), 1.26 and 1.27 (180).
    fn async_safe_point_for(v: &GoVersion, atomicstatus: u64) -> Option<u64> {
        (v.major == 1 && (21..=27).contains(&v.minor)).then_some(atomicstatus + 36)
    }

    /// The built-in table for a Go release (see [`GOffsets::for_version`]).
    pub fn for_version(v: &GoVersion) -> Option<GLayout> {
        let o = GOffsets::for_version(v)?;
        Some(GLayout {
            stack_lo: o.stack_lo,
            stack_hi: o.stack_hi,
            atomicstatus: o.atomicstatus,
            goid: o.goid,
            sched_sp: 56,
            sched_pc: 64,
            async_safe_point: Self::async_safe_point_for(v, o.atomicstatus),
            source: o.source,
        })
    }

    /// The offsets DWARF gives for `runtime.g` (and `runtime.gobuf`, `runtime.stack`).
    pub fn from_dwarf(dwarf: &Dwarf) -> Result<GLayout, String> {
        let mut table = TypeTable::new();
        let mut types = dwarf.types();
        let g = types
            .named("runtime.g", &mut table)
            .map_err(|e| e.to_string())?
            .ok_or("DWARF has no runtime.g")?;
        let fields = |t| match table.get(t).map(|t| &t.shape) {
            Some(Shape::Struct { fields }) => Ok(fields.clone()),
            _ => Err("not a struct".to_string()),
        };
        let gf = fields(g)?;
        let field = |fs: &[crate::gotype::Field], name: &str| {
            fs.iter()
                .find(|f| f.name == name)
                .cloned()
                .ok_or_else(|| format!("runtime.g has no field {name}"))
        };
        let stack = field(&gf, "stack")?;
        let sf = fields(stack.ty)?;
        let sched = field(&gf, "sched")?;
        let bf = fields(sched.ty)?;
        Ok(GLayout {
            stack_lo: stack.offset + field(&sf, "lo")?.offset,
            stack_hi: stack.offset + field(&sf, "hi")?.offset,
            atomicstatus: field(&gf, "atomicstatus")?.offset,
            goid: field(&gf, "goid")?.offset,
            sched_sp: sched.offset + field(&bf, "sp")?.offset,
            sched_pc: sched.offset + field(&bf, "pc")?.offset,
            async_safe_point: field(&gf, "asyncSafePoint").ok().map(|f| f.offset),
            source: GOffsetsSource::Dwarf,
        })
    }

    /// DWARF when the binary has it and it describes `runtime.g`, else the table.
    pub fn for_binary(bin: &GoBinary) -> Result<GLayout, GoroutineError> {
        let v = bin.go_version();
        let dwarf_err = if bin.has_dwarf() {
            match Dwarf::load(&bin.elf)
                .map_err(|e| e.to_string())
                .and_then(|d| GLayout::from_dwarf(&d))
            {
                Ok(l) => return Ok(l),
                Err(e) => e,
            }
        } else {
            "no DWARF".to_string()
        };
        GLayout::for_version(&v).ok_or_else(|| GoroutineError::NoLayout {
            version: v,
            reason: format!("{dwarf_err}, and no built-in table for this release"),
        })
    }
}

/// How [`AllgsLocation`] was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllgsSource {
    /// From `.symtab`.
    Symbols,
    /// From the RIP-relative operands of these runtime functions, validated against memory.
    Decoded {
        /// The functions whose code supplied the candidates.
        functions: Vec<String>,
    },
}

/// Where the runtime keeps its list of goroutines (link-time addresses: add the load bias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllgsLocation {
    /// `runtime.allgs`, a `[]*g` slice header.
    pub allgs: Option<u64>,
    /// `runtime.allglen`, the published length.
    pub allglen: Option<u64>,
    /// `runtime.allgptr`, the published array pointer.
    pub allgptr: Option<u64>,
    /// How it was found.
    pub source: AllgsSource,
}

impl AllgsLocation {
    /// From the ELF symbol table, if the binary has one with these symbols.
    pub fn from_symbols(elf: &ElfFile) -> Option<AllgsLocation> {
        let sym = |n: &str| elf.symbol(n).map(|s| s.value).filter(|&v| v != 0);
        let loc = AllgsLocation {
            allgs: sym("runtime.allgs"),
            allglen: sym("runtime.allglen"),
            allgptr: sym("runtime.allgptr"),
            source: AllgsSource::Symbols,
        };
        (loc.allgs.is_some() || (loc.allglen.is_some() && loc.allgptr.is_some())).then_some(loc)
    }

    /// Reads the g pointers: `allglen` then `allgptr` when both are known (the runtime's own
    /// lock-free order), else the `allgs` slice header.
    pub fn read_gs(
        &self,
        mem: &dyn MemoryReader,
        load_bias: u64,
    ) -> Result<Vec<u64>, GoroutineError> {
        let (ptr, len, len_addr) = match (self.allglen, self.allgptr) {
            (Some(l), Some(p)) => {
                let la = l.wrapping_add(load_bias);
                let pa = p.wrapping_add(load_bias);
                let len = mem.read_u64(la).map_err(read_err("runtime.allglen", la))?;
                let ptr = mem.read_u64(pa).map_err(read_err("runtime.allgptr", pa))?;
                (ptr, len, la)
            }
            _ => {
                let s = self
                    .allgs
                    .ok_or_else(|| GoroutineError::AllgsNotFound("no address".into()))?
                    .wrapping_add(load_bias);
                let ptr = mem.read_u64(s).map_err(read_err("runtime.allgs", s))?;
                let len = mem
                    .read_u64(s.wrapping_add(8))
                    .map_err(read_err("runtime.allgs.len", s.wrapping_add(8)))?;
                (ptr, len, s.wrapping_add(8))
            }
        };
        read_ptr_array(mem, ptr, len, len_addr)
    }
}

fn read_ptr_array(
    mem: &dyn MemoryReader,
    ptr: u64,
    len: u64,
    len_addr: u64,
) -> Result<Vec<u64>, GoroutineError> {
    if len > MAX_GOROUTINES {
        return Err(GoroutineError::TooMany {
            addr: len_addr,
            count: len,
            limit: MAX_GOROUTINES,
        });
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let raw = mem
        .read_vec(ptr, len * 8, MAX_GOROUTINES * 8)
        .map_err(read_err(format!("the array of {len} g pointers"), ptr))?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// The fields of one g, as read.
#[derive(Debug, Clone, Copy)]
struct RawG {
    addr: u64,
    stack: (u64, u64),
    status: u32,
    goid: u64,
    sched_sp: u64,
    sched_pc: u64,
    async_safe_point: Option<bool>,
}

fn read_g(mem: &dyn MemoryReader, layout: &GLayout, addr: u64) -> Result<RawG, MemError> {
    let len = layout.read_len();
    let b = mem.read_vec(addr, len, 4096)?;
    let u64_at = |o: u64| {
        b.get(o as usize..o as usize + 8)
            .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
    };
    let u32_at = |o: u64| {
        b.get(o as usize..o as usize + 4)
            .map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
    };
    Ok(RawG {
        addr,
        stack: (u64_at(layout.stack_lo), u64_at(layout.stack_hi)),
        status: u32_at(layout.atomicstatus),
        goid: u64_at(layout.goid),
        sched_sp: u64_at(layout.sched_sp),
        sched_pc: u64_at(layout.sched_pc),
        async_safe_point: layout
            .async_safe_point
            .and_then(|o| b.get(o as usize).map(|&v| v != 0)),
    })
}

fn is_dead(status: u32) -> bool {
    matches!(status, G_IDLE | G_DEAD | G_DEADEXTRA)
}

/// Checks one g read from allgs; `Err(reason)` when it cannot be a goroutine.
fn check_g(g: &RawG) -> Result<(), String> {
    let status = g.status & !G_SCAN;
    if status > G_DEADEXTRA || g.status & !(G_SCAN | 0xf) != 0 {
        return Err(format!("status {:#x} out of range", g.status));
    }
    if is_dead(status) {
        return Ok(());
    }
    let (lo, hi) = g.stack;
    if !(lo < hi && hi - lo <= MAX_STACK) {
        return Err(format!("stack [{lo:#x}, {hi:#x}) is not a stack"));
    }
    if g.goid == 0 || g.goid > MAX_GOID {
        return Err(format!("goid {} out of range", g.goid));
    }
    if g.sched_sp != 0 && !(lo..=hi).contains(&g.sched_sp) {
        return Err(format!(
            "sched.sp {:#x} outside its stack [{lo:#x}, {hi:#x})",
            g.sched_sp
        ));
    }
    Ok(())
}

/// Reads and checks every g; the list must hold the main goroutine (goid 1).
fn read_checked_gs(
    mem: &dyn MemoryReader,
    layout: &GLayout,
    ptrs: &[u64],
) -> Result<Vec<RawG>, GoroutineError> {
    let mut out = Vec::with_capacity(ptrs.len());
    for (index, &addr) in ptrs.iter().enumerate() {
        if addr == 0 || addr % 8 != 0 {
            return Err(GoroutineError::BadG {
                index,
                addr,
                reason: "not an aligned pointer".into(),
            });
        }
        let g = read_g(mem, layout, addr).map_err(|e| GoroutineError::BadG {
            index,
            addr,
            reason: e.to_string(),
        })?;
        check_g(&g).map_err(|reason| GoroutineError::BadG {
            index,
            addr,
            reason,
        })?;
        out.push(g);
    }
    if !out
        .iter()
        .any(|g| g.goid == 1 && !is_dead(g.status & !G_SCAN))
    {
        return Err(GoroutineError::NoMainGoroutine { count: out.len() });
    }
    Ok(out)
}

/// Runtime functions whose code refers to the allgs variables, best first.
const ALLGS_USERS: [&str; 5] = [
    "runtime.allgadd",
    "runtime.forEachGRace",
    "runtime.forEachG",
    "runtime.allGsSnapshot",
    "runtime.checkdead",
];

/// Every RIP-relative address (memory operand or LEA) in the code of `name`.
fn rip_relative_targets(bin: &GoBinary, name: &str) -> Option<BTreeSet<u64>> {
    let f = bin.pclntab.func_by_name(name)?;
    let len = f.size().min(MAX_DECODE);
    let code = bin.elf.bytes_at(f.entry, usize::try_from(len).ok()?)?;
    let mut dec = Decoder::with_ip(64, code, f.entry, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut out = BTreeSet::new();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.is_invalid() {
            continue;
        }
        if ins.is_ip_rel_memory_operand() {
            out.insert(ins.ip_rel_memory_address());
        }
    }
    Some(out)
}

/// True for addresses in a writable, allocated section (where Go globals live).
fn in_data(elf: &ElfFile, addr: u64) -> bool {
    elf.sections
        .iter()
        .any(|s| s.is_alloc() && s.is_writable() && !s.is_exec() && s.vm_range().contains(&addr))
}

/// Finds `allgs`/`allglen`/`allgptr` in a binary without symbols: candidates from the code of
/// [`ALLGS_USERS`], chosen by what memory holds (see the module documentation).
pub fn locate_allgs_by_decoding(
    mem: &dyn MemoryReader,
    bin: &GoBinary,
    load_bias: u64,
    layout: &GLayout,
) -> Result<AllgsLocation, GoroutineError> {
    let mut cands: BTreeSet<u64> = BTreeSet::new();
    let mut used = Vec::new();
    let mut why = Vec::new();
    for name in ALLGS_USERS {
        match rip_relative_targets(bin, name) {
            None => {
                why.push(format!("{name} not found"));
                continue;
            }
            Some(t) => {
                cands.extend(t.into_iter().filter(|&a| in_data(&bin.elf, a)));
                used.push(name.to_string());
            }
        }
        match solve_allgs(mem, load_bias, layout, &cands) {
            Ok(Some(mut loc)) => {
                loc.source = AllgsSource::Decoded { functions: used };
                return Ok(loc);
            }
            Ok(None) => why.push(format!("no valid candidate after {name}")),
            Err(e) => return Err(e),
        }
    }
    Err(GoroutineError::AllgsNotFound(why.join("; ")))
}

/// Picks the candidate addresses whose memory agrees with the allgs invariants.
fn solve_allgs(
    mem: &dyn MemoryReader,
    load_bias: u64,
    layout: &GLayout,
    cands: &BTreeSet<u64>,
) -> Result<Option<AllgsLocation>, GoroutineError> {
    let word = |a: u64| mem.read_u64(a.wrapping_add(load_bias)).ok();
    let values: Vec<(u64, u64)> = cands
        .iter()
        .filter_map(|&a| word(a).map(|v| (a, v)))
        .collect();
    let mut found: Vec<AllgsLocation> = Vec::new();
    for &s in cands {
        let (Some(ptr), Some(len), Some(cap)) = (word(s), word(s + 8), word(s + 16)) else {
            continue;
        };
        if !(ptr != 0 && ptr % 8 == 0 && len > 0 && len <= cap && cap <= MAX_GOROUTINES) {
            continue;
        }
        let outside = |a: u64| !(s..s + 24).contains(&a);
        let lens: Vec<u64> = values
            .iter()
            .filter(|&&(a, v)| outside(a) && v == len)
            .map(|p| p.0)
            .collect();
        let ptrs: Vec<u64> = values
            .iter()
            .filter(|&&(a, v)| outside(a) && v == ptr)
            .map(|p| p.0)
            .collect();
        if lens.len() > 1 || ptrs.len() > 1 || (lens.is_empty() && ptrs.is_empty()) {
            continue;
        }
        let Ok(gs) = read_ptr_array(mem, ptr, len, s + 8) else {
            continue;
        };
        if read_checked_gs(mem, layout, &gs).is_err() {
            continue;
        }
        found.push(AllgsLocation {
            allgs: Some(s),
            allglen: lens.first().copied(),
            allgptr: ptrs.first().copied(),
            source: AllgsSource::Symbols,
        });
    }
    // Prefer the candidates that have both published companions.
    let full: Vec<&AllgsLocation> = found
        .iter()
        .filter(|l| l.allglen.is_some() && l.allgptr.is_some())
        .collect();
    match (full.len(), found.len()) {
        (1, _) => Ok(Some(full[0].clone())),
        (0, 1) => Ok(Some(found[0].clone())),
        (0, 0) => Ok(None),
        _ => Err(GoroutineError::AllgsAmbiguous(
            found.iter().filter_map(|l| l.allgs).collect(),
        )),
    }
}

/// Finds allgs: by symbols when present (checked against memory), otherwise by decoding.
pub fn locate_allgs(
    mem: &dyn MemoryReader,
    bin: &GoBinary,
    load_bias: u64,
    layout: &GLayout,
) -> Result<AllgsLocation, GoroutineError> {
    if let Some(loc) = AllgsLocation::from_symbols(&bin.elf) {
        let gs = loc.read_gs(mem, load_bias)?;
        read_checked_gs(mem, layout, &gs)?;
        return Ok(loc);
    }
    locate_allgs_by_decoding(mem, bin, load_bias, layout)
}

/// An async preemption found on a goroutine's (or thread's) stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncPreempt {
    /// The PC the SIGURG handler interrupted: where the goroutine resumes after
    /// `asyncPreempt` returns (runtime address).
    pub interrupted_pc: u64,
    /// Stack address holding that PC (the return-address slot pushed by `ctxt.pushCall`).
    pub slot: u64,
}

/// One goroutine that is not dead, with every PC where it may resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedG {
    /// The goroutine id.
    pub goid: u64,
    /// `atomicstatus` without the scan bit (see [`status_name`]).
    pub status: u32,
    /// Address of its g.
    pub g: u64,
    /// `g.sched.pc` (runtime address; meaningful only when `sched_sp != 0`).
    pub sched_pc: u64,
    /// `g.sched.sp`: 0 while the goroutine runs (`gogo` clears it).
    pub sched_sp: u64,
    /// `g.asyncSafePoint`, when the layout knows it.
    pub async_safe_point: Option<bool>,
    /// Set when the goroutine sits in `asyncPreempt2` after an async preemption.
    pub async_preempt: Option<AsyncPreempt>,
    /// Every PC where it may resume (runtime addresses): `sched.pc`, and the interrupted PC of
    /// an async preemption. Empty for a running goroutine (its thread's RIP is what counts).
    pub resume_pcs: Vec<u64>,
}

/// A goroutine found parked at one of the PCs asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkedHit {
    /// The goroutine id.
    pub goid: u64,
    /// The PC it would resume at.
    pub pc: u64,
}

/// Everything needed to scan one process, computed once: the g layout, where allgs is, and
/// the asyncPreempt functions.
#[derive(Debug, Clone)]
pub struct GoroutineScanner<'b> {
    bin: &'b GoBinary,
    load_bias: u64,
    layout: GLayout,
    allgs: AllgsLocation,
    async_preempt: Range<u64>,
    async_preempt2: Range<u64>,
}

impl<'b> GoroutineScanner<'b> {
    /// Prepares a scan of the process `mem` running `bin` at `load_bias` (0 unless PIE). Its
    /// threads must be stopped.
    pub fn new(
        mem: &dyn MemoryReader,
        bin: &'b GoBinary,
        load_bias: u64,
    ) -> Result<Self, GoroutineError> {
        let layout = GLayout::for_binary(bin)?;
        Self::with_layout(mem, bin, load_bias, layout)
    }

    /// Like [`GoroutineScanner::new`] with a given layout.
    pub fn with_layout(
        mem: &dyn MemoryReader,
        bin: &'b GoBinary,
        load_bias: u64,
        layout: GLayout,
    ) -> Result<Self, GoroutineError> {
        let range = |name: &'static str| {
            bin.pclntab
                .func_by_name(name)
                .map(|f| f.range())
                .ok_or(GoroutineError::MissingFunction(name))
        };
        let async_preempt = range("runtime.asyncPreempt")?;
        let async_preempt2 = range("runtime.asyncPreempt2")?;
        let allgs = locate_allgs(mem, bin, load_bias, &layout)?;
        Ok(GoroutineScanner {
            bin,
            load_bias,
            layout,
            allgs,
            async_preempt,
            async_preempt2,
        })
    }

    /// The g layout in use.
    pub fn layout(&self) -> &GLayout {
        &self.layout
    }

    /// Where allgs was found.
    pub fn allgs(&self) -> &AllgsLocation {
        &self.allgs
    }

    /// Every goroutine that is not dead, with its resume PCs. Fails rather than return a list
    /// it cannot vouch for. An error may be transient (a thread stopped halfway through
    /// `copystack`, which writes a g's `stack` and `sched.sp` one after the other): let the
    /// world run briefly and scan again, or refuse to patch.
    pub fn goroutines(&self, mem: &dyn MemoryReader) -> Result<Vec<ParkedG>, GoroutineError> {
        let ptrs = self.allgs.read_gs(mem, self.load_bias)?;
        let gs = read_checked_gs(mem, &self.layout, &ptrs)?;
        let mut out = Vec::new();
        for g in gs {
            let status = g.status & !G_SCAN;
            if is_dead(status) {
                continue;
            }
            let mut p = ParkedG {
                goid: g.goid,
                status,
                g: g.addr,
                sched_pc: g.sched_pc,
                sched_sp: g.sched_sp,
                async_safe_point: g.async_safe_point,
                async_preempt: None,
                resume_pcs: Vec::new(),
            };
            if g.sched_sp != 0 {
                p.resume_pcs.push(g.sched_pc);
                let unwound = self
                    .unwind_async_preempt(mem, g.sched_pc, g.sched_sp, Some(g.stack))
                    .map_err(|reason| GoroutineError::Unwind {
                        goid: g.goid,
                        g: g.addr,
                        reason,
                    })?;
                if let Some(ap) = unwound {
                    p.resume_pcs.push(ap.interrupted_pc);
                    p.async_preempt = Some(ap);
                }
            }
            if g.async_safe_point == Some(true) && p.async_preempt.is_none() && status != G_RUNNING
            {
                // Set only by asyncPreempt2 (and a debugger's call injection): a parked g with
                // the flag but no asyncPreempt frame is one whose resume PC we cannot see.
                return Err(GoroutineError::Unwind {
                    goid: g.goid,
                    g: g.addr,
                    reason: format!(
                        "asyncSafePoint is set but sched.pc {:#x} is not in runtime.asyncPreempt2",
                        g.sched_pc
                    ),
                });
            }
            out.push(p);
        }
        Ok(out)
    }

    /// The PCs a stopped *thread* will reach without passing through the scheduler, besides
    /// its RIP: if RIP is inside `runtime.asyncPreempt2` or `runtime.asyncPreempt` (a goroutine
    /// resuming from an async preemption, or being preempted), the interrupted PC it will
    /// return to. Call it for every stopped thread with its RIP and RSP.
    pub fn thread_resume_pcs(
        &self,
        mem: &dyn MemoryReader,
        rip: u64,
        rsp: u64,
    ) -> Result<Vec<u64>, GoroutineError> {
        let mut v = vec![rip];
        let ap = self
            .unwind_async_preempt(mem, rip, rsp, None)
            .map_err(|reason| GoroutineError::Unwind {
                goid: 0,
                g: 0,
                reason,
            })?;
        v.extend(ap.map(|a| a.interrupted_pc));
        Ok(v)
    }

    /// From a frame at `pc` with stack pointer `sp` inside asyncPreempt2 or asyncPreempt, the
    /// interrupted PC; `Ok(None)` when `pc` is in neither.
    fn unwind_async_preempt(
        &self,
        mem: &dyn MemoryReader,
        pc: u64,
        sp: u64,
        stack: Option<(u64, u64)>,
    ) -> Result<Option<AsyncPreempt>, String> {
        let (mut pc, mut sp) = (pc, sp);
        for _ in 0..2 {
            let link = pc.wrapping_sub(self.load_bias);
            let in_ap2 = self.async_preempt2.contains(&link);
            let in_ap = self.async_preempt.contains(&link);
            if !in_ap && !in_ap2 {
                return Ok(None);
            }
            let delta = self
                .bin
                .pclntab
                .sp_delta_at(link)
                .ok_or_else(|| format!("no pcsp value at {pc:#x}"))?;
            if !(0..=MAX_FRAME).contains(&delta) {
                return Err(format!("implausible frame size {delta} at {pc:#x}"));
            }
            let slot = sp
                .checked_add(delta as u64)
                .ok_or_else(|| format!("sp {sp:#x} + {delta} overflows"))?;
            if let Some((lo, hi)) = stack {
                if slot < lo || slot.saturating_add(8) > hi {
                    return Err(format!(
                        "return slot {slot:#x} outside the stack [{lo:#x}, {hi:#x})"
                    ));
                }
            }
            let ret = mem
                .read_u64(slot)
                .map_err(|e| format!("reading the return address at {slot:#x}: {e}"))?;
            if in_ap {
                return Ok(Some(AsyncPreempt {
                    interrupted_pc: ret,
                    slot,
                }));
            }
            // asyncPreempt2 is only ever called by asyncPreempt.
            if !self
                .async_preempt
                .contains(&ret.wrapping_sub(self.load_bias))
            {
                return Err(format!(
                    "asyncPreempt2 at {pc:#x} returns to {ret:#x}, not into runtime.asyncPreempt"
                ));
            }
            pc = ret;
            sp = slot + 8;
        }
        Err("asyncPreempt frame not found".into())
    }
}

/// Every goroutine of a stopped process that is not dead, with every PC where it may resume
/// (runtime addresses, i.e. with `load_bias` added for PIE). All threads must be stopped.
pub fn parked_resume_pcs(
    mem: &dyn MemoryReader,
    bin: &GoBinary,
    load_bias: u64,
) -> Result<Vec<ParkedG>, GoroutineError> {
    GoroutineScanner::new(mem, bin, load_bias)?.goroutines(mem)
}

/// The goroutines that would resume at one of `pcs` (runtime addresses).
pub fn parked_at(
    mem: &dyn MemoryReader,
    bin: &GoBinary,
    load_bias: u64,
    pcs: &[u64],
) -> Result<Vec<ParkedHit>, GoroutineError> {
    let wanted: BTreeSet<u64> = pcs.iter().copied().collect();
    Ok(parked_resume_pcs(mem, bin, load_bias)?
        .into_iter()
        .flat_map(|g| {
            let goid = g.goid;
            g.resume_pcs
                .into_iter()
                .map(move |pc| ParkedHit { goid, pc })
        })
        .filter(|h| wanted.contains(&h.pc))
        .collect())
}

/// True when some goroutine would resume at one of `pcs` (runtime addresses). An error means
/// the answer is unknown: refuse to patch.
pub fn any_parked_at(
    mem: &dyn MemoryReader,
    bin: &GoBinary,
    load_bias: u64,
    pcs: &[u64],
) -> Result<bool, GoroutineError> {
    Ok(!parked_at(mem, bin, load_bias, pcs)?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;

    fn layout() -> GLayout {
        GLayout::for_version(&GoVersion::new(1, 21, 0)).unwrap()
    }

    /// A fake heap: a g-pointer array at 0x1000 and gs at 0x2000 + i*0x200.
    fn heap(gs: &[(u64, u32, u64, u64)]) -> (SliceMemory, Vec<u64>) {
        let l = layout();
        let mut bytes = vec![0u8; 0x10000];
        let mut ptrs = Vec::new();
        for (i, &(goid, status, sp, pc)) in gs.iter().enumerate() {
            let g = 0x2000 + i as u64 * 0x200;
            ptrs.push(0x10000 + g);
            let put = |b: &mut Vec<u8>, off: u64, v: u64| {
                b[(g + off) as usize..(g + off) as usize + 8].copy_from_slice(&v.to_le_bytes())
            };
            put(&mut bytes, 0, 0x18000);
            put(&mut bytes, 8, 0x19000);
            put(&mut bytes, l.goid, goid);
            put(&mut bytes, l.sched_sp, sp);
            put(&mut bytes, l.sched_pc, pc);
            bytes[(g + l.atomicstatus) as usize..(g + l.atomicstatus) as usize + 4]
                .copy_from_slice(&status.to_le_bytes());
        }
        (SliceMemory::new(0x10000, bytes), ptrs)
    }

    #[test]
    fn plausible_gs_pass_and_need_the_main_goroutine() {
        let (mem, ptrs) = heap(&[(1, G_WAITING, 0x18800, 0x401000), (2, G_DEAD, 0, 0)]);
        assert_eq!(read_checked_gs(&mem, &layout(), &ptrs).unwrap().len(), 2);
        let (mem, ptrs) = heap(&[(5, G_WAITING, 0x18800, 0x401000)]);
        assert!(matches!(
            read_checked_gs(&mem, &layout(), &ptrs),
            Err(GoroutineError::NoMainGoroutine { count: 1 })
        ));
    }

    #[test]
    fn implausible_gs_are_refused() {
        for bad in [
            (1, 0x77, 0x18800, 0x401000),            // status
            (0, G_WAITING, 0x18800, 0x401000),       // goid 0
            (1 << 60, G_WAITING, 0x18800, 0x401000), // goid huge
            (1, G_WAITING, 0x50000, 0x401000),       // sp outside the stack
        ] {
            let (mem, ptrs) = heap(&[bad]);
            let err = read_checked_gs(&mem, &layout(), &ptrs).unwrap_err();
            assert!(matches!(err, GoroutineError::BadG { .. }), "{bad:?}: {err}");
        }
        let (mem, _) = heap(&[]);
        assert!(read_checked_gs(&mem, &layout(), &[0x10001]).is_err());
        assert!(read_checked_gs(&mem, &layout(), &[0xdead_0000]).is_err());
    }

    #[test]
    fn absurd_counts_are_refused_before_reading() {
        let mem = SliceMemory::new(0, vec![0; 64]);
        let err = read_ptr_array(&mem, 0, u64::MAX, 0x1234).unwrap_err();
        assert!(
            matches!(err, GoroutineError::TooMany { addr: 0x1234, .. }),
            "{err}"
        );
        assert!(read_ptr_array(&mem, 0, 9, 0).is_err());
        assert_eq!(read_ptr_array(&mem, 0, 8, 0).unwrap(), vec![0; 8]);
    }

    #[test]
    fn async_safe_point_offsets_follow_atomicstatus() {
        let l = |m| GLayout::for_version(&GoVersion::new(1, m, 0)).unwrap();
        assert_eq!(l(21).async_safe_point, Some(180));
        assert_eq!(l(23).async_safe_point, Some(188));
        assert_eq!(l(27).async_safe_point, Some(180));
        assert_eq!(l(19).async_safe_point, None);
        assert_eq!(l(21).read_len(), 181);
    }

    #[test]
    fn status_names() {
        assert_eq!(status_name(G_PREEMPTED), "preempted");
        assert_eq!(status_name(99), "unknown");
    }
}
