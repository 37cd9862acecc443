//! Decides what each hook records beyond the nine integer registers, from the function's types:
//! the float registers its parameters (at entry) and results (at return) use, and a bounded copy
//! of each string parameter's bytes, taken at the call (a script later sees the string as it was
//! passed, not as it is when the record is read).
//!
//! Scripts add path captures (`const CAPTURE = ["req.URL.Path"]`): fields reached from a pointer
//! parameter, read by the trampoline at the call, because by the time gohook reads a record the
//! program may have reused that memory (a request object after its response is sent).
//!
//! Types come from DWARF when the binary has it, otherwise from a hook script's `SIGNATURE`;
//! without either a hook records integer registers only.

use gostrings::abi::Location;
use gostrings::{Kind, Shape, TypeTable};
use trampolines::record::{FIXED_SIZE, MAX_STRINGS};
use trampolines::stub::{
    CaptureSpec, IntReg, PathCapture, PathValue, StringCapture, MAX_PATH_DEREFS,
};

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
    /// The path captures, in capture order (after the strings).
    pub paths: Vec<CapturedPath>,
}

/// A path capture as scripts see it: its text and how to read its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedPath {
    /// The path as declared, without the `?` of an optional one (`req.URL.Path`).
    pub text: String,
    /// How the copied bytes read back.
    pub value: PathKind,
}

/// How a path capture's bytes read back in a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A string (possibly cut at the budget).
    String,
    /// A signed integer of the given size.
    Int(u8),
    /// An unsigned integer, uintptr or pointer of the given size (a pointer reads as its address,
    /// 0 for nil).
    Uint(u8),
    /// A bool.
    Bool,
}

/// One entry of a script's `CAPTURE`: `param.Field.Field…`, optional with a leading `?` (skipped
/// without error where the function or the Go release lacks it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRequest {
    /// The path without the `?`.
    pub text: String,
    /// Declared with `?`.
    pub optional: bool,
}

impl PathRequest {
    /// Parses a `CAPTURE` entry.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (optional, text) = match entry.strip_prefix('?') {
            Some(t) => (true, t),
            None => (false, entry),
        };
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() < 2
            || parts
                .iter()
                .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            return Err(format!(
                "CAPTURE entry {entry:?}: write a parameter and its fields, e.g. \"req.URL.Path\""
            ));
        }
        Ok(PathRequest {
            text: text.to_owned(),
            optional,
        })
    }
}

impl Captures {
    /// Integer registers only.
    pub fn ints_only() -> Self {
        Captures {
            entry: CaptureSpec::ints(),
            exit: CaptureSpec::ints(),
            string_params: vec![],
            paths: vec![],
        }
    }
}

/// Bytes of each string copy that fit in a slot of `slot_size` bytes shared by `n` strings and
/// path captures.
pub fn string_budget(slot_size: u32, n: usize) -> u16 {
    let room = (slot_size as usize).saturating_sub(FIXED_SIZE) / n.clamp(1, MAX_STRINGS);
    (room & !7).min(u16::MAX as usize) as u16
}

