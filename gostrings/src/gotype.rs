//! One model of Go types shared by every source of type knowledge (DWARF, runtime type
//! metadata, user-written signatures) and every consumer (register-ABI assignment, value
//! decoding, scripts).
//!
//! Types live in a [`TypeTable`] and refer to each other by [`TypeId`], so recursive types
//! (`type Node struct { next *Node }`) need no reference cycles.

use serde::Serialize;

/// Go's reflect kinds, numbered as in `internal/abi.Kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `bool`
    Bool,
    /// `int`
    Int,
    /// `int8`
    Int8,
    /// `int16`
    Int16,
    /// `int32` (and `rune`)
    Int32,
    /// `int64`
    Int64,
    /// `uint`
    Uint,
    /// `uint8` (and `byte`)
    Uint8,
    /// `uint16`
    Uint16,
    /// `uint32`
    Uint32,
    /// `uint64`
    Uint64,
    /// `uintptr`
    Uintptr,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// `complex64`
    Complex64,
    /// `complex128`
    Complex128,
    /// `[N]T`
    Array,
    /// `chan T`
    Chan,
    /// `func(...)`
    Func,
    /// `interface{...}`
    Interface,
    /// `map[K]V`
    Map,
    /// `*T`
    Pointer,
    /// `[]T`
    Slice,
    /// `string`
    String,
    /// `struct{...}`
    Struct,
    /// `unsafe.Pointer`
    UnsafePointer,
}

impl Kind {
    /// The kind for `internal/abi.Kind` number `n` (1 = Bool … 26 = UnsafePointer).
    pub fn from_abi(n: u8) -> Option<Kind> {
        use Kind::*;
        const ALL: [Kind; 26] = [
            Bool,
            Int,
            Int8,
            Int16,
            Int32,
            Int64,
            Uint,
            Uint8,
            Uint16,
            Uint32,
            Uint64,
            Uintptr,
            Float32,
            Float64,
            Complex64,
            Complex128,
            Array,
            Chan,
            Func,
            Interface,
            Map,
            Pointer,
            Slice,
            String,
            Struct,
            UnsafePointer,
        ];
        ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// The predeclared basic kind named `name` (`int`, `byte`, `rune`, `string`, …).
    pub fn from_basic_name(name: &str) -> Option<Kind> {
        use Kind::*;
        Some(match name {
            "bool" => Bool,
            "int" => Int,
            "int8" => Int8,
            "int16" => Int16,
            "int32" | "rune" => Int32,
            "int64" => Int64,
            "uint" => Uint,
            "uint8" | "byte" => Uint8,
            "uint16" => Uint16,
            "uint32" => Uint32,
            "uint64" => Uint64,
            "uintptr" => Uintptr,
            "float32" => Float32,
            "float64" => Float64,
            "complex64" => Complex64,
            "complex128" => Complex128,
            "string" => String,
            "unsafe.Pointer" => UnsafePointer,
            _ => return None,
        })
    }

    /// Size in bytes on amd64 for kinds whose size does not depend on the type's contents.
    pub fn fixed_size(self) -> Option<u64> {
        use Kind::*;
        Some(match self {
            Bool | Int8 | Uint8 => 1,
            Int16 | Uint16 => 2,
            Int32 | Uint32 | Float32 => 4,
            Int | Int64 | Uint | Uint64 | Uintptr | Float64 | Complex64 => 8,
            Complex128 | String | Interface => 16,
            Slice => 24,
            Chan | Func | Map | Pointer | UnsafePointer => 8,
            Array | Struct => return None,
        })
    }

    /// True for signed and unsigned integers, including `uintptr`.
    pub fn is_integer(self) -> bool {
        use Kind::*;
        matches!(
            self,
            Int | Int8 | Int16 | Int32 | Int64 | Uint | Uint8 | Uint16 | Uint32 | Uint64 | Uintptr
        )
    }

    /// True for signed integers.
    pub fn is_signed(self) -> bool {
        use Kind::*;
        matches!(self, Int | Int8 | Int16 | Int32 | Int64)
    }
}

/// Index of a type in its [`TypeTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TypeId(pub u32);

/// A struct field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Field name (for embedded fields, the type's name).
    pub name: String,
    /// Field type.
    pub ty: TypeId,
    /// Byte offset from the start of the struct.
    pub offset: u64,
    /// True for an embedded field.
    pub embedded: bool,
}

