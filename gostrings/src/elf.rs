//! The ELF container of a Go binary: its bytes, sections, segments and symbols.
//!
//! Everything here is read from untrusted input, so every lookup is bounds-checked and returns
//! `None` or an error instead of panicking. The file is memory-mapped where possible and kept
//! alive for the lifetime of the [`ElfFile`], so the other parsers can borrow slices of it.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use goblin::elf::header::{EM_X86_64, ET_DYN};
use goblin::elf::program_header::PT_LOAD;
use goblin::elf::section_header::{
    SHF_ALLOC, SHF_COMPRESSED, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS,
};

use crate::memory::{MemError, MemoryReader};

/// Why a file could not be opened as an ELF binary.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The path could not be read (missing, a directory, no permission).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that was being opened.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{path} is empty")]
    Empty {
        /// The file that was being opened.
        path: PathBuf,
    },
    /// The file does not start with the ELF magic.
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    /// The ELF headers are malformed or truncated.
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// The ELF is valid but not a 64-bit little-endian x86-64 binary.
    #[error("unsupported ELF: {0} (gohook reads linux/amd64 binaries)")]
    Unsupported(String),
}

/// The bytes backing an [`ElfFile`]: a read-only mapping of the file, or an owned buffer.
enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// One ELF section header, reduced to what gohook needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section name, such as `.gopclntab`.
    pub name: String,
    /// Virtual address when loaded (0 for non-allocated sections).
    pub addr: u64,
    /// Size in memory (for compressed sections: the compressed size in the file).
    pub size: u64,
    /// Offset of the section's bytes in the file.
    pub offset: u64,
    /// `SHF_*` flags.
    pub flags: u64,
    /// `SHT_*` type.
    pub kind: u32,
}

impl Section {
    /// True when the section occupies no bytes in the file (`.bss`, `.noptrbss`).
    pub fn is_nobits(&self) -> bool {
        self.kind == SHT_NOBITS
    }
    /// True for `SHF_EXECINSTR` sections (`.text`).
    pub fn is_exec(&self) -> bool {
        self.flags & u64::from(SHF_EXECINSTR) != 0
    }
    /// True for `SHF_WRITE` sections.
    pub fn is_writable(&self) -> bool {
        self.flags & u64::from(SHF_WRITE) != 0
    }
    /// True for `SHF_ALLOC` sections (mapped at run time).
    pub fn is_alloc(&self) -> bool {
        self.flags & u64::from(SHF_ALLOC) != 0
    }
    /// True for `SHF_COMPRESSED` sections (Go's DWARF).
    pub fn is_compressed(&self) -> bool {
        self.flags & u64::from(SHF_COMPRESSED) != 0
    }
    /// The virtual address range this section covers.
    pub fn vm_range(&self) -> Range<u64> {
        self.addr..self.addr.saturating_add(self.size)
    }
}

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address of the segment.
    pub vaddr: u64,
    /// Size in memory (may exceed `filesz`; the rest is zero-filled).
    pub memsz: u64,
    /// File offset of the segment's bytes.
    pub offset: u64,
    /// Bytes present in the file.
    pub filesz: u64,
    /// `PF_*` flags (1 = X, 2 = W, 4 = R).
    pub flags: u32,
}

/// One symbol from `.symtab` (empty in stripped binaries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Symbol name.
    pub name: String,
    /// Symbol value (an address for functions and data).
    pub value: u64,
    /// Symbol size in bytes.
    pub size: u64,
    /// True for `STT_FUNC`.
    pub is_func: bool,
}

/// A parsed ELF file whose bytes stay available for the other parsers.
#[derive(Clone)]
pub struct ElfFile {
    backing: Arc<Backing>,
    path: Option<PathBuf>,
    /// `ET_DYN`: position-independent; addresses are relative to the load bias.
    pub pie: bool,
    /// The ELF entry point.
    pub entry: u64,
    /// Section headers in file order.
    pub sections: Vec<Section>,
    /// `PT_LOAD` segments.
    pub segments: Vec<Segment>,
    /// `.symtab` symbols; empty when stripped.
    pub symbols: Vec<Symbol>,
    /// The `PT_INTERP` path when the binary is dynamically linked.
    pub interpreter: Option<String>,
    /// Size of the `PT_TLS` segment in memory, if any (cgo binaries).
    pub tls_memsz: Option<u64>,
}