/// Resolves `path` against the parameters `f` with the types of `table`: the register of its
/// pointer parameter, the pointer fields it follows and the offset and kind of its value.
pub fn resolve_path(
    table: &TypeTable,
    f: &FuncTypes,
    path: &PathRequest,
) -> Result<(PathCapture, PathKind), String> {
    let mut names = path.text.split('.');
    let root = names.next().unwrap_or_default();
    let fields: Vec<&str> = names.collect();
    let Some(param) = f.params.iter().find(|p| p.name == root) else {
        let have: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
        return Err(format!(
            "{}: no parameter {root} (parameters: {})",
            path.text,
            have.join(", ")
        ));
    };
    let ty = |id| {
        table
            .get(id)
            .ok_or_else(|| format!("{}: type {id:?} is unknown", path.text))
    };
    let base = match &param.loc {
        Location::Registers(p) if p.len() == 1 && !p[0].reg.is_float() => int_reg(p[0].reg.index()),
        _ => None,
    };
    let pt = ty(param.ty)?;
    let (Some(base), Shape::Pointer { elem }) = (base, &pt.shape) else {
        return Err(format!(
            "{}: {root} is a {} passed {}; a path starts at a pointer parameter passed in a register",
            path.text,
            pt.name,
            match param.loc {
                Location::Stack { .. } => "on the stack",
                _ => "in registers",
            }
        ));
    };
    let mut cur = *elem;
    let mut derefs = Vec::new();
    let mut off: u64 = 0;
    for (i, name) in fields.iter().enumerate() {
        let st = ty(cur)?;
        let Shape::Struct { fields: fs } = &st.shape else {
            return Err(format!(
                "{}: {} is not a struct, it has no field {name}",
                path.text, st.name
            ));
        };
        let Some(fd) = fs.iter().find(|f| f.name == *name) else {
            let have: Vec<&str> = fs.iter().map(|f| f.name.as_str()).collect();
            return Err(format!(
                "{}: {} has no field {name} (fields: {})",
                path.text,
                st.name,
                have.join(", ")
            ));
        };
        off += fd.offset;
        let ft = ty(fd.ty)?;
        let last = i + 1 == fields.len();
        if last {
            let value = match ft.kind {
                Kind::String => PathKind::String,
                Kind::Bool => PathKind::Bool,
                k if k.is_integer() && k.is_signed() => PathKind::Int(ft.size as u8),
                k if k.is_integer()
                    || matches!(k, Kind::Pointer | Kind::UnsafePointer | Kind::Uintptr) =>
                {
                    PathKind::Uint(ft.size as u8)
                }
                _ => {
                    return Err(format!(
                    "{}: {name} is a {}; a path ends at a string, a number, a bool or a pointer",
                    path.text, ft.name
                ))
                }
            };
            if ft.size == 0 || (value != PathKind::String && ft.size > 8) {
                return Err(format!("{}: {name} has size {}", path.text, ft.size));
            }
            let kind = match value {
                PathKind::String => PathValue::String,
                _ => PathValue::Word(ft.size as u8),
            };
            let last =
                i32::try_from(off).map_err(|_| format!("{}: offset too large", path.text))?;
            return Ok((
                PathCapture {
                    base,
                    derefs,
                    last,
                    kind,
                },
                value,
            ));
        }
        match &ft.shape {
            Shape::Pointer { elem } => {
                if derefs.len() == MAX_PATH_DEREFS {
                    return Err(format!(
                        "{}: follows more than {MAX_PATH_DEREFS} pointers",
                        path.text
                    ));
                }
                derefs.push(
                    i32::try_from(off).map_err(|_| format!("{}: offset too large", path.text))?,
                );
                off = 0;
                cur = *elem;
            }
            Shape::Struct { .. } => cur = fd.ty,
            _ => {
                return Err(format!(
                    "{}: {name} is a {}; a path goes through structs and pointers",
                    path.text, ft.name
                ))
            }
        }
    }
    Err(format!("{}: name a field after {root}", path.text))
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
///
/// `paths` are the scripts' `CAPTURE` entries for this function; one that does not resolve is an
/// error unless optional, and so are more captures than a record holds.
pub fn for_types(
    table: &TypeTable,
    f: Option<&FuncTypes>,
    slot_size: u32,
    paths: &[PathRequest],
) -> Result<Captures, String> {
    let mut c = Captures::ints_only();
    let Some(f) = f else {
        return match paths.iter().find(|p| !p.optional) {
            Some(p) => Err(format!("{}: the function's types are unknown", p.text)),
            None => Ok(c),
        };
    };
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
    for p in paths {
        if c.paths.iter().any(|q| q.text == p.text) {
            continue;
        }
        match resolve_path(table, f, p) {
            Ok((capture, value)) => {
                if c.entry.strings.len() + c.entry.paths.len() == MAX_STRINGS {
                    return Err(format!(
                        "{}: a record holds at most {MAX_STRINGS} strings and path captures, and \
                         this function already has {MAX_STRINGS}",
                        p.text
                    ));
                }
                c.entry.paths.push(capture);
                c.paths.push(CapturedPath {
                    text: p.text.clone(),
                    value,
                });
            }
            Err(_) if p.optional => {}
            Err(e) => return Err(e),
        }
    }
    c.entry.string_cap = string_budget(slot_size, c.entry.strings.len() + c.entry.paths.len());
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_captures_share_what_a_slot_leaves_after_the_fixed_part() {
        assert_eq!(string_budget(1024, 8), 88);
        assert_eq!(string_budget(1024, 1), 712);
        assert_eq!(string_budget(1024, 0), 712);
        assert_eq!(string_budget(256, 2), 0);
    }

    #[test]
    fn without_types_only_integer_registers_are_recorded() {
        let c = for_types(&TypeTable::new(), None, 1024, &[]).unwrap();
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
        let c = for_types(&table, Some(&f), 1024, &[]).unwrap();
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
        assert_eq!(c.entry.string_cap, string_budget(1024, 1));
    }
}
