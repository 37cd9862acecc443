//! Decoding Go values of known types from a target's memory: the layer under gohook's hook
//! scripts (`ctx.arg("req").field("URL").field("Path").str()`).
//!
//! A [`Value`] is only a type and an address; the [`Decoder`] reads what is there through any
//! [`MemoryReader`] (a live process, a byte buffer, an [`crate::memory::Overlay`] of registers
//! laid out by [`materialize`] over live memory). Types come from a [`TypeTable`] built from DWARF,
//! runtime type metadata or signatures; the dynamic types of interface values are resolved on
//! demand through a [`TypeResolver`] and added to the decoder's table.
//!
//! Everything read is hostile: lengths, counts and pointers are checked before use, every walk is
//! bounded by [`Limits`], and no method panics; a failure is a [`ValueError`] whose message says
//! what could not be read and why.
//!
//! Layout sources (amd64; checked against the Go sources of 1.21 – 1.27 and, through
//! `tests/value_live.rs`, against live processes built by each of them): strings `{ptr, len}`,
//! slices `{ptr, len, cap}`, interfaces `{type|itab, data}` with the concrete type at `itab+8` in
//! every release and the value in the data word itself for DirectIface types, channels
//! `runtime.hchan{qcount, dataqsiz, …}`, maps in the `maps` submodule (`runtime.hmap` buckets
//! before 1.24, `internal/runtime/maps` swiss tables from 1.24, split groups under 1.27's
//! `GOEXPERIMENT=mapsplitgroup`), `time.Time{wall, ext, loc}`.
//!
//! Reads through pointers: [`Decoder::field`] follows any number of pointers (and embedded
//! pointers), [`Decoder::index`] and [`Decoder::len`] follow pointers to an array, as Go does; the
//! scalar readers ([`Decoder::str`], [`Decoder::int`], …) do not (use [`Decoder::deref`]).
//!
//! A `Decoder` is single-threaded (`RefCell` inside, resolver not `Send`): one per trace, on the
//! thread that runs the scripts.

mod errtext;
mod maps;
mod materialize;
mod render;

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;

use crate::gotype::{GoType, Kind, Shape, TypeId, TypeTable};
use crate::memory::{MemError, MemoryReader};
use crate::rtype::{ImportLimits, ImportMemo, RuntimeTypes};
use crate::version::GoVersion;

pub use materialize::{materialize, synthetic_addr, SYNTHETIC_BASE};

/// A Go value of a known type whose bytes are at `addr` in some address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value {
    /// The value's type in the decoder's table.
    pub ty: TypeId,
    /// Address of the value's first byte.
    pub addr: u64,
}

/// Why a value could not be decoded. Messages are meant for the user of a hook script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Memory the value lives in (or points to) is unreadable.
    #[error("cannot read {len} bytes at {addr:#x}: {why}")]
    Unreadable {
        /// Start of the failed read.
        addr: u64,
        /// Requested length.
        len: u64,
        /// Why (`not mapped (freed or unmapped memory)`, a process error, a refused size).
        why: String,
    },
    /// A struct has no field of that name.
    #[error("{ty} has no field {name} (fields: {fields})")]
    NoField {
        /// The struct type.
        ty: String,
        /// The name asked for.
        name: String,
        /// The fields it has, comma-separated.
        fields: String,
    },
    /// An index outside `[0, len)`.
    #[error("index {index} out of range [0, {len}) of {ty}")]
    OutOfRange {
        /// The index asked for.
        index: i64,
        /// The length.
        len: u64,
        /// The indexed type.
        ty: String,
    },
    /// A nil pointer (or map, chan, interface) was followed.
    #[error("nil pointer: cannot {what} of {ty}")]
    Nil {
        /// What was attempted (`read field Name`, `dereference`).
        what: String,
        /// The nil value's type.
        ty: String,
    },
    /// The operation does not apply to the value's type.
    #[error("{op}() needs {want}, not {ty}")]
    WrongKind {
        /// The operation (`str`, `int`, `field`…).
        op: &'static str,
        /// What it accepts.
        want: &'static str,
        /// The type it was given.
        ty: String,
    },
    /// An integer does not fit the requested representation.
    #[error("{value} of type {ty} does not fit in {target}")]
    Overflow {
        /// The value, as text.
        value: String,
        /// Its type.
        ty: String,
        /// The requested representation (`i64`, `u64`).
        target: &'static str,
    },
    /// The type table has no such type (a `Value` from another decoder).
    #[error("no type #{0} in the decoder's type table")]
    UnknownType(u32),
    /// The type's layout is unknown (an unresolved name in a signature, or a type imported
    /// only as a shell).
    #[error("the layout of {ty} is unknown, so its value cannot be decoded")]
    Opaque {
        /// The type's name.
        ty: String,
    },
    /// An interface's dynamic type could not be resolved.
    #[error("cannot resolve the dynamic type of {ty} (type word {word:#x}): {why}")]
    Unresolved {
        /// The interface type.
        ty: String,
        /// The type (or itab) word read.
        word: u64,
        /// Why.
        why: &'static str,
    },
    /// The data read is inconsistent (an absurd length, a corrupt map header).
    #[error("implausible {ty} at {addr:#x}: {why}")]
    Implausible {
        /// The type being read.
        ty: String,
        /// Where.
        addr: u64,
        /// What is wrong.
        why: String,
    },
    /// A bound of [`Limits`] stopped the operation before it finished.
    #[error("{what}: stopped after {limit} (raise Limits::{field})")]
    Limit {
        /// What was cut short.
        what: String,
        /// The limit's value.
        limit: usize,
        /// The `Limits` field.
        field: &'static str,
    },
    /// The type table is borrowed by the caller (a `Ref` from [`Decoder::types`] is alive) while
    /// a type had to be added.
    #[error("the decoder's type table is borrowed (drop the Ref from Decoder::types() first)")]
    TableBusy,
    /// A map key of the wrong kind for the map.
    #[error("a {key} key cannot index {ty}")]
    KeyKind {
        /// The key's kind.
        key: &'static str,
        /// The map type.
        ty: String,
    },
}