impl std::fmt::Debug for ElfFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfFile")
            .field("path", &self.path)
            .field("pie", &self.pie)
            .field("sections", &self.sections.len())
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

impl ElfFile {
    /// Opens and parses the file at `path` (memory-mapped).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ElfError> {
        let path = path.as_ref();
        let io = |source| ElfError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        if meta.len() == 0 {
            return Err(ElfError::Empty {
                path: path.to_owned(),
            });
        }
        let map = map_file(&file).map_err(io)?;
        let mut elf = Self::parse(Backing::Mapped(map))?;
        elf.path = Some(path.to_owned());
        Ok(elf)
    }

    /// Parses an ELF image held in memory (used by tests and fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, ElfError> {
        if bytes.is_empty() {
            return Err(ElfError::Empty {
                path: PathBuf::from("<memory>"),
            });
        }
        Self::parse(Backing::Owned(bytes))
    }

    fn parse(backing: Backing) -> Result<Self, ElfError> {
        let bytes = backing.bytes();
        if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let elf = goblin::elf::Elf::parse(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;
        if !elf.is_64 || !elf.little_endian || elf.header.e_machine != EM_X86_64 {
            return Err(ElfError::Unsupported(format!(
                "{}-bit {}-endian machine {}",
                if elf.is_64 { 64 } else { 32 },
                if elf.little_endian { "little" } else { "big" },
                goblin::elf::header::machine_to_str(elf.header.e_machine)
            )));
        }
        let sections = elf
            .section_headers
            .iter()
            .map(|sh| Section {
                name: elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("").to_owned(),
                addr: sh.sh_addr,
                size: sh.sh_size,
                offset: sh.sh_offset,
                flags: sh.sh_flags,
                kind: sh.sh_type,
            })
            .collect();
        let segments = elf
            .program_headers
            .iter()
            .filter(|ph| ph.p_type == PT_LOAD)
            .map(|ph| Segment {
                vaddr: ph.p_vaddr,
                memsz: ph.p_memsz,
                offset: ph.p_offset,
                filesz: ph.p_filesz,
                flags: ph.p_flags,
            })
            .collect();
        let tls_memsz = elf
            .program_headers
            .iter()
            .find(|ph| ph.p_type == goblin::elf::program_header::PT_TLS)
            .map(|ph| ph.p_memsz);
        let symbols = elf
            .syms
            .iter()
            .filter_map(|s| {
                let name = elf.strtab.get_at(s.st_name)?;
                if name.is_empty() {
                    return None;
                }
                Some(Symbol {
                    name: name.to_owned(),
                    value: s.st_value,
                    size: s.st_size,
                    is_func: s.st_type() == goblin::elf::sym::STT_FUNC,
                })
            })
            .collect();
        let pie = elf.header.e_type == ET_DYN;
        let entry = elf.entry;
        let interpreter = elf.interpreter.map(str::to_owned);
        drop(elf);
        Ok(ElfFile {
            backing: Arc::new(backing),
            path: None,
            pie,
            entry,
            sections,
            segments,
            symbols,
            interpreter,
            tls_memsz,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// The path the file was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The first section with this exact name.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The raw file bytes of a section (compressed sections are returned as stored).
    /// `None` for `SHT_NOBITS` sections or headers pointing outside the file.
    pub fn section_data(&self, section: &Section) -> Option<&[u8]> {
        if section.is_nobits() {
            return None;
        }
        let start = usize::try_from(section.offset).ok()?;
        let len = usize::try_from(section.size).ok()?;
        self.bytes().get(start..start.checked_add(len)?)
    }

    /// The raw bytes of the named section.
    pub fn section_bytes(&self, name: &str) -> Option<&[u8]> {
        self.section_data(self.section(name)?)
    }

    /// The section containing virtual address `addr`.
    pub fn section_at(&self, addr: u64) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.is_alloc() && s.vm_range().contains(&addr))
    }

    /// File bytes backing `[addr, addr+len)` in the link-time address space, if the whole range
    /// lies in one `PT_LOAD` segment's file part.
    pub fn bytes_at(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let seg = self
            .segments
            .iter()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)?;
        let off = seg.offset.checked_add(addr - seg.vaddr)?;
        let end_in_seg = (addr - seg.vaddr).checked_add(len as u64)?;
        if end_in_seg > seg.filesz {
            return None;
        }
        let start = usize::try_from(off).ok()?;
        self.bytes().get(start..start.checked_add(len)?)
    }

    /// All bytes of the `PT_LOAD` segment file part from `addr` to the segment's end.
    pub fn bytes_from(&self, addr: u64) -> Option<&[u8]> {
        let seg = self
            .segments
            .iter()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)?;
        let len = usize::try_from(seg.filesz - (addr - seg.vaddr)).ok()?;
        self.bytes_at(addr, len)
    }

    /// The symbol with this exact name.
    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.symbols.iter().find(|s| s.name == name)
    }

    /// True when `.symtab` is absent (stripped with `-s`).
    pub fn is_stripped(&self) -> bool {
        self.symbols.is_empty()
    }

    /// True when DWARF debug information is present (`.debug_info`, compressed or not).
    pub fn has_dwarf(&self) -> bool {
        self.section(".debug_info").is_some() || self.section(".zdebug_info").is_some()
    }

    /// The lowest virtual address of any `PT_LOAD` segment (the link-time base).
    pub fn link_base(&self) -> u64 {
        self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0)
    }
}

