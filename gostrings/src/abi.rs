//! Where each argument and result of a Go function lives under the amd64 register ABI
//! (`ABIInternal`, Go 1.17+).
//!
//! The algorithm follows `src/cmd/compile/abi-internal.md` ("Function call argument and result
//! passing", "amd64 architecture") and `cmd/compile/internal/abi/abiutils.go`: values are broken
//! into base components that take integer registers RAX, RBX, RCX, RDI, RSI, R8–R11 or float
//! registers X0–X14; an argument is either entirely in registers or entirely on the stack (the
//! register indexes roll back when it does not fit); arrays longer than one element and
//! zero-sized values go on the stack; results restart at RAX/X0. Stack-assigned arguments start
//! at `8(SP)` at entry, followed by the stack-assigned results (pointer-aligned), followed by the
//! spill area the caller reserves for register arguments.
//!
//! Offsets are from SP at function entry, which equals SP at the `RET` instruction, so the same
//! [`Location`] of a result is valid when the function returns.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::gotype::{GoType, Kind, Shape, TypeId, TypeTable};

/// An argument register of the amd64 Go register ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
pub enum Reg {
    /// Integer argument 0.
    Rax,
    /// Integer argument 1.
    Rbx,
    /// Integer argument 2.
    Rcx,
    /// Integer argument 3.
    Rdi,
    /// Integer argument 4.
    Rsi,
    /// Integer argument 5.
    R8,
    /// Integer argument 6.
    R9,
    /// Integer argument 7.
    R10,
    /// Integer argument 8.
    R11,
    /// Float argument 0 (low 64 bits of XMM0).
    X0,
    /// Float argument 1.
    X1,
    /// Float argument 2.
    X2,
    /// Float argument 3.
    X3,
    /// Float argument 4.
    X4,
    /// Float argument 5.
    X5,
    /// Float argument 6.
    X6,
    /// Float argument 7.
    X7,
    /// Float argument 8.
    X8,
    /// Float argument 9.
    X9,
    /// Float argument 10.
    X10,
    /// Float argument 11.
    X11,
    /// Float argument 12.
    X12,
    /// Float argument 13.
    X13,
    /// Float argument 14.
    X14,
}

impl Reg {
    /// The integer argument registers in assignment order.
    pub const INT_ARGS: [Reg; 9] = [
        Reg::Rax,
        Reg::Rbx,
        Reg::Rcx,
        Reg::Rdi,
        Reg::Rsi,
        Reg::R8,
        Reg::R9,
        Reg::R10,
        Reg::R11,
    ];

    /// The floating-point argument registers in assignment order.
    pub const FLOAT_ARGS: [Reg; 15] = [
        Reg::X0,
        Reg::X1,
        Reg::X2,
        Reg::X3,
        Reg::X4,
        Reg::X5,
        Reg::X6,
        Reg::X7,
        Reg::X8,
        Reg::X9,
        Reg::X10,
        Reg::X11,
        Reg::X12,
        Reg::X13,
        Reg::X14,
    ];

    const NAMES: [&'static str; 24] = [
        "rax", "rbx", "rcx", "rdi", "rsi", "r8", "r9", "r10", "r11", "x0", "x1", "x2", "x3", "x4",
        "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    ];

    fn all() -> impl Iterator<Item = Reg> {
        Reg::INT_ARGS.into_iter().chain(Reg::FLOAT_ARGS)
    }

    /// The lowercase register name: `"rax"` … `"r11"`, `"x0"` … `"x14"`.
    pub fn name(self) -> &'static str {
        Reg::NAMES[self as usize]
    }

    /// True for X0–X14.
    pub fn is_float(self) -> bool {
        self as usize >= Reg::INT_ARGS.len()
    }

    /// Position in [`Reg::INT_ARGS`] or [`Reg::FLOAT_ARGS`].
    pub fn index(self) -> usize {
        let i = self as usize;
        if self.is_float() {
            i - Reg::INT_ARGS.len()
        } else {
            i
        }
    }

