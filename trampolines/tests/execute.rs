//! Runs generated trampolines in this process (no ptrace) against a Go-shaped fake function and a
//! fake g/m, and checks what lands in the ring and that the function behaves exactly as before.

mod support;

use support::*;
use trampolines::epilogue::EpilogueShape;
use trampolines::prologue::StackCheckShape;
use trampolines::record::RecordKind;
use trampolines::ring_layout::{self as rl, RingLayout};
use trampolines::stub::{CaptureSpec, IntReg, PathCapture, PathValue, StringCapture};

fn layout(slots: u32) -> RingLayout {
    RingLayout::new(2, slots, 512).unwrap()
}

#[test]
fn unhooked_fake_function_adds_its_arguments() {
    let mut env = Env::new(Hooks::None, layout(8), CaptureSpec::ints(), 3);
    let out = env.call(&sample_regs());
    assert_eq!(out.gpr[RAX], 1234);
    assert!(env.records(0).is_empty());
}

#[test]
fn entry_and_exit_hooks_record_one_pair_with_equal_depth_and_preserve_registers() {
    let mut spec = CaptureSpec::ints();
    spec.float_mask = 1; // X0
    let mut env = Env::new(Hooks::EntryExit, layout(8), spec, 3);
    let input = sample_regs();
    let out = env.call(&input);

    // The function still computes a + b and leaves every other register as it found it.
    assert_eq!(out.gpr[RAX], 1234);
    for n in 0..16 {
        if n != RAX && n != RSP {
            assert_eq!(
                out.gpr[n],
                if n == R14 {
                    env.g.as_ptr() as u64
                } else {
                    input.gpr[n]
                },
                "register {n}"
            );
        }
    }
    assert_eq!(out.gpr[RSP], out.rsp_before_call, "stack balanced");
    assert_eq!(out.xmm0, input.xmm0, "X0 preserved");
    assert_eq!(out.xmm15, 0, "X15 still zero");

    let recs = env.records(0);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let (e, x) = (&recs[0], &recs[1]);
    assert_eq!((e.kind, x.kind), (RecordKind::Entry, RecordKind::Exit));
    assert_eq!((e.hook_id, x.hook_id), (3, 3));
    assert_eq!((e.goid, x.goid), (77, 77));
    assert_eq!(e.parent_goid, Some(5));
    assert_eq!(e.m_id, 0);
    let sp_at_entry = out.rsp_before_call - 8;
    assert_eq!(e.depth, 0x7fff_ffff_f000 - sp_at_entry);
    assert_eq!(
        x.depth, e.depth,
        "entry and exit pair on the same depth key"
    );
    // Arguments at entry, results at exit.
    assert_eq!(e.ints[0], Some(1000));
    assert_eq!(e.ints[1], Some(234));
    assert_eq!(e.ints[2], Some(input.gpr[RCX]));
    assert_eq!(e.ints[3], Some(input.gpr[RDI]));
    assert_eq!(e.ints[8], Some(input.gpr[11]));
    assert_eq!(x.ints[0], Some(1234));
    assert_eq!(e.floats[0].map(f64::from_bits), Some(2.5));
    assert_eq!(e.floats[1], None);
    assert!(x.tsc >= e.tsc, "timestamps are monotonic on one thread");
}

#[test]
fn string_arguments_are_copied_up_to_the_cap() {
    let spec = CaptureSpec {
        int_mask: 0,
        float_mask: 0,
        strings: vec![
            StringCapture {
                ptr: IntReg::Rcx,
                len: IntReg::Rdi,
            },
            StringCapture {
                ptr: IntReg::Rsi,
                len: IntReg::R8,
            },
            StringCapture {
                ptr: IntReg::R9,
                len: IntReg::R10,
            },
        ],
        paths: vec![],
        string_cap: 8,
    };
    let mut env = Env::new(Hooks::Entry, layout(8), spec, 9);
    let text = b"hello, gohook";
    let short = b"abc";
    let mut regs = sample_regs();
    regs.gpr[RCX] = text.as_ptr() as u64;
    regs.gpr[RDI] = text.len() as u64;
    regs.gpr[RSI] = short.as_ptr() as u64;
    regs.gpr[8] = short.len() as u64;
    regs.gpr[9] = 0; // nil pointer with a length: nothing copied, no fault
    regs.gpr[10] = 5;
    let out = env.call(&regs);
    assert_eq!(out.gpr[RAX], 1234);
    let recs = env.records(0);
    assert_eq!(recs.len(), 1);
    let s = &recs[0].strings;
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].bytes, b"hello, g");
    assert_eq!(s[0].len, 13);
    assert!(s[0].truncated());
    assert_eq!(s[1].bytes, b"abc");
    assert!(!s[1].truncated());
    assert!(s[2].bytes.is_empty());
}

