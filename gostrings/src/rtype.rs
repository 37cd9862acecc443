//! Runtime type descriptors (`internal/abi.Type` and its kind-specific extensions): type
//! layouts without DWARF.
//!
//! Every Go binary carries a descriptor for each type the runtime may need to know about
//! (heap-allocated, stored in an interface, reflected on, used as a map or chan element). This
//! module reads them through a [`MemoryReader`] — the binary file at link-time addresses or a
//! live process — finds them by name (typelinks up to Go 1.26, the sorted descriptor area in
//! 1.27, then a bounded walk of everything reachable), and converts them into the shared
//! [`TypeTable`] model: kind, size, alignment, struct fields with offsets.
//!
//! Layout facts per release (go-runtime.md §5): the 48-byte header is the same since Go 1.17;
//! `DirectIface` moved from `Kind_` to `TFlag` in 1.26; struct field offsets are plain since 1.19
//! (`offset<<1 | embedded` before); map descriptors are classic (≤1.23, 88 bytes), swiss
//! (1.24 – 1.26, 112 bytes) or 1.27's (136 bytes) — detected from the descriptor itself.
//!
//! Everything read is hostile: descriptors must lie in the module's type area, counts and
//! lengths are capped before anything is allocated, and walks are bounded by visited sets.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet, VecDeque};

use crate::gotype::{Field, GoType, Kind, Shape, TypeId, TypeTable};
use crate::memory::{MemError, MemoryReader};
use crate::moduledata::{ModuleData, ModuleLayout};
use crate::signature::NamedTypes;
use crate::version::GoVersion;

/// Why a type descriptor could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtypeError {
    /// Memory the descriptor points at is unreadable.
    #[error("reading type metadata: {0}")]
    Mem(#[from] MemError),
    /// A descriptor address is outside the module's type area or misaligned.
    #[error("type descriptor address {addr:#x} is not inside the type area {types:#x}..{etypes:#x} (or misaligned)")]
    OutsideTypes {
        /// The address.
        addr: u64,
        /// Start of the type area.
        types: u64,
        /// End of the type area.
        etypes: u64,
    },
    /// The kind byte is not a Go kind.
    #[error("type descriptor at {addr:#x} has kind byte {kind:#x}, which is no Go kind")]
    BadKind {
        /// Descriptor address.
        addr: u64,
        /// The raw `Kind_` byte.
        kind: u8,
    },
    /// An encoded name is malformed.
    #[error("malformed type name at {addr:#x}: {why}")]
    BadName {
        /// Address of the name.
        addr: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// A descriptor field is out of range.
    #[error("malformed type descriptor at {addr:#x}: {why}")]
    Malformed {
        /// Descriptor address.
        addr: u64,
        /// What is wrong.
        why: String,
    },
    /// No descriptor has this name.
    #[error("no runtime type descriptor for {0} (the linker keeps descriptors only for types used in interfaces, on the heap, in maps/chans or by reflect)")]
    NotFound(String),
}

/// `TFlag` bits.
mod tflag {
    pub const UNCOMMON: u8 = 1 << 0;
    pub const EXTRA_STAR: u8 = 1 << 1;
    pub const NAMED: u8 = 1 << 2;
    /// Go 1.26+: the value is stored directly in the interface data word.
    pub const DIRECT_IFACE: u8 = 1 << 5;
}
/// Go ≤ 1.25: `Kind_` bit for direct-interface types.
const KIND_DIRECT_IFACE: u8 = 1 << 5;
const KIND_MASK: u8 = 0x1f;

/// Size of `abi.Type`.
const HEADER: u64 = 48;
/// Size of `abi.UncommonType`.
const UNCOMMON: u64 = 16;
/// Longest name read (struct type strings with tags can be long, but not this long).
const MAX_NAME: u64 = 1 << 20;
/// Most struct fields read from one descriptor.
const MAX_FIELDS: u64 = 1 << 16;
/// Most interface methods read from one descriptor.
const MAX_IMETHODS: u64 = 1 << 16;
/// Most descriptors visited by a walk of the whole type graph.
const MAX_WALK: usize = 1 << 20;
/// Deepest nesting one import recurses into before adding shells (by-value containment cannot
/// be cyclic in Go, so only hostile input gets near this).
const MAX_LEVEL: usize = 48;
/// Deepest chain of unnamed composite types spelled out in a name (`*[]map[K]*V`…).
const MAX_NAME_DEPTH: usize = 32;

/// The 48-byte header every type descriptor starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeHeader {
    /// Descriptor address.
    pub addr: u64,
    /// `Size_`: size of a value in bytes.
    pub size: u64,
    /// Prefix of the value that may hold pointers.
    pub ptr_bytes: u64,
    /// Type hash.
    pub hash: u32,
    /// Raw `TFlag`.
    pub tflag: u8,
    /// Alignment of a variable of this type.
    pub align: u8,
    /// Alignment as a struct field.
    pub field_align: u8,
    /// The kind.
    pub kind: Kind,
    /// True when an interface holding this type stores the value itself in its data word
    /// (pointer-shaped types), not a pointer to it.
    pub direct_iface: bool,
    /// `Str`: offset of the type string from `types`.
    pub str_off: i32,
    /// `PtrToThis`: offset of `*T` from `types`, 0 when absent.
    pub ptr_to_this: i32,
}

impl TypeHeader {
    /// True for defined (named) types such as `main.User` or `int`.
    pub fn is_named(&self) -> bool {
        self.tflag & tflag::NAMED != 0
    }
    fn has_uncommon(&self) -> bool {
        self.tflag & tflag::UNCOMMON != 0
    }
}

/// A decoded `abi.Name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The name text.
    pub name: String,
    /// The struct tag, if any.
    pub tag: Option<String>,
    /// Offset (from `types`) of the package-path name, if any.
    pub pkg_path_off: Option<i32>,
    /// Exported identifier.
    pub exported: bool,
    /// Embedded struct field (Go 1.19+ encoding).
    pub embedded: bool,
}

/// Limits for converting descriptors into a [`TypeTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Pointer, slice, map and chan hops followed below the requested type (struct fields and
    /// array elements are always followed: the ABI needs by-value parts whole). Beyond, types
    /// are shells — name, kind, size; structs and arrays [`Shape::Opaque`], pointers, slices,
    /// maps and chans with shell elements — to be imported later with
    /// [`RuntimeTypes::type_at`].
    pub max_depth: usize,
    /// Most types one import adds before the rest become shells.
    pub max_types: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_depth: 8,
            max_types: 4096,
        }
    }
}

/// Remembers which descriptors are already in a [`TypeTable`], so repeated imports into the
/// same table share types (and recursive types close their cycles).
#[derive(Debug, Clone, Default)]
pub struct ImportMemo {
    full: HashMap<u64, TypeId>,
    shells: HashMap<u64, TypeId>,
}

/// Figures from [`RuntimeTypes::check_all`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Descriptors reached from the roots.
    pub descriptors: usize,
    /// Descriptors that converted into the model without error.
    pub imported: usize,
    /// Errors met (bad descriptors are skipped, not fatal).
    pub errors: usize,
}