impl ValueError {
    fn mem(e: MemError) -> ValueError {
        match e {
            MemError::Unmapped { addr, len } => ValueError::Unreadable {
                addr,
                len: len as u64,
                why: "not mapped (freed or unmapped memory)".into(),
            },
            MemError::TooLarge { addr, len, limit } => ValueError::Unreadable {
                addr,
                len,
                why: format!("over the {limit}-byte limit"),
            },
            MemError::Process(why) => ValueError::Unreadable {
                addr: 0,
                len: 0,
                why,
            },
        }
    }
}

/// Resolves a runtime type descriptor address (the type word of an interface, as seen in the
/// live process) to a type in `table`.
pub trait TypeResolver {
    /// The type whose descriptor is at `runtime_addr` in the target, added to `table` if new;
    /// `None` when `runtime_addr` is no type descriptor this resolver can read.
    fn resolve(&self, runtime_addr: u64, table: &mut TypeTable) -> Option<TypeId>;

    /// Whether the descriptor at `runtime_addr` carries the DirectIface flag (the value is
    /// stored in an interface's data word itself). `None` (the default) when unknown: the
    /// decoder then applies the compiler's rule to the resolved type
    /// ([`Decoder::is_direct_iface`]).
    fn direct_iface(&self, runtime_addr: u64) -> Option<bool> {
        let _ = runtime_addr;
        None
    }
}

/// A [`TypeResolver`] over a binary's runtime type metadata, for a process that loaded it with
/// `bias` added to every address (0 for non-PIE executables; for PIE, the load address minus the
/// link address).
///
/// It remembers which descriptors it imported, so use one resolver with one table (the
/// [`Decoder`] that owns it).
pub struct RuntimeResolver<M: MemoryReader> {
    types: RuntimeTypes<M>,
    bias: u64,
    memo: RefCell<ImportMemo>,
}

impl<M: MemoryReader> RuntimeResolver<M> {
    /// A resolver reading descriptors through `types` (usually the binary file image), for a
    /// process whose addresses are the file's plus `bias`.
    pub fn new(types: RuntimeTypes<M>, bias: u64) -> Self {
        RuntimeResolver {
            types,
            bias,
            memo: RefCell::new(ImportMemo::default()),
        }
    }
}

impl<M: MemoryReader> TypeResolver for RuntimeResolver<M> {
    fn resolve(&self, runtime_addr: u64, table: &mut TypeTable) -> Option<TypeId> {
        let addr = runtime_addr.wrapping_sub(self.bias);
        let mut memo = self.memo.try_borrow_mut().ok()?;
        self.types
            .import(addr, table, &mut memo, ImportLimits::default())
            .ok()
    }

    fn direct_iface(&self, runtime_addr: u64) -> Option<bool> {
        let addr = runtime_addr.wrapping_sub(self.bias);
        self.types.header(addr).ok().map(|h| h.direct_iface)
    }
}

/// Hash-map layout of the target's Go release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapLayout {
    /// `runtime.hmap` with buckets of 8 entries and overflow chains (Go < 1.24, and 1.24–1.25
    /// built with `GOEXPERIMENT=noswissmap`).
    Buckets,
    /// `internal/runtime/maps` swiss tables (Go >= 1.24), slots interleaving key and element.
    Swiss,
    /// Swiss tables whose groups hold all keys, then all elements (Go 1.27 built with
    /// `GOEXPERIMENT=mapsplitgroup`).
    SwissSplit,
}

impl MapLayout {
    /// The default layout of release `v`.
    pub fn for_version(v: &GoVersion) -> MapLayout {
        if v.at_least(1, 24) {
            MapLayout::Swiss
        } else {
            MapLayout::Buckets
        }
    }

    /// The layout of a binary built by release `v` with the buildinfo setting `GOEXPERIMENT`
    /// = `goexperiment` (comma-separated): 1.24 and 1.25 keep the bucket layout under
    /// `noswissmap` (the experiment is gone from 1.26); 1.27 splits groups under
    /// `mapsplitgroup`.
    pub fn for_build(v: &GoVersion, goexperiment: Option<&str>) -> MapLayout {
        let has = |name: &str| goexperiment.is_some_and(|e| e.split(',').any(|x| x.trim() == name));
        let base = MapLayout::for_version(v);
        if base == MapLayout::Swiss && has("noswissmap") && !v.at_least(1, 26) {
            MapLayout::Buckets
        } else if base == MapLayout::Swiss && has("mapsplitgroup") && v.at_least(1, 27) {
            MapLayout::SwissSplit
        } else {
            base
        }
    }
}

