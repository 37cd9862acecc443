//! The build information the Go linker embeds in every binary: the Go version that built it, the
//! main package and module, the dependency modules and the build settings (`-buildmode`,
//! `CGO_ENABLED`, `GOAMD64`, `vcs.revision`…). This is what `go version -m` prints.
//!
//! Layout (go-runtime.md §4.3; Go `debug/buildinfo`): a 16-byte-aligned blob in `.go.buildinfo`
//! (or, when that section is missing, somewhere in writable data) starting with the 14-byte magic
//! `"\xff Go buildinf:"`, then pointer size and flags. With flag bit 1 (Go 1.18+) the version and
//! modinfo follow inline as varint-length-prefixed strings; before, two pointers to Go string
//! headers are resolved through the ELF image. modinfo is wrapped in 16-byte binary sentinels.

use crate::elf::ElfFile;
use crate::memory::MemoryReader;
use crate::version::GoVersion;

/// The buildinfo magic.
const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Size of the buildinfo header.
const HEADER_LEN: usize = 32;
/// Flag bit: version and modinfo are inline (Go 1.18+).
const FLAG_INLINE: u8 = 2;
/// Flag bit: big-endian.
const FLAG_BIG_ENDIAN: u8 = 1;
/// Longest version or modinfo string accepted.
const MAX_STRING: u64 = 4 << 20;

/// Why buildinfo could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildInfoError {
    /// No `.go.buildinfo` section and no magic in writable data.
    #[error("no Go buildinfo found")]
    NotFound,
    /// The blob is there but unreadable.
    #[error("corrupt buildinfo at {addr:#x}: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
        /// Address of the blob.
        addr: u64,
    },
    /// A layout gohook does not read (big-endian, 4-byte pointers with the old encoding).
    #[error("unsupported buildinfo: {0}")]
    Unsupported(String),
}

/// One Go module: the main module, a dependency, or a replacement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Module {
    /// Module path, e.g. `golang.org/x/net`.
    pub path: String,
    /// Version, e.g. `v0.31.0` or `(devel)`.
    pub version: String,
    /// Checksum (`h1:…`), empty when unknown.
    pub sum: String,
    /// The module that replaced this one (`=>` line), if any.
    pub replace: Option<Box<Module>>,
}

/// Parsed buildinfo of a Go binary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildInfo {
    /// The Go version string exactly as embedded (`go1.21.13`, `devel go1.27-abc …`).
    pub go_version: String,
    /// The main package path (`path` line), e.g. `example.com/app/cmd/server`.
    pub path: String,
    /// The main module (`mod` line).
    pub main: Module,
    /// Dependency modules (`dep` lines), in the order embedded.
    pub deps: Vec<Module>,
    /// Build settings (`build key=value` lines), in the order embedded.
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    /// Finds and parses the buildinfo of `elf`.
    pub fn from_elf(elf: &ElfFile) -> Result<Self, BuildInfoError> {
        let (addr, blob) = locate(elf)?;
        parse_blob(elf, addr, blob)
    }

    /// The parsed Go version, when [`BuildInfo::go_version`] is a recognisable release.
    pub fn version(&self) -> Option<GoVersion> {
        GoVersion::parse(&self.go_version).ok()
    }

    /// The value of build setting `key` (`-buildmode`, `CGO_ENABLED`, `vcs.revision`…).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Finds the blob: the `.go.buildinfo` section, else a 16-byte-aligned magic in writable data
/// (first writable segment first, as `debug/buildinfo` does).
fn locate(elf: &ElfFile) -> Result<(u64, &[u8]), BuildInfoError> {
    if let Some(sec) = elf.section(".go.buildinfo") {
        if let Some(data) = elf.section_data(sec) {
            if data.starts_with(MAGIC) {
                return Ok((sec.addr, data));
            }
        }
    }
    for seg in elf
        .segments
        .iter()
        .filter(|s| s.flags & 2 != 0 && s.flags & 1 == 0)
    {
        let Some(data) = elf.bytes_from(seg.vaddr) else {
            continue;
        };
        let skew = ((16 - seg.vaddr % 16) % 16) as usize;
        let mut i = skew;
        while i + HEADER_LEN <= data.len() {
            if data[i..].starts_with(MAGIC) {
                return Ok((seg.vaddr + i as u64, &data[i..]));
            }
            i += 16;
        }
    }
    Err(BuildInfoError::NotFound)
}

