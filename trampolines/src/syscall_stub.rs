//! The self-restoring syscall stub the injector runs a syscall through.
//!
//! An injected syscall used to point a stopped thread at an existing `syscall` instruction with
//! the call's number and arguments in its registers, and put the thread's own registers back at
//! the syscall-exit stop. If the tracer dies in between (SIGKILL, OOM killer), the kernel detaches
//! the thread and it runs on with the injected registers: a Go program then sees, say, the result
//! of `mmap` as the count of its own `read`.
//!
//! The stub closes that window: the thread enters it with *its own* registers (only RIP points at
//! the stub); the stub saves what the syscall and its arguments clobber, makes the call, restores
//! them and jumps back to where the thread was. The tracer reads the result at the syscall-exit
//! stop and normally puts the registers back itself, but at any instant in between the thread
//! holds a state from which running on, untraced, completes the syscall once and returns to its
//! own code unchanged.
//!
//! Layout (`skip_red_zone` adds the two `lea`s, for threads stopped outside Go code, whose
//! System V leaf functions may keep data in the 128 bytes below RSP):
//!
//! ```text
//! lea rsp,[rsp-128]         ; only with skip_red_zone
//! pushfq
//! push rax rcx rdx rsi rdi r8 r9 r10 r11
//! mov rax,nr ; mov rdi,a0 ; mov rsi,a1 ; mov rdx,a2 ; mov r10,a3 ; mov r8,a4 ; mov r9,a5
//! syscall                   ; the syscall-exit stop is at its end
//! pop r11 r10 r9 r8 rdi rsi rdx rcx rax
//! popfq
//! lea rsp,[rsp+128]         ; only with skip_red_zone
//! jmp [rip+0] ; dq resume
//! ```

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;

use crate::stub::StubError;

/// Bytes of stack below RSP a System V leaf function may use without moving RSP.
pub const RED_ZONE: u64 = 128;

/// Registers the stub saves, in push order (RFLAGS is pushed before them).
const SAVED: [AsmRegister64; 9] = [rax, rcx, rdx, rsi, rdi, r8, r9, r10, r11];

/// A generated stub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallStub {
    /// The code, to be placed at the address it was generated for.
    pub code: Vec<u8>,
    /// Address of the `syscall` instruction (both syscall stops report `syscall_at + 2`).
    pub syscall_at: u64,
    /// Bytes of stack the stub uses below the thread's RSP.
    pub stack_bytes: u64,
}

