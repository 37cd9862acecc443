//! The Go function table (pclntab) of Go 1.16 – 1.27: every function's name, entry, end, source
//! position, flags, and the pc-value tables (stack depth, file, line, PCDATA) the hook engine
//! needs to decide where patching is safe.
//!
//! Layouts (go-runtime.md §4.1; Go `debug/gosym/pclntab.go`, `runtime/symtab.go`):
//! * magic `0xfffffffa` (1.16–1.17): functab entries are (entry uintptr, funcoff uintptr) and
//!   `_func.entry` is an absolute address;
//! * magic `0xfffffff0` (1.18–1.19): header gains `textStart`; functab entries are
//!   (entryoff u32, funcoff u32) relative to the start of Go text;
//! * magic `0xfffffff1` (1.20+): `_func` gains `startLine`. From 1.26 the header's `textStart`
//!   word is stored as 0, so the start of Go text comes from elsewhere (see [`Pclntab`]).
//!
//! The table is found by section name (`.gopclntab`, `.data.rel.ro.gopclntab`), by the
//! `runtime.pclntab` symbol, or — PIE with external linking before Go 1.26 merges it into
//! `.data.rel.ro` and a stripped binary has no symbols — by scanning non-executable segments for
//! the magic and validating the whole header and function table.
//!
//! Everything is read from hostile input: every offset is bounds-checked, every loop is bounded
//! by the size of the data it walks, and nothing is allocated on the input's say-so.

use std::ops::Range;

use crate::elf::ElfFile;

/// Magic of Go 1.2 – 1.15 tables (refused).
const MAGIC_12: u32 = 0xffff_fffb;
/// Magic of Go 1.16 – 1.17 tables.
const MAGIC_116: u32 = 0xffff_fffa;
/// Magic of Go 1.18 – 1.19 tables.
const MAGIC_118: u32 = 0xffff_fff0;
/// Magic of Go 1.20+ tables.
const MAGIC_120: u32 = 0xffff_fff1;

/// Longest NUL-terminated string (function or file name) we accept.
const MAX_NAME: usize = 64 * 1024;

/// `_func.flag` bit: the function is the top of a call stack (`runtime.goexit`, `rt0_go`…).
pub const FUNC_FLAG_TOP_FRAME: u8 = 1;
/// `_func.flag` bit: the function writes SP in ways the unwinder cannot follow.
pub const FUNC_FLAG_SP_WRITE: u8 = 2;
/// `_func.flag` bit: the function is written in assembly.
pub const FUNC_FLAG_ASM: u8 = 4;

/// PCDATA index of the unsafe-point table.
pub const PCDATA_UNSAFE_POINT: u32 = 0;
/// PCDATA index of the stack-map index table.
pub const PCDATA_STACK_MAP_INDEX: u32 = 1;
/// PCDATA index of the inline-tree index table.
pub const PCDATA_INL_TREE_INDEX: u32 = 2;

/// Why a pclntab could not be found or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PclntabError {
    /// No section, symbol or scanned candidate held a valid Go 1.16+ pclntab.
    #[error("no pclntab found")]
    NotFound,
    /// The table is from Go 1.15 or older, whose layout gohook does not read.
    #[error("pclntab magic {magic:#x} is from Go 1.15 or older; gohook reads Go 1.16 and later")]
    TooOld {
        /// The magic found.
        magic: u32,
    },
    /// The table is valid but for another architecture (4-byte pointers, big-endian).
    #[error("unsupported pclntab: {0}")]
    Unsupported(String),
    /// A header field, offset or entry points outside the table or is inconsistent.
    #[error("corrupt pclntab at {addr:#x}: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
        /// Address of the pcHeader.
        addr: u64,
    },
    /// One function's record is unreadable.
    #[error("corrupt pclntab record of function #{index}: {what}")]
    BadFunc {
        /// Index in the function table.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
}

/// Which on-disk layout a table uses, decided by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PclntabVersion {
    /// Go 1.16 – 1.17 (magic `0xfffffffa`).
    Go116,
    /// Go 1.18 – 1.19 (magic `0xfffffff0`).
    Go118,
    /// Go 1.20 and later (magic `0xfffffff1`).
    Go120,
}

/// Where the pclntab was found: useful to explain results on odd binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PclntabSource {
    /// A section of this name.
    Section(String),
    /// The `runtime.pclntab` symbol.
    Symbol,
    /// A scan of non-executable segments for the magic.
    Scan,
}

