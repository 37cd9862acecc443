//! Golden-byte tests: each Go prologue and epilogue shape (bytes as emitted by Go 1.19/1.21+,
//! verified against `go tool objdump`), each refusal with a minimal hand-made function, and the
//! shape of the generated code.

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, InstructionInfoFactory, Mnemonic, OpAccess, Register,
};
use trampolines::decode::DecodedFunction;
use trampolines::epilogue::{exits, EpilogueShape, Exit, ExitRefusal};
use trampolines::plan::{plan_entry, plan_entry_bytes, FunctionFacts, Refusal};
use trampolines::prologue::StackCheckShape;
use trampolines::ring_layout::RingLayout;
use trampolines::stub::{
    self, CaptureSpec, GOffsets, IntReg, StringCapture, StubContext, StubError,
};
use trampolines::unsafe_points::{NoUnsafePointInfo, UnsafePoints};

const ENTRY: u64 = 0x40_1000;

/// The morestack tail appended to every test function:
/// ```text
/// 48 89 44 24 08    mov [rsp+8],rax          ; spill
/// e8 00 00 00 00    call runtime.morestack_noctxt (any target)
/// 48 8b 44 24 08    mov rax,[rsp+8]          ; reload
/// eb XX             jmp entry
/// ```
const TAIL: [u8; 17] = [
    0x48, 0x89, 0x44, 0x24, 0x08, 0xe8, 0, 0, 0, 0, 0x48, 0x8b, 0x44, 0x24, 0x08, 0xeb, 0,
];

/// A branch displacement in the prologue to point at the tail: (offset of the field, width).
type Fixup = (usize, usize);

/// `prologue ++ body ++ TAIL`, with the prologue's fixups aimed at the tail and the tail's JMP at
/// the entry.
fn function(prologue: &[u8], fixups: &[Fixup], body: &[u8]) -> Vec<u8> {
    let mut f = [prologue, body].concat();
    let tail = f.len();
    f.extend_from_slice(&TAIL);
    for &(at, width) in fixups {
        let rel = tail as i64 - (at + width) as i64;
        match width {
            1 => f[at] = i8::try_from(rel).unwrap() as u8,
            _ => f[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes()),
        }
    }
    let last = f.len() - 1;
    f[last] = (-(f.len() as i64)) as i8 as u8;
    f
}

/// 1.21+ frame setup and teardown for a 16-byte frame:
/// `55 push rbp; 48 89 e5 mov rbp,rsp; 48 83 ec 10 sub rsp,10h; 48 83 c4 10 add rsp,10h;
/// 5d pop rbp; c3 ret`
const BODY_121: [u8; 14] = [
    0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0x48, 0x83, 0xc4, 0x10, 0x5d, 0xc3,
];

/// Unsafe points as the Go assembler emits them: -2 on every stack-check instruction after the
/// first (and, for the huge shape, from the SUB on), -1 elsewhere.
struct GoMarks(Vec<u64>);
impl UnsafePoints for GoMarks {
    fn value_at(&self, pc: u64) -> Option<i32> {
        Some(if self.0.contains(&pc) { -2 } else { -1 })
    }
}

fn facts(up: &dyn UnsafePoints) -> FunctionFacts<'_> {
    FunctionFacts {
        is_assembly: false,
        unsafe_points: up,
    }
}

fn plan(code: &[u8], unsafe_at: &[u64]) -> Result<trampolines::plan::EntryPlan, Refusal> {
    let marks = GoMarks(unsafe_at.iter().map(|o| ENTRY + o).collect());
    plan_entry_bytes(code, ENTRY, facts(&marks))
}

#[test]
fn small_shape_rel8_patches_cmp_and_jbe() {
    // 49 3b 66 10   cmp rsp,[r14+10h]
    // 76 XX         jbe tail
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    let p = plan(&code, &[4]).unwrap();
    assert_eq!(p.shape, StackCheckShape::Small);
    assert_eq!(p.patch_len, 6);
    assert_eq!(p.resume, ENTRY + 6);
    assert_eq!(p.morestack, ENTRY + 6 + 14);
    assert_eq!(p.replicated.len(), 2);
}

#[test]
fn small_shape_rel32_patches_ten_bytes() {
    // 49 3b 66 10         cmp rsp,[r14+10h]
    // 0f 86 XX XX XX XX   jbe tail
    let code = function(
        &[0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0, 0, 0, 0],
        &[(6, 4)],
        &BODY_121,
    );
    let p = plan(&code, &[4]).unwrap();
    assert_eq!(
        (p.shape, p.patch_len, p.resume),
        (StackCheckShape::Small, 10, ENTRY + 10)
    );
    assert_eq!(p.morestack, ENTRY + 10 + 14);
}