/// Generates a stub at address `at` that runs syscall `nr(args…)` and then jumps to `resume`
/// with every register as it was on entry.
pub fn syscall_stub(
    at: u64,
    nr: u64,
    args: [u64; 6],
    resume: u64,
    skip_red_zone: bool,
) -> Result<SyscallStub, StubError> {
    let mut a = CodeAssembler::new(64)?;
    let mut syscall_label = a.create_label();
    let mut target = a.create_label();
    if skip_red_zone {
        a.lea(rsp, ptr(rsp - RED_ZONE as i32))?;
    }
    a.pushfq()?;
    for r in SAVED {
        a.push(r)?;
    }
    a.mov(rax, nr)?;
    for (reg, v) in [rdi, rsi, rdx, r10, r8, r9].into_iter().zip(args) {
        a.mov(reg, v)?;
    }
    a.set_label(&mut syscall_label)?;
    a.syscall()?;
    for r in SAVED.into_iter().rev() {
        a.pop(r)?;
    }
    a.popfq()?;
    if skip_red_zone {
        a.lea(rsp, ptr(rsp + RED_ZONE as i32))?;
    }
    a.jmp(qword_ptr(target))?;
    a.set_label(&mut target)?;
    a.dq(&[resume])?;
    let result = a.assemble_options(at, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let syscall_at = result.label_ip(&syscall_label)?;
    let stack_bytes = 8 * (1 + SAVED.len() as u64) + if skip_red_zone { RED_ZONE } else { 0 };
    Ok(SyscallStub {
        code: result.inner.code_buffer,
        syscall_at,
        stack_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter, Mnemonic};

    fn listing(stub: &SyscallStub, at: u64) -> Vec<String> {
        let mut dec = Decoder::with_ip(64, &stub.code, at, DecoderOptions::NONE);
        let mut fmt = IntelFormatter::new();
        let mut out = Vec::new();
        while dec.can_decode() {
            let ins = dec.decode();
            let mut s = String::new();
            fmt.format(&ins, &mut s);
            out.push(s);
            if ins.mnemonic() == Mnemonic::Jmp {
                break;
            }
        }
        out
    }

    #[test]
    fn the_stub_saves_calls_restores_and_jumps_back() {
        let at = 0x45e1e0;
        let stub = syscall_stub(at, 9, [1, 2, 3, 4, 5, 6], 0x401234, false).unwrap();
        let l = listing(&stub, at);
        assert_eq!(l[0], "pushfq");
        assert_eq!(
            &l[1..10],
            [
                "push rax", "push rcx", "push rdx", "push rsi", "push rdi", "push r8", "push r9",
                "push r10", "push r11"
            ]
        );
        assert_eq!(l[10], "mov rax,9", "the call number goes to rax: {l:?}");
        let syscall = l.iter().position(|s| s == "syscall").unwrap();
        assert_eq!(
            &l[syscall + 1..syscall + 10],
            [
                "pop r11", "pop r10", "pop r9", "pop r8", "pop rdi", "pop rsi", "pop rdx",
                "pop rcx", "pop rax"
            ]
        );
        assert_eq!(l[syscall + 10], "popfq");
        assert!(l[syscall + 11].starts_with("jmp qword ptr"), "{l:?}");
        // The jump's target word is the resume address.
        let word = &stub.code[stub.code.len() - 8..];
        assert_eq!(u64::from_le_bytes(word.try_into().unwrap()), 0x401234);
        // syscall_at names the `0f 05`.
        let off = (stub.syscall_at - at) as usize;
        assert_eq!(&stub.code[off..off + 2], [0x0f, 0x05]);
        assert_eq!(stub.stack_bytes, 80);
    }

    #[test]
    fn arguments_land_in_the_syscall_registers() {
        let at = 0x1000;
        let args = [0xdead_beef_0000_0001, 2, 3, u64::MAX, 5, 0x6000_0000_0000];
        let stub = syscall_stub(at, 0x13f, args, 0x2000, false).unwrap();
        let mut dec = Decoder::with_ip(64, &stub.code, at, DecoderOptions::NONE);
        let mut seen = std::collections::HashMap::new();
        while dec.can_decode() {
            let ins = dec.decode();
            if ins.mnemonic() == Mnemonic::Syscall {
                break;
            }
            if ins.mnemonic() == Mnemonic::Mov {
                let v = ins.immediate(1);
                // A 32-bit mov zero-extends; a sign-extended imm32 mov r64 sign-extends.
                seen.insert(ins.op0_register().full_register(), v);
            }
        }
        use iced_x86::Register::*;
        assert_eq!(seen[&RAX], 0x13f);
        for (r, v) in [RDI, RSI, RDX, R10, R8, R9].into_iter().zip(args) {
            assert_eq!(seen[&r], v, "{r:?}");
        }
    }

    #[test]
    fn outside_go_code_the_red_zone_is_stepped_over_and_given_back() {
        let at = 0x7000;
        let stub = syscall_stub(at, 39, [0; 6], 0x8000, true).unwrap();
        let l = listing(&stub, at);
        assert_eq!(l[0], "lea rsp,[rsp-80h]");
        assert_eq!(l[l.len() - 2], "lea rsp,[rsp+80h]");
        assert_eq!(stub.stack_bytes, 80 + 128);
    }

    #[test]
    fn the_stub_fits_in_runtime_rt0_go() {
        // rt0_go is 384 bytes on every Go release gohook supports; large immediates make the
        // longest stub.
        let stub = syscall_stub(0x1000, u64::MAX, [u64::MAX; 6], u64::MAX, true).unwrap();
        assert!(stub.code.len() <= 160, "{} bytes", stub.code.len());
    }
}
