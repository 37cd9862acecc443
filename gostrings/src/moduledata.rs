//! The runtime's `moduledata`: the per-binary table that ties the pclntab, the text range and
//! the runtime type metadata together. Found without symbols by scanning writable data for a
//! pointer to the pcHeader and keeping only the candidates whose fields agree with the pclntab
//! and the ELF layout, so a stripped binary yields the same answer as `runtime.firstmoduledata`.
//!
//! Also here: the offsets in the runtime's `g` (goroutine) and `m` structs that a hook needs to
//! identify the goroutine it runs on, per Go release.

use std::ops::Range;

use crate::elf::ElfFile;
use crate::gotype::{Field, Shape, TypeId, TypeTable};
use crate::memory::{MemError, MemoryReader};
use crate::version::GoVersion;

/// Why the moduledata could not be found or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleDataError {
    /// The pcHeader itself could not be read.
    #[error("cannot read the pcHeader at {addr:#x}: {source}")]
    PcHeader {
        /// The pcHeader address given.
        addr: u64,
        /// The failed read.
        #[source]
        source: MemError,
    },
    /// The pcHeader magic is not one of Go 1.18 – 1.27's.
    #[error("pcHeader at {addr:#x} has magic {magic:#x}; gohook reads the moduledata of Go 1.18 and later")]
    UnsupportedPclntab {
        /// The pcHeader address given.
        addr: u64,
        /// The magic found.
        magic: u32,
    },
    /// No word in the searched data pointed at the pcHeader with consistent fields.
    #[error(
        "no moduledata found: {candidates} word(s) in {regions} writable region(s) point at the \
         pcHeader {pc_header:#x}, none with consistent fields{}",
        last_reason.as_ref().map(|r| format!(" (last rejected: {r})")).unwrap_or_default()
    )]
    NotFound {
        /// The pcHeader address searched for.
        pc_header: u64,
        /// Number of regions scanned.
        regions: usize,
        /// Words equal to the pcHeader address that were examined.
        candidates: usize,
        /// Why the last candidate was rejected.
        last_reason: Option<String>,
    },
    /// Several candidates passed validation in the same region: refuse to guess.
    #[error("ambiguous moduledata: valid candidates at {0:x?}")]
    Ambiguous(Vec<u64>),
    /// The moduledata at a given address is inconsistent with the pclntab or the binary.
    #[error("moduledata at {addr:#x} is not valid: {reason}")]
    Invalid {
        /// Address examined.
        addr: u64,
        /// The first failed invariant of each layout tried.
        reason: String,
    },
    /// A table the moduledata points at (typelinks, itablinks) could not be read.
    #[error("cannot read moduledata.{what}: {source}")]
    Table {
        /// Which table.
        what: &'static str,
        /// The failed read.
        #[source]
        source: MemError,
    },
}

/// The generations of `runtime.moduledata` layout that gohook reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModuleLayout {
    /// Go 1.18 – 1.19: `gofunc` added, no coverage counters.
    Go118,
    /// Go 1.20 – 1.25: `covctrs`/`ecovctrs` added before `end`.
    Go120,
    /// Go 1.26: `epclntab` added after `gofunc`; moduledata moves to `.go.module`.
    Go126,
    /// Go 1.27: typelinks and itablinks replaced by `typedesclen`, `itaboffset`, `itabsize`.
    Go127,
}

impl ModuleLayout {
    /// Every layout, newest first (the order candidates are tried in without a version).
    pub const ALL: [ModuleLayout; 4] = [
        ModuleLayout::Go127,
        ModuleLayout::Go126,
        ModuleLayout::Go120,
        ModuleLayout::Go118,
    ];

    /// The layout a Go release uses, or `None` before Go 1.18.
    pub fn for_version(v: &GoVersion) -> Option<ModuleLayout> {
        if v.major != 1 {
            return if v.major > 1 {
                Some(ModuleLayout::Go127)
            } else {
                None
            };
        }
        Some(match v.minor {
            0..=17 => return None,
            18..=19 => ModuleLayout::Go118,
            20..=25 => ModuleLayout::Go120,
            26 => ModuleLayout::Go126,
            _ => ModuleLayout::Go127,
        })
    }

