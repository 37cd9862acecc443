//! Generating entry and exit trampolines and the patch bytes that jump to them.
//!
//! Entry trampoline (placed at `at`, reached by the `JMP rel32` over the stack check):
//!
//! ```text
//!     <the function's stack check, relocated; JBE/JCS -> the function's own morestack tail>
//!     [pushfq] ; push r12
//!     mov r12, &enable[hook] ; cmp byte [r12], 0 ; je .off
//!     push r13 r15 rax rdx                 (the recorder's scratch; at most 64 or 72 bytes of stack)
//!     <record: ring = region + HEADER + m.id * stride; full -> ring.drops++; no ring -> lock inc;
//!      argument registers stored from where they live; push rcx rsi rdi around string copies>
//!     pop ...
//! .off: pop r12 ; [popfq]
//!     jmp resume
//! ```
//!
//! Exit trampoline (reached by the `JMP rel32` over `ADD/POP` + `RET`): the epilogue's
//! instructions, the same save/record/restore, then `RET` — to the caller, from the trampoline,
//! so no trampoline address is ever left on a goroutine stack.
//!
//! Nothing before the stack check passes touches memory (go-runtime.md §0 rule 4). X registers are
//! only read (`MOVQ m64, xmm`), X15 and R14 are never written, DF is assumed clear (Go ABI).

use crate::epilogue::ExitPlan;
use crate::plan::{EntryPlan, JMP_REL32_LEN};
use crate::record::{self, RecordKind, MAX_STRINGS, N_FLOAT_REGS, N_INT_REGS};
use crate::ring_layout::{self as rl, RingLayout};
use iced_x86::code_asm::*;
use iced_x86::IcedError;
use thiserror::Error;

/// Offsets into Go's `g` and `m` structs the trampoline reads (go-runtime.md §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GOffsets {
    /// `g.goid`.
    pub goid: i32,
    /// `g.parentGoid` (Go 1.21+), or `None`.
    pub parent_goid: Option<i32>,
    /// `g.stack.hi` (8 in every release).
    pub stack_hi: i32,
    /// `g.m` (48 in every release).
    pub m: i32,
    /// `m.id`.
    pub m_id: i32,
}

impl GOffsets {
    /// The offsets measured from DWARF for Go 1.`minor` (go-runtime.md §6.1), or `None` for
    /// releases not measured. A fixed table for this crate's own tests and for callers without
    /// gostrings; gohook itself takes the offsets from `gostrings::GOffsets`.
    pub fn for_go_minor(minor: u32) -> Option<Self> {
        let (goid, parent, m_id) = match minor {
            19 => (152, None, 232),
            21 | 22 => (152, Some(272), 232),
            23 | 24 => (160, Some(280), 232),
            25 => (152, Some(272), 224),
            26 | 27 => (152, Some(280), 232),
            _ => return None,
        };
        Some(Self {
            goid,
            parent_goid: parent,
            stack_hi: 8,
            m: 48,
            m_id,
        })
    }
}

/// A Go integer argument register, in ABI order (index = position in `record::INT_REGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntReg {
    Rax = 0,
    Rbx,
    Rcx,
    Rdi,
    Rsi,
    R8,
    R9,
    R10,
    R11,
}

/// A string argument to copy: the registers holding its pointer and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringCapture {
    pub ptr: IntReg,
    pub len: IntReg,
}

/// A value reached from a pointer argument and copied at the call, so a script reads it as it
/// was then, not as the (possibly reused) memory is when the record is read: e.g.
/// `req.URL.Path` of `req *http.Request` is `base = RDI, derefs = [16], last = 56, String`.
///
/// The trampoline starts from `base`'s value, loads `[p + d]` for each `d` of `derefs`, then reads
/// the value at `p + last`. A nil pointer anywhere records an empty capture, never a fault. The
/// same trust as a string argument's copy: a non-nil Go pointer of the declared type is valid at
/// the call, since the argument keeps its object alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCapture {
    /// The argument register holding the first pointer.
    pub base: IntReg,
    /// Offsets of the pointer fields followed, in order (at most [`MAX_PATH_DEREFS`]).
    pub derefs: Vec<i32>,
    /// Offset of the captured value in the last struct.
    pub last: i32,
    /// What the value is.
    pub kind: PathValue,
}