/// How the start of Go text (the base of 1.18+ entry offsets) was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextStartSource {
    /// Not needed: Go 1.16/1.17 entries are absolute.
    Absolute,
    /// The pcHeader `textStart` word (Go 1.18 – 1.25).
    Header,
    /// The `runtime.text` symbol.
    Symbol,
    /// The `text` field of the moduledata that points at this pclntab.
    Moduledata,
    /// The `.text` section or first executable segment (may be off when external linking put
    /// C start-up code before Go's text and nothing better was available).
    TextSection,
}

/// The parsed function table of one Go binary.
///
/// Cheap to clone: it shares the binary's bytes.
#[derive(Clone)]
pub struct Pclntab {
    elf: ElfFile,
    /// File range of the table's bytes.
    file: Range<usize>,
    header_addr: u64,
    version: PclntabVersion,
    quantum: u8,
    nfunc: usize,
    nfiles: usize,
    text_start: u64,
    text_start_source: TextStartSource,
    source: PclntabSource,
    funcname_off: usize,
    cu_off: usize,
    filetab_off: usize,
    pctab_off: usize,
    functab_off: usize,
}

impl std::fmt::Debug for Pclntab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pclntab")
            .field("header_addr", &format_args!("{:#x}", self.header_addr))
            .field("version", &self.version)
            .field("nfunc", &self.nfunc)
            .field("text_start", &format_args!("{:#x}", self.text_start))
            .field("source", &self.source)
            .finish()
    }
}

/// One Go function as the pclntab describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Func {
    /// Position in the function table (functions are sorted by entry).
    pub index: usize,
    /// Fully qualified name, e.g. `net/http.(*Client).Do` or `main.Map[go.shape.int]`.
    pub name: String,
    /// Entry address (link-time; add the load bias for a running PIE).
    pub entry: u64,
    /// End address: the next function's entry (or the end of Go text for the last one).
    pub end: u64,
    /// Source file at the entry, if the pcfile table gives one.
    pub file: Option<String>,
    /// Source line at the entry, if the pcln table gives one.
    pub line: Option<i32>,
    /// Line of the `func` keyword (Go 1.20+; `None` before).
    pub start_line: Option<i32>,
    /// `abi.FuncID`: non-zero for special runtime functions. Numbers shift between releases.
    pub func_id: u8,
    /// `abi.FuncFlag` bits: [`FUNC_FLAG_TOP_FRAME`], [`FUNC_FLAG_SP_WRITE`], [`FUNC_FLAG_ASM`].
    pub flag: u8,
    /// Size of the arguments on the stack (ABI0) or the spill area, in bytes.
    pub args: i32,
    /// Offset of the deferreturn call from the entry, 0 when none.
    pub deferreturn: u32,
    /// Number of PCDATA tables.
    pub npcdata: u32,
    /// Number of FUNCDATA entries.
    pub nfuncdata: u8,
    /// Offset of the pc→SP-delta table in the pctab.
    pub pcsp: u32,
    /// Offset of the pc→file table in the pctab.
    pub pcfile: u32,
    /// Offset of the pc→line table in the pctab.
    pub pcln: u32,
    /// Index of the compilation unit in the cutab.
    pub cu_offset: u32,
    /// Offset of the `_func` record from the start of the function table (for PCDATA lookups).
    func_off: usize,
}

impl Func {
    /// Size of the function's code in bytes.
    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.entry)
    }
    /// The range of addresses of the function's code.
    pub fn range(&self) -> Range<u64> {
        self.entry..self.end
    }
    /// True when written in assembly ([`FUNC_FLAG_ASM`]).
    pub fn is_asm(&self) -> bool {
        self.flag & FUNC_FLAG_ASM != 0
    }
    /// True when the function writes SP arbitrarily ([`FUNC_FLAG_SP_WRITE`]).
    pub fn writes_sp(&self) -> bool {
        self.flag & FUNC_FLAG_SP_WRITE != 0
    }
    /// True for stack-top functions ([`FUNC_FLAG_TOP_FRAME`]).
    pub fn is_top_frame(&self) -> bool {
        self.flag & FUNC_FLAG_TOP_FRAME != 0
    }
}

/// One run of a pc-value table: `value` holds for every pc in `pcs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcValue {
    /// The half-open pc range.
    pub pcs: Range<u64>,
    /// The table's value there.
    pub value: i32,
}

/// The PCDATA_UnsafePoint value at a pc: may a goroutine be async-preempted (and later resume)
/// there? The hook engine only patches ranges whose interior is [`UnsafePoint::Unsafe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafePoint {
    /// -1 (or no table): an async-safe point.
    Safe,
    /// -2: not an async-safe point.
    Unsafe,
    /// -3: restartable sequence, restart at the start of the sequence (`abi.UnsafePointRestart1`).
    Restart1,
    /// -4: restartable sequence (`abi.UnsafePointRestart2`).
    Restart2,
    /// -5: restart at the function entry (`abi.UnsafePointRestartAtEntry`).
    RestartAtEntry,
    /// Any other value (not produced by known toolchains).
    Other(i32),
}