    fn offsets(self) -> LayoutOffsets {
        match self {
            ModuleLayout::Go118 => LayoutOffsets {
                end: 256,
                types: 280,
                etypes: 288,
                typedesclen: None,
                itaboffset: None,
                rodata: 296,
                gofunc: 304,
                epclntab: None,
                textsectmap: 312,
                typelinks: Some(336),
                itablinks: Some(360),
            },
            ModuleLayout::Go120 => LayoutOffsets {
                end: 272,
                types: 296,
                etypes: 304,
                typedesclen: None,
                itaboffset: None,
                rodata: 312,
                gofunc: 320,
                epclntab: None,
                textsectmap: 328,
                typelinks: Some(352),
                itablinks: Some(376),
            },
            ModuleLayout::Go126 => LayoutOffsets {
                end: 272,
                types: 296,
                etypes: 304,
                typedesclen: None,
                itaboffset: None,
                rodata: 312,
                gofunc: 320,
                epclntab: Some(328),
                textsectmap: 336,
                typelinks: Some(360),
                itablinks: Some(384),
            },
            ModuleLayout::Go127 => LayoutOffsets {
                end: 272,
                types: 296,
                etypes: 312,
                typedesclen: Some(304),
                itaboffset: Some(320),
                rodata: 336,
                gofunc: 344,
                epclntab: Some(352),
                textsectmap: 360,
                typelinks: None,
                itablinks: None,
            },
        }
    }
}

/// Field offsets of one layout (`runtime/symtab.go` `moduledata`), from the Go sources of each
/// release and cross-checked against DWARF; used only together with the invariants in
/// [`ModuleData::at`].
struct LayoutOffsets {
    end: usize,
    types: usize,
    etypes: usize,
    typedesclen: Option<usize>,
    /// `itaboffset`, followed by `itabsize`.
    itaboffset: Option<usize>,
    rodata: usize,
    gofunc: usize,
    epclntab: Option<usize>,
    textsectmap: usize,
    typelinks: Option<usize>,
    itablinks: Option<usize>,
}

/// Offsets common to every layout since Go 1.18 (the fields before `end`).
mod common {
    pub const PC_HEADER: usize = 0;
    pub const FUNCNAMETAB: usize = 8;
    pub const CUTAB: usize = 32;
    pub const FILETAB: usize = 56;
    pub const PCTAB: usize = 80;
    pub const PCLNTABLE: usize = 104;
    pub const FTAB: usize = 128;
    pub const MINPC: usize = 160;
    pub const MAXPC: usize = 168;
    pub const TEXT: usize = 176;
    pub const ETEXT: usize = 184;
    pub const NOPTRDATA: usize = 192;
    pub const DATA: usize = 208;
    pub const BSS: usize = 224;
    pub const NOPTRBSS: usize = 240;
}

/// How many bytes of a candidate are read: enough for every field any layout uses.
const WINDOW: usize = 416;
/// Most typelinks accepted (real binaries have tens of thousands at most).
const MAX_TYPELINKS: u64 = 1 << 20;
/// Most itablinks accepted.
const MAX_ITABLINKS: u64 = 1 << 20;
/// Most text sections accepted (one per 256 MiB or so of text).
const MAX_TEXTSECTS: u64 = 1024;
/// Most bytes scanned for candidates in all regions together.
const MAX_SCAN_BYTES: u64 = 1 << 30;
/// Scan chunk size.
const CHUNK: u64 = 1 << 20;

/// A `[start, end)` slice header read from the moduledata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SliceHeader {
    /// Address of element 0.
    pub ptr: u64,
    /// Length in elements.
    pub len: u64,
    /// Capacity in elements.
    pub cap: u64,
}

/// One entry of `moduledata.textsectmap`: where a text section of the binary lives, used to
/// resolve method `TextOff`s when the linker split text into several sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextSect {
    /// Section start, relative to `text`.
    pub vaddr: u64,
    /// Section end, relative to `text`.
    pub end: u64,
    /// Section start as an address.
    pub baseaddr: u64,
}