/// The runtime type metadata of one module, read through `M`.
pub struct RuntimeTypes<M: MemoryReader> {
    mem: M,
    md: ModuleData,
    /// Go ≤ 1.18: `StructField.Offset` holds `offset<<1 | embedded`.
    offset_anon: bool,
    typelinked: OnceCell<Vec<u64>>,
    index: OnceCell<HashMap<String, Vec<u64>>>,
}

impl<M: MemoryReader> std::fmt::Debug for RuntimeTypes<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeTypes")
            .field(
                "types",
                &format_args!("{:#x}..{:#x}", self.md.types, self.md.etypes),
            )
            .field("layout", &self.md.layout)
            .finish()
    }
}

fn le64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}
fn le32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
        .unwrap_or(0)
}

impl<M: MemoryReader> RuntimeTypes<M> {
    /// The type metadata described by `md`. `version` (from buildinfo) is needed only to read
    /// Go 1.18 binaries, whose struct field offsets are encoded differently; without it the
    /// Go 1.19+ encoding is assumed.
    pub fn new(mem: M, md: ModuleData, version: Option<&GoVersion>) -> Self {
        let offset_anon = version.is_some_and(|v| v.major == 1 && v.minor <= 18);
        RuntimeTypes {
            mem,
            md,
            offset_anon,
            typelinked: OnceCell::new(),
            index: OnceCell::new(),
        }
    }

    /// The moduledata these types belong to.
    pub fn moduledata(&self) -> &ModuleData {
        &self.md
    }