/// The captured value of a [`PathCapture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathValue {
    /// A Go string header (pointer, length): its bytes are copied like a string argument's.
    String,
    /// `n` bytes (1 to 8) of a scalar or pointer, copied as they are.
    Word(u8),
}

/// Most pointer fields a [`PathCapture`] follows.
pub const MAX_PATH_DEREFS: usize = 4;

/// What a record carries beyond the fixed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    /// Bit i: store `INT_REGS[i]` (9 bits).
    pub int_mask: u16,
    /// Bit i: store the low 64 bits of `X<i>` (15 bits; X15 is always zero).
    pub float_mask: u16,
    /// String arguments; only meaningful at entry.
    pub strings: Vec<StringCapture>,
    /// Values reached from pointer arguments, recorded after the strings (entry only). Strings
    /// and paths together are at most [`MAX_STRINGS`].
    pub paths: Vec<PathCapture>,
    /// Bytes copied per string at most.
    pub string_cap: u16,
}

impl CaptureSpec {
    /// All nine integer registers, no floats, no strings.
    pub fn ints() -> Self {
        Self {
            int_mask: (1 << N_INT_REGS) - 1,
            float_mask: 0,
            strings: vec![],
            paths: vec![],
            string_cap: 0,
        }
    }
}

/// Everything a trampoline needs to know besides the site.
#[derive(Debug, Clone)]
pub struct StubContext {
    pub hook_id: u32,
    /// Address of the ring region in the target.
    pub region: u64,
    pub layout: RingLayout,
    pub g: GOffsets,
    pub capture: CaptureSpec,
    /// Save and restore RFLAGS around the recorder (PUSHFQ/POPFQ). Go's ABI makes the arithmetic
    /// flags dead at both patch points (after the stack check's JBE, and at a RET), and DF is
    /// never changed, so `false` is correct for ABIInternal code; `true` is the belt-and-braces
    /// choice and measured ~20 ns dearer per hook on the 2-vCPU test VM (POPFQ is slow there).
    pub preserve_flags: bool,
}

/// Generated machine code, valid only at `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trampoline {
    pub address: u64,
    pub code: Vec<u8>,
}

/// Why a trampoline or patch could not be generated.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StubError {
    /// The hook id has no enable byte.
    #[error("hook id {0} exceeds the {max} hooks the ring region supports", max = rl::MAX_HOOKS)]
    HookIdTooLarge(u32),
    /// The capture spec asks for something the record cannot hold.
    #[error("capture spec rejected: {0}")]
    BadCapture(String),
    /// A 5-byte JMP cannot reach the trampoline.
    #[error("trampoline at {trampoline:#x} is out of JMP rel32 range of the site {site:#x}")]
    OutOfRange { site: u64, trampoline: u64 },
    /// The patch range is shorter than the jump.
    #[error("patch range of {0} bytes is shorter than a 5-byte jump")]
    SiteTooShort(usize),
    /// iced-x86 failed to assemble (a relocation that cannot be encoded at this address).
    #[error("assembling the trampoline failed: {0}")]
    Assemble(String),
}

impl From<IcedError> for StubError {
    fn from(e: IcedError) -> Self {
        StubError::Assemble(e.to_string())
    }
}

/// Most bytes of stack the trampoline pushes: R12, R13, R15, RAX, RDX, plus RCX, RSI, RDI when
/// strings are copied, plus 8 for RFLAGS when preserved. Only the registers the recorder uses are
/// saved: the argument registers are stored into the record straight from where they live.
pub fn frame_bytes(preserve_flags: bool) -> i32 {
    8 * 8 + if preserve_flags { 8 } else { 0 }
}

/// The registers pushed so far, in push order: where a saved register's value now lives.
struct Frame {
    /// Bytes pushed before the first register (RFLAGS).
    base: i32,
    pushed: Vec<AsmRegister64>,
}

impl Frame {
    fn push(&mut self, a: &mut CodeAssembler, r: AsmRegister64) -> Result<(), StubError> {
        a.push(r)?;
        self.pushed.push(r);
        Ok(())
    }