#[test]
fn large_shape_patches_only_the_lea() {
    // 4c 8d 64 24 d8   lea r12,[rsp-28h]
    // 4d 3b 66 10      cmp r12,[r14+10h]
    // 76 XX            jbe tail
    let code = function(
        &[
            0x4c, 0x8d, 0x64, 0x24, 0xd8, 0x4d, 0x3b, 0x66, 0x10, 0x76, 0,
        ],
        &[(10, 1)],
        &BODY_121,
    );
    let p = plan(&code, &[9]).unwrap();
    assert_eq!(p.shape, StackCheckShape::Large);
    assert_eq!(
        p.patch_len, 5,
        "the CMP at +5 is a safe point and stays in place"
    );
    assert_eq!(p.resume, ENTRY + 11);
    assert_eq!(
        p.replicated.len(),
        3,
        "the trampoline replays LEA, CMP and JBE"
    );

    // Go 1.21 main.large: 4c 8d a4 24 20 fa ff ff  lea r12,[rsp-5E0h]; 4d 3b 66 10; 0f 86 rel32
    let code = function(
        &[
            0x4c, 0x8d, 0xa4, 0x24, 0x20, 0xfa, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0,
            0, 0, 0,
        ],
        &[(14, 4)],
        &BODY_121,
    );
    let p = plan(&code, &[12]).unwrap();
    assert_eq!(
        (p.shape, p.patch_len, p.resume),
        (StackCheckShape::Large, 8, ENTRY + 18)
    );
}

#[test]
fn huge_shape_patches_mov_and_sub_and_keeps_the_underflow_branch() {
    // Go 1.21 main.huge:
    // 49 89 e4               mov r12,rsp
    // 49 81 ec e0 1e 00 00   sub r12,1EE0h
    // 0f 82 XX XX XX XX      jb tail
    // 4d 3b 66 10            cmp r12,[r14+10h]
    // 0f 86 XX XX XX XX      jbe tail
    let code = function(
        &[
            0x49, 0x89, 0xe4, 0x49, 0x81, 0xec, 0xe0, 0x1e, 0, 0, 0x0f, 0x82, 0, 0, 0, 0, 0x4d,
            0x3b, 0x66, 0x10, 0x0f, 0x86, 0, 0, 0, 0,
        ],
        &[(12, 4), (22, 4)],
        &BODY_121,
    );
    let p = plan(&code, &[3, 10, 16, 20]).unwrap();
    assert_eq!(p.shape, StackCheckShape::Huge);
    assert_eq!(p.patch_len, 10);
    assert_eq!(p.resume, ENTRY + 26);
    assert_eq!(p.underflow, Some(p.morestack));
    assert_eq!(p.replicated.len(), 5);
    assert_eq!(p.displaced().len(), 2);
}

#[test]
fn functions_without_a_stack_check_are_refused() {
    // Go 1.21 main.step, a frameless leaf:
    // 48 89 c1 mov rcx,rax; 48 c1 e0 05 shl rax,5; 48 29 c8 sub rax,rcx; 48 01 d8 add rax,rbx; c3 ret
    let leaf = [
        0x48, 0x89, 0xc1, 0x48, 0xc1, 0xe0, 0x05, 0x48, 0x29, 0xc8, 0x48, 0x01, 0xd8, 0xc3,
    ];
    assert_eq!(plan(&leaf, &[]), Err(Refusal::NoStackCheck));
    assert!(plan(&leaf, &[])
        .unwrap_err()
        .to_string()
        .contains("NOSPLIT"));
}

#[test]
fn assembly_functions_are_refused_before_decoding() {
    let r = plan_entry_bytes(
        &[0x06],
        ENTRY,
        FunctionFacts {
            is_assembly: true,
            unsafe_points: &NoUnsafePointInfo,
        },
    );
    assert_eq!(r, Err(Refusal::Assembly));
}

#[test]
fn undecodable_bytes_are_refused_with_the_address() {
    let mut code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    code.truncate(code.len() - 1); // the final JMP loses its displacement
    let r = plan(&code, &[4]).unwrap_err();
    assert!(matches!(r, Refusal::Undecodable(_)), "{r:?}");
    assert!(
        r.to_string()
            .contains(&format!("{:#x}", ENTRY + code.len() as u64 - 1)),
        "{r}"
    );
}