/// Bounds on what one decode may read and produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of a string [`Decoder::str`] returns (and [`Decoder::render`] shows).
    pub max_string: usize,
    /// Most elements, fields or map entries [`Decoder::render`] shows per level.
    pub max_items: usize,
    /// Deepest nesting [`Decoder::render`] follows (pointers, elements, fields).
    pub max_depth: usize,
    /// Most map slots scanned by one map operation ([`Decoder::map_get`],
    /// [`Decoder::map_keys`], [`Decoder::render`]); also the most keys `map_keys` returns.
    pub max_entries_scanned: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string: 4096,
            max_items: 64,
            max_depth: 4,
            max_entries_scanned: 100_000,
        }
    }
}

/// A key for [`Decoder::map_get`], compared with each decoded key of the map.
#[derive(Debug, Clone, PartialEq)]
pub enum MapKey {
    /// A string key (compared byte for byte with the map's string keys).
    Str(String),
    /// A signed integer (matches any integer key of equal value).
    Int(i64),
    /// An unsigned integer (matches any integer key of equal value).
    Uint(u64),
    /// A bool.
    Bool(bool),
    /// A float (matches float keys by `==`; NaN never matches, as in Go).
    Float(f64),
}

/// Pointer-chasing depth bound for [`Decoder::field`] and automatic dereferences.
const MAX_AUTODEREF: usize = 16;
/// Largest string or slice length believed (Go's own limit on amd64 is 2^47 bytes of heap).
const MAX_PLAUSIBLE_LEN: u64 = 1 << 47;
/// Largest plain-data read one call makes (a value's image in [`Decoder::bytes`]).
const MAX_READ: usize = 16 << 20;

/// Decodes values; shared by all events of a trace (types grow as interfaces are resolved).
pub struct Decoder {
    types: RefCell<TypeTable>,
    resolver: Option<Box<dyn TypeResolver>>,
    /// Type words already resolved: the type and whether it is stored directly.
    resolved: RefCell<HashMap<u64, Option<(TypeId, bool)>>>,
    /// During [`Decoder::render`]: map slots left to scan for the whole rendering.
    shared_scan_budget: Cell<Option<usize>>,
    /// The `uint8` type (string indexing), once found or added.
    uint8: Cell<Option<TypeId>>,
    layout: MapLayout,
    limits: Limits,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("types", &self.types.borrow().len())
            .field("resolver", &self.resolver.is_some())
            .field("layout", &self.layout)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Result alias of this module.
type R<T> = Result<T, ValueError>;

impl Decoder {
    /// A decoder over `types`, resolving interface types with `resolver` (without one,
    /// [`Decoder::elem`] and friends fail on interfaces), reading maps in `layout`.
    pub fn new(
        types: TypeTable,
        resolver: Option<Box<dyn TypeResolver>>,
        layout: MapLayout,
        limits: Limits,
    ) -> Decoder {
        Decoder {
            types: RefCell::new(types),
            resolver,
            resolved: RefCell::new(HashMap::new()),
            shared_scan_budget: Cell::new(None),
            uint8: Cell::new(None),
            layout,
            limits,
        }
    }

    /// The type table (borrowed; do not hold it across calls that resolve interfaces).
    pub fn types(&self) -> Ref<'_, TypeTable> {
        self.types.borrow()
    }