    fn pop(&mut self, a: &mut CodeAssembler) -> Result<(), StubError> {
        if let Some(r) = self.pushed.pop() {
            a.pop(r)?;
        }
        Ok(())
    }

    /// Bytes between RSP now and RSP at the patch point.
    fn bytes(&self) -> i32 {
        self.base + 8 * self.pushed.len() as i32
    }

    /// The stack offset (from RSP now) of `r`'s saved value, if it was pushed (and so may have
    /// been overwritten since); `None` when `r` still holds the function's value.
    fn slot(&self, r: AsmRegister64) -> Option<i32> {
        let pos = self.pushed.iter().rposition(|p| *p == r)?;
        Some(8 * (self.pushed.len() - 1 - pos) as i32)
    }

    /// Loads the function's value of argument register `r` into `dst`.
    fn load_arg(
        &self,
        a: &mut CodeAssembler,
        dst: AsmRegister64,
        r: IntReg,
    ) -> Result<(), StubError> {
        let reg = INT_ASM[r as usize];
        match self.slot(reg) {
            Some(off) => a.mov(dst, qword_ptr(rsp + off))?,
            None if reg != dst => a.mov(dst, reg)?,
            None => {}
        }
        Ok(())
    }
}

const INT_ASM: [AsmRegister64; N_INT_REGS] = [rax, rbx, rcx, rdi, rsi, r8, r9, r10, r11];
const XMM: [AsmRegisterXmm; N_FLOAT_REGS] = [
    xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14,
];

fn validate(ctx: &StubContext) -> Result<(), StubError> {
    if ctx.hook_id as usize >= rl::MAX_HOOKS {
        return Err(StubError::HookIdTooLarge(ctx.hook_id));
    }
    let c = &ctx.capture;
    if c.int_mask >> N_INT_REGS != 0 || c.float_mask >> N_FLOAT_REGS != 0 {
        return Err(StubError::BadCapture(
            "register mask names a register past R11/X14".into(),
        ));
    }
    let n = c.strings.len() + c.paths.len();
    if n > MAX_STRINGS {
        return Err(StubError::BadCapture(format!(
            "{n} strings and path captures, at most {MAX_STRINGS}"
        )));
    }
    for p in &c.paths {
        if p.derefs.len() > MAX_PATH_DEREFS {
            return Err(StubError::BadCapture(format!(
                "a path capture follows {} pointers, at most {MAX_PATH_DEREFS}",
                p.derefs.len()
            )));
        }
        if let PathValue::Word(w) = p.kind {
            if !(1..=8).contains(&w) || w as u16 > c.string_cap {
                return Err(StubError::BadCapture(format!(
                    "a {w}-byte word capture (1 to 8 bytes, within the {}-byte budget)",
                    c.string_cap
                )));
            }
        }
    }
    let need = record::FIXED_SIZE + n * c.string_cap as usize;
    if need > ctx.layout.slot_size() as usize {
        return Err(StubError::BadCapture(format!(
            "{n} strings of {} bytes need a {need}-byte slot; the ring has {}",
            c.string_cap,
            ctx.layout.slot_size()
        )));
    }
    Ok(())
}

/// Emits: flags/R12 save, enable check, scratch save, record, restore; falls through to the
/// caller-supplied continuation with every register as it was.
fn emit_recorded_section(
    a: &mut CodeAssembler,
    ctx: &StubContext,
    kind: RecordKind,
) -> Result<(), StubError> {
    let enable = ctx.region + rl::HDR_ENABLE as u64 + ctx.hook_id as u64;
    let mut off = a.create_label();
    let mut f = Frame {
        base: if ctx.preserve_flags { 8 } else { 0 },
        pushed: Vec::new(),
    };
    if ctx.preserve_flags {
        a.pushfq()?;
    }
    f.push(a, r12)?;
    a.mov(r12, enable)?;
    a.cmp(byte_ptr(r12), 0)?;
    a.je(off)?;
    for r in [r13, r15, rax, rdx] {
        f.push(a, r)?;
    }
    emit_record(a, ctx, kind, &mut f)?;
    for _ in 0..4 {
        f.pop(a)?;
    }
    a.set_label(&mut off)?;
    f.pop(a)?;
    if ctx.preserve_flags {
        a.popfq()?;
    }
    Ok(())
}

