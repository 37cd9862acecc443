//! Entry planning: decide whether a function's entry can be patched, and exactly how.
//!
//! The patch range is the stack-check instructions only (go-runtime.md §0 rule 1, §2.3): small
//! shape CMP+JBE, large shape the LEA, huge shape MOV+SUB. The trampoline replicates the whole
//! check (up to the final JBE) and resumes after it, so a failed check goes through the
//! function's own morestack tail and re-enters the hook exactly once.

use crate::decode::{DecodeError, DecodedFunction};
use crate::prologue::{self, PrologueMismatch, StackCheckShape};
use crate::unsafe_points::{UnsafePoints, UNSAFE};
use iced_x86::{FlowControl, Instruction};
use thiserror::Error;

/// Bytes of the `JMP rel32` written at a patch site.
pub const JMP_REL32_LEN: usize = 5;

/// How to hook a function's entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryPlan {
    pub entry: u64,
    pub shape: StackCheckShape,
    /// Bytes overwritten at the entry: `[entry, entry + patch_len)`, at least 5.
    pub patch_len: usize,
    /// The stack check as decoded, `[entry, resume)`; the trampoline replays it.
    pub replicated: Vec<Instruction>,
    /// Where the function continues after a passed check.
    pub resume: u64,
    /// The JBE target: the function's own morestack tail (jumped to, never called).
    pub morestack: u64,
    /// The huge shape's JCS target.
    pub underflow: Option<u64>,
    /// What the tail calls (runtime.morestack or morestack_noctxt), for display.
    pub morestack_call: u64,
    /// Indirect jumps in the function (jump tables). Their targets cannot be checked; in Go they
    /// are case blocks after the prologue, so they cannot land inside the patched stack check.
    pub indirect_jumps: usize,
}

impl EntryPlan {
    /// The instructions the patch overwrites (a prefix of [`EntryPlan::replicated`]); the
    /// injector keeps their original bytes to unpatch.
    pub fn displaced(&self) -> &[Instruction] {
        let end = self.entry + self.patch_len as u64;
        let n = self.replicated.iter().take_while(|i| i.ip() < end).count();
        &self.replicated[..n]
    }
}

/// Why a function's entry is not hooked. `Display` says it in a user's words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The caller says the function is assembly (FuncFlagAsm) or otherwise off limits.
    #[error("assembly or runtime function: not hooked")]
    Assembly,
    /// No stack check at the entry: NOSPLIT or a frameless leaf; any patched boundary may be a
    /// preemption point.
    #[error("no stack check at the entry (NOSPLIT or frameless leaf); patching could split a preemption point")]
    NoStackCheck,
    /// An ABI0 (assembly-ABI) function: it loads g from TLS at its entry, so R14 is not g there
    /// and the trampoline could not identify the goroutine. Hook its ABIInternal twin instead.
    #[error("ABI0 function (loads g from TLS at {at:#x}); hook the ABIInternal function it wraps")]
    Abi0 { at: u64 },
    /// Fewer than 5 bytes of stack check to overwrite. (No known Go shape is this short; kept
    /// so that a future shape cannot slip through.)
    #[error("only {len} bytes of stack check at the entry; a jump needs 5")]
    TooShort { len: usize },
    /// The bytes do not decode.
    #[error("{0}")]
    Undecodable(DecodeError),
    /// A stack-guard read in a sequence this version of gohook does not know (e.g. runtime
    /// systemstack functions that check stackguard1).
    #[error("stack check at {at:#x} has an unknown form")]
    UnrecognisedPrologue { at: u64 },
    /// The JBE/JCS target is not a morestack tail ending in `JMP entry`.
    #[error("morestack tail at {at:#x} not recognised: {why}")]
    BadMorestackTail { at: u64, why: &'static str },
    /// A branch somewhere in the function targets the inside of the patch range.
    #[error("branch at {from:#x} targets {to:#x}, inside the bytes to patch")]
    BranchIntoPatch { from: u64, to: u64 },
    /// An instruction boundary inside the patch range is (or may be) an async-preemption point.
    #[error("instruction boundary {pc:#x} inside the patch is a possible preemption point ({})", match value {
        Some(v) => format!("PCDATA_UnsafePoint {v}"),
        None => "no unsafe-point data".to_owned(),
    })]
    InteriorBoundaryNotUnsafe { pc: u64, value: Option<i32> },
    /// The patch range contains a CALL, so a return address could point inside it. (No known Go
    /// shape has one; kept as a guard.)
    #[error("call at {at:#x} inside the bytes to patch")]
    CallInPatch { at: u64 },
}