    /// The memory read from.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    fn in_types(&self, addr: u64, len: u64) -> bool {
        addr >= self.md.types && addr.checked_add(len).is_some_and(|e| e <= self.md.etypes)
    }

    fn outside(&self, addr: u64) -> RtypeError {
        RtypeError::OutsideTypes {
            addr,
            types: self.md.types,
            etypes: self.md.etypes,
        }
    }

    fn check_desc(&self, addr: u64) -> Result<(), RtypeError> {
        if !addr.is_multiple_of(8) || !self.in_types(addr, HEADER) {
            return Err(self.outside(addr));
        }
        Ok(())
    }

    /// `types + off` for a `NameOff`/`TypeOff`, checked to lie in the type area.
    fn resolve_off(&self, off: i32) -> Result<u64, RtypeError> {
        let addr = self.md.types.wrapping_add(off as i64 as u64);
        if off < 0 || !self.in_types(addr, 1) {
            return Err(self.outside(addr));
        }
        Ok(addr)
    }

    /// A type offset (`PtrToThis`, `Mtyp`): 0 and -1 mean "none".
    fn type_off(&self, off: i32) -> Option<u64> {
        if off <= 0 {
            return None;
        }
        self.resolve_off(off).ok()
    }

    fn read_n<const N: usize>(&self, addr: u64) -> Result<[u8; N], RtypeError> {
        let mut b = [0u8; N];
        self.mem.read(addr, &mut b)?;
        Ok(b)
    }

    /// Reads the header of the descriptor at `addr`, which must lie in the type area.
    pub fn header(&self, addr: u64) -> Result<TypeHeader, RtypeError> {
        self.check_desc(addr)?;
        self.header_unchecked(addr)
    }

    fn header_unchecked(&self, addr: u64) -> Result<TypeHeader, RtypeError> {
        let b: [u8; HEADER as usize] = self.read_n(addr)?;
        let kind_byte = b[23];
        let kind = Kind::from_abi(kind_byte & KIND_MASK).ok_or(RtypeError::BadKind {
            addr,
            kind: kind_byte,
        })?;
        let tflag = b[20];
        let align = b[21];
        if !align.is_power_of_two() || !b[22].is_power_of_two() {
            return Err(RtypeError::Malformed {
                addr,
                why: format!("alignment {} / {} is not a power of two", align, b[22]),
            });
        }
        Ok(TypeHeader {
            addr,
            size: le64(&b, 0),
            ptr_bytes: le64(&b, 8),
            hash: le32(&b, 16),
            tflag,
            align,
            field_align: b[22],
            kind,
            direct_iface: kind_byte & KIND_DIRECT_IFACE != 0 || tflag & tflag::DIRECT_IFACE != 0,
            str_off: le32(&b, 40) as i32,
            ptr_to_this: le32(&b, 44) as i32,
        })
    }

    /// Decodes the `abi.Name` at `addr` (flag byte, varint length, bytes, optional tag and
    /// package-path offset).
    pub fn name_at(&self, addr: u64) -> Result<Name, RtypeError> {
        let flags = self.mem.read_u8(addr)?;
        let (len, n) = self.varint(addr.wrapping_add(1))?;
        let data = addr.wrapping_add(1 + n);
        let bytes = self.mem.read_vec(data, len, MAX_NAME)?;
        let mut next = data.wrapping_add(len);
        let mut tag = None;
        if flags & 2 != 0 {
            let (tlen, tn) = self.varint(next)?;
            let tb = self.mem.read_vec(next.wrapping_add(tn), tlen, MAX_NAME)?;
            tag = Some(String::from_utf8_lossy(&tb).into_owned());
            next = next.wrapping_add(tn + tlen);
        }
        let pkg_path_off = if flags & 4 != 0 {
            Some(self.mem.read_u32(next)? as i32)
        } else {
            None
        };
        Ok(Name {
            name: String::from_utf8_lossy(&bytes).into_owned(),
            tag,
            pkg_path_off,
            exported: flags & 1 != 0,
            embedded: flags & 8 != 0,
        })
    }

    /// A varint and its encoded length, at most 4 bytes (names are under 2^28 bytes).
    fn varint(&self, addr: u64) -> Result<(u64, u64), RtypeError> {
        let mut v = 0u64;
        for i in 0..4u64 {
            let b = self.mem.read_u8(addr.wrapping_add(i))?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((v, i + 1));
            }
        }
        Err(RtypeError::BadName {
            addr,
            why: "length varint longer than 4 bytes",
        })
    }

    fn name_off(&self, off: i32) -> Result<String, RtypeError> {
        let addr = self.resolve_off(off)?;
        Ok(self.name_at(addr)?.name)
    }

    /// The type's string as `reflect.Type.String` prints it (`*main.User`, `http.Request`).
    pub fn type_string(&self, addr: u64) -> Result<String, RtypeError> {
        let h = self.header(addr)?;
        self.string_of(&h)
    }

    fn string_of(&self, h: &TypeHeader) -> Result<String, RtypeError> {
        let s = self.name_off(h.str_off)?;
        if h.tflag & tflag::EXTRA_STAR != 0 {
            Ok(s.strip_prefix('*').map(str::to_owned).unwrap_or(s))
        } else {
            Ok(s)
        }
    }

    /// Size of the kind-specific part, where the uncommon type follows.
    fn kind_part_size(&self, h: &TypeHeader) -> Result<u64, RtypeError> {
        Ok(match h.kind {
            Kind::Struct | Kind::Interface => 80,
            Kind::Pointer | Kind::Slice | Kind::Func => 56,
            Kind::Array => 72,
            Kind::Chan => 64,
            Kind::Map => self.map_desc_size(h.addr)?,
            _ => HEADER,
        })
    }

    /// Map descriptors: classic `{Key, Elem, Bucket, Hasher, u8, u8, u16, u32}` (88 bytes),
    /// swiss `{Key, Elem, Group, Hasher, GroupSize, SlotSize, ElemOff, Flags}` (112) or Go 1.27
    /// `{…, GroupSize, KeysOff, KeyStride, ElemsOff, ElemStride, ElemOff, Flags}` (136). Swiss
    /// descriptors store `GroupSize == Group.Size_` at +80; classic ones store small bytes there.
    fn map_desc_size(&self, addr: u64) -> Result<u64, RtypeError> {
        if self.md.layout >= ModuleLayout::Go127 {
            return Ok(136);
        }
        let b: [u8; 40] = self.read_n(addr.wrapping_add(48))?;
        let group = le64(&b, 16);
        let at80 = le64(&b, 32);
        let swiss = self.check_desc(group).is_ok()
            && self
                .header_unchecked(group)
                .is_ok_and(|g| g.size == at80 && at80 != 0);
        Ok(if swiss { 112 } else { 88 })
    }

    /// The uncommon part (package path offset, method count, methods offset), if present.
    fn uncommon(&self, h: &TypeHeader) -> Result<Option<(i32, u16, u32, u64)>, RtypeError> {
        if !h.has_uncommon() {
            return Ok(None);
        }
        let at = h.addr.wrapping_add(self.kind_part_size(h)?);
        let b: [u8; UNCOMMON as usize] = self.read_n(at)?;
        let pkg = le32(&b, 0) as i32;
        let mcount = u16::from_le_bytes([b[4], b[5]]);
        let moff = le32(&b, 8);
        Ok(Some((pkg, mcount, moff, at)))
    }

    /// The package path of a named type (`net/http` for `http.Request`), empty for
    /// predeclared types.
    pub fn pkg_path(&self, addr: u64) -> Result<String, RtypeError> {
        let h = self.header(addr)?;
        self.pkg_path_of(&h)
    }

    fn pkg_path_of(&self, h: &TypeHeader) -> Result<String, RtypeError> {
        match self.uncommon(h)? {
            Some((off, ..)) if off > 0 => self.name_off(off),
            _ => Ok(String::new()),
        }
    }

    /// The type's name in gohook's model: full package path for named types
    /// (`net/http.Request`, `main.Pair[int,string]`), composite names spelled from their
    /// elements (`*net/http.Request`, `map[string][]main.User`), and the reflect string for
    /// unnamed struct, func and interface types.
    pub fn full_name(&self, addr: u64) -> Result<String, RtypeError> {
        self.full_name_depth(addr, 0)
    }

    fn full_name_depth(&self, addr: u64, depth: usize) -> Result<String, RtypeError> {
        let h = self.header(addr)?;
        let s = self.string_of(&h)?;
        if h.is_named() {
            let pkg = self.pkg_path_of(&h)?;
            return Ok(qualify(&s, &pkg));
        }
        if depth >= MAX_NAME_DEPTH {
            return Ok(s);
        }
        let sub = |off: u64| -> Result<String, RtypeError> {
            let e = self.mem.read_u64(addr.wrapping_add(off))?;
            self.full_name_depth(e, depth + 1)
        };
        Ok(match h.kind {
            Kind::Pointer => format!("*{}", sub(48)?),
            Kind::Slice => format!("[]{}", sub(48)?),
            Kind::Array => format!(
                "[{}]{}",
                self.mem.read_u64(addr.wrapping_add(64))?,
                sub(48)?
            ),
            Kind::Chan => {
                let dir = match self.mem.read_u64(addr.wrapping_add(56))? {
                    1 => "<-chan ",
                    2 => "chan<- ",
                    _ => "chan ",
                };
                let elem = sub(48)?;
                // `chan (<-chan int)` needs parentheses, as Go prints it.
                if dir == "chan " && elem.starts_with("<-chan") {
                    format!("chan ({elem})")
                } else {
                    format!("{dir}{elem}")
                }
            }
            Kind::Map => format!("map[{}]{}", sub(48)?, sub(56)?),
            Kind::Func => self.func_name(&h, depth)?,
            _ => s,
        })
    }

    /// `func(A, ...B) (C, D)` spelled from the parameter descriptors, as Go prints it but
    /// with full package paths.
    fn func_name(&self, h: &TypeHeader, depth: usize) -> Result<String, RtypeError> {
        let b: [u8; 4] = self.read_n(h.addr.wrapping_add(48))?;
        let ins = u64::from(u16::from_le_bytes([b[0], b[1]]));
        let raw_out = u16::from_le_bytes([b[2], b[3]]);
        let (outs, variadic) = (u64::from(raw_out & 0x7fff), raw_out & 0x8000 != 0);
        let unc = if h.has_uncommon() { UNCOMMON } else { 0 };
        let raw = self
            .mem
            .read_vec(h.addr.wrapping_add(56 + unc), (ins + outs) * 8, 1 << 20)?;
        let mut names = Vec::with_capacity(raw.len() / 8);
        for c in raw.chunks_exact(8) {
            names.push(self.full_name_depth(le64(c, 0), depth + 1)?);
        }
        let (params, results) = names.split_at(ins as usize);
        let mut params = params.to_vec();
        if variadic {
            if let Some(last) = params.last_mut() {
                *last = format!("...{}", last.strip_prefix("[]").unwrap_or(last));
            }
        }
        let mut s = format!("func({})", params.join(", "));
        match results.len() {
            0 => {}
            1 => s = format!("{s} {}", results[0]),
            _ => s = format!("{s} ({})", results.join(", ")),
        }
        Ok(s)
    }

    /// The descriptors the linker lists for reflect, sorted by type string: the typelinks
    /// (Go ≤ 1.26) or the descriptors in `types..types+typedesclen` (Go 1.27).
    pub fn typelinked(&self) -> &[u64] {
        self.typelinked.get_or_init(|| {
            if let Some(len) = self.md.typedesclen {
                self.walk_descriptors(len)
            } else {
                self.md
                    .typelinks
                    .iter()
                    .map(|&off| self.md.types.wrapping_add(off as i64 as u64))
                    .collect()
            }
        })
    }

    /// Go 1.27: the descriptors laid out back to back from `types + 8` (`runtime.moduleTypelinks`).
    fn walk_descriptors(&self, len: u64) -> Vec<u64> {
        let end = self.md.types.saturating_add(len);
        let mut td = self.md.types.saturating_add(8);
        let mut out = Vec::new();
        while td < end && out.len() < MAX_WALK {
            td = match td.checked_next_multiple_of(8) {
                Some(t) => t,
                None => break,
            };
            if td >= end {
                break;
            }
            match self.descriptor_size(td) {
                Ok(n) => {
                    out.push(td);
                    td = td.saturating_add(n.max(HEADER));
                }
                Err(_) => break,
            }
        }
        out
    }

    /// Bytes the descriptor at `addr` occupies with its uncommon part, methods and trailing
    /// arrays (`abi.Type.DescriptorSize`, Go 1.27).
    pub fn descriptor_size(&self, addr: u64) -> Result<u64, RtypeError> {
        let h = self.header(addr)?;
        let base = self.kind_part_size(&h)?;
        let add = match h.kind {
            Kind::Func => {
                let (i, o) = self.func_counts(addr)?;
                (i + o) * 8
            }
            Kind::Interface => self.slice_len(addr.wrapping_add(56), MAX_IMETHODS)? * 8,
            Kind::Struct => self.slice_len(addr.wrapping_add(56), MAX_FIELDS)? * 24,
            _ => 0,
        };
        let (unc, mcount) = match self.uncommon(&h)? {
            Some((_, m, ..)) => (UNCOMMON, u64::from(m)),
            None => (0, 0),
        };
        Ok(base + unc + add + mcount * 16)
    }

    fn func_counts(&self, addr: u64) -> Result<(u64, u64), RtypeError> {
        let b: [u8; 4] = self.read_n(addr.wrapping_add(48))?;
        Ok((
            u64::from(u16::from_le_bytes([b[0], b[1]])),
            u64::from(u16::from_le_bytes([b[2], b[3]]) & 0x7fff),
        ))
    }

    /// Reads a slice header's length, refusing lengths above `max` or above the capacity.
    fn slice_len(&self, at: u64, max: u64) -> Result<u64, RtypeError> {
        let b: [u8; 24] = self.read_n(at)?;
        let (len, cap) = (le64(&b, 8), le64(&b, 16));
        if len > cap || len > max {
            return Err(RtypeError::Malformed {
                addr: at,
                why: format!("slice length {len} (cap {cap}) is implausible"),
            });
        }
        Ok(len)
    }

    fn slice_ptr_len(&self, at: u64, max: u64) -> Result<(u64, u64), RtypeError> {
        let len = self.slice_len(at, max)?;
        Ok((self.mem.read_u64(at)?, len))
    }

    /// The precompiled itabs: `(interface type, concrete type)` descriptor pairs.
    pub fn itabs(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut push = |itab: u64| {
            if let Ok(b) = self.read_n::<16>(itab) {
                out.push((le64(&b, 0), le64(&b, 8)));
            }
        };
        match (self.md.itaboffset, self.md.itabsize) {
            (Some(off), Some(size)) => {
                let mut p = self.md.types.saturating_add(off);
                let end = p.saturating_add(size);
                let mut n = 0;
                while p < end && n < MAX_WALK {
                    push(p);
                    let Ok(b) = self.read_n::<32>(p) else { break };
                    let step = if le64(&b, 24) == 0 {
                        32
                    } else {
                        let methods = self
                            .slice_len(le64(&b, 0).wrapping_add(56), MAX_IMETHODS)
                            .unwrap_or(1)
                            .max(1);
                        32 + (methods - 1) * 8
                    };
                    p = p.saturating_add(step);
                    n += 1;
                }
            }
            _ => {
                for &itab in &self.md.itablinks {
                    push(itab);
                }
            }
        }
        out
    }

    /// The concrete type descriptor of an itab (`ITab.Type`, offset 8 in every release): what
    /// a non-empty interface value's first word leads to.
    pub fn itab_type(&self, itab: u64) -> Result<u64, RtypeError> {
        Ok(self.mem.read_u64(itab.wrapping_add(8))?)
    }

    /// Every descriptor reachable from the typelinked ones and the itabs, following element,
    /// key, field, parameter, method and pointer-to-this links. Bounded by [`MAX_WALK`];
    /// unreadable descriptors are skipped.
    pub fn all_types(&self) -> Vec<u64> {
        let mut seen: HashSet<u64> = HashSet::new();
        let mut queue: VecDeque<u64> = VecDeque::new();
        let mut out = Vec::new();
        let roots = self
            .typelinked()
            .iter()
            .copied()
            .chain(self.itabs().into_iter().flat_map(|(i, t)| [i, t]))
            .chain(self.referenced_types());
        for r in roots {
            if seen.len() < MAX_WALK && seen.insert(r) {
                queue.push_back(r);
            }
        }
        while let Some(addr) = queue.pop_front() {
            let Ok(h) = self.header(addr) else { continue };
            out.push(addr);
            for next in self.edges(&h) {
                if seen.len() >= MAX_WALK {
                    break;
                }
                if seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        out
    }

    /// Descriptors that code or data refer to directly, which the typelinks do not list (named
    /// types, and anything only stored in an interface or allocated): targets of RIP-relative
    /// `LEAQ` in Go text (how the compiler loads a type for `newobject`, `convT`, `makemap`…)
    /// and pointer words in the data sections (type words of interfaces in static data) that
    /// land in the type area and pass [`RuntimeTypes::is_plausible_descriptor`].
    pub fn referenced_types(&self) -> Vec<u64> {
        let mut cands: HashSet<u64> = HashSet::new();
        // LEAQ disp32(RIP), reg: REX.W(+R) 8D, ModRM mod=00 rm=101.
        self.scan_chunks(self.md.text..self.md.etext, 7, |base, b| {
            for i in 0..b.len().saturating_sub(6) {
                if (b[i] == 0x48 || b[i] == 0x4c) && b[i + 1] == 0x8d && b[i + 2] & 0xc7 == 0x05 {
                    let disp = i32::from_le_bytes([b[i + 3], b[i + 4], b[i + 5], b[i + 6]]);
                    let target = base
                        .wrapping_add(i as u64 + 7)
                        .wrapping_add(disp as i64 as u64);
                    if target.is_multiple_of(8)
                        && self.in_types(target, HEADER)
                        && cands.len() < MAX_WALK
                    {
                        cands.insert(target);
                    }
                }
            }
        });
        for r in [self.md.noptrdata.clone(), self.md.data.clone()] {
            self.scan_chunks(r, 0, |base, b| {
                let skip = (base.wrapping_neg() & 7) as usize;
                for w in b.get(skip..).unwrap_or(&[]).chunks_exact(8) {
                    let target = le64(w, 0);
                    if target.is_multiple_of(8)
                        && self.in_types(target, HEADER)
                        && cands.len() < MAX_WALK
                    {
                        cands.insert(target);
                    }
                }
            });
        }
        let mut v: Vec<u64> = cands
            .into_iter()
            .filter(|&a| self.is_plausible_descriptor(a))
            .collect();
        v.sort_unstable();
        v
    }

    /// Reads `range` in 1 MiB chunks overlapping by `overlap` bytes (at most 1 GiB in all;
    /// unreadable chunks are skipped).
    fn scan_chunks(
        &self,
        range: std::ops::Range<u64>,
        overlap: u64,
        mut f: impl FnMut(u64, &[u8]),
    ) {
        const CHUNK: u64 = 1 << 20;
        let end = range.end.min(range.start.saturating_add(1 << 30));
        let mut at = range.start;
        while at < end {
            let len = (end - at).min(CHUNK + overlap);
            if let Ok(b) = self.mem.read_vec(at, len, CHUNK + overlap) {
                f(at, &b);
            }
            at = at.saturating_add(CHUNK);
        }
    }

    /// True when `addr` holds a descriptor whose fields are mutually consistent: a valid kind
    /// and alignment, a readable printable type string, the size its kind requires, and element
    /// or field links that stay in the type area. Filters the candidates of a heuristic scan.
    pub fn is_plausible_descriptor(&self, addr: u64) -> bool {
        let Ok(h) = self.header(addr) else {
            return false;
        };
        if let Some(size) = h.kind.fixed_size() {
            if h.size != size {
                return false;
            }
        }
        if u64::from(h.align) > 64 || h.ptr_bytes > h.size {
            return false;
        }
        let Ok(name) = self.resolve_off(h.str_off).and_then(|a| self.name_at(a)) else {
            return false;
        };
        if name.name.is_empty() || name.name.len() > 4096 || name.name.chars().any(char::is_control)
        {
            return false;
        }
        let linked = |off: u64| {
            self.mem
                .read_u64(addr.wrapping_add(off))
                .is_ok_and(|e| self.check_desc(e).is_ok())
        };
        let ok = match h.kind {
            Kind::Pointer | Kind::Slice | Kind::Chan | Kind::Array => linked(48),
            Kind::Map => linked(48) && linked(56),
            Kind::Struct => self.slice_len(addr.wrapping_add(56), MAX_FIELDS).is_ok(),
            Kind::Interface => self.slice_len(addr.wrapping_add(56), MAX_IMETHODS).is_ok(),
            _ => true,
        };
        ok && (!h.has_uncommon() || self.uncommon(&h).is_ok())
    }

    /// Descriptors one step away from `h` (errors drop the edge, not the walk).
    fn edges(&self, h: &TypeHeader) -> Vec<u64> {
        let a = h.addr;
        let mut v = Vec::new();
        let rd = |at: u64| self.mem.read_u64(at).ok();
        match h.kind {
            Kind::Pointer | Kind::Slice | Kind::Chan => v.extend(rd(a.wrapping_add(48))),
            Kind::Array => v.extend(
                [rd(a.wrapping_add(48)), rd(a.wrapping_add(56))]
                    .into_iter()
                    .flatten(),
            ),
            Kind::Map => v.extend(
                [rd(a.wrapping_add(48)), rd(a.wrapping_add(56))]
                    .into_iter()
                    .flatten(),
            ),
            Kind::Struct => {
                if let Ok((ptr, len)) = self.slice_ptr_len(a.wrapping_add(56), MAX_FIELDS) {
                    if let Ok(raw) = self.mem.read_vec(ptr, len * 24, MAX_FIELDS * 24) {
                        v.extend(raw.chunks_exact(24).map(|c| le64(c, 8)));
                    }
                }
            }
            Kind::Func => {
                if let Ok((i, o)) = self.func_counts(a) {
                    let unc = if h.has_uncommon() { UNCOMMON } else { 0 };
                    if let Ok(raw) =
                        self.mem
                            .read_vec(a.wrapping_add(56 + unc), (i + o) * 8, 1 << 20)
                    {
                        v.extend(raw.chunks_exact(8).map(|c| le64(c, 0)));
                    }
                }
            }
            Kind::Interface => {
                if let Ok((ptr, len)) = self.slice_ptr_len(a.wrapping_add(56), MAX_IMETHODS) {
                    if let Ok(raw) = self.mem.read_vec(ptr, len * 8, MAX_IMETHODS * 8) {
                        v.extend(
                            raw.chunks_exact(8)
                                .filter_map(|c| self.type_off(le32(c, 4) as i32)),
                        );
                    }
                }
            }
            _ => {}
        }
        v.extend(self.type_off(h.ptr_to_this));
        if let Ok(Some((_, mcount, moff, at))) = self.uncommon(h) {
            if let Ok(raw) = self.mem.read_vec(
                at.wrapping_add(u64::from(moff)),
                u64::from(mcount) * 16,
                1 << 20,
            ) {
                v.extend(
                    raw.chunks_exact(16)
                        .filter_map(|c| self.type_off(le32(c, 4) as i32)),
                );
            }
        }
        v
    }

    /// Full name → descriptors, built once from [`RuntimeTypes::all_types`].
    fn index(&self) -> &HashMap<String, Vec<u64>> {
        self.index.get_or_init(|| {
            let mut m: HashMap<String, Vec<u64>> = HashMap::new();
            for addr in self.all_types() {
                if let Ok(n) = self.full_name(addr) {
                    m.entry(n).or_default().push(addr);
                }
            }
            m
        })
    }

    /// The descriptor of the type named `name` in gohook's naming (see
    /// [`RuntimeTypes::full_name`]): `main.User`, `net/http.Request`, `*main.User`, `[]string`.
    ///
    /// Named types are first looked for as the element of a typelinked `*T` (a binary search by
    /// string); otherwise, and for composite names, every reachable descriptor is indexed once.
    pub fn find(&self, name: &str) -> Result<u64, RtypeError> {
        if let Some(addr) = self.find_via_pointer(name) {
            return Ok(addr);
        }
        self.index()
            .get(name)
            .and_then(|v| v.first().copied())
            .ok_or_else(|| RtypeError::NotFound(name.to_owned()))
    }

    fn find_via_pointer(&self, name: &str) -> Option<u64> {
        let (pkg, rest) = split_qualified(name)?;
        for short in package_name_guesses(pkg) {
            let want = format!("*{short}.{rest}");
            for cand in self.typelinked_with_string(&want) {
                let Ok(elem) = self.mem.read_u64(cand.wrapping_add(48)) else {
                    continue;
                };
                if self.full_name(elem).is_ok_and(|n| n == name) {
                    return Some(elem);
                }
            }
        }
        None
    }

    /// Typelinked descriptors whose string is exactly `s` (binary search; the list is sorted
    /// by string — if a hostile binary's is not, the search merely misses).
    fn typelinked_with_string(&self, s: &str) -> Vec<u64> {
        let list = self.typelinked();
        let key = |a: u64| self.type_string(a).ok();
        let start = list.partition_point(|&a| key(a).is_some_and(|k| k.as_str() < s));
        list[start..]
            .iter()
            .copied()
            .take(64)
            .take_while(|&a| key(a).is_some_and(|k| k == s))
            .collect()
    }

    /// Adds the type named `name` (and what it refers to, within default limits) to `table`.
    pub fn lookup(&self, name: &str, table: &mut TypeTable) -> Result<TypeId, RtypeError> {
        let addr = self.find(name)?;
        self.import(
            addr,
            table,
            &mut ImportMemo::default(),
            ImportLimits::default(),
        )
    }

    /// Adds the type whose descriptor is at `addr` to `table` (what decoding an interface value
    /// needs: its type word, or an itab's [`RuntimeTypes::itab_type`]).
    pub fn type_at(&self, addr: u64, table: &mut TypeTable) -> Result<TypeId, RtypeError> {
        self.import(
            addr,
            table,
            &mut ImportMemo::default(),
            ImportLimits::default(),
        )
    }

    /// Converts the descriptor at `addr` into `table`, sharing types already imported through
    /// `memo`.
    pub fn import(
        &self,
        addr: u64,
        table: &mut TypeTable,
        memo: &mut ImportMemo,
        limits: ImportLimits,
    ) -> Result<TypeId, RtypeError> {
        let mut budget = limits.max_types;
        self.import_rec(addr, table, memo, limits.max_depth, 0, &mut budget)
    }

    fn import_rec(
        &self,
        addr: u64,
        table: &mut TypeTable,
        memo: &mut ImportMemo,
        depth: usize,
        level: usize,
        budget: &mut usize,
    ) -> Result<TypeId, RtypeError> {
        if let Some(&id) = memo.full.get(&addr) {
            return Ok(id);
        }
        let h = self.header(addr)?;
        let name = self.full_name(addr)?;
        let shell = GoType {
            name,
            kind: h.kind,
            size: h.size,
            align: u64::from(h.align),
            shape: if is_basic(h.kind) {
                Shape::Basic
            } else {
                Shape::Opaque
            },
        };
        let composite = !matches!(shell.shape, Shape::Basic);
        if composite && (depth == 0 || *budget == 0 || level >= MAX_LEVEL) {
            return self.shell(addr, table, memo, true);
        }
        *budget = budget.saturating_sub(1);
        let id = match memo.shells.remove(&addr) {
            Some(id) => {
                table.set(id, shell.clone());
                id
            }
            None => table.add(shell.clone()),
        };
        memo.full.insert(addr, id);
        if !composite {
            return Ok(id);
        }
        // Indirections (pointer, slice, map, chan elements) use up depth; by-value parts
        // (struct fields, array elements) do not, since the ABI needs them whole.
        let (d, l) = (depth - 1, level + 1);
        let ptr = |at: u64| self.mem.read_u64(at);
        let shape = match h.kind {
            Kind::Pointer => Shape::Pointer {
                elem: self.import_rec(ptr(addr.wrapping_add(48))?, table, memo, d, l, budget)?,
            },
            Kind::Slice => Shape::Slice {
                elem: self.import_rec(ptr(addr.wrapping_add(48))?, table, memo, d, l, budget)?,
            },
            Kind::Chan => Shape::Chan {
                elem: self.import_rec(ptr(addr.wrapping_add(48))?, table, memo, d, l, budget)?,
            },
            Kind::Array => {
                let len = self.mem.read_u64(addr.wrapping_add(64))?;
                Shape::Array {
                    elem: self.import_rec(
                        ptr(addr.wrapping_add(48))?,
                        table,
                        memo,
                        depth,
                        l,
                        budget,
                    )?,
                    len,
                }
            }
            Kind::Map => {
                let key =
                    self.import_rec(ptr(addr.wrapping_add(48))?, table, memo, d, l, budget)?;
                Shape::Map {
                    key,
                    elem: self.import_rec(
                        ptr(addr.wrapping_add(56))?,
                        table,
                        memo,
                        d,
                        l,
                        budget,
                    )?,
                }
            }
            Kind::Interface => Shape::Interface {
                empty: self.slice_len(addr.wrapping_add(56), MAX_IMETHODS)? == 0,
            },
            Kind::Func => Shape::Func,
            Kind::Struct => {
                let (ptr, len) = self.slice_ptr_len(addr.wrapping_add(56), MAX_FIELDS)?;
                let raw = self.mem.read_vec(ptr, len * 24, MAX_FIELDS * 24)?;
                let mut fields = Vec::with_capacity(len as usize);
                for c in raw.chunks_exact(24) {
                    let n = self.name_at(le64(c, 0))?;
                    let ty = self.import_rec(le64(c, 8), table, memo, depth, l, budget)?;
                    let raw_off = le64(c, 16);
                    let (offset, embedded) = if self.offset_anon {
                        (raw_off >> 1, raw_off & 1 != 0)
                    } else {
                        (raw_off, n.embedded)
                    };
                    if offset > h.size {
                        return Err(RtypeError::Malformed {
                            addr,
                            why: format!(
                                "field {} at offset {offset} beyond the struct's size {}",
                                n.name, h.size
                            ),
                        });
                    }
                    fields.push(Field {
                        name: n.name,
                        ty,
                        offset,
                        embedded,
                    });
                }
                Shape::Struct { fields }
            }
            _ => Shape::Basic,
        };
        table.set(id, GoType { shape, ..shell });
        Ok(id)
    }

    /// A type added without following its structure: name, kind, size and alignment; basic
    /// types are complete, interfaces and funcs get their shape, structs and arrays are
    /// [`Shape::Opaque`]. With `expand`, pointers, slices, chans and maps get their shape with
    /// shell elements, so they stay usable (register-assignable) as the 8- or 24-byte values
    /// they are.
    fn shell(
        &self,
        addr: u64,
        table: &mut TypeTable,
        memo: &mut ImportMemo,
        expand: bool,
    ) -> Result<TypeId, RtypeError> {
        if let Some(&id) = memo.full.get(&addr).or_else(|| memo.shells.get(&addr)) {
            return Ok(id);
        }
        let h = self.header(addr)?;
        let mut ty = GoType {
            name: self.full_name(addr)?,
            kind: h.kind,
            size: h.size,
            align: u64::from(h.align),
            shape: Shape::Basic,
        };
        if is_basic(h.kind) {
            let id = table.add(ty);
            memo.full.insert(addr, id);
            return Ok(id);
        }
        ty.shape = match h.kind {
            Kind::Interface => Shape::Interface {
                empty: self.slice_len(addr.wrapping_add(56), MAX_IMETHODS)? == 0,
            },
            Kind::Func => Shape::Func,
            _ => Shape::Opaque,
        };
        let id = table.add(ty.clone());
        memo.shells.insert(addr, id);
        if expand && matches!(h.kind, Kind::Pointer | Kind::Slice | Kind::Chan | Kind::Map) {
            let first = self.mem.read_u64(addr.wrapping_add(48))?;
            let first = self.shell(first, table, memo, false)?;
            let shape = match h.kind {
                Kind::Pointer => Shape::Pointer { elem: first },
                Kind::Slice => Shape::Slice { elem: first },
                Kind::Chan => Shape::Chan { elem: first },
                _ => {
                    let elem = self.mem.read_u64(addr.wrapping_add(56))?;
                    Shape::Map {
                        key: first,
                        elem: self.shell(elem, table, memo, false)?,
                    }
                }
            };
            table.set(id, GoType { shape, ..ty });
        }
        Ok(id)
    }

    /// Walks every reachable descriptor and converts each into a scratch table, counting
    /// errors instead of stopping: a whole-binary consistency check and the entry point for
    /// fuzzing (it must return, without panicking, on any input).
    pub fn check_all(&self) -> CheckReport {
        let all = self.all_types();
        let mut report = CheckReport {
            descriptors: all.len(),
            ..Default::default()
        };
        let mut table = TypeTable::new();
        let mut memo = ImportMemo::default();
        let limits = ImportLimits {
            max_depth: 2,
            max_types: 64,
        };
        for addr in all {
            match self.import(addr, &mut table, &mut memo, limits) {
                Ok(_) => report.imported += 1,
                Err(_) => report.errors += 1,
            }
            if table.len() > 1 << 20 {
                table = TypeTable::new();
                memo = ImportMemo::default();
            }
        }
        report
    }

    /// A [`NamedTypes`] source for user-written signatures, resolving named types from this
    /// runtime metadata into one table.
    pub fn named_types(&self) -> RuntimeNamedTypes<'_, M> {
        RuntimeNamedTypes {
            types: self,
            memo: ImportMemo::default(),
        }
    }
}

