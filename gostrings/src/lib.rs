//! Read-only knowledge of Go binaries and values.
//!
//! `gostrings` answers "what does this Go binary say?" without touching a process: the ELF
//! container, the Go version and module data from buildinfo, the pclntab function table with its
//! PCDATA tables, the moduledata, DWARF, runtime type metadata, and where each parameter of a
//! function lives under Go's register ABI. Values are decoded over a [`memory::MemoryReader`], so
//! everything is testable on byte buffers. All input is treated as hostile: parsers return errors
//! and never panic.

#![deny(missing_docs)]

pub mod abi;
pub mod binary;
pub mod buildinfo;
pub mod dwarf;
pub mod elf;
pub mod goroutines;
pub mod gotype;
pub mod memory;
pub mod moduledata;
pub mod pclntab;
pub mod rtype;
pub mod signature;
pub mod value;
pub mod version;

pub use binary::{Error, GoBinary};
pub use buildinfo::{BuildInfo, BuildInfoError, Module};
pub use elf::{ElfError, ElfFile};
pub use gotype::{Field, GoType, Kind, Shape, TypeId, TypeTable};
pub use memory::{MemError, MemoryReader, Overlay, SliceMemory};
pub use moduledata::{GOffsets, ModuleData};
pub use pclntab::{Func, Pclntab, PclntabError, UnsafePoint};
pub use rtype::RuntimeTypes;
pub use value::{Decoder, Limits, MapKey, MapLayout, Value, ValueError};
pub use version::GoVersion;