/// The fields of `runtime.moduledata` that gohook uses, read from one binary or process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleData {
    /// Where the moduledata itself is.
    pub addr: u64,
    /// Which layout it was read with.
    pub layout: ModuleLayout,
    /// The pcHeader (start of the pclntab).
    pub pc_header: u64,
    /// Function name table.
    pub funcnametab: SliceHeader,
    /// The pclntab's function table (`nfunc + 1` entries).
    pub ftab: SliceHeader,
    /// Lowest Go function entry.
    pub minpc: u64,
    /// End of the last Go function.
    pub maxpc: u64,
    /// Start of Go text (`runtime.text`).
    pub text: u64,
    /// End of Go text (`runtime.etext`).
    pub etext: u64,
    /// `noptrdata`..`enoptrdata`.
    pub noptrdata: Range<u64>,
    /// `data`..`edata`.
    pub data: Range<u64>,
    /// `bss`..`ebss`.
    pub bss: Range<u64>,
    /// `noptrbss`..`enoptrbss`.
    pub noptrbss: Range<u64>,
    /// End of the module's data (`runtime.end`).
    pub end: u64,
    /// Start of the type metadata area; `NameOff`/`TypeOff` are relative to it.
    pub types: u64,
    /// End of the type metadata area.
    pub etypes: u64,
    /// Start of read-only data.
    pub rodata: u64,
    /// Base of FUNCDATA offsets (`go:func.*`).
    pub gofunc: u64,
    /// End of the pclntab (Go 1.26+).
    pub epclntab: Option<u64>,
    /// Text sections, for resolving method `TextOff`s.
    pub textsectmap: Vec<TextSect>,
    /// Offsets from `types` of the typelinked descriptors, sorted by type string (Go ≤ 1.26).
    pub typelinks: Vec<i32>,
    /// Addresses of the precompiled itabs (Go ≤ 1.26).
    pub itablinks: Vec<u64>,
    /// Go 1.27: bytes from `types` covered by the typelinked descriptors (sorted by string).
    pub typedesclen: Option<u64>,
    /// Go 1.27: offset from `types` of the precompiled itabs.
    pub itaboffset: Option<u64>,
    /// Go 1.27: total size of the precompiled itabs.
    pub itabsize: Option<u64>,
}

/// Where to look for the moduledata and what the text range must be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchSpace {
    /// Writable ranges to scan, most likely first. Scanning stops at the first range that
    /// holds a valid candidate.
    pub regions: Vec<Range<u64>>,
    /// Executable ranges: `text..etext` must lie inside one of them when any is given.
    pub exec: Vec<Range<u64>>,
}

impl SearchSpace {
    /// The search space of a binary at its link-time addresses: `.go.module` (Go 1.26+), then
    /// `.noptrdata` (Go ≤ 1.25), then every writable `PT_LOAD` segment; text must lie in an
    /// executable segment.
    pub fn from_elf(elf: &ElfFile) -> SearchSpace {
        let mut regions = Vec::new();
        for name in [".go.module", ".noptrdata"] {
            if let Some(s) = elf.section(name) {
                if !s.is_nobits() && s.size > 0 {
                    regions.push(s.vm_range());
                }
            }
        }
        for seg in &elf.segments {
            if seg.flags & 2 != 0 && seg.filesz > 0 {
                regions.push(seg.vaddr..seg.vaddr.saturating_add(seg.filesz));
            }
        }
        let exec = elf
            .segments
            .iter()
            .filter(|s| s.flags & 1 != 0)
            .map(|s| s.vaddr..s.vaddr.saturating_add(s.memsz))
            .collect();
        SearchSpace { regions, exec }
    }

    /// The same space shifted by a load bias (a PIE process mapped away from its link address).
    pub fn shifted(&self, bias: u64) -> SearchSpace {
        let sh = |r: &Range<u64>| r.start.wrapping_add(bias)..r.end.wrapping_add(bias);
        SearchSpace {
            regions: self.regions.iter().map(sh).collect(),
            exec: self.exec.iter().map(sh).collect(),
        }
    }
}

/// The pcHeader fields the moduledata must agree with.
#[derive(Debug, Clone, Copy)]
struct PcHeader {
    addr: u64,
    magic: u32,
    nfunc: u64,
    funcname: u64,
    cu: u64,
    filetab: u64,
    pctab: u64,
    pcln: u64,
}

impl PcHeader {
    fn read<M: MemoryReader + ?Sized>(mem: &M, addr: u64) -> Result<PcHeader, ModuleDataError> {
        let mut b = [0u8; 72];
        mem.read(addr, &mut b)
            .map_err(|source| ModuleDataError::PcHeader { addr, source })?;
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if magic != 0xffff_fff0 && magic != 0xffff_fff1 {
            return Err(ModuleDataError::UnsupportedPclntab { addr, magic });
        }
        let w = |i: usize| word(&b, i);
        Ok(PcHeader {
            addr,
            magic,
            nfunc: w(8),
            funcname: w(32),
            cu: w(40),
            filetab: w(48),
            pctab: w(56),
            pcln: w(64),
        })
    }
}