#[test]
fn a_branch_into_the_patch_range_is_refused() {
    // Body starts with `eb XX`, a jump back to the JBE at entry+4.
    let body = [&[0xeb, (4i64 - 8) as i8 as u8][..], &BODY_121].concat();
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &body);
    assert_eq!(
        plan(&code, &[4]),
        Err(Refusal::BranchIntoPatch {
            from: ENTRY + 6,
            to: ENTRY + 4
        })
    );
}

#[test]
fn an_interior_boundary_that_is_a_safe_point_is_refused() {
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    assert_eq!(
        plan(&code, &[]),
        Err(Refusal::InteriorBoundaryNotUnsafe {
            pc: ENTRY + 4,
            value: Some(-1)
        })
    );
    let no_info = plan_entry_bytes(&code, ENTRY, facts(&NoUnsafePointInfo));
    assert_eq!(
        no_info,
        Err(Refusal::InteriorBoundaryNotUnsafe {
            pc: ENTRY + 4,
            value: None
        })
    );
    // The large shape's single-instruction patch has no interior boundary: no data needed.
    let large = function(
        &[
            0x4c, 0x8d, 0x64, 0x24, 0xd8, 0x4d, 0x3b, 0x66, 0x10, 0x76, 0,
        ],
        &[(10, 1)],
        &BODY_121,
    );
    assert!(plan_entry_bytes(&large, ENTRY, facts(&NoUnsafePointInfo)).is_ok());
}

#[test]
fn unknown_stack_check_forms_and_abi0_functions_are_refused() {
    // cmp rsp,[r14+10h] followed by JE instead of JBE.
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x74, 0], &[(5, 1)], &BODY_121);
    assert_eq!(
        plan(&code, &[4]),
        Err(Refusal::UnrecognisedPrologue { at: ENTRY })
    );
    // ABI0 assembly loading g from TLS first: 64 4c 8b 34 25 f8 ff ff ff  mov r14,fs:[-8]
    let abi0 = function(
        &[
            0x64, 0x4c, 0x8b, 0x34, 0x25, 0xf8, 0xff, 0xff, 0xff, 0x49, 0x3b, 0x66, 0x10, 0x76, 0,
        ],
        &[(14, 1)],
        &BODY_121,
    );
    assert_eq!(plan(&abi0, &[13]), Err(Refusal::Abi0 { at: ENTRY }));
    // The PIE/external-link form: 49 c7 c6 f8 ff ff ff  mov r14,-8 ; 64 4d 8b 36  mov r14,fs:[r14]
    let abi0_pie = function(
        &[
            0x49, 0xc7, 0xc6, 0xf8, 0xff, 0xff, 0xff, 0x64, 0x4d, 0x8b, 0x36, 0x49, 0x3b, 0x66,
            0x10, 0x76, 0,
        ],
        &[(16, 1)],
        &BODY_121,
    );
    assert_eq!(plan(&abi0_pie, &[15]), Err(Refusal::Abi0 { at: ENTRY }));
    assert!(Refusal::Abi0 { at: ENTRY }.to_string().contains("ABI0"));
}

#[test]
fn a_jbe_to_something_other_than_a_morestack_tail_is_refused() {
    let mut code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    let last = code.len() - 1;
    code[last] = 0; // the tail's JMP now goes to the next byte, not the entry
    code.push(0xc3);
    let r = plan(&code, &[4]).unwrap_err();
    assert!(
        matches!(r, Refusal::BadMorestackTail { why, .. } if why.contains("entry")),
        "{r:?}"
    );
    // A tail that returns instead of jumping back.
    let mut code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    let ret_at = code.len() - 2;
    code[ret_at] = 0xc3;
    code.pop(); // drop the stale displacement byte
    assert!(
        matches!(plan(&code, &[4]), Err(Refusal::BadMorestackTail { .. })),
        "{:?}",
        plan(&code, &[4])
    );
}

fn exit_list(code: &[u8], unsafe_at: &[u64]) -> Vec<Exit> {
    let f = DecodedFunction::decode(code, ENTRY).unwrap();
    exits(&f, &GoMarks(unsafe_at.iter().map(|o| ENTRY + o).collect()))
}

#[test]
fn go121_epilogue_add_pop_ret_is_patchable_and_reports_safe_boundaries() {
    // 48 83 c4 10  add rsp,10h ; 5d  pop rbp ; c3  ret   (at +14)
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    let ex = exit_list(&code, &[4, 19]);
    assert_eq!(ex.len(), 1);
    let Exit::Return { ret, plan: Ok(p) } = &ex[0] else {
        panic!("{ex:?}")
    };
    assert_eq!(*ret, ENTRY + 19);
    assert_eq!(
        (p.shape, p.start, p.len),
        (EpilogueShape::AddPop, ENTRY + 14, 6)
    );
    assert_eq!(p.displaced.len(), 2);
    // POP at +18 is a safe point (-1), RET at +19 is marked unsafe here.
    assert_eq!(p.async_safe_boundaries, vec![ENTRY + 18]);
}