fn parse_blob(elf: &ElfFile, addr: u64, blob: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    let bad = |what: &str| BuildInfoError::Malformed {
        what: what.to_owned(),
        addr,
    };
    if blob.len() < HEADER_LEN {
        return Err(bad("header truncated"));
    }
    let ptr_size = blob[14];
    let flags = blob[15];
    if flags & FLAG_BIG_ENDIAN != 0 {
        return Err(BuildInfoError::Unsupported("big-endian binary".into()));
    }
    let (version, modinfo) = if flags & FLAG_INLINE != 0 {
        let mut pos = HEADER_LEN;
        let v = inline_string(blob, &mut pos).ok_or_else(|| bad("version string truncated"))?;
        let m = inline_string(blob, &mut pos).ok_or_else(|| bad("modinfo string truncated"))?;
        (v.to_vec(), m.to_vec())
    } else {
        if ptr_size != 8 {
            return Err(BuildInfoError::Unsupported(format!(
                "{ptr_size}-byte pointers"
            )));
        }
        let word = |o: usize| u64::from_le_bytes(blob[o..o + 8].try_into().unwrap_or([0; 8]));
        let v = go_string(elf, word(16)).ok_or_else(|| bad("version string pointer unreadable"))?;
        let m = go_string(elf, word(24)).ok_or_else(|| bad("modinfo string pointer unreadable"))?;
        (v, m)
    };
    let go_version = String::from_utf8_lossy(&version).into_owned();
    if go_version.is_empty() {
        return Err(bad("empty Go version"));
    }
    let mut info = parse_modinfo(&String::from_utf8_lossy(strip_sentinels(&modinfo)));
    info.go_version = go_version;
    Ok(info)
}

/// A varint-length-prefixed string at `*pos`.
fn inline_string<'a>(blob: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let mut len: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *blob.get(*pos)?;
        *pos += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            let len = usize::try_from(len.min(MAX_STRING + 1)).ok()?;
            let s = blob.get(*pos..pos.checked_add(len)?)?;
            *pos += len;
            return Some(s);
        }
    }
    None
}

/// The bytes of the Go string whose header (`ptr`, `len`) is at `addr` in the image.
fn go_string(elf: &ElfFile, addr: u64) -> Option<Vec<u8>> {
    let ptr = elf.read_u64(addr).ok()?;
    let len = elf.read_u64(addr.checked_add(8)?).ok()?;
    elf.read_vec(ptr, len, MAX_STRING).ok()
}

/// Removes the 16-byte sentinels around modinfo; anything not framed that way is no modinfo
/// (as in `debug/buildinfo`).
fn strip_sentinels(m: &[u8]) -> &[u8] {
    if m.len() >= 33 && m[m.len() - 17] == b'\n' {
        &m[16..m.len() - 16]
    } else {
        &[]
    }
}

/// Parses the tab-separated modinfo lines (`runtime/debug.ParseBuildInfo`), tolerantly: an
/// unknown or malformed line is skipped rather than failing the whole binary.
fn parse_modinfo(text: &str) -> BuildInfo {
    let mut info = BuildInfo::default();
    // Which module an `=>` line applies to: None = main, Some(i) = deps[i].
    let mut last: Option<Option<usize>> = None;
    for line in text.lines() {
        let Some((kind, rest)) = line.split_once('\t') else {
            continue;
        };
        match kind {
            "path" => info.path = rest.to_owned(),
            "mod" => {
                info.main = module(rest);
                last = Some(None);
            }
            "dep" => {
                info.deps.push(module(rest));
                last = Some(Some(info.deps.len() - 1));
            }
            "=>" => {
                let rep = Box::new(module(rest));
                match last.take() {
                    Some(None) => info.main.replace = Some(rep),
                    Some(Some(i)) => info.deps[i].replace = Some(rep),
                    None => {}
                }
            }
            "build" => {
                if let Some(kv) = setting(rest) {
                    info.settings.push(kv);
                }
            }
            _ => {}
        }
    }
    info
}