fn word(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
        .unwrap_or(0)
}

fn slice_at(b: &[u8], off: usize) -> SliceHeader {
    SliceHeader {
        ptr: word(b, off),
        len: word(b, off + 8),
        cap: word(b, off + 16),
    }
}

impl ModuleData {
    /// Finds the moduledata of an ELF binary at its link-time addresses, given the address of
    /// its pcHeader (`Pclntab::header_addr`). `version` (from buildinfo) narrows the layouts
    /// tried; the answer is validated by invariants either way.
    pub fn from_elf(
        elf: &ElfFile,
        pc_header: u64,
        version: Option<&GoVersion>,
    ) -> Result<Self, ModuleDataError> {
        Self::find(elf, pc_header, &SearchSpace::from_elf(elf), version)
    }

    /// Scans `space.regions` for a pointer to `pc_header` and returns the one candidate whose
    /// fields are consistent with the pclntab and the executable ranges.
    pub fn find<M: MemoryReader + ?Sized>(
        mem: &M,
        pc_header: u64,
        space: &SearchSpace,
        version: Option<&GoVersion>,
    ) -> Result<Self, ModuleDataError> {
        let hdr = PcHeader::read(mem, pc_header)?;
        let needle = pc_header.to_le_bytes();
        let mut candidates = 0usize;
        let mut last_reason = None;
        let mut scanned = 0u64;
        let mut seen = std::collections::HashSet::new();
        for region in &space.regions {
            let mut valid: Vec<ModuleData> = Vec::new();
            let Some(start) = region.start.checked_next_multiple_of(8) else {
                continue;
            };
            let mut at = start;
            while at < region.end && scanned < MAX_SCAN_BYTES {
                let len = (region.end - at).min(CHUNK) & !7;
                if len == 0 {
                    break;
                }
                scanned += len;
                let buf = match mem.read_vec(at, len, CHUNK) {
                    Ok(b) => b,
                    Err(_) => {
                        at += len;
                        continue;
                    }
                };
                for (i, w) in buf.chunks_exact(8).enumerate() {
                    if w != needle {
                        continue;
                    }
                    let cand = at + 8 * i as u64;
                    if !seen.insert(cand) {
                        continue;
                    }
                    candidates += 1;
                    match Self::validate_any(mem, cand, &hdr, space, version) {
                        Ok(md) => valid.push(md),
                        Err(e) => last_reason = Some(e),
                    }
                }
                at += len;
            }
            match valid.len() {
                0 => continue,
                1 => return Ok(valid.remove(0)),
                _ => {
                    return Err(ModuleDataError::Ambiguous(
                        valid.iter().map(|m| m.addr).collect(),
                    ))
                }
            }
        }
        Err(ModuleDataError::NotFound {
            pc_header,
            regions: space.regions.len(),
            candidates,
            last_reason,
        })
    }

    fn validate_any<M: MemoryReader + ?Sized>(
        mem: &M,
        addr: u64,
        hdr: &PcHeader,
        space: &SearchSpace,
        version: Option<&GoVersion>,
    ) -> Result<ModuleData, String> {
        let layouts: Vec<ModuleLayout> = match version.and_then(ModuleLayout::for_version) {
            Some(l) => vec![l],
            None => ModuleLayout::ALL.to_vec(),
        };
        // The pclntab magic splits the releases: 0xfffffff0 is 1.18/1.19, 0xfffffff1 later.
        let go118 = hdr.magic == 0xffff_fff0;
        let layouts: Vec<ModuleLayout> = layouts
            .into_iter()
            .filter(|&l| (l == ModuleLayout::Go118) == go118)
            .collect();
        let mut buf = [0u8; WINDOW];
        mem.read(addr, &mut buf).map_err(|e| e.to_string())?;
        let mut reasons = Vec::new();
        let mut ok = Vec::new();
        for layout in layouts {
            match Self::parse(mem, addr, &buf, layout, hdr, space) {
                Ok(md) => ok.push(md),
                Err(r) => reasons.push(format!("{layout:?}: {r}")),
            }
        }
        match ok.len() {
            1 => Ok(ok.remove(0)),
            0 => Err(reasons.join("; ")),
            _ => Err(format!(
                "fits several layouts: {:?}",
                ok.iter().map(|m| m.layout).collect::<Vec<_>>()
            )),
        }
    }