impl UnsafePoint {
    /// Classifies a raw table value.
    pub fn from_value(v: i32) -> Self {
        match v {
            -1 => UnsafePoint::Safe,
            -2 => UnsafePoint::Unsafe,
            -3 => UnsafePoint::Restart1,
            -4 => UnsafePoint::Restart2,
            -5 => UnsafePoint::RestartAtEntry,
            v => UnsafePoint::Other(v),
        }
    }
}

/// Iterator over a pc-value table's runs. Ends at the table's terminator, at the end of the
/// data, at the function's end, or at the first malformed varint — never loops forever, because
/// every step consumes at least one byte.
#[derive(Debug, Clone)]
pub struct PcValues<'a> {
    data: &'a [u8],
    pos: usize,
    pc: u64,
    end: u64,
    value: i32,
    quantum: u64,
    first: bool,
    done: bool,
}

impl Iterator for PcValues<'_> {
    type Item = PcValue;

    fn next(&mut self) -> Option<PcValue> {
        if self.done {
            return None;
        }
        let Some(uvdelta) = read_varint(self.data, &mut self.pos) else {
            self.done = true;
            return None;
        };
        if uvdelta == 0 && !self.first {
            self.done = true;
            return None;
        }
        self.first = false;
        let vdelta = if uvdelta & 1 != 0 {
            !(uvdelta >> 1) as i32
        } else {
            (uvdelta >> 1) as i32
        };
        self.value = self.value.wrapping_add(vdelta);
        let Some(pcdelta) = read_varint(self.data, &mut self.pos) else {
            self.done = true;
            return None;
        };
        let start = self.pc;
        self.pc = self
            .pc
            .saturating_add(u64::from(pcdelta).saturating_mul(self.quantum));
        if self.pc >= self.end {
            // A well-formed table ends exactly at the function's end; never run past it.
            self.pc = self.pc.min(self.end.max(start));
            self.done = true;
        }
        Some(PcValue {
            pcs: start..self.pc,
            value: self.value,
        })
    }
}

/// Reads an unsigned LEB128 varint of at most 32 bits.
fn read_varint(data: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u32::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(data: &[u8], off: usize) -> Option<u64> {
    let b = data.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// The NUL-terminated string at `off`, at most [`MAX_NAME`] bytes, lossily decoded.
fn cstr_at(data: &[u8], off: usize) -> Option<String> {
    let rest = data.get(off..)?;
    let rest = &rest[..rest.len().min(MAX_NAME)];
    let len = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..len]).into_owned())
}

/// What the header says, before the function table is checked.
struct Header {
    version: PclntabVersion,
    quantum: u8,
    nfunc: usize,
    nfiles: usize,
    text_start_word: u64,
    funcname_off: usize,
    cu_off: usize,
    filetab_off: usize,
    pctab_off: usize,
    functab_off: usize,
}

/// Checks the pcHeader at the start of `data`. `Ok(None)` when the bytes are not a pclntab header
/// at all (wrong magic or pads), so scanners can move on.
fn parse_header(data: &[u8], addr: u64) -> Result<Option<Header>, PclntabError> {
    let Some(magic) = u32_at(data, 0) else {
        return Ok(None);
    };
    let bad = |what: &str| PclntabError::Malformed {
        what: what.to_owned(),
        addr,
    };
    if data.len() < 8 || data[4] != 0 || data[5] != 0 {
        return Ok(None);
    }
    let (quantum, ptrsize) = (data[6], data[7]);
    if !matches!(quantum, 1 | 2 | 4) || !matches!(ptrsize, 4 | 8) {
        return Ok(None);
    }
    let version = match magic {
        MAGIC_116 => PclntabVersion::Go116,
        MAGIC_118 => PclntabVersion::Go118,
        MAGIC_120 => PclntabVersion::Go120,
        MAGIC_12 => return Err(PclntabError::TooOld { magic }),
        m if m.swap_bytes() == MAGIC_116
            || m.swap_bytes() == MAGIC_118
            || m.swap_bytes() == MAGIC_120 =>
        {
            return Err(PclntabError::Unsupported("big-endian table".into()))
        }
        _ => return Ok(None),
    };
    if ptrsize != 8 {
        return Err(PclntabError::Unsupported(format!(
            "{ptrsize}-byte pointers (gohook reads amd64)"
        )));
    }
    let word = |i: usize| u64_at(data, 8 + 8 * i).ok_or_else(|| bad("header truncated"));
    let off = |i: usize| -> Result<usize, PclntabError> {
        let v = word(i)?;
        usize::try_from(v)
            .ok()
            .filter(|&o| o <= data.len())
            .ok_or_else(|| bad("header offset outside the table"))
    };
    let count = |i: usize| -> Result<usize, PclntabError> {
        let v = word(i)?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= data.len())
            .ok_or_else(|| bad("absurd function or file count"))
    };
    let nfunc = count(0)?;
    let nfiles = count(1)?;
    let (text_start_word, base) = match version {
        PclntabVersion::Go116 => (0, 2),
        _ => (word(2)?, 3),
    };
    Ok(Some(Header {
        version,
        quantum,
        nfunc,
        nfiles,
        text_start_word,
        funcname_off: off(base)?,
        cu_off: off(base + 1)?,
        filetab_off: off(base + 2)?,
        pctab_off: off(base + 3)?,
        functab_off: off(base + 4)?,
    }))
}