    /// The DWARF register number (System V x86-64 psABI numbering: RAX=0, RBX=3, XMM0=17).
    pub fn dwarf_number(self) -> u16 {
        match self {
            Reg::Rax => 0,
            Reg::Rbx => 3,
            Reg::Rcx => 2,
            Reg::Rdi => 5,
            Reg::Rsi => 4,
            Reg::R8 => 8,
            Reg::R9 => 9,
            Reg::R10 => 10,
            Reg::R11 => 11,
            x => 17 + x.index() as u16,
        }
    }

    /// The argument register with DWARF number `n`, if it is one.
    pub fn from_dwarf(n: u16) -> Option<Reg> {
        Reg::all().find(|r| r.dwarf_number() == n)
    }
}

impl From<Reg> for &'static str {
    fn from(r: Reg) -> Self {
        r.name()
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let lower = lower
            .strip_prefix("xmm")
            .map(|n| format!("x{n}"))
            .unwrap_or(lower);
        Reg::all()
            .find(|r| r.name() == lower)
            .ok_or_else(|| format!("{s} is not a Go argument register (rax..r11, x0..x14)"))
    }
}

/// One base component of a register-assigned value: `size` bytes of the value starting at
/// `value_offset` (in the value's memory layout) are held in the low bytes of `reg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RegPiece {
    /// The register.
    pub reg: Reg,
    /// Byte offset of the component within the value's in-memory layout.
    pub value_offset: u64,
    /// Size of the component in bytes (1, 2, 4 or 8).
    pub size: u64,
}

/// Where a value lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// In registers, one piece per base component, in layout order. Empty for values with no
    /// register components (never produced by [`assign`], which puts zero-sized values on the
    /// stack).
    Registers(Vec<RegPiece>),
    /// In memory at `SP + offset`, with SP as at function entry (equal to SP at `RET`).
    Stack {
        /// Offset from SP at entry; stack-assigned arguments start at 8.
        offset: u64,
    },
}

/// Why a signature could not be assigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    /// A type id does not exist in the table.
    #[error("type id {0} is not in the type table")]
    UnknownType(u32),
    /// A value's layout is not known (an unresolved named type passed by value).
    #[error("the layout of {name} is unknown, so where it is passed cannot be computed; give its layout as struct{{...}} or pass a pointer")]
    OpaqueType {
        /// The type's name.
        name: String,
    },
    /// Types nest deeper than [`MAX_DEPTH`] (or refer to themselves by value).
    #[error("type {name} nests deeper than {MAX_DEPTH} levels (or contains itself)")]
    TooDeep {
        /// The outermost type's name.
        name: String,
    },
    /// Sizes overflow 64 bits.
    #[error("the stack frame of this signature overflows")]
    Overflow,
}

/// How deeply struct and array types may nest before assignment gives up.
pub const MAX_DEPTH: usize = 64;

/// The ABI assignment of one function signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameLayout {
    /// Where the generics dictionary pointer of a shape-instantiated body is.
    pub dictionary: Option<Location>,
    /// The dictionary's spill slot.
    pub dictionary_spill: Option<u64>,
    /// Location of each parameter (receiver first) at entry.
    pub params: Vec<Location>,
    /// Location of each result at `RET`.
    pub results: Vec<Location>,
    /// For each register-assigned parameter, its spill slot (`SP + offset` at entry), reserved
    /// by the caller but not filled.
    pub param_spills: Vec<Option<u64>>,
    /// Bytes of stack-assigned arguments and results, from `8(SP)`, pointer-aligned.
    pub stack_args_size: u64,
    /// Size of the spill area, pointer-aligned; it starts at `8 + stack_args_size`.
    pub spill_size: u64,
}

/// The calling convention a function body was compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum FuncAbi {
    /// The register ABI of Go functions (Go 1.17+ on amd64).
    Internal,
    /// The stack-only ABI of assembly functions and of the wrappers that let assembly call Go
    /// functions (`runtime.newproc.abi0`), and of all code before Go 1.17.
    Abi0,
}

