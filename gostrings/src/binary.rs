//! [`GoBinary`]: one Go executable opened once, with everything gostrings knows how to read
//! from it. The CLI and the hook engine start here; each accessor is backed by its own module
//! (`elf`, `buildinfo`, `pclntab`, …), so adding a reader means adding a field and an accessor.

use std::ops::Range;
use std::path::Path;

use crate::buildinfo::{BuildInfo, BuildInfoError};
use crate::elf::{ElfError, ElfFile};
use crate::pclntab::{Pclntab, PclntabError, PclntabVersion};
use crate::version::GoVersion;

/// Why a file could not be opened as a Go binary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is unreadable or not a usable ELF.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// A valid ELF without a Go function table.
    #[error("not a Go binary: no pclntab found")]
    NotGo,
    /// The Go function table is there but cannot be used.
    #[error(transparent)]
    Pclntab(PclntabError),
    /// The buildinfo is unreadable (only raised by callers that require it).
    #[error(transparent)]
    BuildInfo(#[from] BuildInfoError),
}

impl From<PclntabError> for Error {
    fn from(e: PclntabError) -> Self {
        match e {
            PclntabError::NotFound => Error::NotGo,
            e => Error::Pclntab(e),
        }
    }
}

/// A Go executable: its ELF container, buildinfo (when present and readable) and function table.
#[derive(Debug, Clone)]
pub struct GoBinary {
    /// The ELF container.
    pub elf: ElfFile,
    /// Build information; `None` when missing or unreadable (see [`GoBinary::buildinfo_error`]).
    pub buildinfo: Option<BuildInfo>,
    /// The function table (every Go binary has one).
    pub pclntab: Pclntab,
    buildinfo_error: Option<BuildInfoError>,
}

impl GoBinary {
    /// Opens the Go binary at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::from_elf(ElfFile::open(path)?)
    }

    /// Parses a Go binary held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        Self::from_elf(ElfFile::from_bytes(bytes)?)
    }

    /// Reads the Go structures of an already parsed ELF.
    pub fn from_elf(elf: ElfFile) -> Result<Self, Error> {
        let pclntab = Pclntab::from_elf(&elf)?;
        let (buildinfo, buildinfo_error) = match BuildInfo::from_elf(&elf) {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(e)),
        };
        Ok(GoBinary {
            elf,
            buildinfo,
            pclntab,
            buildinfo_error,
        })
    }

    /// Why [`GoBinary::buildinfo`] is `None`, if it is.
    pub fn buildinfo_error(&self) -> Option<&BuildInfoError> {
        self.buildinfo_error.as_ref()
    }

    /// The Go release that built the binary: from buildinfo when available, otherwise the oldest
    /// release using this pclntab layout (see [`GoBinary::go_version_is_exact`]).
    pub fn go_version(&self) -> GoVersion {
        if let Some(v) = self.buildinfo.as_ref().and_then(BuildInfo::version) {
            return v;
        }
        match self.pclntab.version() {
            PclntabVersion::Go116 => GoVersion::new(1, 16, 0),
            PclntabVersion::Go118 => GoVersion::new(1, 18, 0),
            PclntabVersion::Go120 => GoVersion::new(1, 20, 0),
        }
    }

    /// True when [`GoBinary::go_version`] comes from buildinfo rather than a lower bound.
    pub fn go_version_is_exact(&self) -> bool {
        self.buildinfo
            .as_ref()
            .and_then(BuildInfo::version)
            .is_some()
    }

    /// True for position-independent executables (addresses are relative to a load bias).
    pub fn is_pie(&self) -> bool {
        self.elf.pie
    }

    /// True when the ELF symbol table is gone (`-ldflags=-s`).
    pub fn is_stripped(&self) -> bool {
        self.elf.is_stripped()
    }

    /// True when DWARF debug information is present.
    pub fn has_dwarf(&self) -> bool {
        self.elf.has_dwarf()
    }

    /// Loads and indexes the DWARF (function parameters with entry locations, Go types). This
    /// decompresses and walks every compile unit, so keep the result rather than calling again.
    pub fn dwarf(&self) -> Result<crate::dwarf::Dwarf, crate::dwarf::DwarfError> {
        crate::dwarf::Dwarf::load(&self.elf)
    }

    /// Addresses of Go code, from the first function's entry to the end of Go text.
    pub fn text_range(&self) -> Range<u64> {
        self.pclntab.text_range()
    }

    /// The file the binary was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.elf.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pclntab_means_not_a_go_binary() {
        let e: Error = PclntabError::NotFound.into();
        assert_eq!(e.to_string(), "not a Go binary: no pclntab found");
    }

    #[test]
    fn this_test_binary_is_not_go() {
        let me = std::env::current_exe().unwrap();
        let err = GoBinary::open(me).unwrap_err();
        assert!(matches!(err, Error::NotGo), "{err}");
    }
}