/// Go-shaped memory for path captures: `req` points at a struct whose word 2 points at a `url`
/// struct holding a string header at offset 8 and whose word 4 is a flag.
#[repr(C)]
struct FakeUrl {
    scheme: u64,
    path: (*const u8, usize),
}
#[repr(C)]
struct FakeReq {
    method: (*const u8, usize),
    url: *const FakeUrl,
    _pad: u64,
    tls: u64,
}

fn path_spec(cap: u16) -> CaptureSpec {
    let path = |derefs: Vec<i32>, last, kind| PathCapture {
        base: IntReg::Rdi,
        derefs,
        last,
        kind,
    };
    CaptureSpec {
        int_mask: 0,
        float_mask: 0,
        strings: vec![StringCapture {
            ptr: IntReg::Rcx,
            len: IntReg::Rsi,
        }],
        paths: vec![
            path(vec![], 0, PathValue::String),       // req.Method
            path(vec![16], 8, PathValue::String),     // req.URL.Path
            path(vec![], 32, PathValue::Word(8)),     // req.TLS
            path(vec![16, 0], 0, PathValue::Word(8)), // *(req.URL.scheme as pointer)
        ],
        string_cap: cap,
    }
}

#[test]
fn path_captures_follow_pointers_at_the_call_and_stop_at_nil() {
    let mut env = Env::new(Hooks::Entry, layout(8), path_spec(16), 4);
    let path = b"/users/12345678901234";
    let url = FakeUrl {
        scheme: 0, // nil when followed as a pointer
        path: (path.as_ptr(), path.len()),
    };
    let method = b"GET";
    let req = FakeReq {
        method: (method.as_ptr(), method.len()),
        url: &url,
        _pad: 0,
        tls: 0xdead_beef,
    };
    let arg = b"plain";
    let mut regs = sample_regs();
    regs.gpr[RCX] = arg.as_ptr() as u64;
    regs.gpr[RSI] = arg.len() as u64;
    regs.gpr[RDI] = &req as *const FakeReq as u64;
    let input = regs.clone();
    let out = env.call(&regs);
    assert_eq!(out.gpr[RAX], 1234, "the function still runs");
    for n in [RCX, RSI, RDI, 8, 9, 10, 11] {
        assert_eq!(out.gpr[n], input.gpr[n], "register {n} preserved");
    }
    let recs = env.records(0);
    assert_eq!(recs.len(), 1);
    let s = &recs[0].strings;
    assert_eq!(s.len(), 5, "the string argument, then the four paths");
    assert_eq!(s[0].bytes, b"plain");
    assert_eq!(s[1].bytes, b"GET");
    assert_eq!(s[2].bytes, &path[..16], "cut at the cap");
    assert_eq!(s[2].len as usize, path.len(), "with the original length");
    assert_eq!(s[3].bytes, 0xdead_beefu64.to_le_bytes());
    assert_eq!(
        (s[4].len, s[4].bytes.len()),
        (0, 0),
        "nil on the way: empty"
    );

    // A nil base and a nil intermediate pointer record empty captures, without a fault.
    let req2 = FakeReq {
        method: (method.as_ptr(), 0),
        url: std::ptr::null(),
        _pad: 0,
        tls: 0,
    };
    regs.gpr[RDI] = &req2 as *const FakeReq as u64;
    env.call(&regs);
    regs.gpr[RDI] = 0;
    env.call(&regs);
    let recs = env.records(0);
    assert_eq!(recs.len(), 3);
    for r in &recs[1..] {
        assert!(r.strings[1..].iter().take(2).all(|c| c.bytes.is_empty()));
    }
    assert_eq!(recs[1].strings[3].bytes, [0; 8], "TLS nil is a zero word");
    assert!(recs[2].strings[3].bytes.is_empty(), "nil req: nothing read");
}

#[test]
fn failed_stack_check_takes_the_morestack_path_and_records_once() {
    let mut env = Env::new(Hooks::EntryExit, layout(8), CaptureSpec::ints(), 1);
    env.g[2] = u64::MAX; // stackguard0 above any SP: the replicated check fails
    let out = env.call(&sample_regs());
    assert_eq!(out.gpr[RAX], 1234);
    assert_eq!(
        env.g[G_MORESTACK_COUNT / 8],
        1,
        "the function's own morestack tail ran once"
    );
    let recs = env.records(0);
    let kinds: Vec<_> = recs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [RecordKind::Entry, RecordKind::Exit],
        "no record on the failed check"
    );
}