    /// Reads and validates the moduledata at a known address (for example the
    /// `runtime.firstmoduledata` symbol) with the layout for `version`, or with whichever single
    /// layout fits when `version` is `None`.
    pub fn at<M: MemoryReader + ?Sized>(
        mem: &M,
        addr: u64,
        pc_header: u64,
        space: &SearchSpace,
        version: Option<&GoVersion>,
    ) -> Result<Self, ModuleDataError> {
        let hdr = PcHeader::read(mem, pc_header)?;
        Self::validate_any(mem, addr, &hdr, space, version)
            .map_err(|reason| ModuleDataError::Invalid { addr, reason })
    }

    fn parse<M: MemoryReader + ?Sized>(
        mem: &M,
        addr: u64,
        b: &[u8],
        layout: ModuleLayout,
        hdr: &PcHeader,
        space: &SearchSpace,
    ) -> Result<ModuleData, String> {
        use common::*;
        let o = layout.offsets();
        let check = |cond: bool, why: &str| if cond { Ok(()) } else { Err(why.to_owned()) };
        // The pclntab sub-slices must point where the pcHeader says.
        check(word(b, PC_HEADER) == hdr.addr, "pcHeader pointer differs")?;
        let funcnametab = slice_at(b, FUNCNAMETAB);
        let expect = |off: u64| hdr.addr.checked_add(off);
        check(
            Some(funcnametab.ptr) == expect(hdr.funcname),
            "funcnametab is not at pcHeader+funcnameOffset",
        )?;
        check(
            Some(slice_at(b, CUTAB).ptr) == expect(hdr.cu),
            "cutab is not at pcHeader+cuOffset",
        )?;
        check(
            Some(slice_at(b, FILETAB).ptr) == expect(hdr.filetab),
            "filetab is not at pcHeader+filetabOffset",
        )?;
        check(
            Some(slice_at(b, PCTAB).ptr) == expect(hdr.pctab),
            "pctab is not at pcHeader+pctabOffset",
        )?;
        let pclntable = slice_at(b, PCLNTABLE);
        check(
            Some(pclntable.ptr) == expect(hdr.pcln),
            "pclntable is not at pcHeader+pclnOffset",
        )?;
        for (name, off) in [
            ("funcnametab", FUNCNAMETAB),
            ("cutab", CUTAB),
            ("filetab", FILETAB),
            ("pctab", PCTAB),
        ] {
            let s = slice_at(b, off);
            check(s.len <= s.cap, &format!("{name} len > cap"))?;
        }
        check(pclntable.len <= pclntable.cap, "pclntable len > cap")?;
        let ftab = slice_at(b, FTAB);
        check(ftab.len <= ftab.cap, "ftab len > cap")?;
        check(
            hdr.nfunc.checked_add(1) == Some(ftab.len),
            "ftab length is not nfunc+1",
        )?;
        let pcln_end = pclntable
            .ptr
            .checked_add(pclntable.len)
            .ok_or("pclntable overflows")?;
        check(
            ftab.ptr >= pclntable.ptr && ftab.ptr < pcln_end,
            "ftab lies outside pclntable",
        )?;
        // Text.
        let (minpc, maxpc, text, etext) = (
            word(b, MINPC),
            word(b, MAXPC),
            word(b, TEXT),
            word(b, ETEXT),
        );
        check(text < etext, "text >= etext")?;
        check(
            text <= minpc && minpc <= maxpc && maxpc <= etext,
            "minpc/maxpc outside text..etext",
        )?;
        if !space.exec.is_empty() {
            check(
                space.exec.iter().any(|r| r.start <= text && etext <= r.end),
                "text..etext is not inside an executable segment",
            )?;
        }
        let range = |off: usize| word(b, off)..word(b, off + 8);
        let (noptrdata, data, bss, noptrbss) =
            (range(NOPTRDATA), range(DATA), range(BSS), range(NOPTRBSS));
        for (name, r) in [
            ("noptrdata", &noptrdata),
            ("data", &data),
            ("bss", &bss),
            ("noptrbss", &noptrbss),
        ] {
            check(r.start <= r.end, &format!("{name} start > end"))?;
        }
        let end = word(b, o.end);
        check(noptrbss.end <= end || end == 0, "end before enoptrbss")?;
        // Types.
        let (types, etypes) = (word(b, o.types), word(b, o.etypes));
        check(types != 0 && types < etypes, "types >= etypes")?;
        check(etypes - types <= 1 << 32, "type area over 4 GiB")?;
        check(
            mem.read_u8(types).is_ok() && mem.read_u8(etypes - 1).is_ok(),
            "type area is not readable",
        )?;
        let (rodata, gofunc) = (word(b, o.rodata), word(b, o.gofunc));
        check(rodata != 0 && gofunc != 0, "rodata or gofunc is zero")?;
        let tysize = etypes - types;
        let typedesclen = o.typedesclen.map(|off| word(b, off));
        if let Some(t) = typedesclen {
            check(t <= tysize, "typedesclen beyond etypes")?;
        }
        let (itaboffset, itabsize) = match o.itaboffset {
            Some(off) => {
                let (io, is) = (word(b, off), word(b, off + 8));
                check(
                    io.checked_add(is).is_some_and(|e| e <= tysize),
                    "itabs beyond etypes",
                )?;
                (Some(io), Some(is))
            }
            None => (None, None),
        };
        let epclntab = o.epclntab.map(|off| word(b, off));
        if let Some(e) = epclntab {
            check(
                e >= pcln_end && e - hdr.addr <= 1 << 32,
                "epclntab is not after pclntable",
            )?;
        }
        // Slices after the fixed fields.
        let tsm = slice_at(b, o.textsectmap);
        check(
            tsm.len == tsm.cap && tsm.len >= 1 && tsm.len <= MAX_TEXTSECTS,
            "textsectmap length is implausible",
        )?;
        let textsectmap = read_textsects(mem, tsm).map_err(|e| format!("textsectmap: {e}"))?;
        check(
            textsectmap
                .first()
                .is_some_and(|t| t.vaddr == 0 && t.baseaddr == text),
            "textsectmap[0] does not start at text",
        )?;
        let typelinks = match o.typelinks {
            Some(off) => {
                let s = slice_at(b, off);
                check(
                    s.len == s.cap && s.len <= MAX_TYPELINKS,
                    "typelinks length is implausible",
                )?;
                let raw = mem
                    .read_vec(s.ptr, s.len * 4, MAX_TYPELINKS * 4)
                    .map_err(|e| format!("typelinks: {e}"))?;
                let v: Vec<i32> = raw
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                check(
                    v.iter().all(|&t| t >= 0 && (t as u64) < tysize),
                    "a typelink points outside the type area",
                )?;
                v
            }
            None => Vec::new(),
        };
        let itablinks = match o.itablinks {
            Some(off) => {
                let s = slice_at(b, off);
                check(
                    s.len == s.cap && s.len <= MAX_ITABLINKS,
                    "itablinks length is implausible",
                )?;
                let raw = mem
                    .read_vec(s.ptr, s.len * 8, MAX_ITABLINKS * 8)
                    .map_err(|e| format!("itablinks: {e}"))?;
                raw.chunks_exact(8).map(|c| word(c, 0)).collect()
            }
            None => Vec::new(),
        };
        Ok(ModuleData {
            addr,
            layout,
            pc_header: hdr.addr,
            funcnametab,
            ftab,
            minpc,
            maxpc,
            text,
            etext,
            noptrdata,
            data,
            bss,
            noptrbss,
            end,
            types,
            etypes,
            rodata,
            gofunc,
            epclntab,
            textsectmap,
            typelinks,
            itablinks,
            typedesclen,
            itaboffset,
            itabsize,
        })
    }