/// Emits the record write. Scratch: R12, R13, R15, RAX, RDX (saved by the caller in `f`); RCX,
/// RSI, RDI are saved here around string copies. R14 and RSP are never written.
fn emit_record(
    a: &mut CodeAssembler,
    ctx: &StubContext,
    kind: RecordKind,
    f: &mut Frame,
) -> Result<(), StubError> {
    let l = &ctx.layout;
    let g = &ctx.g;
    let c = &ctx.capture;
    let mut no_ring = a.create_label();
    let mut full = a.create_label();
    let mut done = a.create_label();

    // r15 = m.id, checked against the ring count (unsigned: a negative id is out of range too).
    a.mov(r15, qword_ptr(r14 + g.m))?;
    a.test(r15, r15)?;
    a.jz(no_ring)?;
    a.mov(r15, qword_ptr(r15 + g.m_id))?;
    a.cmp(r15, l.n_rings() as i32)?;
    a.jae(no_ring)?;
    // r12 = ring i.
    a.imul_3(r12, r15, l.ring_stride() as i32)?;
    a.mov(r13, ctx.region + rl::HEADER_SIZE as u64)?;
    a.add(r12, r13)?;
    // rdx = head; full when head - tail >= slots.
    a.mov(rdx, qword_ptr(r12 + rl::RING_HEAD as i32))?;
    a.mov(rax, rdx)?;
    a.sub(rax, qword_ptr(r12 + rl::RING_TAIL as i32))?;
    a.cmp(rax, l.slots_per_ring() as i32)?;
    a.jae(full)?;
    // r13 = slot = ring + RING_HEADER + (head & mask) << log2(slot_size).
    a.mov(rax, rdx)?;
    a.and(rax, (l.slots_per_ring() - 1) as i32)?;
    a.shl(rax, l.slot_size().trailing_zeros())?;
    a.lea(r13, qword_ptr(r12 + rax + rl::RING_HEADER_SIZE as i32))?;
    a.mov(qword_ptr(r13 + record::OFF_M_ID as i32), r15)?;
    // r15 = head from here on.
    a.mov(r15, rdx)?;

    let flags = if g.parent_goid.is_some() {
        record::FLAG_HAS_PARENT
    } else {
        0
    };
    let n_strings = if kind == RecordKind::Entry {
        c.strings.len() + c.paths.len()
    } else {
        0
    };
    let word4 = kind as u32 | (flags as u32) << 8 | (n_strings as u32) << 16;
    a.mov(dword_ptr(r13 + record::OFF_HOOK_ID as i32), ctx.hook_id)?;
    a.mov(dword_ptr(r13 + record::OFF_KIND as i32), word4)?;
    a.mov(
        dword_ptr(r13 + record::OFF_INT_MASK as i32),
        c.int_mask as u32 | (c.float_mask as u32) << 16,
    )?;
    a.mov(
        dword_ptr(r13 + record::OFF_STRING_CAP as i32),
        c.string_cap as u32,
    )?;
    // Argument (or result) registers first, while they are still live or saved.
    for (i, r) in INT_REG_ORDER.iter().enumerate() {
        if c.int_mask & (1 << i) != 0 {
            let dst = qword_ptr(r13 + (record::OFF_INTS + 8 * i) as i32);
            let reg = INT_ASM[*r as usize];
            if f.slot(reg).is_some() {
                f.load_arg(a, rax, *r)?;
                a.mov(dst, rax)?;
            } else {
                a.mov(dst, reg)?;
            }
        }
    }
    for (i, x) in XMM.iter().enumerate() {
        if c.float_mask & (1 << i) != 0 {
            a.movq(qword_ptr(r13 + (record::OFF_FLOATS + 8 * i) as i32), *x)?;
        }
    }
    a.rdtsc()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)?;
    a.mov(qword_ptr(r13 + record::OFF_TSC as i32), rax)?;
    a.mov(rax, qword_ptr(r14 + g.goid))?;
    a.mov(qword_ptr(r13 + record::OFF_GOID as i32), rax)?;
    match g.parent_goid {
        Some(p) => a.mov(rax, qword_ptr(r14 + p))?,
        None => a.xor(eax, eax)?,
    }
    a.mov(qword_ptr(r13 + record::OFF_PARENT_GOID as i32), rax)?;
    // depth = stack.hi - SP at the patch point (the entry trampoline runs before the frame is
    // built; the exit trampoline after it is torn down).
    a.mov(rax, qword_ptr(r14 + g.stack_hi))?;
    a.lea(rdx, qword_ptr(rsp + f.bytes()))?;
    a.sub(rax, rdx)?;
    a.mov(qword_ptr(r13 + record::OFF_DEPTH as i32), rax)?;
    if kind == RecordKind::Entry && n_strings > 0 {
        for r in [rcx, rsi, rdi] {
            f.push(a, r)?;
        }
        for (i, s) in c.strings.iter().enumerate() {
            f.load_arg(a, rsi, s.ptr)?;
            f.load_arg(a, rcx, s.len)?;
            emit_string_copy(a, i, c.string_cap)?;
        }
        for (j, p) in c.paths.iter().enumerate() {
            emit_path_copy(a, c.strings.len() + j, p, c.string_cap, f)?;
        }
        for _ in 0..3 {
            f.pop(a)?;
        }
    }
    // Publish: plain store of head + 1 after the slot (x86-TSO keeps store order).
    a.inc(r15)?;
    a.mov(qword_ptr(r12 + rl::RING_HEAD as i32), r15)?;
    // Ask for ownership of a slot a few records ahead now, so later records' stores do not wait
    // for lines the consumer last read from another core (a prefetch never faults, even past
    // the ring's end). Four slots ahead measured better than one on the 2-vCPU test VM.
    let next = l.slot_size() as i32 * PREFETCH_SLOTS_AHEAD;
    a.prefetchw(byte_ptr(r13 + next))?;
    a.prefetchw(byte_ptr(r13 + next + 64))?;
    a.jmp(done)?;

    a.set_label(&mut full)?;
    a.inc(qword_ptr(r12 + rl::RING_DROPS as i32))?;
    a.jmp(done)?;

    a.set_label(&mut no_ring)?;
    a.mov(r12, ctx.region + rl::HDR_GLOBAL_DROPS as u64)?;
    a.lock().inc(qword_ptr(r12))?;

    a.set_label(&mut done)?;
    Ok(())
}

