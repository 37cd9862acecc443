//! In-process execution of generated trampolines, without ptrace.
//!
//! One anonymous mapping holds a call shim, a Go-shaped fake function (stack check, frame,
//! epilogue, morestack tail), a fake `runtime.morestack`, and the trampolines. It is written while
//! RW and then flipped to RX (never W+X). A fake `g` (pointed to by R14) and `m` live in ordinary
//! memory; the ring region is a separate RW mapping.
#![allow(dead_code)]

use iced_x86::code_asm::*;
use trampolines::decode::DecodedFunction;
use trampolines::epilogue::{self, Exit, ExitPlan};
use trampolines::plan::{self, EntryPlan, FunctionFacts};
use trampolines::ring_layout::{self as rl, RingLayout};
use trampolines::stub::{self, CaptureSpec, GOffsets, StubContext};
use trampolines::unsafe_points::UnsafePoints;

pub const SHIM: u64 = 0x0000;
pub const LOOP_SHIM: u64 = 0x0800;
pub const FUNC: u64 = 0x1000;
pub const MORESTACK: u64 = 0x2000;
pub const ENTRY_TRAMP: u64 = 0x3000;
pub const EXIT_TRAMP: u64 = 0x4000;
pub const CODE_SIZE: usize = 0x5000;

/// Offset in the fake g where the fake morestack counts its calls.
pub const G_MORESTACK_COUNT: usize = 0x300;
pub const G_SIZE: usize = 0x400;
/// Go 1.26 offsets.
pub fn offsets() -> GOffsets {
    GOffsets::for_go_minor(26).unwrap()
}

/// Register file exchanged with the shim. Indices are hardware numbers (rax=0 … r15=15).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    pub gpr: [u64; 16],
    pub xmm0: u64,
    pub xmm15: u64,
    /// RSP just before the CALL into the function (so SP at function entry is this - 8).
    pub rsp_before_call: u64,
}

pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RBX: usize = 3;
pub const RSP: usize = 4;
pub const RBP: usize = 5;
pub const RSI: usize = 6;
pub const RDI: usize = 7;
pub const R14: usize = 14;

const GPRS: [AsmRegister64; 16] = [
    rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
];

struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> Mapping {
        // SAFETY: anonymous private mapping; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap failed");
        Mapping {
            ptr: ptr as *mut u8,
            len,
        }
    }
    fn addr(&self) -> u64 {
        self.ptr as u64
    }
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, RW while this is called, and owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
    fn protect_rx(&self) {
        // SAFETY: changes protection of our own mapping only.
        let r = unsafe {
            libc::mprotect(
                self.ptr as *mut _,
                self.len,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
        assert_eq!(r, 0, "mprotect RX failed");
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; no code runs from it after drop.
        unsafe { libc::munmap(self.ptr as *mut _, self.len) };
    }
}

/// What to patch when building the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hooks {
    None,
    Entry,
    EntryExit,
}

/// A runnable environment.
pub struct Env {
    code: Mapping,
    ring: Mapping,
    pub g: Box<[u64; G_SIZE / 8]>,
    pub m: Box<[u64; 64]>,
    pub layout: RingLayout,
    pub entry_plan: EntryPlan,
    pub exit_plan: ExitPlan,
    pub original: Vec<u8>,
}

/// Which stack check and frame the fake function uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeShape {
    /// `cmp rsp,[r14+16]; jbe`, Go 1.21+ frame (`push rbp` … `add rsp; pop rbp; ret`).
    Small,
    /// `lea r12,[rsp-100h]; cmp r12,[r14+16]; jbe`, Go 1.21+ frame.
    Large,
    /// `mov r12,rsp; sub r12,2000h; jb; cmp r12,[r14+16]; jbe`, Go 1.21+ frame.
    Huge,
    /// Small check with the Go 1.17–1.20 frame (`sub rsp; mov [rsp+8],rbp; lea rbp` …
    /// `mov rbp,[rsp+8]; add rsp; ret`).
    SmallGo120,
}

impl FakeShape {
    pub const ALL: [FakeShape; 4] = [
        FakeShape::Small,
        FakeShape::Large,
        FakeShape::Huge,
        FakeShape::SmallGo120,
    ];
}

