//! Recognising the Go stack-check prologue and the morestack tail it branches to.
//!
//! The shapes are those emitted by `cmd/internal/obj/x86/obj6.go` `stacksplit` for ABIInternal
//! functions in Go 1.17–1.27 (go-runtime.md §2.1, Appendix A):
//!
//! ```text
//! small (frame <= 128):    49 3b 66 10              cmp rsp,[r14+10h]
//!                          76 rel8 | 0f 86 rel32    jbe morestack
//! large (frame <= 4096):   4c 8d 64 24 d8 | 4c 8d a4 24 d32   lea r12,[rsp-d]
//!                          4d 3b 66 10              cmp r12,[r14+10h]
//!                          76 rel8 | 0f 86 rel32    jbe morestack
//! huge:                    49 89 e4                 mov r12,rsp
//!                          49 81 ec imm32           sub r12,imm32
//!                          0f 82 rel32              jb morestack   (underflow)
//!                          4d 3b 66 10              cmp r12,[r14+10h]
//!                          0f 86 rel32              jbe morestack
//! ```
//!
//! The morestack tail: register spills, `CALL runtime.morestack[_noctxt]`, reloads (or a NOP),
//! then `JMP entry`.

use crate::decode::DecodedFunction;
use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};

/// `g.stackguard0` is at `16(R14)` in every Go release (hard-coded in obj6.go).
pub const STACKGUARD0_OFFSET: u64 = 16;

/// Which stack-check sequence a function starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackCheckShape {
    /// `CMP RSP,16(R14); JBE`: frame of at most 128 bytes.
    Small,
    /// `LEA -d(RSP),R12; CMP R12,16(R14); JBE`: frame of at most 4096 bytes.
    Large,
    /// `MOV RSP,R12; SUB $d,R12; JCS; CMP R12,16(R14); JBE`: bigger frames.
    Huge,
}

impl std::fmt::Display for StackCheckShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StackCheckShape::Small => "small-frame",
            StackCheckShape::Large => "large-frame",
            StackCheckShape::Huge => "huge-frame",
        })
    }
}

/// A recognised stack check at a function's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackCheck {
    pub shape: StackCheckShape,
    /// Number of instructions from the entry through the final JBE.
    pub len_insns: usize,
    /// Instructions that must be overwritten (go-runtime.md §2.3): CMP+JBE, the LEA, or MOV+SUB.
    pub patch_insns: usize,
    /// Address after the final JBE: where a passed check continues.
    pub resume: u64,
    /// Target of the JBE: the function's morestack tail.
    pub morestack: u64,
    /// Target of the huge shape's underflow JCS.
    pub underflow: Option<u64>,
}

/// A verified morestack tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MorestackTail {
    /// First instruction of the tail (the JBE target).
    pub start: u64,
    /// Target of its CALL (runtime.morestack or morestack_noctxt).
    pub call_target: u64,
    /// Address of the closing `JMP entry`.
    pub jump_back: u64,
}

/// Why a prologue or tail did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrologueMismatch {
    /// No instruction near the entry compares against `16(R14)`: NOSPLIT or a frameless leaf.
    NoStackCheck,
    /// An ABI0 function: it loads g from TLS first (`MOVQ FS:-8, R14`, or the PIE form
    /// `MOVQ $-8, R14; MOVQ FS:(R14), R14`), so R14 is not g at its entry.
    Abi0 { at: u64 },
    /// A stack guard is read but not in one of the known sequences.
    Unrecognised { at: u64 },
    /// The JBE/JCS target is not a morestack tail of the expected form.
    BadTail { at: u64, why: &'static str },
}

fn is_stackguard_mem(i: &Instruction, op: u32) -> bool {
    i.op_kind(op) == OpKind::Memory
        && i.memory_base() == Register::R14
        && i.memory_index() == Register::None
        && i.memory_displacement64() == STACKGUARD0_OFFSET
}

fn is_cmp_guard(i: &Instruction, reg: Register) -> bool {
    i.mnemonic() == Mnemonic::Cmp
        && i.op_count() == 2
        && i.op0_kind() == OpKind::Register
        && i.op0_register() == reg
        && is_stackguard_mem(i, 1)
}

fn is_jcc(i: &Instruction, m: Mnemonic) -> bool {
    i.mnemonic() == m && i.op0_kind() == OpKind::NearBranch64
}

fn is_reg(i: &Instruction, op: u32, reg: Register) -> bool {
    i.op_kind(op) == OpKind::Register && i.op_register(op) == reg
}

/// `MOV R14, FS:[disp]` or `MOV R14, FS:[R14]`: loading g from thread-local storage.
fn is_tls_g_load(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Mov
        && is_reg(i, 0, Register::R14)
        && i.op1_kind() == OpKind::Memory
        && i.memory_segment() == Register::FS
}