impl Pclntab {
    /// Finds and parses the pclntab of `elf`.
    pub fn from_elf(elf: &ElfFile) -> Result<Self, PclntabError> {
        let mut first_err = None;
        // 1. By section name.
        for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
            if let Some(sec) = elf.section(name) {
                if sec.is_nobits() {
                    continue;
                }
                let Some(start) = usize::try_from(sec.offset).ok() else {
                    continue;
                };
                let Some(end) = usize::try_from(sec.size)
                    .ok()
                    .and_then(|s| start.checked_add(s))
                else {
                    continue;
                };
                if end > elf.bytes().len() {
                    first_err.get_or_insert(PclntabError::Malformed {
                        what: format!("section {name} extends past the end of the file"),
                        addr: sec.addr,
                    });
                    continue;
                }
                match Self::at(
                    elf,
                    start..end,
                    sec.addr,
                    PclntabSource::Section(name.to_owned()),
                ) {
                    Ok(Some(t)) => return Ok(t),
                    Ok(None) => {
                        first_err.get_or_insert(PclntabError::Malformed {
                            what: format!("section {name} does not start with a pclntab header"),
                            addr: sec.addr,
                        });
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        // 2. By symbol (PIE with external linking keeps symbols unless stripped).
        if let Some(sym) = elf.symbol("runtime.pclntab") {
            let end_addr = elf.symbol("runtime.epclntab").map(|s| s.value);
            if let Some(range) = file_range(elf, sym.value, end_addr) {
                match Self::at(elf, range, sym.value, PclntabSource::Symbol) {
                    Ok(Some(t)) => return Ok(t),
                    Ok(None) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        // 3. By scanning non-executable segments (read-only ones first).
        let mut segs: Vec<_> = elf.segments.iter().filter(|s| s.flags & 1 == 0).collect();
        segs.sort_by_key(|s| s.flags & 2);
        for seg in segs {
            let Some(start) = usize::try_from(seg.offset).ok() else {
                continue;
            };
            let Some(end) = usize::try_from(seg.filesz)
                .ok()
                .and_then(|s| start.checked_add(s))
            else {
                continue;
            };
            let Some(bytes) = elf.bytes().get(start..end) else {
                continue;
            };
            // The header is pointer-aligned in the file as in memory (offset ≡ vaddr mod align).
            let skew = (8 - (seg.vaddr % 8) as usize) % 8;
            let mut i = skew;
            while i + 8 <= bytes.len() {
                let m = u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
                if matches!(m, MAGIC_116 | MAGIC_118 | MAGIC_120 | MAGIC_12) {
                    let addr = seg.vaddr + i as u64;
                    match Self::at(elf, start + i..end, addr, PclntabSource::Scan) {
                        Ok(Some(t)) => return Ok(t),
                        Ok(None) => {}
                        Err(e @ PclntabError::TooOld { .. }) => {
                            first_err.get_or_insert(e);
                        }
                        // A random word matching the magic is not evidence of anything.
                        Err(_) => {}
                    }
                }
                i += 8;
            }
        }
        Err(first_err.unwrap_or(PclntabError::NotFound))
    }

    /// Parses the table occupying `file` (a range of the ELF's bytes) at virtual address `addr`.
    fn at(
        elf: &ElfFile,
        file: Range<usize>,
        addr: u64,
        source: PclntabSource,
    ) -> Result<Option<Self>, PclntabError> {
        let data = elf
            .bytes()
            .get(file.clone())
            .ok_or(PclntabError::NotFound)?;
        let Some(h) = parse_header(data, addr)? else {
            return Ok(None);
        };
        let bad = |what: String| PclntabError::Malformed { what, addr };
        let field = if h.version == PclntabVersion::Go116 {
            8
        } else {
            4
        };
        let functab_len = h
            .nfunc
            .checked_mul(2)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(field))
            .ok_or_else(|| bad("function count overflows".into()))?;
        if h.functab_off
            .checked_add(functab_len)
            .is_none_or(|e| e > data.len())
        {
            return Err(bad(format!(
                "function table of {} entries does not fit",
                h.nfunc
            )));
        }
        if h.nfunc == 0 {
            return Err(bad("no functions".into()));
        }
        let mut t = Pclntab {
            elf: elf.clone(),
            file,
            header_addr: addr,
            version: h.version,
            quantum: h.quantum,
            nfunc: h.nfunc,
            nfiles: h.nfiles,
            text_start: 0,
            text_start_source: TextStartSource::Absolute,
            source,
            funcname_off: h.funcname_off,
            cu_off: h.cu_off,
            filetab_off: h.filetab_off,
            pctab_off: h.pctab_off,
            functab_off: h.functab_off,
        };
        if h.version != PclntabVersion::Go116 {
            (t.text_start, t.text_start_source) = t.resolve_text_start(h.text_start_word);
        }
        // The function table must be sorted and every record must lie inside the table, so
        // that later lookups (binary search, per-function reads) can trust it.
        let mut prev = 0u64;
        for i in 0..=t.nfunc {
            let entry = t
                .functab_entry(i)
                .ok_or_else(|| bad(format!("function table entry {i} unreadable")))?;
            if entry < prev {
                return Err(bad(format!("function table not sorted at entry {i}")));
            }
            prev = entry;
            if i < t.nfunc {
                let off = t
                    .funcoff(i)
                    .ok_or_else(|| bad(format!("function record {i} outside the table")))?;
                if off >= t.data().len() - t.functab_off {
                    return Err(bad(format!("function record {i} outside the table")));
                }
            }
        }
        Ok(Some(t))
    }

    /// Decides where Go text starts for 1.18+ entry offsets.
    fn resolve_text_start(&self, header_word: u64) -> (u64, TextStartSource) {
        let elf = &self.elf;
        let in_exec = |a: u64| {
            elf.segments
                .iter()
                .any(|s| s.flags & 1 != 0 && a >= s.vaddr && a - s.vaddr < s.memsz)
        };
        if header_word != 0 && in_exec(header_word) {
            return (header_word, TextStartSource::Header);
        }
        if let Some(s) = elf.symbol("runtime.text") {
            if in_exec(s.value) {
                return (s.value, TextStartSource::Symbol);
            }
        }
        if let Some(text) = self.moduledata_text() {
            if in_exec(text) {
                return (text, TextStartSource::Moduledata);
            }
        }
        let text = elf
            .section(".text")
            .map(|s| s.addr)
            .or_else(|| {
                elf.segments
                    .iter()
                    .find(|s| s.flags & 1 != 0)
                    .map(|s| s.vaddr)
            })
            .unwrap_or(0);
        (text, TextStartSource::TextSection)
    }

    /// The `text` field of the moduledata whose first word points at this pcHeader: found by
    /// scanning writable segments, and trusted only when its `funcnametab` pointer matches too.
    /// Field offsets (pcHeader 0, funcnametab 8, text 176) are the same in Go 1.18 – 1.27
    /// (go-runtime.md §4.2).
    fn moduledata_text(&self) -> Option<u64> {
        let elf = &self.elf;
        let want_names = self.header_addr.checked_add(self.funcname_off as u64)?;
        for seg in elf
            .segments
            .iter()
            .filter(|s| s.flags & 2 != 0 && s.flags & 1 == 0)
        {
            let start = usize::try_from(seg.offset).ok()?;
            let end = start.checked_add(usize::try_from(seg.filesz).ok()?)?;
            let bytes = elf.bytes().get(start..end)?;
            let skew = (8 - (seg.vaddr % 8) as usize) % 8;
            let mut i = skew;
            while i + 192 <= bytes.len() {
                if u64_at(bytes, i) == Some(self.header_addr)
                    && u64_at(bytes, i + 8) == Some(want_names)
                {
                    let text = u64_at(bytes, i + 176)?;
                    let etext = u64_at(bytes, i + 184)?;
                    if text < etext {
                        return Some(text);
                    }
                }
                i += 8;
            }
        }
        None
    }

    fn data(&self) -> &[u8] {
        // The range was checked against the file when the table was parsed.
        self.elf.bytes().get(self.file.clone()).unwrap_or(&[])
    }

    fn field_size(&self) -> usize {
        if self.version == PclntabVersion::Go116 {
            8
        } else {
            4
        }
    }

    /// Entry address of functab slot `i` (`i == nfunc` is the end-of-text sentinel).
    fn functab_entry(&self, i: usize) -> Option<u64> {
        let fs = self.field_size();
        let off = self.functab_off.checked_add(i.checked_mul(2 * fs)?)?;
        if fs == 8 {
            u64_at(self.data(), off)
        } else {
            Some(
                self.text_start
                    .wrapping_add(u64::from(u32_at(self.data(), off)?)),
            )
        }
    }

    /// Offset of function `i`'s `_func` record from the function table start.
    fn funcoff(&self, i: usize) -> Option<usize> {
        let fs = self.field_size();
        let off = self
            .functab_off
            .checked_add(i.checked_mul(2 * fs)?)?
            .checked_add(fs)?;
        if fs == 8 {
            usize::try_from(u64_at(self.data(), off)?).ok()
        } else {
            usize::try_from(u32_at(self.data(), off)?).ok()
        }
    }

    /// Virtual address of the pcHeader (what `moduledata.pcHeader` points to).
    pub fn header_addr(&self) -> u64 {
        self.header_addr
    }

    /// The layout generation, from the magic.
    pub fn version(&self) -> PclntabVersion {
        self.version
    }

    /// Where the table was found.
    pub fn source(&self) -> &PclntabSource {
        &self.source
    }

    /// Start of Go text: the base of entry offsets (Go 1.18+), or the first function's entry.
    pub fn text_start(&self) -> u64 {
        if self.version == PclntabVersion::Go116 {
            self.functab_entry(0).unwrap_or(0)
        } else {
            self.text_start
        }
    }

    /// How [`Pclntab::text_start`] was established.
    pub fn text_start_source(&self) -> TextStartSource {
        self.text_start_source
    }

    /// The range of Go text the table covers: first entry to the end-of-text sentinel.
    pub fn text_range(&self) -> Range<u64> {
        self.functab_entry(0).unwrap_or(0)..self.functab_entry(self.nfunc).unwrap_or(0)
    }

    /// Instruction-size quantum of pc deltas (1 on amd64).
    pub fn quantum(&self) -> u8 {
        self.quantum
    }

    /// Number of functions in the table.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// True when the table lists no functions (never, for a table that parsed).
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// Number of source files the header announces.
    pub fn nfiles(&self) -> usize {
        self.nfiles
    }

    /// Every function, in entry order. Each item is an error when that function's record is
    /// corrupt; the others are still returned.
    pub fn funcs(&self) -> impl Iterator<Item = Result<Func, PclntabError>> + '_ {
        (0..self.nfunc).map(|i| self.func(i))
    }

    /// Function number `index` in entry order.
    pub fn func(&self, index: usize) -> Result<Func, PclntabError> {
        let badf = |what| PclntabError::BadFunc { index, what };
        if index >= self.nfunc {
            return Err(badf("index past the end of the table"));
        }
        let entry = self.functab_entry(index).ok_or(badf("entry unreadable"))?;
        let end = self
            .functab_entry(index + 1)
            .ok_or(badf("end unreadable"))?;
        let func_off = self
            .funcoff(index)
            .ok_or(badf("record offset unreadable"))?;
        let data = self.data();
        let rec = self
            .functab_off
            .checked_add(func_off)
            .ok_or(badf("record offset overflows"))?;
        let fs = self.field_size();
        let field = |i: usize| u32_at(data, rec + fs + 4 * i).ok_or(badf("record truncated"));
        let name_off = field(0)? as usize;
        let args = field(1)? as i32;
        let deferreturn = field(2)?;
        let pcsp = field(3)?;
        let pcfile = field(4)?;
        let pcln = field(5)?;
        let npcdata = field(6)?;
        let cu_offset = field(7)?;
        let (start_line, tail) = if self.version >= PclntabVersion::Go120 {
            (Some(field(8)? as i32), field(9)?)
        } else {
            (None, field(8)?)
        };
        let [func_id, flag, _, nfuncdata] = tail.to_le_bytes();
        let name = self
            .funcname_off
            .checked_add(name_off)
            .and_then(|o| cstr_at(data, o))
            .ok_or(badf("name outside the name table"))?;
        let mut f = Func {
            index,
            name,
            entry,
            end,
            file: None,
            line: None,
            start_line,
            func_id,
            flag,
            args,
            deferreturn,
            npcdata,
            nfuncdata,
            pcsp,
            pcfile,
            pcln,
            cu_offset,
            func_off,
        };
        f.line = self
            .table(&f, pcln)
            .and_then(|mut t| t.next())
            .map(|v| v.value);
        f.file = self
            .table(&f, pcfile)
            .and_then(|mut t| t.next())
            .and_then(|v| self.file_name(cu_offset, v.value));
        Ok(f)
    }

    /// The function whose code contains `pc`, by binary search over the function table.
    pub fn func_at(&self, pc: u64) -> Option<Func> {
        let (mut lo, mut hi) = (0usize, self.nfunc);
        if pc < self.functab_entry(0)? || pc >= self.functab_entry(self.nfunc)? {
            return None;
        }
        // Invariant: entry(lo) <= pc < entry(hi).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.functab_entry(mid)? <= pc {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.func(lo).ok()
    }

    /// The first function named exactly `name` (linear scan).
    pub fn func_by_name(&self, name: &str) -> Option<Func> {
        self.funcs().filter_map(Result::ok).find(|f| f.name == name)
    }

    /// Iterator over the pc-value table at `off` in the pctab, or `None` when `off` is 0 (no
    /// table) or outside the data.
    fn table(&self, f: &Func, off: u32) -> Option<PcValues<'_>> {
        if off == 0 {
            return None;
        }
        let start = self.pctab_off.checked_add(off as usize)?;
        let data = self.data().get(start..)?;
        Some(PcValues {
            data,
            pos: 0,
            pc: f.entry,
            end: f.end,
            value: -1,
            quantum: u64::from(self.quantum),
            first: true,
            done: false,
        })
    }

    /// The pc → SP-delta table of `f` (frame size at each pc).
    pub fn pcsp(&self, f: &Func) -> Option<PcValues<'_>> {
        self.table(f, f.pcsp)
    }

    /// The pc → file-number table of `f` (file numbers index the compilation unit's files).
    pub fn pcfile(&self, f: &Func) -> Option<PcValues<'_>> {
        self.table(f, f.pcfile)
    }

    /// The pc → line table of `f`.
    pub fn pcln(&self, f: &Func) -> Option<PcValues<'_>> {
        self.table(f, f.pcln)
    }