/// What a type is made of, beyond its kind and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Basic types: nothing more to say.
    Basic,
    /// `*T`
    Pointer {
        /// T
        elem: TypeId,
    },
    /// `[]T`
    Slice {
        /// T
        elem: TypeId,
    },
    /// `[N]T`
    Array {
        /// T
        elem: TypeId,
        /// N
        len: u64,
    },
    /// `chan T`
    Chan {
        /// T
        elem: TypeId,
    },
    /// `map[K]V`
    Map {
        /// K
        key: TypeId,
        /// V
        elem: TypeId,
    },
    /// `struct { ... }`
    Struct {
        /// Fields in declaration order.
        fields: Vec<Field>,
    },
    /// An interface; `empty` is true for `any`/`interface{}` (eface: type word, data word),
    /// false for interfaces with methods (iface: itab word, data word).
    Interface {
        /// True for `interface{}` / `any`.
        empty: bool,
    },
    /// A function value (one pointer to a closure object).
    Func,
    /// A type whose layout the source did not describe (an unresolved named type in a
    /// signature). It occupies `size` bytes but cannot be register-assigned or decoded.
    Opaque,
}

/// One Go type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoType {
    /// The Go name, with full package path for named types (`net/http.Request`,
    /// `*main.User`, `[]string`).
    pub name: String,
    /// The kind.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Alignment in bytes.
    pub align: u64,
    /// Composite structure.
    pub shape: Shape,
}

/// A set of types that refer to each other by [`TypeId`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeTable {
    types: Vec<GoType>,
}

impl TypeTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a type and returns its id.
    pub fn add(&mut self, ty: GoType) -> TypeId {
        let id = TypeId(u32::try_from(self.types.len()).unwrap_or(u32::MAX));
        self.types.push(ty);
        id
    }

    /// Replaces the type at `id` (used to fill in placeholders for recursive types).
    pub fn set(&mut self, id: TypeId, ty: GoType) {
        if let Some(slot) = self.types.get_mut(id.0 as usize) {
            *slot = ty;
        }
    }

    /// The type at `id`.
    pub fn get(&self, id: TypeId) -> Option<&GoType> {
        self.types.get(id.0 as usize)
    }

    /// The first type with this exact name.
    pub fn by_name(&self, name: &str) -> Option<TypeId> {
        self.types
            .iter()
            .position(|t| t.name == name)
            .map(|i| TypeId(i as u32))
    }

    /// Number of types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when the table has no types.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// All types with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (TypeId, &GoType)> {
        self.types
            .iter()
            .enumerate()
            .map(|(i, t)| (TypeId(i as u32), t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_kind_numbers_match_internal_abi() {
        assert_eq!(Kind::from_abi(1), Some(Kind::Bool));
        assert_eq!(Kind::from_abi(24), Some(Kind::String));
        assert_eq!(Kind::from_abi(25), Some(Kind::Struct));
        assert_eq!(Kind::from_abi(26), Some(Kind::UnsafePointer));
        assert_eq!(Kind::from_abi(0), None);
        assert_eq!(Kind::from_abi(27), None);
    }

    #[test]
    fn aliases_resolve_to_their_kinds() {
        assert_eq!(Kind::from_basic_name("byte"), Some(Kind::Uint8));
        assert_eq!(Kind::from_basic_name("rune"), Some(Kind::Int32));
        assert_eq!(Kind::from_basic_name("main.T"), None);
    }
}