/// How many slots ahead of the one written the recorder prefetches for writing.
const PREFETCH_SLOTS_AHEAD: i32 = 4;

const INT_REG_ORDER: [IntReg; N_INT_REGS] = [
    IntReg::Rax,
    IntReg::Rbx,
    IntReg::Rcx,
    IntReg::Rdi,
    IntReg::Rsi,
    IntReg::R8,
    IntReg::R9,
    IntReg::R10,
    IntReg::R11,
];

/// Follows path capture `p` from its base argument and copies its value as capture `i`: RSI and
/// RCX get the value's (pointer, length) (for a word: its address and size), then the string
/// copy runs. A nil pointer on the way records an empty capture. Uses RSI/RDI/RCX/RDX/RAX, all
/// saved in `f`.
fn emit_path_copy(
    a: &mut CodeAssembler,
    i: usize,
    p: &PathCapture,
    cap: u16,
    f: &Frame,
) -> Result<(), StubError> {
    let desc = (record::OFF_STRINGS + 8 * i) as i32;
    let mut nil = a.create_label();
    let mut next = a.create_label();
    f.load_arg(a, rsi, p.base)?;
    for d in &p.derefs {
        a.test(rsi, rsi)?;
        a.jz(nil)?;
        a.mov(rsi, qword_ptr(rsi + *d))?;
    }
    a.test(rsi, rsi)?;
    a.jz(nil)?;
    match p.kind {
        PathValue::String => {
            a.mov(rcx, qword_ptr(rsi + p.last + 8))?;
            a.mov(rsi, qword_ptr(rsi + p.last))?;
        }
        PathValue::Word(w) => {
            a.lea(rsi, qword_ptr(rsi + p.last))?;
            a.mov(ecx, w as u32)?;
        }
    }
    emit_string_copy(a, i, cap)?;
    a.jmp(next)?;
    a.set_label(&mut nil)?;
    a.mov(qword_ptr(r13 + desc), 0)?;
    a.set_label(&mut next)?;
    Ok(())
}