#[test]
fn a_full_ring_drops_and_counts_instead_of_overwriting() {
    let mut env = Env::new(Hooks::EntryExit, layout(4), CaptureSpec::ints(), 2);
    for _ in 0..3 {
        assert_eq!(env.call(&sample_regs()).gpr[RAX], 1234);
    }
    let roff = env.layout.ring_offset(0).unwrap();
    assert_eq!(env.ring_u64(roff + rl::RING_HEAD as u64), 4);
    assert_eq!(env.ring_u64(roff + rl::RING_DROPS as u64), 2);
    // The consumer frees two slots: the next call records again.
    let tail = roff + rl::RING_TAIL as u64;
    env.ring_bytes()[tail as usize..tail as usize + 8].copy_from_slice(&2u64.to_le_bytes());
    env.call(&sample_regs());
    assert_eq!(env.ring_u64(roff + rl::RING_HEAD as u64), 6);
}

#[test]
fn disabled_hook_records_nothing_and_still_runs_the_function() {
    let mut env = Env::new(Hooks::EntryExit, layout(8), CaptureSpec::ints(), 4);
    env.set_enabled(4, false);
    let input = sample_regs();
    let out = env.call(&input);
    assert_eq!(out.gpr[RAX], 1234);
    assert_eq!(out.gpr[RCX], input.gpr[RCX]);
    assert!(env.records(0).is_empty());
}

#[test]
fn records_go_to_the_ring_of_the_current_m_and_unknown_ms_count_globally() {
    let mut env = Env::new(Hooks::Entry, layout(8), CaptureSpec::ints(), 0);
    env.set_m_id(1);
    env.call(&sample_regs());
    assert!(env.records(0).is_empty());
    let r1 = env.records(1);
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0].m_id, 1);
    env.set_m_id(2); // only two rings
    env.call(&sample_regs());
    env.set_m_id(u64::MAX); // a scribbled, negative id
    env.call(&sample_regs());
    assert_eq!(env.ring_u64(rl::HDR_GLOBAL_DROPS as u64), 2);
    assert_eq!(env.records(1).len(), 1);
}

#[test]
fn without_rflags_saving_the_records_and_registers_are_the_same() {
    let mut env = Env::with_flags(Hooks::EntryExit, layout(8), CaptureSpec::ints(), 6, false);
    let input = sample_regs();
    let out = env.call(&input);
    assert_eq!(out.gpr[RAX], 1234);
    for n in [RBX, RCX, RDX, RSI, RDI, RBP, 8, 9, 10, 11, 12, 13, 15] {
        assert_eq!(out.gpr[n], input.gpr[n], "register {n}");
    }
    let recs = env.records(0);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].depth, 0x7fff_ffff_f000 - (out.rsp_before_call - 8));
    assert_eq!(recs[1].depth, recs[0].depth);
}

#[test]
fn every_prologue_and_epilogue_shape_runs_hooked_with_paired_records() {
    for shape in FakeShape::ALL {
        let mut env = Env::with_shape(Hooks::EntryExit, layout(8), CaptureSpec::ints(), shape);
        let (check, patch, epi) = match shape {
            FakeShape::Small => (StackCheckShape::Small, 6, EpilogueShape::AddPop),
            FakeShape::Large => (StackCheckShape::Large, 8, EpilogueShape::AddPop),
            FakeShape::Huge => (StackCheckShape::Huge, 10, EpilogueShape::AddPop),
            FakeShape::SmallGo120 => (StackCheckShape::Small, 6, EpilogueShape::MovAdd),
        };
        assert_eq!(
            (env.entry_plan.shape, env.entry_plan.patch_len),
            (check, patch),
            "{shape:?}"
        );
        assert_eq!(env.exit_plan.shape, epi, "{shape:?}");
        let input = sample_regs();
        let out = env.call(&input);
        assert_eq!(out.gpr[RAX], 1234, "{shape:?}");
        for n in [RBX, RCX, RDX, RSI, RDI, RBP, 8, 9, 10, 11, 13, 15] {
            assert_eq!(out.gpr[n], input.gpr[n], "{shape:?}: register {n}");
        }
        let recs = env.records(0);
        let kinds: Vec<_> = recs.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [RecordKind::Entry, RecordKind::Exit], "{shape:?}");
        assert_eq!(
            recs[0].depth,
            0x7fff_ffff_f000 - (out.rsp_before_call - 8),
            "{shape:?}"
        );
        assert_eq!(recs[1].depth, recs[0].depth, "{shape:?}");
        assert_eq!(recs[1].ints[0], Some(1234), "{shape:?}: result at exit");
    }
}

#[test]
fn every_shape_sends_a_failed_check_through_its_own_morestack_tail_once() {
    for shape in FakeShape::ALL {
        let mut env = Env::with_shape(Hooks::EntryExit, layout(8), CaptureSpec::ints(), shape);
        env.g[2] = u64::MAX;
        assert_eq!(env.call(&sample_regs()).gpr[RAX], 1234, "{shape:?}");
        assert_eq!(env.g[G_MORESTACK_COUNT / 8], 1, "{shape:?}");
        assert_eq!(env.records(0).len(), 2, "{shape:?}: one entry, one exit");
    }
}