/// Recognises the stack check at the entry of `f`.
pub fn recognise(f: &DecodedFunction) -> Result<StackCheck, PrologueMismatch> {
    let ins = f.instructions();
    let at = |n: usize| ins.get(n);
    let i0 = at(0).ok_or(PrologueMismatch::NoStackCheck)?;
    // small
    if is_cmp_guard(i0, Register::RSP) {
        let jbe = at(1).filter(|i| is_jcc(i, Mnemonic::Jbe));
        return match jbe {
            Some(j) => Ok(StackCheck {
                shape: StackCheckShape::Small,
                len_insns: 2,
                patch_insns: 2,
                resume: j.next_ip(),
                morestack: j.near_branch_target(),
                underflow: None,
            }),
            None => Err(PrologueMismatch::Unrecognised { at: i0.ip() }),
        };
    }
    // large
    if i0.mnemonic() == Mnemonic::Lea
        && is_reg(i0, 0, Register::R12)
        && i0.memory_base() == Register::RSP
        && i0.memory_index() == Register::None
        && (i0.memory_displacement64() as i64) < 0
    {
        return match (at(1), at(2)) {
            (Some(c), Some(j)) if is_cmp_guard(c, Register::R12) && is_jcc(j, Mnemonic::Jbe) => {
                Ok(StackCheck {
                    shape: StackCheckShape::Large,
                    len_insns: 3,
                    patch_insns: 1,
                    resume: j.next_ip(),
                    morestack: j.near_branch_target(),
                    underflow: None,
                })
            }
            _ => Err(PrologueMismatch::Unrecognised { at: i0.ip() }),
        };
    }
    // huge
    if i0.mnemonic() == Mnemonic::Mov
        && is_reg(i0, 0, Register::R12)
        && is_reg(i0, 1, Register::RSP)
    {
        return match (at(1), at(2), at(3), at(4)) {
            (Some(s), Some(jc), Some(c), Some(j))
                if s.mnemonic() == Mnemonic::Sub
                    && is_reg(s, 0, Register::R12)
                    && matches!(
                        s.op1_kind(),
                        OpKind::Immediate32to64 | OpKind::Immediate8to64
                    )
                    && is_jcc(jc, Mnemonic::Jb)
                    && is_cmp_guard(c, Register::R12)
                    && is_jcc(j, Mnemonic::Jbe) =>
            {
                Ok(StackCheck {
                    shape: StackCheckShape::Huge,
                    len_insns: 5,
                    patch_insns: 2,
                    resume: j.next_ip(),
                    morestack: j.near_branch_target(),
                    underflow: Some(jc.near_branch_target()),
                })
            }
            _ => Err(PrologueMismatch::Unrecognised { at: i0.ip() }),
        };
    }
    if is_tls_g_load(i0) || (is_reg(i0, 0, Register::R14) && at(1).is_some_and(is_tls_g_load)) {
        return Err(PrologueMismatch::Abi0 { at: i0.ip() });
    }
    // Something reads the stack guard early but not in a known shape (e.g. ABI0 assembly that
    // loads g from TLS first): unrecognised, not "no check".
    if let Some(i) = ins
        .iter()
        .take(4)
        .find(|i| (0..i.op_count()).any(|op| is_stackguard_mem(i, op)))
    {
        return Err(PrologueMismatch::Unrecognised { at: i.ip() });
    }
    Err(PrologueMismatch::NoStackCheck)
}

/// Longest morestack tail accepted (spills of 9 integer and 15 float registers, call, reloads).
const MAX_TAIL_INSNS: usize = 64;

/// Verifies that `start` begins a morestack tail of `f`: only straight-line instructions, one
/// direct CALL, more straight-line instructions, then `JMP f.entry`.
pub fn verify_tail(f: &DecodedFunction, start: u64) -> Result<MorestackTail, PrologueMismatch> {
    let bad = |at: u64, why: &'static str| PrologueMismatch::BadTail { at, why };
    let first = f.index_at(start).ok_or(bad(
        start,
        "branch target is not an instruction of the function",
    ))?;
    let mut call_target = None;
    for i in f.instructions()[first..].iter().take(MAX_TAIL_INSNS) {
        match i.flow_control() {
            FlowControl::Next => {}
            FlowControl::Call if call_target.is_none() && i.op0_kind() == OpKind::NearBranch64 => {
                call_target = Some(i.near_branch_target());
            }
            FlowControl::UnconditionalBranch if i.op0_kind() == OpKind::NearBranch64 => {
                let Some(call_target) = call_target else {
                    return Err(bad(i.ip(), "jumps before calling morestack"));
                };
                if i.near_branch_target() != f.entry() {
                    return Err(bad(i.ip(), "does not jump back to the function entry"));
                }
                return Ok(MorestackTail {
                    start,
                    call_target,
                    jump_back: i.ip(),
                });
            }
            _ => return Err(bad(i.ip(), "unexpected control flow in the morestack tail")),
        }
    }
    Err(bad(
        start,
        "no JMP back to the entry within 64 instructions",
    ))
}