/// Resolves named types in user-written signatures from runtime type metadata.
#[derive(Debug)]
pub struct RuntimeNamedTypes<'r, M: MemoryReader> {
    types: &'r RuntimeTypes<M>,
    memo: ImportMemo,
}

impl<M: MemoryReader> NamedTypes for RuntimeNamedTypes<'_, M> {
    fn resolve(&mut self, name: &str, table: &mut TypeTable) -> Option<TypeId> {
        let addr = self.types.find(name).ok()?;
        self.types
            .import(addr, table, &mut self.memo, ImportLimits::default())
            .ok()
    }
}

/// Why [`check_elf`] could not reach a binary's type metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckElfError {
    /// No usable pclntab.
    #[error(transparent)]
    Pclntab(#[from] crate::pclntab::PclntabError),
    /// No usable moduledata.
    #[error(transparent)]
    ModuleData(#[from] crate::moduledata::ModuleDataError),
}

/// Runs the whole no-symbols path on a binary — pclntab, moduledata scan, every reachable type
/// descriptor converted into the model — and reports what it met. Meant for fuzzing and
/// hostile-input tests: it must return on any input, without panicking and in bounded time.
pub fn check_elf(elf: &crate::elf::ElfFile) -> Result<CheckReport, CheckElfError> {
    let pcl = crate::pclntab::Pclntab::from_elf(elf)?;
    let version = crate::buildinfo::BuildInfo::from_elf(elf)
        .ok()
        .and_then(|b| b.version());
    let md = ModuleData::from_elf(elf, pcl.header_addr(), version.as_ref())?;
    Ok(RuntimeTypes::new(elf, md, version.as_ref()).check_all())
}

fn is_basic(k: Kind) -> bool {
    use Kind::*;
    !matches!(
        k,
        Array | Chan | Func | Interface | Map | Pointer | Slice | Struct
    )
}

/// `http.Request` + `net/http` → `net/http.Request`; generic arguments are kept as written.
fn qualify(s: &str, pkg: &str) -> String {
    // Already qualified by the full path (`go.shape.int`, `main.T` when the path is `main`).
    if pkg.is_empty() || s.strip_prefix(pkg).is_some_and(|r| r.starts_with('.')) {
        return s.to_owned();
    }
    let head_end = s.find('[').unwrap_or(s.len());
    match s[..head_end].find('.') {
        Some(dot) => format!("{pkg}.{}", &s[dot + 1..]),
        None => s.to_owned(),
    }
}

/// `net/http.Request` → (`net/http`, `Request`); `None` for composite or unqualified names.
fn split_qualified(name: &str) -> Option<(&str, &str)> {
    if name.starts_with(['*', '[', '(']) || name.starts_with("map[") || name.starts_with("chan ") {
        return None;
    }
    let head_end = name.find('[').unwrap_or(name.len());
    let dot = name[..head_end].rfind('.')?;
    let (pkg, rest) = (&name[..dot], &name[dot + 1..]);
    if pkg.is_empty() || rest.is_empty() || pkg.contains(' ') {
        return None;
    }
    Some((pkg, rest))
}

/// Likely package names for an import path: the last element, the one before a `/vN` suffix,
/// and the last element with `go-` prefixes and `.vN` suffixes removed.
fn package_name_guesses(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let last = parts.last().copied().unwrap_or(path);
    let mut v = vec![last.to_owned()];
    let is_major =
        |s: &str| s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit());
    if is_major(last) && parts.len() >= 2 {
        v.push(parts[parts.len() - 2].to_owned());
    }
    let mut trimmed = last.trim_start_matches("go-").to_owned();
    if let Some(dot) = trimmed.find('.') {
        trimmed.truncate(dot);
    }
    trimmed = trimmed.replace('-', "_");
    if !v.contains(&trimmed) {
        v.push(trimmed);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;

    const TYPES: u64 = 0x10000;
    const AREA: usize = 0x280;
    const INT: usize = 0x100;
    const T: usize = 0x140;
    const FIELDS: usize = 0x1c0;
    const PTR_T: usize = 0x200;

    fn moduledata(types: u64, len: u64, layout: ModuleLayout, typelinks: Vec<i32>) -> ModuleData {
        ModuleData {
            addr: 0,
            layout,
            pc_header: 0,
            funcnametab: Default::default(),
            ftab: Default::default(),
            minpc: 0,
            maxpc: 0,
            text: 0,
            etext: 0,
            noptrdata: 0..0,
            data: 0..0,
            bss: 0..0,
            noptrbss: 0..0,
            end: 0,
            types,
            etypes: types + len,
            rodata: 0,
            gofunc: 0,
            epclntab: None,
            textsectmap: vec![],
            typelinks,
            itablinks: vec![],
            typedesclen: None,
            itaboffset: None,
            itabsize: None,
        }
    }

    /// A hand-assembled Go 1.21-style type area: `type T struct { A int; B *T }`, `int`, `*T`.
    fn synthetic_area() -> Vec<u8> {
        let mut b = vec![0u8; AREA];
        let mut name_at = 8usize;
        let mut name = |b: &mut Vec<u8>, flags: u8, s: &str| -> usize {
            let at = name_at;
            b[at] = flags;
            b[at + 1] = s.len() as u8;
            b[at + 2..at + 2 + s.len()].copy_from_slice(s.as_bytes());
            name_at += 2 + s.len();
            at
        };
        let (n_t, n_ptr, n_int) = (
            name(&mut b, 0, "main.T"),
            name(&mut b, 0, "*main.T"),
            name(&mut b, 0, "int"),
        );
        let (n_a, n_b, n_pkg) = (
            name(&mut b, 1, "A"),
            name(&mut b, 1, "B"),
            name(&mut b, 0, "main"),
        );
        let put =
            |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let header = |b: &mut Vec<u8>,
                      at: usize,
                      size: u64,
                      tflag: u8,
                      kind: u8,
                      str_off: usize,
                      ptr_to_this: usize| {
            put(b, at, size);
            b[at + 20] = tflag;
            b[at + 21] = 8;
            b[at + 22] = 8;
            b[at + 23] = kind;
            put32(b, at + 40, str_off as u32);
            put32(b, at + 44, ptr_to_this as u32);
        };
        let addr = |off: usize| TYPES + off as u64;
        header(&mut b, INT, 8, tflag::NAMED, 2, n_int, 0);
        header(
            &mut b,
            T,
            16,
            tflag::NAMED | tflag::UNCOMMON,
            25,
            n_t,
            PTR_T,
        );
        put(&mut b, T + 48, addr(n_pkg));
        put(&mut b, T + 56, addr(FIELDS));
        put(&mut b, T + 64, 2);
        put(&mut b, T + 72, 2);
        put32(&mut b, T + 80, n_pkg as u32);
        for (i, (n, ty, off)) in [(n_a, INT, 0u64), (n_b, PTR_T, 8)].into_iter().enumerate() {
            put(&mut b, FIELDS + 24 * i, addr(n));
            put(&mut b, FIELDS + 24 * i + 8, addr(ty));
            put(&mut b, FIELDS + 24 * i + 16, off);
        }
        header(&mut b, PTR_T, 8, 0, 22 | KIND_DIRECT_IFACE, n_ptr, 0);
        put(&mut b, PTR_T + 48, addr(T));
        b
    }

    fn synthetic(bytes: Vec<u8>) -> RuntimeTypes<SliceMemory> {
        let md = moduledata(TYPES, AREA as u64, ModuleLayout::Go120, vec![PTR_T as i32]);
        RuntimeTypes::new(SliceMemory::new(TYPES, bytes), md, None)
    }

    #[test]
    fn a_hand_assembled_type_area_decodes_to_a_recursive_struct() {
        let rt = synthetic(synthetic_area());
        let mut table = TypeTable::new();
        let t = rt.lookup("main.T", &mut table).unwrap();
        let ty = table.get(t).unwrap();
        assert_eq!(
            (ty.name.as_str(), ty.kind, ty.size),
            ("main.T", Kind::Struct, 16)
        );
        let Shape::Struct { fields } = &ty.shape else {
            panic!("{ty:?}")
        };
        assert_eq!(
            fields
                .iter()
                .map(|f| (f.name.as_str(), f.offset))
                .collect::<Vec<_>>(),
            [("A", 0), ("B", 8)]
        );
        assert_eq!(table.get(fields[0].ty).unwrap().name, "int");
        assert_eq!(
            table.get(fields[1].ty).unwrap().shape,
            Shape::Pointer { elem: t }
        );
        assert!(rt.header(TYPES + PTR_T as u64).unwrap().direct_iface);
        assert_eq!(rt.find("*main.T").unwrap(), TYPES + PTR_T as u64);
        assert_eq!(
            rt.check_all(),
            CheckReport {
                descriptors: 3,
                imported: 3,
                errors: 0
            }
        );
    }

    #[test]
    fn every_single_byte_corruption_of_the_type_area_gives_errors_not_panics() {
        let good = synthetic_area();
        let mut failures = 0;
        for pos in 0..AREA {
            for v in [
                0x00,
                0xff,
                good[pos] ^ 0x80,
                good[pos] ^ 0x01,
                good[pos].wrapping_add(8),
            ] {
                let mut bad = good.clone();
                bad[pos] = v;
                let rt = synthetic(bad);
                let mut table = TypeTable::new();
                match rt.lookup("main.T", &mut table) {
                    Ok(id) => assert!(table.get(id).is_some()),
                    Err(_) => failures += 1,
                }
                let report = rt.check_all();
                assert!(report.descriptors <= AREA / 8, "{report:?}");
                let _ = rt.find("*main.T");
                let _ = rt.descriptor_size(TYPES + T as u64);
            }
        }
        // The corruption reached the decoder: many lookups failed (and none panicked or hung).
        assert!(failures > 50, "only {failures} corruptions were noticed");
    }

    #[test]
    fn random_type_areas_and_tables_give_errors_not_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let start = std::time::Instant::now();
        for round in 0..200 {
            let len = 256 + (next() % 8192) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let links: Vec<i32> = (0..next() % 64)
                .map(|_| (next() % (len as u64 + 64)) as i32 - 32)
                .collect();
            let mut md = moduledata(TYPES, len as u64, ModuleLayout::Go126, links);
            if round % 2 == 1 {
                md.layout = ModuleLayout::Go127;
                md.typedesclen = Some(next() % (len as u64 * 2));
                md.itaboffset = Some(next() % len as u64);
                md.itabsize = Some(next() % len as u64);
            }
            md.itablinks = (0..next() % 8)
                .map(|_| TYPES + next() % len as u64)
                .collect();
            let rt = RuntimeTypes::new(SliceMemory::new(TYPES, bytes), md, None);
            let report = rt.check_all();
            assert!(report.descriptors <= len / 8 + 1);
            let mut table = TypeTable::new();
            assert!(rt.lookup("main.User", &mut table).is_err() || !table.is_empty());
            let _ = rt.lookup("*net/http.Request", &mut table);
            for _ in 0..16 {
                let _ = rt.type_at(TYPES + ((next() % len as u64) & !7), &mut table);
            }
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "too slow: {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn named_type_strings_get_their_full_package_path() {
        assert_eq!(qualify("http.Request", "net/http"), "net/http.Request");
        assert_eq!(
            qualify("main.Pair[int,main.User]", "main"),
            "main.Pair[int,main.User]"
        );
        assert_eq!(qualify("int", ""), "int");
        assert_eq!(qualify("error", ""), "error");
        assert_eq!(
            qualify("go.shape.struct { F int }", "go.shape"),
            "go.shape.struct { F int }"
        );
    }

    #[test]
    fn qualified_names_split_at_the_last_dot_before_type_arguments() {
        assert_eq!(
            split_qualified("net/http.Request"),
            Some(("net/http", "Request"))
        );
        assert_eq!(
            split_qualified("gopkg.in/yaml.v3.Node"),
            Some(("gopkg.in/yaml.v3", "Node"))
        );
        assert_eq!(
            split_qualified("main.Box[main.User]"),
            Some(("main", "Box[main.User]"))
        );
        assert_eq!(split_qualified("*main.User"), None);
        assert_eq!(split_qualified("int"), None);
    }

    #[test]
    fn package_names_are_guessed_from_import_paths() {
        assert_eq!(package_name_guesses("net/http"), vec!["http"]);
        assert!(package_name_guesses("math/rand/v2").contains(&"rand".to_owned()));
        assert!(package_name_guesses("gopkg.in/yaml.v3").contains(&"yaml".to_owned()));
        assert!(package_name_guesses("github.com/mattn/go-sqlite3").contains(&"sqlite3".to_owned()));
    }
}