/// Reads the binary's initialised data as the process would see it at link-time addresses.
/// Bytes past a segment's `filesz` (zero-filled `.bss`) read as zero.
impl MemoryReader for ElfFile {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let fault = MemError::Unmapped {
            addr,
            len: buf.len(),
        };
        let seg = self
            .segments
            .iter()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.memsz)
            .ok_or(fault.clone())?;
        let rel = addr - seg.vaddr;
        let end = rel.checked_add(buf.len() as u64).ok_or(fault.clone())?;
        if end > seg.memsz {
            return Err(fault);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            let r = rel + i as u64;
            *b = if r < seg.filesz {
                let off = usize::try_from(seg.offset + r).map_err(|_| fault.clone())?;
                *self.bytes().get(off).ok_or(fault.clone())?
            } else {
                0
            };
        }
        Ok(())
    }
}

/// Maps a file read-only.
fn map_file(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is private and read-only; if another process truncates the file while
    // it is mapped, reads past the new end raise SIGBUS. gohook reads binaries that are not being
    // rewritten (installed programs and /proc/N/exe, which the kernel keeps immutable while the
    // process runs: writes to a running executable fail with ETXTBSY).
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_reported_as_empty() {
        assert!(matches!(
            ElfFile::from_bytes(vec![]),
            Err(ElfError::Empty { .. })
        ));
    }

    #[test]
    fn text_is_not_elf() {
        assert!(matches!(
            ElfFile::from_bytes(b"#!/bin/sh\necho hi\n".to_vec()),
            Err(ElfError::NotElf)
        ));
    }

    #[test]
    fn truncated_header_is_malformed() {
        let mut b = b"\x7fELF\x02\x01\x01".to_vec();
        b.resize(20, 0);
        assert!(matches!(
            ElfFile::from_bytes(b),
            Err(ElfError::Malformed(_))
        ));
    }

    #[test]
    fn a_directory_is_an_io_error() {
        let err = ElfFile::open("/").unwrap_err();
        assert!(matches!(err, ElfError::Io { .. }), "{err}");
    }
}