/// One base component of a value: `size` bytes at `offset` in its layout, passed in an integer
/// or a float register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Component {
    /// Byte offset within the value.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// True when the component travels in an X register.
    pub float: bool,
}

/// The base components of a value of type `ty` in register-assignment order, or `None` when the
/// type can never be register-assigned (it contains an array of more than one element).
/// Zero-sized types have no components.
pub fn components(table: &TypeTable, ty: TypeId) -> Result<Option<Vec<Component>>, AbiError> {
    let mut out = Vec::new();
    Ok(flatten(table, ty, 0, 0, &mut out)?.then_some(out))
}

fn flatten(
    table: &TypeTable,
    id: TypeId,
    offset: u64,
    depth: usize,
    out: &mut Vec<Component>,
) -> Result<bool, AbiError> {
    let ty = table.get(id).ok_or(AbiError::UnknownType(id.0))?;
    if depth > MAX_DEPTH {
        return Err(AbiError::TooDeep {
            name: ty.name.clone(),
        });
    }
    if matches!(ty.shape, Shape::Opaque) {
        return Err(AbiError::OpaqueType {
            name: ty.name.clone(),
        });
    }
    if ty.size == 0 {
        return Ok(true);
    }
    // A hostile table could describe millions of components; no Go value has more than a few
    // hundred, and nothing with more than the register count can be register-assigned anyway.
    if out.len() > 4096 {
        return Ok(false);
    }
    let int = |out: &mut Vec<Component>, at: u64, size: u64| {
        out.push(Component {
            offset: at,
            size,
            float: false,
        })
    };
    let float = |out: &mut Vec<Component>, at: u64, size: u64| {
        out.push(Component {
            offset: at,
            size,
            float: true,
        })
    };
    use Kind::*;
    match ty.kind {
        Bool | Int | Int8 | Int16 | Int32 | Int64 | Uint | Uint8 | Uint16 | Uint32 | Uint64
        | Uintptr | Pointer | Map | Chan | Func | UnsafePointer => int(out, offset, ty.size.min(8)),
        Float32 | Float64 => float(out, offset, ty.size.min(8)),
        Complex64 | Complex128 => {
            let half = ty.size / 2;
            float(out, offset, half);
            float(out, offset.saturating_add(half), half);
        }
        String | Interface => {
            int(out, offset, 8);
            int(out, offset.saturating_add(8), 8);
        }
        Slice => {
            int(out, offset, 8);
            int(out, offset.saturating_add(8), 8);
            int(out, offset.saturating_add(16), 8);
        }
        Struct => {
            let Shape::Struct { fields } = &ty.shape else {
                return Err(AbiError::OpaqueType {
                    name: ty.name.clone(),
                });
            };
            for f in fields {
                let at = offset.checked_add(f.offset).ok_or(AbiError::Overflow)?;
                if !flatten(table, f.ty, at, depth + 1, out)? {
                    return Ok(false);
                }
            }
        }
        Array => {
            let Shape::Array { elem, len } = ty.shape else {
                return Err(AbiError::OpaqueType {
                    name: ty.name.clone(),
                });
            };
            match len {
                0 => {}
                1 => return flatten(table, elem, offset, depth + 1, out),
                _ => return Ok(false),
            }
        }
    }
    Ok(true)
}

struct Assigner<'t> {
    table: &'t TypeTable,
    int_used: usize,
    float_used: usize,
    stack: u64,
    regs: bool,
}

fn align_up(v: u64, align: u64) -> Result<u64, AbiError> {
    if align <= 1 {
        return Ok(v);
    }
    let a = if align.is_power_of_two() { align } else { 8 };
    v.checked_add(a - 1)
        .map(|x| x & !(a - 1))
        .ok_or(AbiError::Overflow)
}