/// Builds the fake Go function at `base + FUNC`: `func(a, b int) int { return a + b }` with a
/// 16-byte frame. Returns its bytes and the offsets the Go assembler would mark unsafe (-2).
fn fake_function(base: u64, shape: FakeShape) -> (Vec<u8>, Vec<u64>) {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut tail = a.create_label();
    let mut entry = a.create_label();
    a.set_label(&mut entry).unwrap();
    match shape {
        FakeShape::Small | FakeShape::SmallGo120 => {
            a.cmp(rsp, qword_ptr(r14 + 16)).unwrap();
            a.jbe(tail).unwrap();
        }
        FakeShape::Large => {
            a.lea(r12, qword_ptr(rsp - 0x100)).unwrap();
            a.cmp(r12, qword_ptr(r14 + 16)).unwrap();
            a.jbe(tail).unwrap();
        }
        FakeShape::Huge => {
            a.mov(r12, rsp).unwrap();
            a.sub(r12, 0x2000).unwrap();
            a.jb(tail).unwrap();
            a.cmp(r12, qword_ptr(r14 + 16)).unwrap();
            a.jbe(tail).unwrap();
        }
    }
    if shape == FakeShape::SmallGo120 {
        a.sub(rsp, 16).unwrap();
        a.mov(qword_ptr(rsp + 8), rbp).unwrap();
        a.lea(rbp, qword_ptr(rsp + 8)).unwrap();
    } else {
        a.push(rbp).unwrap();
        a.mov(rbp, rsp).unwrap();
        a.sub(rsp, 16).unwrap();
    }
    a.mov(qword_ptr(rsp), rax).unwrap();
    a.lea(rax, qword_ptr(rax + rbx)).unwrap();
    if shape == FakeShape::SmallGo120 {
        a.mov(rbp, qword_ptr(rsp + 8)).unwrap();
        a.add(rsp, 16).unwrap();
    } else {
        a.add(rsp, 16).unwrap();
        a.pop(rbp).unwrap();
    }
    a.ret().unwrap();
    a.set_label(&mut tail).unwrap();
    a.mov(qword_ptr(rsp + 8), rax).unwrap();
    a.mov(qword_ptr(rsp + 16), rbx).unwrap();
    a.call(base + MORESTACK).unwrap();
    a.mov(rax, qword_ptr(rsp + 8)).unwrap();
    a.mov(rbx, qword_ptr(rsp + 16)).unwrap();
    a.jmp(entry).unwrap();
    let code = a.assemble(base + FUNC).unwrap();
    // Unsafe (-2): every stack-check instruction after the first (huge: from the SUB on).
    let insns: Vec<_> =
        iced_x86::Decoder::with_ip(64, &code, base + FUNC, iced_x86::DecoderOptions::NONE)
            .into_iter()
            .collect();
    let n = match shape {
        FakeShape::Small | FakeShape::SmallGo120 => 2,
        FakeShape::Large => 3,
        FakeShape::Huge => 5,
    };
    let marks = insns[1..n].iter().map(|i| i.ip()).collect();
    (code, marks)
}

/// Fake runtime.morestack: count, clear stackguard0, return into the tail.
fn fake_morestack(base: u64) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(qword_ptr(r14 + 16), 0).unwrap();
    a.inc(qword_ptr(r14 + G_MORESTACK_COUNT as i32)).unwrap();
    a.ret().unwrap();
    a.assemble(base + MORESTACK).unwrap()
}

/// `extern "sysv64" fn(*mut Regs)`: loads every GPR (and X0, X15=0) from Regs, calls FUNC, stores
/// every GPR back.
fn shim(base: u64) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    for r in [rbx, rbp, r12, r13, r14, r15] {
        a.push(r).unwrap();
    }
    a.push(rdi).unwrap();
    a.sub(rsp, 40).unwrap(); // the callee's argument spill area
    a.mov(qword_ptr(rdi + 18 * 8), rsp).unwrap();
    a.movq(xmm0, qword_ptr(rdi + 16 * 8)).unwrap();
    a.pxor(xmm15, xmm15).unwrap();
    for (n, r) in GPRS.iter().enumerate() {
        if n != RSP && n != RDI {
            a.mov(*r, qword_ptr(rdi + 8 * n as i32)).unwrap();
        }
    }
    a.mov(rdi, qword_ptr(rdi + 8 * RDI as i32)).unwrap();
    a.call(base + FUNC).unwrap();
    a.xchg(qword_ptr(rsp + 40), rdi).unwrap();
    for (n, r) in GPRS.iter().enumerate() {
        if n != RSP && n != RDI {
            a.mov(qword_ptr(rdi + 8 * n as i32), *r).unwrap();
        }
    }
    a.mov(rax, qword_ptr(rsp + 40)).unwrap();
    a.mov(qword_ptr(rdi + 8 * RDI as i32), rax).unwrap();
    a.mov(qword_ptr(rdi + 8 * RSP as i32), rsp).unwrap();
    a.movq(qword_ptr(rdi + 16 * 8), xmm0).unwrap();
    a.movq(qword_ptr(rdi + 17 * 8), xmm15).unwrap();
    a.add(rsp, 48).unwrap();
    for r in [r15, r14, r13, r12, rbp, rbx] {
        a.pop(r).unwrap();
    }
    a.ret().unwrap();
    a.assemble(base + SHIM).unwrap()
}