    /// Adds a type for values the caller builds (a signature's parameter types, say).
    ///
    /// Panics if a [`Decoder::types`] borrow is still alive (a caller bug, like any `RefCell`
    /// double borrow); decoding methods report that case as [`ValueError::TableBusy`] instead.
    pub fn add_type(&self, ty: GoType) -> TypeId {
        self.types.borrow_mut().add(ty)
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The map layout in force.
    pub fn map_layout(&self) -> MapLayout {
        self.layout
    }

    /// The Go name of `v`'s static type (`*main.User`), or `<type #N>` if it is unknown.
    pub fn type_name(&self, v: Value) -> String {
        self.name_of(v.ty)
    }

    fn name_of(&self, ty: TypeId) -> String {
        match self.types.borrow().get(ty) {
            Some(t) if t.name.is_empty() => format!("<unnamed {:?}>", t.kind).to_lowercase(),
            Some(t) => t.name.clone(),
            None => format!("<type #{}>", ty.0),
        }
    }

    fn ty(&self, id: TypeId) -> R<GoType> {
        self.types
            .borrow()
            .get(id)
            .cloned()
            .ok_or(ValueError::UnknownType(id.0))
    }

    /// The id of a predeclared basic type, added to the table if missing.
    fn basic(&self, kind: Kind, name: &str) -> R<TypeId> {
        let mut table = self
            .types
            .try_borrow_mut()
            .map_err(|_| ValueError::TableBusy)?;
        if let Some(id) = table.iter().find_map(|(id, t)| {
            (t.name == name && t.kind == kind && t.shape == Shape::Basic).then_some(id)
        }) {
            return Ok(id);
        }
        let size = kind.fixed_size().unwrap_or(8);
        Ok(table.add(GoType {
            name: name.to_owned(),
            kind,
            size,
            align: size.clamp(1, 8),
            shape: Shape::Basic,
        }))
    }

    // ---- raw reads -------------------------------------------------------------------------

    fn read_u64(mem: &dyn MemoryReader, addr: u64) -> R<u64> {
        mem.read_u64(addr).map_err(ValueError::mem)
    }

    fn read_exact(mem: &dyn MemoryReader, addr: u64, len: u64, limit: usize) -> R<Vec<u8>> {
        let v = mem
            .read_vec(addr, len, limit as u64)
            .map_err(ValueError::mem)?;
        Ok(v)
    }

    /// `{ptr, len}` of a string header at `addr`, with an implausible length refused.
    fn string_header(&self, mem: &dyn MemoryReader, v: Value, t: &GoType) -> R<(u64, u64)> {
        let ptr = Self::read_u64(mem, v.addr)?;
        let len = Self::read_u64(mem, v.addr.wrapping_add(8))?;
        self.plausible_len(v, t, len)?;
        Ok((ptr, len))
    }

    /// `{ptr, len, cap}` of a slice header at `addr`.
    fn slice_header(&self, mem: &dyn MemoryReader, v: Value, t: &GoType) -> R<(u64, u64, u64)> {
        let mut b = [0u8; 24];
        mem.read(v.addr, &mut b).map_err(ValueError::mem)?;
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let (ptr, len, cap) = (w(0), w(1), w(2));
        self.plausible_len(v, t, len)?;
        if cap < len {
            return Err(ValueError::Implausible {
                ty: t.name.clone(),
                addr: v.addr,
                why: format!("len {len} is larger than cap {cap}"),
            });
        }
        Ok((ptr, len, cap))
    }

    fn plausible_len(&self, v: Value, t: &GoType, len: u64) -> R<()> {
        if len > MAX_PLAUSIBLE_LEN {
            return Err(ValueError::Implausible {
                ty: t.name.clone(),
                addr: v.addr,
                why: format!("length {len} is beyond any Go allocation"),
            });
        }
        Ok(())
    }

    /// Reads a scalar of `t`'s fixed size at `v.addr` as raw little-endian bits.
    fn scalar_bits(&self, mem: &dyn MemoryReader, v: Value, t: &GoType) -> R<u64> {
        let size = t.kind.fixed_size().unwrap_or(0).min(8) as usize;
        let mut b = [0u8; 8];
        mem.read(v.addr, &mut b[..size]).map_err(ValueError::mem)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Follows pointers (at most [`MAX_AUTODEREF`]) from `v` while `v` is a pointer, for the
    /// operations Go applies through pointers (field selection, `*[N]T` indexing).
    fn auto_deref(&self, mem: &dyn MemoryReader, mut v: Value, what: &str) -> R<(Value, GoType)> {
        for _ in 0..MAX_AUTODEREF {
            let t = self.ty(v.ty)?;
            let Shape::Pointer { elem } = t.shape else {
                return Ok((v, t));
            };
            let p = Self::read_u64(mem, v.addr)?;
            if p == 0 {
                return Err(ValueError::Nil {
                    what: what.to_owned(),
                    ty: t.name,
                });
            }
            v = Value { ty: elem, addr: p };
        }
        Err(ValueError::Limit {
            what: format!("following pointers from {}", self.name_of(v.ty)),
            limit: MAX_AUTODEREF,
            field: "(fixed)",
        })
    }

    fn opaque_check(t: &GoType) -> R<()> {
        if t.shape == Shape::Opaque {
            return Err(ValueError::Opaque { ty: t.name.clone() });
        }
        Ok(())
    }

    // ---- scalars ---------------------------------------------------------------------------

    /// The text of a `string`, `[]byte` or `[N]byte` (a named type of these kinds too):
    /// invalid UTF-8 is replaced (lossy), and at most [`Limits::max_string`] bytes are read —
    /// a longer string is cut there without a marker.
    pub fn str(&self, mem: &dyn MemoryReader, v: Value) -> R<String> {
        let b = self.byte_content(mem, v, self.limits.max_string, "str")?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// The bytes of a string, `[]byte` or `[N]byte` (at most `max`), for `op`'s errors.
    fn byte_content(
        &self,
        mem: &dyn MemoryReader,
        v: Value,
        max: usize,
        op: &'static str,
    ) -> R<Vec<u8>> {
        let t = self.ty(v.ty)?;
        let max = max.min(MAX_READ);
        let (ptr, len) = match &t.shape {
            _ if t.kind == Kind::String => self.string_header(mem, v, &t)?,
            Shape::Slice { elem } if self.is_byte(*elem) => {
                let (p, l, _) = self.slice_header(mem, v, &t)?;
                (p, l)
            }
            Shape::Array { elem, len } if self.is_byte(*elem) => (v.addr, *len),
            _ => {
                return Err(ValueError::WrongKind {
                    op,
                    want: "a string, []byte or [N]byte",
                    ty: t.name,
                })
            }
        };
        let n = len.min(max as u64);
        if n == 0 {
            return Ok(Vec::new());
        }
        Self::read_exact(mem, ptr, n, max)
    }

    fn is_byte(&self, ty: TypeId) -> bool {
        self.types
            .borrow()
            .get(ty)
            .is_some_and(|t| matches!(t.kind, Kind::Uint8 | Kind::Int8) && t.size == 1)
    }

    /// Any integer (signed, unsigned, `uintptr`) as an `i64`; an unsigned value above
    /// `i64::MAX` is an error.
    pub fn int(&self, mem: &dyn MemoryReader, v: Value) -> R<i64> {
        let t = self.ty(v.ty)?;
        if !t.kind.is_integer() {
            return Err(ValueError::WrongKind {
                op: "int",
                want: "an integer",
                ty: t.name,
            });
        }
        let bits = self.scalar_bits(mem, v, &t)?;
        if t.kind.is_signed() {
            return Ok(sign_extend(bits, t.kind.fixed_size().unwrap_or(8)));
        }
        i64::try_from(bits).map_err(|_| ValueError::Overflow {
            value: bits.to_string(),
            ty: t.name,
            target: "an i64",
        })
    }

    /// Any integer as a `u64`; a negative signed value is an error.
    pub fn uint(&self, mem: &dyn MemoryReader, v: Value) -> R<u64> {
        let t = self.ty(v.ty)?;
        if !t.kind.is_integer() {
            return Err(ValueError::WrongKind {
                op: "uint",
                want: "an integer",
                ty: t.name,
            });
        }
        let bits = self.scalar_bits(mem, v, &t)?;
        if t.kind.is_signed() {
            let i = sign_extend(bits, t.kind.fixed_size().unwrap_or(8));
            return u64::try_from(i).map_err(|_| ValueError::Overflow {
                value: i.to_string(),
                ty: t.name,
                target: "a u64",
            });
        }
        Ok(bits)
    }

    /// A `float32` or `float64` (integers are converted, as `float64(i)` would).
    pub fn float(&self, mem: &dyn MemoryReader, v: Value) -> R<f64> {
        let t = self.ty(v.ty)?;
        match t.kind {
            Kind::Float32 => Ok(f64::from(f32::from_bits(
                self.scalar_bits(mem, v, &t)? as u32
            ))),
            Kind::Float64 => Ok(f64::from_bits(self.scalar_bits(mem, v, &t)?)),
            k if k.is_integer() && k.is_signed() => Ok(self.int(mem, v)? as f64),
            k if k.is_integer() => Ok(self.uint(mem, v)? as f64),
            _ => Err(ValueError::WrongKind {
                op: "float",
                want: "a float or integer",
                ty: t.name,
            }),
        }
    }

    /// A `bool` (any non-zero byte is true).
    pub fn bool(&self, mem: &dyn MemoryReader, v: Value) -> R<bool> {
        let t = self.ty(v.ty)?;
        if t.kind != Kind::Bool {
            return Err(ValueError::WrongKind {
                op: "bool",
                want: "a bool",
                ty: t.name,
            });
        }
        Ok(mem.read_u8(v.addr).map_err(ValueError::mem)? != 0)
    }

    /// The real and imaginary parts of a `complex64` or `complex128`.
    pub fn complex(&self, mem: &dyn MemoryReader, v: Value) -> R<(f64, f64)> {
        let t = self.ty(v.ty)?;
        let mut b = [0u8; 16];
        match t.kind {
            Kind::Complex64 => {
                mem.read(v.addr, &mut b[..8]).map_err(ValueError::mem)?;
                let f = |i: usize| {
                    f64::from(f32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4])))
                };
                Ok((f(0), f(4)))
            }
            Kind::Complex128 => {
                mem.read(v.addr, &mut b).map_err(ValueError::mem)?;
                let f = |i: usize| f64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
                Ok((f(0), f(8)))
            }
            _ => Err(ValueError::WrongKind {
                op: "complex",
                want: "a complex64 or complex128",
                ty: t.name,
            }),
        }
    }