impl Assigner<'_> {
    fn ty(&self, id: TypeId) -> Result<&GoType, AbiError> {
        self.table.get(id).ok_or(AbiError::UnknownType(id.0))
    }

    /// Assigns one value: registers if it fits entirely, else the stack (the register indexes
    /// are untouched then, which is the ABI's rollback).
    fn assign_value(&mut self, id: TypeId) -> Result<Location, AbiError> {
        let ty = self.ty(id)?;
        if matches!(ty.shape, Shape::Opaque) {
            return Err(AbiError::OpaqueType {
                name: ty.name.clone(),
            });
        }
        if self.regs && ty.size > 0 {
            if let Some(comps) = components(self.table, id)? {
                let ints = comps.iter().filter(|c| !c.float).count();
                let floats = comps.len() - ints;
                if self.int_used + ints <= Reg::INT_ARGS.len()
                    && self.float_used + floats <= Reg::FLOAT_ARGS.len()
                {
                    let pieces = comps
                        .iter()
                        .map(|c| {
                            let reg = if c.float {
                                self.float_used += 1;
                                Reg::FLOAT_ARGS[self.float_used - 1]
                            } else {
                                self.int_used += 1;
                                Reg::INT_ARGS[self.int_used - 1]
                            };
                            RegPiece {
                                reg,
                                value_offset: c.offset,
                                size: c.size,
                            }
                        })
                        .collect();
                    return Ok(Location::Registers(pieces));
                }
            }
        }
        let ty = self.ty(id)?;
        let offset = align_up(self.stack, ty.align)?;
        self.stack = offset.checked_add(ty.size).ok_or(AbiError::Overflow)?;
        Ok(Location::Stack { offset: 8 + offset })
    }
}