/// What the caller knows about a function beyond its bytes.
#[derive(Clone, Copy)]
pub struct FunctionFacts<'a> {
    /// FuncFlagAsm/SPWrite, a runtime package, or a non-zero FuncID: never hooked.
    pub is_assembly: bool,
    /// PCDATA_UnsafePoint of the function.
    pub unsafe_points: &'a dyn UnsafePoints,
}

/// Decodes and plans in one step.
pub fn plan_entry_bytes(
    code: &[u8],
    entry: u64,
    facts: FunctionFacts<'_>,
) -> Result<EntryPlan, Refusal> {
    if facts.is_assembly {
        return Err(Refusal::Assembly);
    }
    let f = DecodedFunction::decode(code, entry).map_err(Refusal::Undecodable)?;
    plan_entry(&f, facts)
}

/// Plans the entry hook of a decoded function, or says why not.
pub fn plan_entry(f: &DecodedFunction, facts: FunctionFacts<'_>) -> Result<EntryPlan, Refusal> {
    if facts.is_assembly {
        return Err(Refusal::Assembly);
    }
    let check = prologue::recognise(f).map_err(|m| match m {
        PrologueMismatch::NoStackCheck => Refusal::NoStackCheck,
        PrologueMismatch::Unrecognised { at } => Refusal::UnrecognisedPrologue { at },
        PrologueMismatch::Abi0 { at } => Refusal::Abi0 { at },
        PrologueMismatch::BadTail { at, why } => Refusal::BadMorestackTail { at, why },
    })?;
    let ins = f.instructions();
    let patched = &ins[..check.patch_insns];
    let patch_end = patched.last().map(|i| i.next_ip()).unwrap_or(f.entry());
    let patch_len = (patch_end - f.entry()) as usize;
    if patch_len < JMP_REL32_LEN {
        return Err(Refusal::TooShort { len: patch_len });
    }
    for i in patched {
        if matches!(
            i.flow_control(),
            FlowControl::Call
                | FlowControl::IndirectCall
                | FlowControl::Return
                | FlowControl::Interrupt
        ) {
            return Err(Refusal::CallInPatch { at: i.ip() });
        }
    }
    if let Some((from, to)) = f.branch_into(f.entry(), patch_end) {
        return Err(Refusal::BranchIntoPatch { from, to });
    }
    for i in &patched[1..] {
        let value = facts.unsafe_points.value_at(i.ip());
        if value != Some(UNSAFE) {
            return Err(Refusal::InteriorBoundaryNotUnsafe { pc: i.ip(), value });
        }
    }
    let tail = prologue::verify_tail(f, check.morestack).map_err(|m| match m {
        PrologueMismatch::BadTail { at, why } => Refusal::BadMorestackTail { at, why },
        _ => Refusal::BadMorestackTail {
            at: check.morestack,
            why: "not a tail",
        },
    })?;
    if let Some(u) = check.underflow {
        prologue::verify_tail(f, u).map_err(|_| Refusal::BadMorestackTail {
            at: u,
            why: "underflow branch does not reach a morestack tail",
        })?;
    }
    Ok(EntryPlan {
        entry: f.entry(),
        shape: check.shape,
        patch_len,
        replicated: ins[..check.len_insns].to_vec(),
        resume: check.resume,
        morestack: check.morestack,
        underflow: check.underflow,
        morestack_call: tail.call_target,
        indirect_jumps: f.indirect_jumps().count(),
    })
}