    /// The type metadata area `types..etypes`.
    pub fn type_area(&self) -> Range<u64> {
        self.types..self.etypes
    }

    /// Go text, `text..etext`.
    pub fn text_range(&self) -> Range<u64> {
        self.text..self.etext
    }
}

fn read_textsects<M: MemoryReader + ?Sized>(
    mem: &M,
    s: SliceHeader,
) -> Result<Vec<TextSect>, MemError> {
    let raw = mem.read_vec(s.ptr, s.len.saturating_mul(24), MAX_TEXTSECTS * 24)?;
    Ok(raw
        .chunks_exact(24)
        .map(|c| TextSect {
            vaddr: word(c, 0),
            end: word(c, 8),
            baseaddr: word(c, 16),
        })
        .collect())
}

/// Offsets into the runtime's `g` and `m` structs (linux/amd64) that a hook reads to name the
/// goroutine and thread it runs on (`runtime/runtime2.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GOffsets {
    /// `g.stack.lo`.
    pub stack_lo: u64,
    /// `g.stack.hi`: pairs entries and exits across stack copies (distance from the top).
    pub stack_hi: u64,
    /// `g.stackguard0`: what the prologue's stack check compares SP with.
    pub stackguard0: u64,
    /// `g.m`: the thread running the goroutine.
    pub m: u64,
    /// `g.atomicstatus`.
    pub atomicstatus: u64,
    /// `g.goid`.
    pub goid: u64,
    /// `g.parentGoid` (Go 1.21+).
    pub parent_goid: Option<u64>,
    /// `g.gopc`: PC of the `go` statement that created the goroutine.
    pub gopc: Option<u64>,
    /// `m.procid`: the OS thread id.
    pub m_procid: u64,
    /// `m.curg`: the user goroutine the thread runs (check `m.curg == g` from outside).
    pub m_curg: Option<u64>,
    /// `m.id`.
    pub m_id: Option<u64>,
    /// Where these numbers come from.
    pub source: GOffsetsSource,
}