/// Copies `min(len, cap)` bytes from RSI (length in RCX) as string `i` into the slot (r13). A
/// length <= 0 or a nil pointer copies nothing. Uses RSI/RDI/RCX/RDX/RAX, all saved by the caller.
fn emit_string_copy(a: &mut CodeAssembler, i: usize, cap: u16) -> Result<(), StubError> {
    let desc = (record::OFF_STRINGS + 8 * i) as i32;
    let data = (record::OFF_DATA + i * cap as usize) as i32;
    let mut empty = a.create_label();
    let mut next = a.create_label();
    let mut fits = a.create_label();
    // Original length, clamped to u32::MAX (0 if negative).
    a.xor(eax, eax)?;
    a.mov(edx, u32::MAX)?;
    a.test(rcx, rcx)?;
    a.cmovg(rax, rcx)?;
    a.cmp(rax, rdx)?;
    a.cmova(rax, rdx)?;
    a.mov(dword_ptr(r13 + desc + 4), eax)?;
    a.test(rsi, rsi)?;
    a.jz(empty)?;
    a.test(rcx, rcx)?;
    a.jle(empty)?;
    a.cmp(rcx, cap as i32)?;
    a.jbe(fits)?;
    a.mov(ecx, cap as u32)?;
    a.set_label(&mut fits)?;
    a.mov(dword_ptr(r13 + desc), ecx)?;
    a.lea(rdi, qword_ptr(r13 + data))?;
    a.rep().movsb()?;
    a.jmp(next)?;
    a.set_label(&mut empty)?;
    a.mov(dword_ptr(r13 + desc), 0u32)?;
    a.set_label(&mut next)?;
    Ok(())
}

/// Generates the entry trampoline for `plan` at address `at`.
pub fn entry_trampoline(
    plan: &EntryPlan,
    at: u64,
    ctx: &StubContext,
) -> Result<Trampoline, StubError> {
    validate(ctx)?;
    let mut a = CodeAssembler::new(64)?;
    for i in &plan.replicated {
        // Branches keep their absolute targets (the morestack tail); the encoder re-encodes them
        // for this address, widening rel8 to rel32.
        a.add_instruction(*i)?;
    }
    emit_recorded_section(&mut a, ctx, RecordKind::Entry)?;
    a.jmp(plan.resume)?;
    let code = a.assemble(at)?;
    Ok(Trampoline { address: at, code })
}

/// Generates the exit trampoline replacing the epilogue in `plan`, at address `at`.
pub fn exit_trampoline(
    plan: &ExitPlan,
    at: u64,
    ctx: &StubContext,
) -> Result<Trampoline, StubError> {
    validate(ctx)?;
    let mut a = CodeAssembler::new(64)?;
    for i in &plan.displaced {
        a.add_instruction(*i)?;
    }
    emit_recorded_section(&mut a, ctx, RecordKind::Exit)?;
    a.ret()?;
    let code = a.assemble(at)?;
    Ok(Trampoline { address: at, code })
}

/// The bytes to write over `[site, site + len)`: `E9 rel32` to `trampoline`, then INT3 padding
/// (no goroutine can resume in the padding: its boundaries were proven async-unsafe).
pub fn patch_bytes(site: u64, len: usize, trampoline: u64) -> Result<Vec<u8>, StubError> {
    if len < JMP_REL32_LEN {
        return Err(StubError::SiteTooShort(len));
    }
    let rel = (trampoline as i128) - (site as i128 + JMP_REL32_LEN as i128);
    let rel = i32::try_from(rel).map_err(|_| StubError::OutOfRange { site, trampoline })?;
    let mut out = Vec::with_capacity(len);
    out.push(0xE9);
    out.extend_from_slice(&rel.to_le_bytes());
    out.resize(len, 0xCC);
    Ok(out)
}