#[test]
fn go119_epilogue_mov_add_ret_is_patchable() {
    // Go 1.19 main.large: 48 8b ac 24 58 06 00 00  mov rbp,[rsp+658h]
    //                     48 81 c4 60 06 00 00     add rsp,660h
    //                     c3                       ret
    let body = [
        0x48, 0x8b, 0xac, 0x24, 0x58, 0x06, 0, 0, 0x48, 0x81, 0xc4, 0x60, 0x06, 0, 0, 0xc3,
    ];
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &body);
    let ex = exit_list(&code, &[4]);
    let Exit::Return { plan: Ok(p), .. } = &ex[0] else {
        panic!("{ex:?}")
    };
    assert_eq!(
        (p.shape, p.start, p.len),
        (EpilogueShape::MovAdd, ENTRY + 6, 16)
    );
    assert_eq!(p.async_safe_boundaries, vec![ENTRY + 14, ENTRY + 21]);
}

#[test]
fn returns_of_functions_without_a_stack_check_are_refused() {
    // A NOSPLIT function with a frame: 55 push rbp; 48 89 e5 mov rbp,rsp; 48 83 ec 10 sub rsp,10h;
    // 48 83 c4 10 add rsp,10h; 5d pop rbp; c3 ret — its RET may be close to the stack's end.
    let nosplit = BODY_121;
    assert_eq!(
        exit_list(&nosplit, &[]),
        vec![Exit::Return {
            ret: ENTRY + 13,
            plan: Err(ExitRefusal::NoStackCheck)
        }]
    );
}

#[test]
fn unpatchable_returns_say_why() {
    // Frameless leaf RET.
    let leaf = [0x48, 0x01, 0xd8, 0xc3];
    assert_eq!(
        exit_list(&leaf, &[]),
        vec![Exit::Return {
            ret: ENTRY + 3,
            plan: Err(ExitRefusal::FramelessReturn)
        }]
    );
    // Frame of exactly the saved BP: 55 push rbp; 48 89 e5 mov rbp,rsp; 5d pop rbp; c3 ret
    let tiny = [0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3];
    assert_eq!(
        exit_list(&tiny, &[]),
        vec![Exit::Return {
            ret: ENTRY + 5,
            plan: Err(ExitRefusal::TooShort { len: 2 })
        }]
    );
    // A conditional jump to the POP of the epilogue: 74 04 je +4 ; 48 83 c4 10 ; 5d ; c3
    let into = [0x74, 0x04, 0x48, 0x83, 0xc4, 0x10, 0x5d, 0xc3];
    assert_eq!(
        exit_list(&into, &[]),
        vec![Exit::Return {
            ret: ENTRY + 7,
            plan: Err(ExitRefusal::BranchInto {
                from: ENTRY,
                to: ENTRY + 6
            })
        }]
    );
    // A wrapper's tail call: e9 rel32 out of the function.
    let tail = [0xe9, 0x00, 0x10, 0x00, 0x00];
    assert_eq!(
        exit_list(&tail, &[]),
        vec![Exit::TailJump {
            at: ENTRY,
            target: ENTRY + 5 + 0x1000
        }]
    );
    assert!(ExitRefusal::TooShort { len: 2 }
        .to_string()
        .contains("5-byte"));
}

fn ctx() -> StubContext {
    StubContext {
        hook_id: 7,
        region: 0x7f00_0000_0000,
        layout: RingLayout::new(8, 1024, 512).unwrap(),
        g: GOffsets::for_go_minor(21).unwrap(),
        capture: CaptureSpec {
            int_mask: 0x1ff,
            float_mask: 0x7fff,
            strings: vec![StringCapture {
                ptr: IntReg::Rax,
                len: IntReg::Rbx,
            }],
            paths: vec![],
            string_cap: 64,
        },
        preserve_flags: true,
    }
}

#[test]
fn patch_bytes_are_a_rel32_jump_padded_with_int3() {
    // e9 fb 0f 00 00   jmp 0x402000 ; cc  int3
    assert_eq!(
        stub::patch_bytes(ENTRY, 6, ENTRY + 0x1000).unwrap(),
        [0xe9, 0xfb, 0x0f, 0x00, 0x00, 0xcc]
    );
    assert_eq!(
        stub::patch_bytes(ENTRY, 5, ENTRY - 0x100).unwrap(),
        [0xe9, 0xfb, 0xfe, 0xff, 0xff]
    );
    assert_eq!(
        stub::patch_bytes(ENTRY, 6, 0x7f00_0000_0000),
        Err(StubError::OutOfRange {
            site: ENTRY,
            trampoline: 0x7f00_0000_0000
        })
    );
    assert_eq!(
        stub::patch_bytes(ENTRY, 4, ENTRY + 16),
        Err(StubError::SiteTooShort(4))
    );
}