/// Provenance of a [`GOffsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GOffsetsSource {
    /// Read from the binary's DWARF (`runtime.g`, `runtime.m`).
    Dwarf,
    /// The built-in table, checked against DWARF of real builds of every release 1.17 – 1.27.
    TableVerified,
}

impl GOffsets {
    /// The offsets for a Go release on linux/amd64, or `None` for releases gohook has no data
    /// for (before 1.17, or after 1.27: read them from DWARF instead).
    pub fn for_version(v: &GoVersion) -> Option<GOffsets> {
        if v.major != 1 {
            return None;
        }
        let base = GOffsets {
            stack_lo: 0,
            stack_hi: 8,
            stackguard0: 16,
            m: 48,
            atomicstatus: 144,
            goid: 152,
            parent_goid: None,
            gopc: None,
            m_procid: 72,
            m_curg: None,
            m_id: None,
            source: GOffsetsSource::TableVerified,
        };
        // Checked against DWARF `runtime.g`/`runtime.m` of builds with 1.17, 1.18, 1.19, 1.20,
        // 1.21, 1.22, 1.23, 1.24, 1.25, 1.26 and 1.27 (go-runtime.md §6.1; the matrix test).
        Some(match v.minor {
            17..=20 => GOffsets {
                gopc: Some(296),
                m_curg: Some(192),
                m_id: Some(232),
                ..base
            },
            21 | 22 => GOffsets {
                parent_goid: Some(272),
                gopc: Some(280),
                m_curg: Some(192),
                m_id: Some(232),
                ..base
            },
            23 | 24 => GOffsets {
                atomicstatus: 152,
                goid: 160,
                parent_goid: Some(280),
                gopc: Some(288),
                m_curg: Some(192),
                m_id: Some(232),
                ..base
            },
            25 => GOffsets {
                parent_goid: Some(272),
                gopc: Some(280),
                m_procid: 64,
                m_curg: Some(184),
                m_id: Some(224),
                ..base
            },
            26 | 27 => GOffsets {
                parent_goid: Some(280),
                gopc: Some(288),
                m_procid: 64,
                m_curg: Some(184),
                m_id: Some(232),
                ..base
            },
            _ => return None,
        })
    }
}

impl GOffsets {
    /// The offsets from struct layouts of `runtime.g` and `runtime.m` in `table` — typically
    /// converted from the binary's DWARF (`dwarf::DwarfTypes::named("runtime.g")`), which beats
    /// any table for releases gohook has not seen. `None` when a required field is missing.
    pub fn from_layouts(table: &TypeTable, g: TypeId, m: TypeId) -> Option<GOffsets> {
        let field = |ty: TypeId, name: &str| -> Option<&Field> {
            match &table.get(ty)?.shape {
                Shape::Struct { fields } => fields.iter().find(|f| f.name == name),
                _ => None,
            }
        };
        let off = |ty: TypeId, name: &str| field(ty, name).map(|f| f.offset);
        let stack = field(g, "stack")?;
        Some(GOffsets {
            stack_lo: stack.offset + off(stack.ty, "lo")?,
            stack_hi: stack.offset + off(stack.ty, "hi")?,
            stackguard0: off(g, "stackguard0")?,
            m: off(g, "m")?,
            atomicstatus: off(g, "atomicstatus")?,
            goid: off(g, "goid")?,
            parent_goid: off(g, "parentGoid"),
            gopc: off(g, "gopc"),
            m_procid: off(m, "procid")?,
            m_curg: off(m, "curg"),
            m_id: off(m, "id"),
            source: GOffsetsSource::Dwarf,
        })
    }
}