    /// True for a nil pointer, `unsafe.Pointer`, map, chan, func, slice (nil data pointer) or
    /// interface (no dynamic type).
    pub fn is_nil(&self, mem: &dyn MemoryReader, v: Value) -> R<bool> {
        let t = self.ty(v.ty)?;
        match t.kind {
            Kind::Pointer
            | Kind::UnsafePointer
            | Kind::Map
            | Kind::Chan
            | Kind::Func
            | Kind::Slice
            | Kind::Interface => Ok(Self::read_u64(mem, v.addr)? == 0),
            _ => Err(ValueError::WrongKind {
                op: "is_nil",
                want: "a pointer, map, chan, func, slice or interface",
                ty: t.name,
            }),
        }
    }

    /// The value a pointer points to.
    pub fn deref(&self, mem: &dyn MemoryReader, v: Value) -> R<Value> {
        let t = self.ty(v.ty)?;
        let Shape::Pointer { elem } = t.shape else {
            return Err(ValueError::WrongKind {
                op: "deref",
                want: "a pointer",
                ty: t.name,
            });
        };
        let p = Self::read_u64(mem, v.addr)?;
        if p == 0 {
            return Err(ValueError::Nil {
                what: "dereference".into(),
                ty: t.name,
            });
        }
        Ok(Value { ty: elem, addr: p })
    }