fn decode_all(code: &[u8], ip: u64) -> Vec<iced_x86::Instruction> {
    Decoder::with_ip(64, code, ip, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

#[test]
fn entry_trampoline_replays_the_check_jumps_to_morestack_and_returns_to_resume() {
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    let p = plan(&code, &[4]).unwrap();
    let at = ENTRY + 0x10_0000;
    let t = stub::entry_trampoline(&p, at, &ctx()).unwrap();
    let ins = decode_all(&t.code, at);
    // 49 3b 66 10 cmp rsp,[r14+10h] ; 0f 86 rel32 jbe <the function's morestack tail>
    assert_eq!(&t.code[..6], &[0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86]);
    assert_eq!(ins[1].mnemonic(), Mnemonic::Jbe);
    assert_eq!(ins[1].near_branch_target(), p.morestack);
    let last = ins.last().unwrap();
    assert_eq!(
        (last.mnemonic(), last.near_branch_target()),
        (Mnemonic::Jmp, p.resume)
    );
    // No CALL anywhere: nothing pushes a trampoline address as a return address.
    assert!(ins.iter().all(|i| !matches!(
        i.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    )));
    assert_generated_code_respects_go_registers(&ins);
}

#[test]
fn exit_trampoline_replays_the_epilogue_and_returns() {
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    let ex = exit_list(&code, &[4]);
    let Exit::Return { plan: Ok(p), .. } = &ex[0] else {
        panic!()
    };
    let at = ENTRY + 0x20_0000;
    let t = stub::exit_trampoline(p, at, &ctx()).unwrap();
    // 48 83 c4 10 add rsp,10h ; 5d pop rbp ; then the recorder
    assert_eq!(&t.code[..5], &[0x48, 0x83, 0xc4, 0x10, 0x5d]);
    let ins = decode_all(&t.code, at);
    assert_eq!(ins.last().unwrap().mnemonic(), Mnemonic::Ret);
    assert_eq!(
        ins.iter().filter(|i| i.mnemonic() == Mnemonic::Ret).count(),
        1
    );
    assert_generated_code_respects_go_registers(&ins);
}

/// Never writes R14 (g) or any XMM register (X15 must stay zero; floats stay intact); balanced
/// pushes and pops.
fn assert_generated_code_respects_go_registers(ins: &[iced_x86::Instruction]) {
    let mut factory = InstructionInfoFactory::new();
    let mut depth: i64 = 0;
    for i in ins {
        for u in factory.info(i).used_registers() {
            let written = matches!(
                u.access(),
                OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite
            );
            assert!(
                !(written && u.register().full_register() == Register::R14),
                "writes R14: {i}"
            );
            assert!(
                !(written && u.register().is_xmm()),
                "writes an XMM register: {i}"
            );
        }
        depth += i.stack_pointer_increment() as i64;
        assert!(
            depth >= -(stub::frame_bytes(true) as i64) || i.mnemonic() == Mnemonic::Add,
            "stack use {depth} at {i}"
        );
    }
}

#[test]
fn impossible_capture_specs_are_rejected() {
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    let p = plan(&code, &[4]).unwrap();
    let mut c = ctx();
    c.capture.string_cap = 400; // 312 + 400 > 512
    assert!(matches!(
        stub::entry_trampoline(&p, ENTRY, &c),
        Err(StubError::BadCapture(_))
    ));
    let mut c = ctx();
    c.hook_id = 1 << 20;
    assert_eq!(
        stub::entry_trampoline(&p, ENTRY, &c),
        Err(StubError::HookIdTooLarge(1 << 20))
    );
    let mut c = ctx();
    c.capture.float_mask = 1 << 15; // X15
    assert!(matches!(
        stub::entry_trampoline(&p, ENTRY, &c),
        Err(StubError::BadCapture(_))
    ));
}

#[test]
fn plan_entry_agrees_with_plan_entry_bytes() {
    let code = function(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0], &[(5, 1)], &BODY_121);
    let f = DecodedFunction::decode(&code, ENTRY).unwrap();
    let marks = GoMarks(vec![ENTRY + 4]);
    assert_eq!(
        plan_entry(&f, facts(&marks)),
        plan_entry_bytes(&code, ENTRY, facts(&marks))
    );
}