impl GOffsets {
    /// The offsets from the binary's DWARF description of `runtime.g` and `runtime.m`, or
    /// `None` when DWARF lacks them.
    pub fn from_dwarf(dwarf: &crate::dwarf::Dwarf) -> Option<GOffsets> {
        let mut session = dwarf.types();
        let mut table = TypeTable::new();
        let g = session.named("runtime.g", &mut table).ok()??;
        let m = session.named("runtime.m", &mut table).ok()??;
        GOffsets::from_layouts(&table, g, m)
    }
}

impl crate::binary::GoBinary {
    /// The binary's moduledata at link-time addresses, found without symbols (see
    /// [`ModuleData::from_elf`]); the buildinfo version, when known, narrows the layouts tried.
    pub fn moduledata(&self) -> Result<ModuleData, ModuleDataError> {
        let version = self.buildinfo.as_ref().and_then(|b| b.version());
        ModuleData::from_elf(&self.elf, self.pclntab.header_addr(), version.as_ref())
    }

    /// The runtime type metadata, read from the file at link-time addresses.
    pub fn runtime_types(&self) -> Result<crate::rtype::RuntimeTypes<ElfFile>, ModuleDataError> {
        let version = self.buildinfo.as_ref().and_then(|b| b.version());
        Ok(crate::rtype::RuntimeTypes::new(
            self.elf.clone(),
            self.moduledata()?,
            version.as_ref(),
        ))
    }

    /// The `g`/`m` offsets: from `dwarf` when given and complete, otherwise from the table for
    /// the buildinfo version; `None` when neither applies (no DWARF and an unknown release).
    pub fn g_offsets(&self, dwarf: Option<&crate::dwarf::Dwarf>) -> Option<GOffsets> {
        if let Some(g) = dwarf.and_then(GOffsets::from_dwarf) {
            return Some(g);
        }
        if !self.go_version_is_exact() {
            return None;
        }
        GOffsets::for_version(&self.go_version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goid_offset_moves_in_1_23_and_back_in_1_25() {
        let g = |m| GOffsets::for_version(&GoVersion::new(1, m, 0)).unwrap();
        assert_eq!(g(21).goid, 152);
        assert_eq!(g(23).goid, 160);
        assert_eq!(g(24).goid, 160);
        assert_eq!(g(25).goid, 152);
        assert_eq!(g(27).goid, 152);
        assert_eq!(g(24).m_procid, 72);
        assert_eq!(g(25).m_procid, 64);
        assert_eq!(g(19).parent_goid, None);
        assert_eq!(g(21).parent_goid, Some(272));
        assert_eq!(g(20).source, GOffsetsSource::TableVerified);
        assert_eq!(g(17).gopc, Some(296));
        assert!(GOffsets::for_version(&GoVersion::new(1, 16, 0)).is_none());
        assert!(GOffsets::for_version(&GoVersion::new(1, 28, 0)).is_none());
    }

    #[test]
    fn layouts_follow_releases() {
        let l = |m| ModuleLayout::for_version(&GoVersion::new(1, m, 0));
        assert_eq!(l(17), None);
        assert_eq!(l(19), Some(ModuleLayout::Go118));
        assert_eq!(l(20), Some(ModuleLayout::Go120));
        assert_eq!(l(25), Some(ModuleLayout::Go120));
        assert_eq!(l(26), Some(ModuleLayout::Go126));
        assert_eq!(l(27), Some(ModuleLayout::Go127));
    }

    #[test]
    fn a_garbage_pcheader_is_refused() {
        let mem = crate::memory::SliceMemory::new(0x1000, vec![0xab; 256]);
        let err = ModuleData::find(&mem, 0x1000, &SearchSpace::default(), None).unwrap_err();
        assert!(
            matches!(err, ModuleDataError::UnsupportedPclntab { .. }),
            "{err}"
        );
    }
}