/// `extern "sysv64" fn(n: u64, g: u64) -> u64`: calls FUNC `n` times with a=acc, b=1 (so it
/// returns n), R14 = g. For benchmarks: no Rust call overhead per iteration.
fn loop_shim(base: u64) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    for r in [rbx, rbp, r12, r13, r14, r15] {
        a.push(r).unwrap();
    }
    a.sub(rsp, 40).unwrap();
    a.mov(r15, rdi).unwrap();
    a.mov(r14, rsi).unwrap();
    a.xor(eax, eax).unwrap();
    a.mov(ebx, 1).unwrap();
    a.set_label(&mut top).unwrap();
    a.call(base + FUNC).unwrap();
    a.dec(r15).unwrap();
    a.jnz(top).unwrap();
    a.add(rsp, 40).unwrap();
    for r in [r15, r14, r13, r12, rbp, rbx] {
        a.pop(r).unwrap();
    }
    a.ret().unwrap();
    a.assemble(base + LOOP_SHIM).unwrap()
}

/// The stack check's interior boundaries are -2, as the Go assembler marks them; -1 elsewhere.
pub struct FakeUnsafePoints(pub Vec<u64>);
impl UnsafePoints for FakeUnsafePoints {
    fn value_at(&self, pc: u64) -> Option<i32> {
        Some(if self.0.contains(&pc) { -2 } else { -1 })
    }
}

impl Env {
    /// Builds and (optionally) patches the environment. `capture` and `layout` go into the stubs.
    pub fn new(hooks: Hooks, layout: RingLayout, capture: CaptureSpec, hook_id: u32) -> Env {
        Self::with_flags(hooks, layout, capture, hook_id, true)
    }

    /// As [`Env::new`], choosing whether the stubs save RFLAGS.
    pub fn with_flags(
        hooks: Hooks,
        layout: RingLayout,
        capture: CaptureSpec,
        hook_id: u32,
        preserve_flags: bool,
    ) -> Env {
        Self::build(
            hooks,
            layout,
            capture,
            hook_id,
            preserve_flags,
            FakeShape::Small,
        )
    }

    /// As [`Env::new`] with a choice of stack-check and frame shape.
    pub fn with_shape(
        hooks: Hooks,
        layout: RingLayout,
        capture: CaptureSpec,
        shape: FakeShape,
    ) -> Env {
        Self::build(hooks, layout, capture, 1, true, shape)
    }

    fn build(
        hooks: Hooks,
        layout: RingLayout,
        capture: CaptureSpec,
        hook_id: u32,
        preserve_flags: bool,
        shape: FakeShape,
    ) -> Env {
        let mut code = Mapping::new(CODE_SIZE);
        let ring = Mapping::new(layout.region_size() as usize);
        let base = code.addr();
        let (func, marks) = fake_function(base, shape);
        let mut env_ring = ring;
        env_ring.bytes()[..rl::HEADER_SIZE].copy_from_slice(&layout.header_bytes());
        env_ring.bytes()[rl::HDR_ENABLE + hook_id as usize] = 1;

        let f = DecodedFunction::decode(&func, base + FUNC).unwrap();
        let up = FakeUnsafePoints(marks);
        let entry_plan = plan::plan_entry(
            &f,
            FunctionFacts {
                is_assembly: false,
                unsafe_points: &up,
            },
        )
        .expect("entry plan");
        let exit_plan = epilogue::exits(&f, &up)
            .into_iter()
            .find_map(|e| match e {
                Exit::Return { plan: Ok(p), .. } => Some(p),
                _ => None,
            })
            .expect("exit plan");
        let ctx = StubContext {
            hook_id,
            region: env_ring.addr(),
            layout,
            g: offsets(),
            capture,
            preserve_flags,
        };

        let bytes = code.bytes();
        bytes.fill(0xCC);
        let put = |bytes: &mut [u8], at: u64, b: &[u8]| {
            bytes[at as usize..at as usize + b.len()].copy_from_slice(b)
        };
        put(bytes, SHIM, &shim(base));
        put(bytes, LOOP_SHIM, &loop_shim(base));
        put(bytes, FUNC, &func);
        put(bytes, MORESTACK, &fake_morestack(base));
        if hooks != Hooks::None {
            let t = stub::entry_trampoline(&entry_plan, base + ENTRY_TRAMP, &ctx).unwrap();
            put(bytes, ENTRY_TRAMP, &t.code);
            let p =
                stub::patch_bytes(base + FUNC, entry_plan.patch_len, base + ENTRY_TRAMP).unwrap();
            put(bytes, FUNC, &p);
        }
        if hooks == Hooks::EntryExit {
            let t = stub::exit_trampoline(&exit_plan, base + EXIT_TRAMP, &ctx).unwrap();
            put(bytes, EXIT_TRAMP, &t.code);
            let p = stub::patch_bytes(exit_plan.start, exit_plan.len, base + EXIT_TRAMP).unwrap();
            put(bytes, exit_plan.start - base, &p);
        }
        code.protect_rx();

        let mut g = Box::new([0u64; G_SIZE / 8]);
        let mut m = Box::new([0u64; 64]);
        let o = offsets();
        m[o.m_id as usize / 8] = 0;
        g[o.m as usize / 8] = m.as_ptr() as u64;
        g[o.goid as usize / 8] = 77;
        g[o.parent_goid.unwrap() as usize / 8] = 5;
        g[o.stack_hi as usize / 8] = 0x7fff_ffff_f000; // any value above SP
        Env {
            code,
            ring: env_ring,
            g,
            m,
            layout,
            entry_plan,
            exit_plan,
            original: func,
        }
    }