/// Where the generics dictionary goes for a function named `func_name`: `Some(0)` (before the
/// first parameter) for shape-instantiated generic functions (`main.Map[go.shape.int]`),
/// `Some(1)` (right after the receiver) for methods of generic types
/// (`main.(*List[go.shape.int]).Push`), `None` otherwise. Closures inside such bodies
/// (`…].func1`) get the dictionary through their closure context, and compiler-generated
/// helpers (`type:.eq.…`) take none.
pub fn dictionary_index(func_name: &str) -> Option<usize> {
    if func_name.starts_with("type:") || func_name.starts_with("type..") {
        return None;
    }
    let start = func_name.find("[go.shape.")?;
    // Find the bracket that closes the instantiation and look at what follows it.
    let mut depth = 0usize;
    let mut close = None;
    for (i, c) in func_name[start..].char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    close = Some(start + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let rest = &func_name[close? + 1..];
    let is_closure = rest.split('.').any(|part| {
        part.strip_prefix("func")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    });
    if is_closure {
        return None;
    }
    // `F[...]` is a function; `(*T[...]).M` and `T[...].M` are methods.
    if rest.is_empty() {
        Some(0)
    } else {
        Some(1)
    }
}

/// Assigns registers and stack slots to the parameters (receiver first) and results of an
/// `ABIInternal` function. `dictionary` inserts the generics dictionary pointer before the
/// parameter at that index (see [`dictionary_index`]).
pub fn assign(
    table: &TypeTable,
    params: &[TypeId],
    results: &[TypeId],
    dictionary: Option<usize>,
) -> Result<FrameLayout, AbiError> {
    layout(table, params, results, dictionary, true)
}

/// Assigns stack slots under `ABI0`, the stack-only convention of assembly functions and of
/// the `ABI0` wrappers the linker keeps for Go functions called from assembly.
pub fn assign_abi0(
    table: &TypeTable,
    params: &[TypeId],
    results: &[TypeId],
) -> Result<FrameLayout, AbiError> {
    layout(table, params, results, None, false)
}

fn layout(
    table: &TypeTable,
    params: &[TypeId],
    results: &[TypeId],
    dictionary: Option<usize>,
    regs: bool,
) -> Result<FrameLayout, AbiError> {
    let mut a = Assigner {
        table,
        int_used: 0,
        float_used: 0,
        stack: 0,
        regs,
    };
    let mut dict = None;
    let mut dict_spill = None;
    let mut param_locs = Vec::with_capacity(params.len());
    let mut spill_order: Vec<(Option<TypeId>, usize)> = Vec::new();
    for i in 0..=params.len() {
        if dictionary == Some(i)
            || (i == params.len() && dictionary.is_some_and(|d| d > params.len()))
        {
            // The dictionary is a pointer-sized register argument like any other.
            let loc = if a.int_used < Reg::INT_ARGS.len() {
                a.int_used += 1;
                Location::Registers(vec![RegPiece {
                    reg: Reg::INT_ARGS[a.int_used - 1],
                    value_offset: 0,
                    size: 8,
                }])
            } else {
                let off = align_up(a.stack, 8)?;
                a.stack = off + 8;
                Location::Stack { offset: 8 + off }
            };
            if matches!(loc, Location::Registers(_)) {
                spill_order.push((None, usize::MAX));
            }
            dict = Some(loc);
        }
        if let Some(&p) = params.get(i) {
            let loc = a.assign_value(p)?;
            if matches!(loc, Location::Registers(_)) {
                spill_order.push((Some(p), i));
            }
            param_locs.push(loc);
        }
    }
    a.stack = align_up(a.stack, 8)?;
    a.int_used = 0;
    a.float_used = 0;
    let mut result_locs = Vec::with_capacity(results.len());
    for &r in results {
        result_locs.push(a.assign_value(r)?);
    }
    a.stack = align_up(a.stack, 8)?;
    let stack_args_size = a.stack;
    let spill_base = 8u64
        .checked_add(stack_args_size)
        .ok_or(AbiError::Overflow)?;
    let mut spill = 0u64;
    let mut param_spills = vec![None; params.len()];
    for (ty, index) in spill_order {
        let (size, align) = match ty {
            Some(t) => {
                let t = a.ty(t)?;
                (t.size, t.align)
            }
            None => (8, 8),
        };
        let off = align_up(spill, align)?;
        spill = off.checked_add(size).ok_or(AbiError::Overflow)?;
        match ty {
            Some(_) => param_spills[index] = Some(spill_base + off),
            None => dict_spill = Some(spill_base + off),
        }
    }
    let spill_size = align_up(spill, 8)?;
    Ok(FrameLayout {
        dictionary: dict,
        dictionary_spill: dict_spill,
        params: param_locs,
        results: result_locs,
        param_spills,
        stack_args_size,
        spill_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_names_round_trip() {
        for r in Reg::all() {
            assert_eq!(r.name().parse::<Reg>().unwrap(), r);
            assert_eq!(Reg::from_dwarf(r.dwarf_number()), Some(r));
        }
        assert_eq!("XMM3".parse::<Reg>().unwrap(), Reg::X3);
        assert!("rdx".parse::<Reg>().is_err());
        assert_eq!(
            Reg::from_dwarf(1),
            None,
            "rdx is the closure context, not an argument"
        );
        assert_eq!(Reg::X0.dwarf_number(), 17);
    }

    #[test]
    fn dictionary_goes_first_for_functions_and_after_the_receiver_for_methods() {
        assert_eq!(
            dictionary_index("main.Map[go.shape.int,go.shape.string]"),
            Some(0)
        );
        assert_eq!(dictionary_index("main.(*List[go.shape.int]).Push"), Some(1));
        assert_eq!(dictionary_index("main.Pair[go.shape.int].Swap"), Some(1));
        assert_eq!(dictionary_index("main.Map[int,string]"), None);
        assert_eq!(dictionary_index("main.Map[go.shape.int].func1"), None);
        assert_eq!(dictionary_index("type:.eq.main.Pair[go.shape.int]"), None);
        assert_eq!(dictionary_index("main.main"), None);
    }
}