    /// The PCDATA table number `index` of `f` ([`PCDATA_UNSAFE_POINT`] …), or `None` when the
    /// function has none.
    pub fn pcdata(&self, f: &Func, index: u32) -> Option<PcValues<'_>> {
        if index >= f.npcdata {
            return None;
        }
        let fixed = self.field_size()
            + 4 * if self.version >= PclntabVersion::Go120 {
                10
            } else {
                9
            };
        let at = self
            .functab_off
            .checked_add(f.func_off)?
            .checked_add(fixed)?
            .checked_add(4usize.checked_mul(index as usize)?)?;
        let off = u32_at(self.data(), at)?;
        self.table(f, off)
    }

    /// The value of a table at `pc`, or `None` when `pc` is not covered.
    fn value_in(table: Option<PcValues<'_>>, pc: u64) -> Option<i32> {
        table?.find(|v| v.pcs.contains(&pc)).map(|v| v.value)
    }

    /// The unsafe-point classification at `pc`; `None` when `pc` is in no Go function.
    /// A function without the table is [`UnsafePoint::Safe`] everywhere, as in the runtime.
    pub fn unsafe_point_at(&self, pc: u64) -> Option<UnsafePoint> {
        let f = self.func_at(pc)?;
        match self.pcdata(&f, PCDATA_UNSAFE_POINT) {
            None => Some(UnsafePoint::Safe),
            Some(t) => {
                Some(Self::value_in(Some(t), pc).map_or(UnsafePoint::Safe, UnsafePoint::from_value))
            }
        }
    }

    /// The unsafe-point runs of `f`, covering its code in order. Without a table the whole
    /// function is one [`UnsafePoint::Safe`] run.
    pub fn unsafe_points(&self, f: &Func) -> Vec<(Range<u64>, UnsafePoint)> {
        match self.pcdata(f, PCDATA_UNSAFE_POINT) {
            None => vec![(f.range(), UnsafePoint::Safe)],
            Some(t) => t
                .map(|v| (v.pcs, UnsafePoint::from_value(v.value)))
                .collect(),
        }
    }

    /// The source line at `pc`.
    pub fn line_at(&self, pc: u64) -> Option<i32> {
        let f = self.func_at(pc)?;
        Self::value_in(self.pcln(&f), pc)
    }

    /// The source file at `pc`.
    pub fn file_at(&self, pc: u64) -> Option<String> {
        let f = self.func_at(pc)?;
        let fileno = Self::value_in(self.pcfile(&f), pc)?;
        self.file_name(f.cu_offset, fileno)
    }

    /// The SP delta (bytes of frame below the entry SP) at `pc`.
    pub fn sp_delta_at(&self, pc: u64) -> Option<i32> {
        let f = self.func_at(pc)?;
        Self::value_in(self.pcsp(&f), pc)
    }

    /// File `fileno` of compilation unit `cu`: `cutab[cu + fileno]` is an offset into the filetab.
    fn file_name(&self, cu: u32, fileno: i32) -> Option<String> {
        let fileno = u32::try_from(fileno).ok()?;
        let idx = (cu as usize).checked_add(fileno as usize)?;
        let at = self.cu_off.checked_add(idx.checked_mul(4)?)?;
        let off = u32_at(self.data(), at)?;
        if off == u32::MAX {
            return None;
        }
        cstr_at(self.data(), self.filetab_off.checked_add(off as usize)?)
    }
}

