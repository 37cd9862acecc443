//! Exit sites: every RET of a function, and the epilogue each one can be patched with.
//!
//! ```text
//! Go 1.21+:      48 83 c4 ib | 48 81 c4 id   add rsp,n
//!                5d                          pop rbp
//!                c3                          ret
//! Go 1.17–1.20:  48 8b 6c 24 ib | 48 8b ac 24 id   mov rbp,[rsp+d]
//!                48 83 c4 ib | 48 81 c4 id         add rsp,n
//!                c3                                ret
//! ```
//!
//! An exit trampoline re-executes the epilogue (minus the RET), records, then RETs itself, so no
//! trampoline address ever sits on a goroutine stack.

use crate::decode::DecodedFunction;
use crate::unsafe_points::{UnsafePoints, UNSAFE};
use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};
use thiserror::Error;

/// Which epilogue precedes a RET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpilogueShape {
    /// `ADD $n,RSP; POP RBP; RET` (Go 1.21+).
    AddPop,
    /// `MOV d(RSP),RBP; ADD $n,RSP; RET` (Go 1.17–1.20).
    MovAdd,
}

/// A patchable epilogue: `[start, ret + 1)` is overwritten with a JMP to the exit trampoline.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitPlan {
    pub shape: EpilogueShape,
    /// First byte of the patch range (the first epilogue instruction).
    pub start: u64,
    /// Address of the RET.
    pub ret: u64,
    /// Bytes to patch, ending with the RET.
    pub len: usize,
    /// The epilogue instructions before the RET, re-executed by the trampoline.
    pub displaced: Vec<Instruction>,
    /// Interior instruction boundaries that are not proven async-unsafe (PCDATA_UnsafePoint is
    /// not -2, or unknown). A goroutine could be parked there by async preemption, so the
    /// injector must prove none is (scan goroutine stacks) before patching, or refuse the site.
    pub async_safe_boundaries: Vec<u64>,
}

/// Why a RET cannot be patched.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExitRefusal {
    /// A RET with no frame teardown before it (frameless leaf): nothing to patch but 1 byte.
    #[error("frameless return: no epilogue to patch")]
    FramelessReturn,
    /// The epilogue is shorter than the 5 bytes a `JMP rel32` needs (e.g. `POP RBP; RET`).
    #[error("epilogue is {len} bytes, a 5-byte jump does not fit")]
    TooShort { len: usize },
    /// Some branch in the function lands inside the epilogue.
    #[error("branch at {from:#x} lands inside the epilogue at {to:#x}")]
    BranchInto { from: u64, to: u64 },
    /// A RET with an immediate, or a teardown of an unknown form.
    #[error("epilogue of an unknown form")]
    Unrecognised,
    /// The function has no stack check (NOSPLIT with a frame, or ABI0): nothing guarantees the
    /// stack the exit trampoline pushes below SP at its RET.
    #[error("function has no stack check: the exit trampoline's stack use is not guaranteed")]
    NoStackCheck,
}

/// One way out of a function.
#[derive(Debug, Clone, PartialEq)]
pub enum Exit {
    /// A RET: patchable (`Ok`) or not (`Err`).
    Return {
        ret: u64,
        plan: Result<ExitPlan, ExitRefusal>,
    },
    /// A direct JMP leaving the function (a wrapper's tail call): the callee returns directly to
    /// our caller, so this exit cannot be recorded.
    TailJump { at: u64, target: u64 },
    /// An indirect JMP (a jump table or a tail call through a register): if it leaves the
    /// function, that exit cannot be recorded.
    IndirectJump { at: u64 },
}

fn is_add_rsp(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Add
        && i.op0_kind() == OpKind::Register
        && i.op0_register() == Register::RSP
        && matches!(
            i.op1_kind(),
            OpKind::Immediate8to64 | OpKind::Immediate32to64
        )
}

fn is_pop_rbp(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Pop
        && i.op0_kind() == OpKind::Register
        && i.op0_register() == Register::RBP
}

fn is_mov_rbp_from_stack(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Mov
        && i.op0_kind() == OpKind::Register
        && i.op0_register() == Register::RBP
        && i.op1_kind() == OpKind::Memory
        && i.memory_base() == Register::RSP
        && i.memory_index() == Register::None
}

/// Plans the epilogue ending at instruction `ret_idx` (a RET).
/// `checked`: the function starts with a recognised stack check, so at any RET at least
/// StackGuard (928) bytes are free below SP — the room the exit trampoline pushes need.
fn plan_return(
    f: &DecodedFunction,
    ret_idx: usize,
    up: &dyn UnsafePoints,
    checked: bool,
) -> Result<ExitPlan, ExitRefusal> {
    let ins = f.instructions();
    let ret = &ins[ret_idx];
    if ret.op_count() != 0 {
        return Err(ExitRefusal::Unrecognised);
    }
    let prev = |back: usize| ret_idx.checked_sub(back).map(|i| &ins[i]);
    let (shape, first) = match (prev(2), prev(1)) {
        (Some(a), Some(p)) if is_add_rsp(a) && is_pop_rbp(p) => {
            (EpilogueShape::AddPop, ret_idx - 2)
        }
        (Some(m), Some(a)) if is_mov_rbp_from_stack(m) && is_add_rsp(a) => {
            (EpilogueShape::MovAdd, ret_idx - 2)
        }
        (_, Some(p)) if is_pop_rbp(p) => return Err(ExitRefusal::TooShort { len: 2 }),
        (_, Some(a)) if is_add_rsp(a) => return Err(ExitRefusal::Unrecognised),
        _ => return Err(ExitRefusal::FramelessReturn),
    };
    let start = ins[first].ip();
    let len = (ret.next_ip() - start) as usize;
    if len < 5 {
        return Err(ExitRefusal::TooShort { len });
    }
    if let Some((from, to)) = f.branch_into(start, ret.next_ip()) {
        return Err(ExitRefusal::BranchInto { from, to });
    }
    if !checked {
        return Err(ExitRefusal::NoStackCheck);
    }
    let async_safe_boundaries = ins[first + 1..=ret_idx]
        .iter()
        .map(|i| i.ip())
        .filter(|&pc| up.value_at(pc) != Some(UNSAFE))
        .collect();
    Ok(ExitPlan {
        shape,
        start,
        ret: ret.ip(),
        len,
        displaced: ins[first..ret_idx].to_vec(),
        async_safe_boundaries,
    })
}

/// Every exit of `f`: each RET with its plan or refusal, and the tail jumps that leave it.
///
/// RETs of functions without a recognised stack check are refused ([`ExitRefusal::NoStackCheck`]):
/// a NOSPLIT function's RET may sit within bytes of the stack's end.
pub fn exits(f: &DecodedFunction, up: &dyn UnsafePoints) -> Vec<Exit> {
    let checked = crate::prologue::recognise(f).is_ok();
    let mut out = Vec::new();
    for (idx, i) in f.instructions().iter().enumerate() {
        match i.flow_control() {
            FlowControl::Return => out.push(Exit::Return {
                ret: i.ip(),
                plan: plan_return(f, idx, up, checked),
            }),
            FlowControl::UnconditionalBranch
                if i.op0_kind() == OpKind::NearBranch64 && !f.contains(i.near_branch_target()) =>
            {
                out.push(Exit::TailJump {
                    at: i.ip(),
                    target: i.near_branch_target(),
                })
            }
            FlowControl::IndirectBranch => out.push(Exit::IndirectJump { at: i.ip() }),
            _ => {}
        }
    }
    out
}