    pub fn base(&self) -> u64 {
        self.code.addr()
    }
    pub fn set_m_id(&mut self, id: u64) {
        self.m[offsets().m_id as usize / 8] = id;
    }
    pub fn set_enabled(&mut self, hook: u32, on: bool) {
        self.ring.bytes()[rl::HDR_ENABLE + hook as usize] = on as u8;
    }
    pub fn ring_bytes(&mut self) -> &mut [u8] {
        self.ring.bytes()
    }
    pub fn ring_u64(&mut self, off: u64) -> u64 {
        let b = &self.ring.bytes()[off as usize..off as usize + 8];
        u64::from_le_bytes(b.try_into().unwrap())
    }

    /// Calls the (possibly hooked) function with `regs`; R14 is set to the fake g.
    pub fn call(&mut self, regs: &Regs) -> Regs {
        let mut r = *regs;
        r.gpr[R14] = self.g.as_ptr() as u64;
        // SAFETY: SHIM is the shim assembled above for this mapping, now RX; it follows the SysV
        // ABI (saves callee-saved registers, balances the stack) and reads/writes only `r`, the
        // fake g/m and the ring, all alive for the duration of the call.
        let f: extern "sysv64" fn(*mut Regs) = unsafe { std::mem::transmute(self.base() + SHIM) };
        f(&mut r);
        r
    }

    /// Calls the function `n` (> 0) times from machine code; returns the function's final result.
    pub fn call_loop(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        // SAFETY: LOOP_SHIM is assembled above for this mapping, now RX; it follows the SysV ABI
        // and touches only the fake g/m and the ring, alive for the duration of the call.
        let f: extern "sysv64" fn(u64, u64) -> u64 =
            unsafe { std::mem::transmute(self.base() + LOOP_SHIM) };
        f(n, self.g.as_ptr() as u64)
    }

    /// Forgets every record of ring `ring` (head = tail = 0), as a consumer that keeps up would.
    pub fn reset_ring(&mut self, ring: u32) {
        let off = self.layout.ring_offset(ring).unwrap() as usize;
        self.ring.bytes()[off..off + rl::RING_HEADER_SIZE].fill(0);
    }

    /// All records written to ring `ring` so far (head taken as is).
    pub fn records(&mut self, ring: u32) -> Vec<trampolines::record::Record> {
        let roff = self.layout.ring_offset(ring).unwrap();
        let head = self.ring_u64(roff + rl::RING_HEAD as u64);
        let n = head.min(self.layout.slots_per_ring() as u64);
        (0..n)
            .map(|seq| {
                let off = self.layout.slot_offset(ring, seq).unwrap() as usize;
                let size = self.layout.slot_size() as usize;
                trampolines::record::Record::parse(&self.ring.bytes()[off..off + size]).unwrap()
            })
            .collect()
    }
}

/// Distinct register values for a call: a=1000, b=234 and recognisable others.
pub fn sample_regs() -> Regs {
    let mut r = Regs::default();
    for (n, v) in r.gpr.iter_mut().enumerate() {
        *v = 0x1111_0000_0000_0000 | (n as u64) << 8 | 0x5a;
    }
    r.gpr[RAX] = 1000;
    r.gpr[RBX] = 234;
    r.xmm0 = 2.5f64.to_bits();
    r
}