fn module(rest: &str) -> Module {
    let mut parts = rest.split('\t');
    Module {
        path: parts.next().unwrap_or("").to_owned(),
        version: parts.next().unwrap_or("").to_owned(),
        sum: parts.next().unwrap_or("").to_owned(),
        replace: None,
    }
}

/// `key=value`, where either side may be a Go-quoted string (keys containing `=`, values with
/// spaces or tabs).
fn setting(s: &str) -> Option<(String, String)> {
    let (key, rest) = if s.starts_with('"') {
        let (k, used) = unquote(s)?;
        (k, s.get(used..)?.strip_prefix('=')?)
    } else {
        let (k, v) = s.split_once('=')?;
        (k.to_owned(), v)
    };
    let value = if rest.starts_with('"') {
        unquote(rest)?.0
    } else {
        rest.to_owned()
    };
    Some((key, value))
}

/// Decodes a Go double-quoted string at the start of `s`; returns it and the bytes consumed.
fn unquote(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    other => other,
                });
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODINFO: &str = "path\texample.com/app/cmd/srv\n\
        mod\texample.com/app\t(devel)\t\n\
        dep\tgolang.org/x/net\tv0.31.0\th1:abc=\n\
        dep\tmodernc.org/sqlite\tv1.0.0\th1:def=\n\
        =>\t../sqlite\t(devel)\t\n\
        build\t-buildmode=exe\n\
        build\t-ldflags=\"-s -w\"\n\
        build\tCGO_ENABLED=0\n";

    #[test]
    fn modinfo_lines_become_modules_replacements_and_settings() {
        let info = parse_modinfo(MODINFO);
        assert_eq!(info.path, "example.com/app/cmd/srv");
        assert_eq!(info.main.path, "example.com/app");
        assert_eq!(info.main.version, "(devel)");
        assert_eq!(info.deps.len(), 2);
        assert_eq!(info.deps[0].sum, "h1:abc=");
        assert_eq!(info.deps[1].replace.as_ref().unwrap().path, "../sqlite");
        assert!(info.deps[0].replace.is_none());
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
        assert_eq!(info.setting("CGO_ENABLED"), Some("0"));
        assert_eq!(info.settings.len(), 3);
    }

    #[test]
    fn sentinels_are_stripped_and_unframed_modinfo_is_ignored() {
        let mut framed = vec![0xaa; 16];
        framed.extend_from_slice(b"path\tx\n");
        framed.extend_from_slice(&[0xbb; 16]);
        // A line of at least one byte is required before the end sentinel.
        framed.splice(16..16, b"mod\tm\tv1\t\n".iter().copied());
        assert_eq!(strip_sentinels(&framed), b"mod\tm\tv1\t\npath\tx\n");
        assert_eq!(strip_sentinels(b"path\tx\n"), b"");
    }

    #[test]
    fn inline_strings_refuse_lengths_past_the_blob() {
        let mut pos = 0;
        assert_eq!(
            inline_string(&[3, b'a', b'b', b'c', 9], &mut pos),
            Some(&b"abc"[..])
        );
        assert_eq!(inline_string(&[3, b'a', b'b', b'c', 9], &mut pos), None);
        let mut pos = 0;
        assert_eq!(inline_string(&[0xff; 12], &mut pos), None);
    }

    #[test]
    fn quoted_settings_are_unquoted() {
        assert_eq!(
            setting("\"a=b\"=\"x\\ty\""),
            Some(("a=b".into(), "x\ty".into()))
        );
        assert_eq!(setting("GOAMD64=v1"), Some(("GOAMD64".into(), "v1".into())));
        assert_eq!(setting("\"unterminated"), None);
    }
}
