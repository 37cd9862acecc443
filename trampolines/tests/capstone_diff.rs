//! Differential decoding: every instruction of the fixture binaries' Go functions decoded by
//! iced-x86 and by capstone must agree on length and on direct branch targets.
//! Opt-in (builds capstone's C library): `cargo test -p trampolines --features capstone-diff`.
#![cfg(feature = "capstone-diff")]

use capstone::arch::x86::{ArchMode, X86OperandType};
use capstone::arch::{ArchOperand, BuildsCapstone};
use capstone::Capstone;
use gostrings::elf::ElfFile;
use gostrings::pclntab::Pclntab;
use iced_x86::{Decoder, DecoderOptions, FlowControl, OpKind};

#[test]
fn iced_and_capstone_agree_on_every_instruction_of_the_fixtures() {
    let cs = Capstone::new()
        .x86()
        .mode(ArchMode::Mode64)
        .detail(true)
        .build()
        .expect("capstone");
    for tc in fixtures::toolchains() {
        let path = fixtures::must_build("spin", fixtures::Variant::Default, &tc);
        let elf = ElfFile::open(&path).unwrap();
        let tab = Pclntab::from_elf(&elf).unwrap();
        let (mut insns, mut branches, mut mismatches) = (0usize, 0usize, Vec::new());
        for f in tab.funcs().flatten() {
            let Some(code) = elf.bytes_at(f.entry, f.size() as usize) else {
                continue;
            };
            let iced: Vec<_> = Decoder::with_ip(64, code, f.entry, DecoderOptions::NONE)
                .into_iter()
                .collect();
            let caps = cs.disasm_all(code, f.entry).expect("capstone disasm");
            for (n, c) in caps.iter().enumerate() {
                let Some(i) = iced.get(n) else {
                    mismatches.push(format!("{}: capstone has more instructions", f.name));
                    break;
                };
                insns += 1;
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
                    break; // the streams are out of step from here on
                }
                let direct = matches!(
                    i.flow_control(),
                    FlowControl::ConditionalBranch
                        | FlowControl::UnconditionalBranch
                        | FlowControl::Call
                ) && i.op0_kind() == OpKind::NearBranch64;
                if direct {
                    branches += 1;
                    let detail = cs.insn_detail(c).expect("detail");
                    let target =
                        detail
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
                            "{} at {:#x}: iced target {:#x}, capstone {target:x?}",
                            f.name,
                            i.ip(),
                            i.near_branch_target()
                        ));
                    }
                }
            }
            if caps.len() < iced.len() {
                mismatches.push(format!(
                    "{}: capstone stopped after {} of {} instructions",
                    f.name,
                    caps.len(),
                    iced.len()
                ));
            }
        }
        eprintln!(
            "{}: {insns} instructions, {branches} direct branches compared",
            tc.gotoolchain()
        );
        assert!(insns > 50_000, "{insns}");
        assert!(
            mismatches.is_empty(),
            "{} mismatches, first: {:#?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(10)]
        );
    }
}