    // ---- composites ------------------------------------------------------------------------

    /// Field `name` of a struct, through pointers (any depth) and promoted from embedded
    /// structs (shallowest first, as Go selects; embedded pointers are followed).
    pub fn field(&self, mem: &dyn MemoryReader, v: Value, name: &str) -> R<Value> {
        let what = format!("read field {name}");
        let (sv, t) = self.auto_deref(mem, v, &what)?;
        Self::opaque_check(&t)?;
        let Shape::Struct { fields } = &t.shape else {
            return Err(ValueError::WrongKind {
                op: "field",
                want: "a struct or pointer to struct",
                ty: t.name,
            });
        };
        if let Some(f) = fields.iter().find(|f| f.name == name) {
            return Ok(Value {
                ty: f.ty,
                addr: sv.addr.wrapping_add(f.offset),
            });
        }
        // Promoted fields: breadth-first over embedded fields, one level at a time.
        let mut level: Vec<Value> = fields
            .iter()
            .filter(|f| f.embedded)
            .map(|f| Value {
                ty: f.ty,
                addr: sv.addr.wrapping_add(f.offset),
            })
            .collect();
        for _ in 0..MAX_AUTODEREF {
            if level.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for e in level {
                let et = self.ty(e.ty)?;
                // An embedded *T: the name is promoted, the pointer followed on use.
                let (ev, et) = if matches!(et.shape, Shape::Pointer { .. }) {
                    let (ev, et2) = match self.auto_deref(mem, e, &what) {
                        Ok(x) => x,
                        Err(err) => {
                            if self.struct_has_field(&et, name) {
                                return Err(err);
                            }
                            continue;
                        }
                    };
                    (ev, et2)
                } else {
                    (e, et)
                };
                if let Shape::Struct { fields } = &et.shape {
                    if let Some(f) = fields.iter().find(|f| f.name == name) {
                        return Ok(Value {
                            ty: f.ty,
                            addr: ev.addr.wrapping_add(f.offset),
                        });
                    }
                    next.extend(fields.iter().filter(|f| f.embedded).map(|f| Value {
                        ty: f.ty,
                        addr: ev.addr.wrapping_add(f.offset),
                    }));
                }
                if next.len() > 256 {
                    break;
                }
            }
            level = next;
        }
        Err(ValueError::NoField {
            ty: t.name.clone(),
            name: name.to_owned(),
            fields: fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// True when the struct `*T` or `T` (through one pointer) directly has field `name`: used to
    /// report a nil embedded pointer only when it would have supplied the field.
    fn struct_has_field(&self, t: &GoType, name: &str) -> bool {
        let inner = match t.shape {
            Shape::Pointer { elem } => self.ty(elem).ok(),
            _ => Some(t.clone()),
        };
        matches!(inner, Some(GoType { shape: Shape::Struct { fields }, .. }) if fields.iter().any(|f| f.name == name))
    }

    /// Element `i` of a slice, array (also through a pointer to an array) or string (a
    /// `uint8`).
    pub fn index(&self, mem: &dyn MemoryReader, v: Value, i: i64) -> R<Value> {
        let (v, t) = self.auto_deref(mem, v, "index")?;
        let (base, len, elem) = match &t.shape {
            _ if t.kind == Kind::String => {
                let (p, l) = self.string_header(mem, v, &t)?;
                let u8t = match self.uint8.get() {
                    Some(id) => id,
                    None => {
                        let id = self.basic(Kind::Uint8, "uint8")?;
                        self.uint8.set(Some(id));
                        id
                    }
                };
                (p, l, u8t)
            }
            Shape::Slice { elem } => {
                let (p, l, _) = self.slice_header(mem, v, &t)?;
                (p, l, *elem)
            }
            Shape::Array { elem, len } => (v.addr, *len, *elem),
            _ => {
                return Err(ValueError::WrongKind {
                    op: "index",
                    want: "a slice, array or string",
                    ty: t.name,
                })
            }
        };
        let out = || ValueError::OutOfRange {
            index: i,
            len,
            ty: t.name.clone(),
        };
        let iu = u64::try_from(i).map_err(|_| out())?;
        if iu >= len {
            return Err(out());
        }
        let esize = self.ty(elem)?.size;
        let addr = iu
            .checked_mul(esize)
            .and_then(|o| base.checked_add(o))
            .ok_or_else(|| ValueError::Implausible {
                ty: t.name.clone(),
                addr: v.addr,
                why: format!("element {i} lies beyond the address space"),
            })?;
        Ok(Value { ty: elem, addr })
    }

    /// The length of a string, slice, array (also through a pointer), map or chan (0 when
    /// nil).
    pub fn len(&self, mem: &dyn MemoryReader, v: Value) -> R<u64> {
        let t = self.ty(v.ty)?;
        if let Shape::Pointer { elem } = t.shape {
            if self.ty(elem)?.kind == Kind::Array {
                let (v, _) = self.auto_deref(mem, v, "take len")?;
                return self.len(mem, v);
            }
        }
        match (&t.shape, t.kind) {
            (_, Kind::String) => Ok(self.string_header(mem, v, &t)?.1),
            (Shape::Slice { .. }, _) => Ok(self.slice_header(mem, v, &t)?.1),
            (Shape::Array { len, .. }, _) => Ok(*len),
            (_, Kind::Map) => self.map_len(mem, v),
            (_, Kind::Chan) => {
                // runtime.hchan{qcount uint; dataqsiz uint; …} (every release).
                let p = Self::read_u64(mem, v.addr)?;
                if p == 0 {
                    return Ok(0);
                }
                Self::read_u64(mem, p)
            }
            _ => Err(ValueError::WrongKind {
                op: "len",
                want: "a string, slice, array, map or chan",
                ty: t.name,
            }),
        }
    }

    /// The capacity of a slice, array or chan (0 for a nil chan).
    pub fn cap(&self, mem: &dyn MemoryReader, v: Value) -> R<u64> {
        let t = self.ty(v.ty)?;
        match (&t.shape, t.kind) {
            (Shape::Slice { .. }, _) => Ok(self.slice_header(mem, v, &t)?.2),
            (Shape::Array { len, .. }, _) => Ok(*len),
            (_, Kind::Chan) => {
                let p = Self::read_u64(mem, v.addr)?;
                if p == 0 {
                    return Ok(0);
                }
                Self::read_u64(mem, p.wrapping_add(8))
            }
            _ => Err(ValueError::WrongKind {
                op: "cap",
                want: "a slice, array or chan",
                ty: t.name,
            }),
        }
    }

    /// Raw bytes: the content of a string, `[]byte` or `[N]byte`, or else the value's own
    /// in-memory image (its type's size); at most `max` bytes (and at most 16 MiB).
    pub fn bytes(&self, mem: &dyn MemoryReader, v: Value, max: usize) -> R<Vec<u8>> {
        match self.byte_content(mem, v, max, "bytes") {
            Err(ValueError::WrongKind { .. }) => {
                let t = self.ty(v.ty)?;
                Self::opaque_check(&t)?;
                let max = max.min(MAX_READ);
                Self::read_exact(mem, v.addr, t.size.min(max as u64), max)
            }
            r => r,
        }
    }

    // ---- interfaces ------------------------------------------------------------------------

    /// The concrete type of interface `v`'s dynamic value and whether the value sits in the
    /// data word itself: `None` for a nil interface.
    fn dynamic_type(
        &self,
        mem: &dyn MemoryReader,
        v: Value,
        t: &GoType,
    ) -> R<Option<(TypeId, bool)>> {
        let Shape::Interface { empty } = t.shape else {
            return Err(ValueError::WrongKind {
                op: "elem",
                want: "an interface",
                ty: t.name.clone(),
            });
        };
        let word = Self::read_u64(mem, v.addr)?;
        if word == 0 {
            return Ok(None);
        }
        // eface: the word is the *abi.Type; iface: an *abi.ITab whose Type is at offset 8
        // (internal/abi/iface.go ITab{Inter, Type, Hash, Fun}, runtime.itab before 1.21: same).
        let type_addr = if empty {
            word
        } else {
            Self::read_u64(mem, word.wrapping_add(8))?
        };
        if let Some(&hit) = self.resolved.borrow().get(&type_addr) {
            return hit.map(Some).ok_or_else(|| ValueError::Unresolved {
                ty: t.name.clone(),
                word,
                why: "not a type descriptor of the binary",
            });
        }
        let Some(resolver) = &self.resolver else {
            return Err(ValueError::Unresolved {
                ty: t.name.clone(),
                word,
                why: "no runtime type metadata available",
            });
        };
        let id = {
            let mut table = self
                .types
                .try_borrow_mut()
                .map_err(|_| ValueError::TableBusy)?;
            resolver.resolve(type_addr, &mut table)
        };
        let hit = id.map(|id| {
            let direct = resolver
                .direct_iface(type_addr)
                .unwrap_or_else(|| self.is_direct_iface(id));
            (id, direct)
        });
        self.resolved.borrow_mut().insert(type_addr, hit);
        hit.map(Some).ok_or_else(|| ValueError::Unresolved {
            ty: t.name.clone(),
            word,
            why: "not a type descriptor of the binary",
        })
    }

    /// The concrete value inside interface `v`. Pointer-shaped types (the descriptor's
    /// DirectIface flag, else [`Decoder::is_direct_iface`]) are stored in the data word itself,
    /// so their value is at `v.addr + 8`; others are at the address in the data word.
    pub fn elem(&self, mem: &dyn MemoryReader, v: Value) -> R<Value> {
        let t = self.ty(v.ty)?;
        let Some((dyn_ty, direct)) = self.dynamic_type(mem, v, &t)? else {
            return Err(ValueError::Nil {
                what: "take the dynamic value".into(),
                ty: t.name,
            });
        };
        if direct {
            return Ok(Value {
                ty: dyn_ty,
                addr: v.addr.wrapping_add(8),
            });
        }
        let data = Self::read_u64(mem, v.addr.wrapping_add(8))?;
        if data == 0 {
            return Err(ValueError::Implausible {
                ty: t.name,
                addr: v.addr,
                why: format!("dynamic type {} with a nil data word", self.name_of(dyn_ty)),
            });
        }
        Ok(Value {
            ty: dyn_ty,
            addr: data,
        })
    }

    /// The name of interface `v`'s concrete type (`*main.User`), or `nil` for a nil interface.
    pub fn dynamic_type_name(&self, mem: &dyn MemoryReader, v: Value) -> R<String> {
        let t = self.ty(v.ty)?;
        Ok(match self.dynamic_type(mem, v, &t)? {
            Some((id, _)) => self.name_of(id),
            None => "nil".to_owned(),
        })
    }

    /// True when an interface holding a `ty` keeps the value in its data word, by the
    /// compiler's rule (`cmd/compile/internal/types.IsDirectIface`): a type of one pointer-sized
    /// word that is a pointer — pointers, maps, chans, funcs, `unsafe.Pointer`, and structs or
    /// arrays whose only non-empty part is such a word. (Go 1.26 states it as "size 8, pointer
    /// bytes 8"; before, struct and array wrappers had to have exactly one field/element, which
    /// differs only for structs with extra zero-sized fields. Resolved types use the flag the
    /// descriptor carries instead, see [`TypeResolver::direct_iface`].)
    pub fn is_direct_iface(&self, ty: TypeId) -> bool {
        let types = self.types.borrow();
        let mut cur = ty;
        for _ in 0..MAX_AUTODEREF {
            let Some(t) = types.get(cur) else {
                return false;
            };
            if t.size != 8 {
                return false;
            }
            match &t.shape {
                Shape::Pointer { .. } | Shape::Map { .. } | Shape::Chan { .. } | Shape::Func => {
                    return true
                }
                _ if t.kind == Kind::UnsafePointer => return true,
                Shape::Array { elem, len: 1 } => cur = *elem,
                Shape::Struct { fields } => {
                    let mut words = fields
                        .iter()
                        .filter(|f| types.get(f.ty).is_some_and(|ft| ft.size > 0));
                    match (words.next(), words.next()) {
                        (Some(f), None) if f.offset == 0 => cur = f.ty,
                        _ => return false,
                    }
                }
                _ => return false,
            }
        }
        false
    }

    // ---- time ------------------------------------------------------------------------------

    /// Nanoseconds since the Unix epoch of a `time.Time` (or a pointer to one).
    ///
    /// `time.Time{wall uint64; ext int64; loc *Location}` (`time/time.go`): when bit 63 of
    /// `wall` (hasMonotonic) is set, bits 62..30 hold seconds since 1885-01-01 and `ext` the
    /// monotonic reading; otherwise `ext` holds seconds since year 1. Bits 29..0 are the
    /// nanoseconds either way.
    pub fn unix_nano(&self, mem: &dyn MemoryReader, v: Value) -> R<i64> {
        let (v, t) = self.auto_deref(mem, v, "read time")?;
        if t.name != "time.Time" || t.kind != Kind::Struct || t.size < 16 {
            return Err(ValueError::WrongKind {
                op: "unix_nano",
                want: "a time.Time",
                ty: t.name,
            });
        }
        let wall = Self::read_u64(mem, v.addr)?;
        let ext = Self::read_u64(mem, v.addr.wrapping_add(8))? as i64;
        time_unix_nano(wall, ext).ok_or_else(|| ValueError::Implausible {
            ty: t.name,
            addr: v.addr,
            why: format!("wall {wall:#x} ext {ext} is outside the range of UnixNano"),
        })
    }
}

/// Seconds from year 1 to 1885-01-01 (`time.wallToInternal`).
const WALL_TO_INTERNAL: i64 = (1884 * 365 + 1884 / 4 - 1884 / 100 + 1884 / 400) * 86400;
/// Seconds from year 1 to 1970-01-01 (`time.unixToInternal`).
const UNIX_TO_INTERNAL: i64 = (1969 * 365 + 1969 / 4 - 1969 / 100 + 1969 / 400) * 86400;

/// `time.Time.UnixNano` of the encoded `wall`/`ext` pair; `None` on overflow.
pub(crate) fn time_unix_nano(wall: u64, ext: i64) -> Option<i64> {
    let (sec, nsec) = time_unix(wall, ext);
    sec.checked_mul(1_000_000_000)?.checked_add(nsec)
}

/// `(unix seconds, nanoseconds)` of the encoded `wall`/`ext` pair.
pub(crate) fn time_unix(wall: u64, ext: i64) -> (i64, i64) {
    const HAS_MONOTONIC: u64 = 1 << 63;
    let nsec = (wall & ((1 << 30) - 1)) as i64;
    let sec = if wall & HAS_MONOTONIC != 0 {
        WALL_TO_INTERNAL + ((wall << 1) >> 31) as i64
    } else {
        ext
    };
    (sec.wrapping_sub(UNIX_TO_INTERNAL), nsec)
}

fn sign_extend(bits: u64, size: u64) -> i64 {
    match size {
        1 => bits as u8 as i8 as i64,
        2 => bits as u16 as i16 as i64,
        4 => bits as u32 as i32 as i64,
        _ => bits as i64,
    }
}

#[cfg(test)]
mod tests;