/// The file bytes from `addr` to `end` (or to the end of its segment's file part).
fn file_range(elf: &ElfFile, addr: u64, end: Option<u64>) -> Option<Range<usize>> {
    let seg = elf
        .segments
        .iter()
        .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)?;
    let seg_end = seg.vaddr.checked_add(seg.filesz)?;
    let end = end.filter(|&e| e > addr && e <= seg_end).unwrap_or(seg_end);
    let start = usize::try_from(seg.offset.checked_add(addr - seg.vaddr)?).ok()?;
    let len = usize::try_from(end - addr).ok()?;
    let r = start..start.checked_add(len)?;
    (r.end <= elf.bytes().len()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_and_overlong_ones_are_refused() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0x96, 0x01], &mut pos), Some(150));
        assert_eq!(pos, 2);
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], &mut pos),
            None
        );
        let mut pos = 0;
        assert_eq!(read_varint(&[0x80], &mut pos), None);
    }

    fn values(bytes: &[u8], end: u64) -> Vec<(Range<u64>, i32)> {
        let t = PcValues {
            data: bytes,
            pos: 0,
            pc: 0x1000,
            end,
            value: -1,
            quantum: 1,
            first: true,
            done: false,
        };
        t.map(|v| (v.pcs, v.value)).collect()
    }

    #[test]
    fn pc_value_tables_decode_zigzag_deltas_from_minus_one() {
        // value -1 + 1 = 0 for 4 bytes; +8 → 8 for 6 bytes; -8 → 0 for 2 bytes; terminator.
        let t = [0x02, 0x04, 0x10, 0x06, 0x0f, 0x02, 0x00];
        assert_eq!(
            values(&t, 0x100c),
            vec![
                (0x1000..0x1004, 0),
                (0x1004..0x100a, 8),
                (0x100a..0x100c, 0)
            ]
        );
    }

    #[test]
    fn a_first_zero_delta_is_a_value_not_the_terminator() {
        // UnsafePoint -1 for the whole function: first uvdelta is 0.
        assert_eq!(
            values(&[0x00, 0x05, 0x00], 0x1005),
            vec![(0x1000..0x1005, -1)]
        );
    }

    #[test]
    fn a_table_running_past_the_function_stops_at_its_end() {
        let t = [0x02, 0x7f, 0x02, 0x7f, 0x02, 0x7f];
        assert_eq!(values(&t, 0x1010), vec![(0x1000..0x1010, 0)]);
        // Endless continuation bytes end the iteration too.
        assert!(values(&[0xff; 64], 0x2000).is_empty());
    }

    #[test]
    fn headers_are_validated_before_being_trusted() {
        let mut h = vec![0u8; 80];
        h[..4].copy_from_slice(&MAGIC_12.to_le_bytes());
        h[6] = 1;
        h[7] = 8;
        assert!(matches!(
            parse_header(&h, 0),
            Err(PclntabError::TooOld { .. })
        ));
        h[..4].copy_from_slice(&MAGIC_120.to_le_bytes());
        h[4] = 1;
        assert!(
            matches!(parse_header(&h, 0), Ok(None)),
            "non-zero pad accepted"
        );
        h[4] = 0;
        h[8] = 0xff; // nfunc far larger than the table
        h[9] = 0xff;
        h[10] = 0xff;
        assert!(matches!(
            parse_header(&h, 0),
            Err(PclntabError::Malformed { .. })
        ));
        h[7] = 4;
        assert!(matches!(
            parse_header(&h, 0),
            Err(PclntabError::Unsupported(_))
        ));
    }
}
