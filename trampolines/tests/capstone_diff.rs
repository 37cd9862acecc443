//! Differential decoding: every instruction of every function of the fixture binaries, decoded
//! by iced-x86 (what gohook uses) and by capstone (an independent decoder), must agree on its
//! length and on its direct branch target. A disagreement would mean gohook could misplace an
//! instruction boundary when it relocates a prologue or finds RET sites.
//!
//! Default run: spin, values, torture and httpsvc built by the installed Go, in the Default and
//! Pie variants. `GOHOOK_FULL_MATRIX=1` adds every toolchain of `fixtures::toolchains()` and the
//! Stripped, NoOpt and Race variants.
//!
//! Where capstone stops at bytes it cannot decode, iced must call the instruction at the same
//! address invalid too (both reject it; the rest of that function is not compared, since
//! capstone decodes no further). That happens only in assembly with data in its code, such as
//! crypto/internal/boring/sig's marker, and is counted and printed. There is no other exception.

use capstone::arch::x86::{ArchMode, X86OperandType};
use capstone::arch::{ArchOperand, BuildsCapstone};
use capstone::Capstone;
use fixtures::{Toolchain, Variant};
use gostrings::elf::ElfFile;
use gostrings::pclntab::Pclntab;
use iced_x86::{Decoder, DecoderOptions, FlowControl, OpKind};

#[derive(Default, Debug)]
struct Counts {
    functions: usize,
    instructions: usize,
    branches: usize,
    /// Functions where both decoders reject the same bytes (data in code).
    known: usize,
}

/// Compares the two decoders over every function of `path`; returns the counts and the
/// mismatches (at most one per function: after a length mismatch the streams are out of step).
fn compare(cs: &Capstone, path: &std::path::Path) -> (Counts, Vec<String>) {
    let elf = ElfFile::open(path).unwrap();
    let tab = Pclntab::from_elf(&elf).unwrap();
    let mut n = Counts::default();
    let mut mismatches = Vec::new();
    for f in tab.funcs() {
        let f = f.expect("pclntab of a fixture parses");
        let code = elf
            .bytes_at(f.entry, f.size() as usize)
            .unwrap_or_else(|| panic!("{}: code not in the file", f.name));
        n.functions += 1;
        let iced: Vec<_> = Decoder::with_ip(64, code, f.entry, DecoderOptions::NONE)
            .into_iter()
            .collect();
        let caps = cs.disasm_all(code, f.entry).expect("capstone disasm");
        for (k, c) in caps.iter().enumerate() {
            let Some(i) = iced.get(k) else {
                mismatches.push(format!("{}: capstone has more instructions", f.name));
                break;
            };
            n.instructions += 1;
            if i.ip() != c.address() || i.len() != c.bytes().len() {
                mismatches.push(format!(
                    "{} at {:#x}: iced {} bytes ({i}), capstone {} bytes at {:#x} ({} {})",
                    f.name,
                    i.ip(),
                    i.len(),
                    c.bytes().len(),
                    c.address(),
                    c.mnemonic().unwrap_or(""),
                    c.op_str().unwrap_or("")
                ));
                break;
            }
            let direct = matches!(
                i.flow_control(),
                FlowControl::ConditionalBranch
                    | FlowControl::UnconditionalBranch
                    | FlowControl::Call
            ) && i.op0_kind() == OpKind::NearBranch64;
            if !direct {
                continue;
            }
            n.branches += 1;
            let detail = cs.insn_detail(c).expect("detail");
            let target = detail
                .arch_detail()
                .operands()
                .into_iter()
                .find_map(|op| match op {
                    ArchOperand::X86Operand(o) => match o.op_type {
                        X86OperandType::Imm(v) => Some(v as u64),
                        _ => None,
                    },
                    _ => None,
                });
            if target != Some(i.near_branch_target()) {
                mismatches.push(format!(
                    "{} at {:#x}: {i}: iced target {:#x}, capstone {target:x?}",
                    f.name,
                    i.ip(),
                    i.near_branch_target()
                ));
            }
        }
        let both_reject = iced.get(caps.len()).is_some_and(|i| i.is_invalid());
        if caps.len() < iced.len() && both_reject {
            n.known += 1;
            eprintln!(
                "  {}: both decoders reject the bytes at {:#x} (data in code)",
                f.name,
                iced[caps.len()].ip()
            );
        } else if caps.len() < iced.len() {
            mismatches.push(format!(
                "{}: capstone stopped after {} of {} instructions (at {:#x}: {})",
                f.name,
                caps.len(),
                iced.len(),
                iced[caps.len()].ip(),
                iced[caps.len()]
            ));
        }
    }
    (n, mismatches)
}

#[test]
fn iced_and_capstone_agree_on_every_instruction_of_the_fixtures() {
    let cs = Capstone::new()
        .x86()
        .mode(ArchMode::Mode64)
        .detail(true)
        .build()
        .expect("capstone");
    let full = std::env::var("GOHOOK_FULL_MATRIX").is_ok_and(|v| v == "1");
    let toolchains = if full {
        fixtures::toolchains()
    } else {
        vec![Toolchain::installed()]
    };
    let variants: &[Variant] = if full {
        &[
            Variant::Default,
            Variant::Pie,
            Variant::Stripped,
            Variant::NoOpt,
            Variant::Race,
        ]
    } else {
        &[Variant::Default, Variant::Pie]
    };
    let mut total = Counts::default();
    let mut all = Vec::new();
    for tc in &toolchains {
        for &v in variants {
            for prog in ["spin", "values", "torture", "httpsvc"] {
                if prog == "httpsvc" && tc.gotoolchain() != Toolchain::installed().gotoolchain() {
                    continue; // a cold SQLite compile per toolchain; the installed one covers it
                }
                let path = fixtures::must_build(prog, v, tc);
                let started = std::time::Instant::now();
                let (n, m) = compare(&cs, &path);
                eprintln!(
                    "{prog} {} {}: {} functions, {} instructions, {} direct branches, {} \
                     with data in code, {} mismatches ({:?})",
                    v.name(),
                    tc.gotoolchain(),
                    n.functions,
                    n.instructions,
                    n.branches,
                    n.known,
                    m.len(),
                    started.elapsed()
                );
                assert!(n.instructions > 10_000, "{prog}: {n:?}");
                total.functions += n.functions;
                total.instructions += n.instructions;
                total.branches += n.branches;
                total.known += n.known;
                all.extend(m.into_iter().map(|m| format!("{prog} {}: {m}", v.name())));
            }
        }
    }
    eprintln!(
        "total: {} functions, {} instructions, {} direct branches, {} both rejected",
        total.functions, total.instructions, total.branches, total.known
    );
    assert!(
        all.is_empty(),
        "{} mismatches, first: {:#?}",
        all.len(),
        &all[..all.len().min(20)]
    );
}
