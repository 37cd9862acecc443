//! Decides what each hook records beyond the nine integer registers, from the function's types:
//! the float registers its parameters (at entry) and results (at return) use, and a bounded copy
//! of each string parameter's bytes, taken at the call (a script later sees the string as it was
//! passed, not as it is when the record is read).
//!
//! Types come from DWARF when the binary has it, otherwise from a hook script's `SIGNATURE`;
//! without either a hook records integer registers only.

use gostrings::abi::Location;
use gostrings::{Kind, TypeTable};
use trampolines::record::{FIXED_SIZE, MAX_STRINGS};
use trampolines::stub::{CaptureSpec, IntReg, StringCapture};

use crate::script::types::FuncTypes;

/// What one hook records at entry and at return.
#[derive(Debug, Clone)]
pub struct Captures {
    /// The entry record's extra contents.
    pub entry: CaptureSpec,
    /// The exit record's extra contents.
    pub exit: CaptureSpec,
    /// Names of the string parameters copied at entry, in capture order.
    pub string_params: Vec<String>,
}

impl Captures {
    /// Integer registers only.
    pub fn ints_only() -> Self {
        Captures {
            entry: CaptureSpec::ints(),
            exit: CaptureSpec::ints(),
            string_params: vec![],
        }
    }
}

/// Bytes of each string copy that fit in a slot of `slot_size` bytes with four strings.
pub fn string_budget(slot_size: u32) -> u16 {
    let room = (slot_size as usize).saturating_sub(FIXED_SIZE) / MAX_STRINGS;
    (room & !7).min(u16::MAX as usize) as u16
}

fn int_reg(index: usize) -> Option<IntReg> {
    use IntReg::*;
    [Rax, Rbx, Rcx, Rdi, Rsi, R8, R9, R10, R11]
        .get(index)
        .copied()
}

fn float_bits(loc: &Location) -> u16 {
    match loc {
        Location::Registers(pieces) => pieces
            .iter()
            .filter(|p| p.reg.is_float())
            .fold(0, |m, p| m | (1u16 << p.reg.index())),
        Location::Stack { .. } => 0,
    }
}

/// The captures for a function of types `f` (entries of a [`TypeBook`]), or integer registers
/// only when its types are unknown.
///
/// [`TypeBook`]: crate::script::types::TypeBook
pub fn for_types(table: &TypeTable, f: Option<&FuncTypes>, slot_size: u32) -> Captures {
    let mut c = Captures::ints_only();
    let Some(f) = f else { return c };
    c.entry.string_cap = string_budget(slot_size);
    for p in &f.params {
        c.entry.float_mask |= float_bits(&p.loc);
        let is_string = table.get(p.ty).is_some_and(|t| t.kind == Kind::String);
        if let (true, Location::Registers(pieces)) = (is_string, &p.loc) {
            if let [ptr, len] = pieces.as_slice() {
                if let (Some(ptr), Some(len), false, false) = (
                    int_reg(ptr.reg.index()),
                    int_reg(len.reg.index()),
                    ptr.reg.is_float(),
                    len.reg.is_float(),
                ) {
                    if c.entry.strings.len() < MAX_STRINGS {
                        c.entry.strings.push(StringCapture { ptr, len });
                        c.string_params.push(p.name.clone());
                    }
                }
            }
        }
    }
    for r in &f.results {
        c.exit.float_mask |= float_bits(&r.loc);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_strings_share_what_a_slot_leaves_after_the_fixed_part() {
        assert_eq!(string_budget(512), 56);
        assert_eq!(string_budget(1024), 184);
        assert_eq!(string_budget(256), 0);
    }

    #[test]
    fn without_types_only_integer_registers_are_recorded() {
        let c = for_types(&TypeTable::new(), None, 512);
        assert_eq!(c.entry.int_mask, 0x1ff);
        assert_eq!(c.entry.float_mask, 0);
        assert!(c.entry.strings.is_empty());
    }

    #[test]
    fn string_parameters_in_registers_are_copied_and_float_registers_recorded() {
        use crate::script::types::Slot;
        use gostrings::abi::{Reg, RegPiece};
        use gostrings::{GoType, Shape};
        let mut table = TypeTable::new();
        let basic = |name: &str, kind, size| GoType {
            name: name.into(),
            kind,
            size,
            align: 8,
            shape: Shape::Basic,
        };
        let string = table.add(basic("string", Kind::String, 16));
        let float = table.add(basic("float64", Kind::Float64, 8));
        let piece = |reg, value_offset| RegPiece {
            reg,
            value_offset,
            size: 8,
        };
        let f = FuncTypes {
            params: vec![
                Slot {
                    name: "path".into(),
                    ty: string,
                    loc: Location::Registers(vec![piece(Reg::Rbx, 0), piece(Reg::Rcx, 8)]),
                },
                Slot {
                    name: "x".into(),
                    ty: float,
                    loc: Location::Registers(vec![piece(Reg::X1, 0)]),
                },
                Slot {
                    name: "big".into(),
                    ty: string,
                    loc: Location::Stack { offset: 8 },
                },
            ],
            results: vec![Slot {
                name: "~r0".into(),
                ty: float,
                loc: Location::Registers(vec![piece(Reg::X0, 0)]),
            }],
        };
        let c = for_types(&table, Some(&f), 512);
        assert_eq!(c.string_params, ["path"], "stack strings are not copied");
        assert_eq!(
            c.entry.strings,
            [StringCapture {
                ptr: IntReg::Rbx,
                len: IntReg::Rcx
            }]
        );
        assert_eq!(c.entry.float_mask, 1 << 1);
        assert_eq!(c.exit.float_mask, 1 << 0);
        assert_eq!(c.entry.string_cap, string_budget(512));
    }
}
