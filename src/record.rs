//! Record files (`gohook record`, `report`, `replay`): the hook records of a trace, kept so they
//! can be turned into spans later, elsewhere.
//!
//! # Format (version 1)
//!
//! All integers are little-endian; `varint` is unsigned LEB128 (at most 10 bytes), `zigzag` a
//! signed value mapped onto varints; `str` and `bytes` are a varint length then the bytes.
//!
//! ```text
//! header   "\x7fGOHOOKR"  u32 version
//! chunk*   u8 kind  u32 payload length  u32 CRC-32 of the payload  payload
//! ```
//!
//! The first chunk is `META` (kind 1): gohook's version, when and from which pid it was
//! recorded, the binary's identity ([`BinaryIdentity`]), the TSC clock calibration, and the hook
//! table (per hook: function name, entry address, whether every return is hooked, the names of
//! the string parameters copied at entry and the registers holding their pointers). Then `DATA`
//! chunks (kind 2), each a self-contained sequence of items:
//!
//! ```text
//! 0 EVENT    u8 flags (1 exit, 2 floats, 4 strings, 8 parent goroutine)  varint hook
//!            zigzag tsc delta (from the previous event of the chunk; from 0 for the first)
//!            varint goid  [varint parent goid]  varint depth
//!            varint mask of non-zero int registers, then a varint per set bit
//!            [varint mask of non-zero float registers, then a u64 per set bit]
//!            [varint count, then per string: varint length at the call, bytes copied]
//! 1 DROPS    varint n  varint from tsc  varint to tsc      records the target dropped
//! 2 BAD      varint n                                      ring slots that did not parse
//! 3 ADVANCE  varint tsc                                    the consumer processed up to here
//! 4 CLOCK    varint anchor tsc  varint anchor ns  u64 ns per tick (f64 bits)
//! ```
//!
//! and finally `END` (kind 3): events written, records dropped, bad slots, and the end time. A
//! `DATA` chunk is written in one `write` at least every [`FLUSH_EVERY`], so a gohook killed
//! mid-record leaves a file readable up to its last whole chunk (the reader says it was cut
//! short). Each chunk ends with a `CLOCK` item holding the calibration refined so far; readers
//! use the last one.
//!
//! Everything read is checked: lengths against the bytes present and against fixed limits,
//! CRCs, counts; a damaged or cut file is read up to the last good chunk, and an unreadable one
//! is a one-line error. A file of a later format version is refused.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gostrings::GoBinary;

use crate::clock::TscClock;
use crate::collector::{Event, EventKind, EventTap, Stats};

/// The first bytes of every record file.
pub const MAGIC: [u8; 8] = *b"\x7fGOHOOKR";
/// The format version this gohook writes and the newest it reads.
pub const VERSION: u32 = 1;
/// A `DATA` chunk is written at least this often (and whenever it reaches [`CHUNK_BYTES`]).
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Size at which a `DATA` chunk is written.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Largest chunk a reader accepts.
pub const MAX_CHUNK: u32 = 64 << 20;

const KIND_META: u8 = 1;
const KIND_DATA: u8 = 2;
const KIND_END: u8 = 3;

const ITEM_EVENT: u8 = 0;
const ITEM_DROPS: u8 = 1;
const ITEM_BAD: u8 = 2;
const ITEM_ADVANCE: u8 = 3;
const ITEM_CLOCK: u8 = 4;

const F_EXIT: u8 = 1;
const F_FLOATS: u8 = 2;
const F_STRINGS: u8 = 4;
const F_PARENT: u8 = 8;

/// Limits on what a file may claim.
const MAX_TEXT: usize = 1 << 16;
const MAX_FUNCS: u64 = 1 << 20;
const MAX_STRINGS: u64 = 64;

/// Why a record file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Opening or reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not start with the record magic.
    #[error("{0}: not a gohook record file")]
    NotARecord(PathBuf),
    /// The file was written by a newer gohook.
    #[error("{path}: record format version {version} is newer than this gohook reads (version {VERSION}); use a newer gohook")]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// The version it claims.
        version: u32,
    },
    /// The header chunk is missing or damaged.
    #[error("{path}: damaged record header: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What identifies the traced binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinaryIdentity {
    /// Its path on the recording host.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 of the whole file.
    pub crc32: u32,
    /// The Go build ID (`.note.go.buildid`), empty when absent.
    pub go_build_id: String,
    /// The GNU build ID (`.note.gnu.build-id`) in hex, empty when absent.
    pub gnu_build_id: String,
    /// The Go release that built it.
    pub go_version: String,
    /// The main module path and version, when the buildinfo says.
    pub main_module: String,
    /// The load bias of the traced process (0 unless PIE).
    pub bias: u64,
}

impl BinaryIdentity {
    /// The identity of `bin`, known as `path`, loaded at `bias`.
    pub fn of(bin: &GoBinary, path: &str, bias: u64) -> Self {
        let bytes = bin.elf.bytes();
        let go_version = match &bin.buildinfo {
            Some(b) if !b.go_version.is_empty() => b.go_version.clone(),
            _ => bin.go_version().to_string(),
        };
        let main_module = bin
            .buildinfo
            .as_ref()
            .map(|b| {
                format!("{} {}", b.main.path, b.main.version)
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default();
        BinaryIdentity {
            path: path.to_owned(),
            size: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
            go_build_id: note_desc(bin.elf.section_bytes(".note.go.buildid"), b"Go\0\0", 4)
                .map(|d| String::from_utf8_lossy(d).trim_end_matches('\0').to_owned())
                .unwrap_or_default(),
            gnu_build_id: note_desc(bin.elf.section_bytes(".note.gnu.build-id"), b"GNU\0", 3)
                .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
                .unwrap_or_default(),
            go_version,
            main_module,
            bias,
        }
    }

    /// Why `other` (a binary found for replay) is not this one, if it is not: the first field
    /// that differs.
    pub fn mismatch(&self, other: &BinaryIdentity) -> Option<String> {
        if self.size != other.size {
            return Some(format!("size {} ≠ {}", other.size, self.size));
        }
        if self.crc32 != other.crc32 {
            return Some(format!("CRC-32 {:08x} ≠ {:08x}", other.crc32, self.crc32));
        }
        None
    }
}

/// The descriptor of an ELF note of type `ty` named `name` in `sec`, bounds-checked.
fn note_desc<'a>(sec: Option<&'a [u8]>, name: &[u8], ty: u32) -> Option<&'a [u8]> {
    let sec = sec?;
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            sec.get(o..o.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let namesz = u32_at(0)? as usize;
    let descsz = u32_at(4)? as usize;
    if u32_at(8)? != ty {
        return None;
    }
    let name_end = 12usize.checked_add(namesz)?;
    let got = sec.get(12..name_end)?;
    if !got.starts_with(name.strip_suffix(b"\0").unwrap_or(name)) {
        return None;
    }
    let desc = name_end.checked_add(3)? & !3;
    sec.get(desc..desc.checked_add(descsz)?)
}

/// The header of a recording of process `pid` running `target`, hooked at `functions` (with
/// `exits_complete` and `captures` per hook), with the clock calibration `clock`.
pub fn meta_for(
    target: &crate::commands::target::Target,
    pid: i32,
    functions: &[String],
    exits_complete: &[bool],
    captures: &[crate::capture::Captures],
    clock: &TscClock,
) -> Meta {
    let path = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| target.label.clone());
    let hooks = functions
        .iter()
        .enumerate()
        .map(|(i, f)| HookInfo {
            function: f.clone(),
            exits_complete: exits_complete.get(i).copied().unwrap_or(true),
            string_params: captures
                .get(i)
                .map(|c| c.string_params.clone())
                .unwrap_or_default(),
            string_ptr_regs: captures
                .get(i)
                .map(|c| c.entry.strings.iter().map(|s| s.ptr as u8).collect())
                .unwrap_or_default(),
        })
        .collect();
    Meta {
        gohook_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_ns: unix_ns_now(),
        pid,
        binary: BinaryIdentity::of(&target.binary, &path, target.bias),
        clock: clock.parts(),
        hooks,
    }
}

/// One hook as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookInfo {
    /// The Go function.
    pub function: String,
    /// Whether every return of the function was hooked.
    pub exits_complete: bool,
    /// Names of the string parameters copied at entry, in capture order.
    pub string_params: Vec<String>,
    /// The integer register (index into [`Event::int_regs`]) holding each copied string's
    /// pointer.
    pub string_ptr_regs: Vec<u8>,
}

/// The header of a record: where, when, what.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// The gohook version that wrote it.
    pub gohook_version: String,
    /// When recording began, Unix ns.
    pub started_unix_ns: u64,
    /// The traced process.
    pub pid: i32,
    /// The traced binary.
    pub binary: BinaryIdentity,
    /// Clock calibration at the start: (anchor tsc, anchor Unix ns, ns per tick).
    pub clock: (u64, u64, f64),
    /// The hooks, by hook index.
    pub hooks: Vec<HookInfo>,
}

/// What the `END` chunk says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct End {
    /// Events written.
    pub events: u64,
    /// Records the target dropped.
    pub dropped: u64,
    /// Ring slots that did not parse.
    pub bad: u64,
    /// When recording ended, Unix ns.
    pub ended_unix_ns: u64,
}

/// One item of a `DATA` chunk.
// Events are most items and are handed on one by one: boxing them would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A hook record.
    Event(Event),
    /// `n` records dropped between two TSC readings.
    Dropped {
        /// How many.
        n: u64,
        /// TSC before.
        from_tsc: u64,
        /// TSC after.
        to_tsc: u64,
    },
    /// Ring slots that did not parse.
    Bad(u64),
    /// The live consumer processed everything stamped before this TSC (minus its slack).
    Advance(u64),
    /// The clock calibration as refined so far.
    Clock(u64, u64, f64),
}

// ---- encoding -----------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    put_bytes(out, &b[..b.len().min(MAX_TEXT)]);
}

fn encode_meta(m: &Meta) -> Vec<u8> {
    let mut o = Vec::new();
    put_str(&mut o, &m.gohook_version);
    put_varint(&mut o, m.started_unix_ns);
    put_varint(&mut o, m.pid as u32 as u64);
    let b = &m.binary;
    put_str(&mut o, &b.path);
    put_varint(&mut o, b.size);
    put_varint(&mut o, u64::from(b.crc32));
    put_str(&mut o, &b.go_build_id);
    put_str(&mut o, &b.gnu_build_id);
    put_str(&mut o, &b.go_version);
    put_str(&mut o, &b.main_module);
    put_varint(&mut o, b.bias);
    put_varint(&mut o, m.clock.0);
    put_varint(&mut o, m.clock.1);
    o.extend_from_slice(&m.clock.2.to_bits().to_le_bytes());
    put_varint(&mut o, m.hooks.len() as u64);
    for h in &m.hooks {
        put_str(&mut o, &h.function);
        o.push(u8::from(h.exits_complete));
        put_varint(&mut o, h.string_params.len() as u64);
        for p in &h.string_params {
            put_str(&mut o, p);
        }
        put_bytes(&mut o, &h.string_ptr_regs);
    }
    o
}

/// Appends one event; `prev_tsc` is the previous event's TSC in this chunk (0 at its start).
fn encode_event(o: &mut Vec<u8>, e: &Event, prev_tsc: &mut u64) {
    o.push(ITEM_EVENT);
    let mut flags = 0;
    if e.kind == EventKind::Exit {
        flags |= F_EXIT;
    }
    if e.float_regs.iter().any(|&f| f != 0) {
        flags |= F_FLOATS;
    }
    if !e.strings.is_empty() {
        flags |= F_STRINGS;
    }
    if e.parent_goid != 0 {
        flags |= F_PARENT;
    }
    o.push(flags);
    put_varint(o, u64::from(e.hook));
    put_varint(o, zigzag(e.tsc.wrapping_sub(*prev_tsc) as i64));
    *prev_tsc = e.tsc;
    put_varint(o, e.goid);
    if flags & F_PARENT != 0 {
        put_varint(o, e.parent_goid);
    }
    put_varint(o, e.depth);
    let mask = e
        .int_regs
        .iter()
        .enumerate()
        .fold(0u64, |m, (i, &r)| if r != 0 { m | 1 << i } else { m });
    put_varint(o, mask);
    for &r in e.int_regs.iter().filter(|&&r| r != 0) {
        put_varint(o, r);
    }
    if flags & F_FLOATS != 0 {
        let mask = e
            .float_regs
            .iter()
            .enumerate()
            .fold(0u64, |m, (i, &r)| if r != 0 { m | 1 << i } else { m });
        put_varint(o, mask);
        for &r in e.float_regs.iter().filter(|&&r| r != 0) {
            o.extend_from_slice(&r.to_le_bytes());
        }
    }
    if flags & F_STRINGS != 0 {
        put_varint(o, e.strings.len() as u64);
        for (len, bytes) in &e.strings {
            put_varint(o, u64::from(*len));
            put_bytes(o, bytes);
        }
    }
}

fn encode_end(e: &End) -> Vec<u8> {
    let mut o = Vec::new();
    put_varint(&mut o, e.events);
    put_varint(&mut o, e.dropped);
    put_varint(&mut o, e.bad);
    put_varint(&mut o, e.ended_unix_ns);
    o
}

fn write_chunk(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    // One write per chunk: a file cut by a kill ends at a chunk boundary or inside the last one.
    let mut buf = Vec::with_capacity(payload.len() + 9);
    buf.push(kind);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

fn unix_ns_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes a record file: an [`EventTap`] on the live collector.
pub struct Recorder {
    file: File,
    path: PathBuf,
    chunk: Vec<u8>,
    prev_tsc: u64,
    last_write: Instant,
    end: End,
    error: Option<std::io::Error>,
    started: bool,
}

impl Recorder {
    /// Creates (or truncates) `path`; fails at once if it cannot be written. The header is
    /// written by [`Recorder::start`], once the hooks are known.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = File::create(path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("creating {}: {e}", path.display()))
        })?;
        Ok(Recorder {
            file,
            path: path.to_owned(),
            chunk: Vec::new(),
            prev_tsc: 0,
            last_write: Instant::now(),
            end: End::default(),
            error: None,
            started: false,
        })
    }

    /// Writes the magic, the version and the `META` chunk (an error is reported at the end,
    /// by [`EventTap::finish`]).
    pub fn start(&mut self, meta: &Meta) {
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&VERSION.to_le_bytes());
        let r = self
            .file
            .write_all(&head)
            .and_then(|()| write_chunk(&mut self.file, KIND_META, &encode_meta(meta)));
        self.keep(r);
        self.started = true;
    }

    fn keep(&mut self, r: std::io::Result<()>) {
        if let (Err(e), None) = (r, &self.error) {
            self.error = Some(std::io::Error::new(
                e.kind(),
                format!("writing {}: {e}", self.path.display()),
            ));
        }
    }

    fn flush_chunk(&mut self, clock: &TscClock) {
        if self.chunk.is_empty() || self.error.is_some() {
            return;
        }
        let (t, n, r) = clock.parts();
        self.chunk.push(ITEM_CLOCK);
        put_varint(&mut self.chunk, t);
        put_varint(&mut self.chunk, n);
        self.chunk.extend_from_slice(&r.to_bits().to_le_bytes());
        let chunk = std::mem::take(&mut self.chunk);
        let r = write_chunk(&mut self.file, KIND_DATA, &chunk);
        self.keep(r);
        self.prev_tsc = 0;
        self.last_write = Instant::now();
    }
}

impl EventTap for Recorder {
    fn event(&mut self, ev: &Event) {
        encode_event(&mut self.chunk, ev, &mut self.prev_tsc);
        self.end.events += 1;
    }

    fn dropped(&mut self, n: u64, from_tsc: u64, to_tsc: u64) {
        if n == 0 {
            return;
        }
        self.chunk.push(ITEM_DROPS);
        put_varint(&mut self.chunk, n);
        put_varint(&mut self.chunk, from_tsc);
        put_varint(&mut self.chunk, to_tsc);
        self.end.dropped += n;
    }

    fn bad(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.chunk.push(ITEM_BAD);
        put_varint(&mut self.chunk, n);
        self.end.bad += n;
    }

    fn advanced(&mut self, now_tsc: u64, clock: &TscClock) {
        self.chunk.push(ITEM_ADVANCE);
        put_varint(&mut self.chunk, now_tsc);
        if self.chunk.len() >= CHUNK_BYTES || self.last_write.elapsed() >= FLUSH_EVERY {
            self.flush_chunk(clock);
        }
    }

    fn finish(&mut self, clock: &TscClock, _stats: &Stats) -> std::io::Result<()> {
        if !self.started {
            return Ok(());
        }
        self.flush_chunk(clock);
        self.end.ended_unix_ns = unix_ns_now();
        let r = write_chunk(&mut self.file, KIND_END, &encode_end(&self.end))
            .and_then(|()| self.file.flush());
        self.keep(r);
        match self.error.take() {
            Some(e) => Err(e),
            None => {
                eprintln!(
                    "gohook: {} records written to {}",
                    self.end.events,
                    self.path.display()
                );
                Ok(())
            }
        }
    }
}

// ---- decoding -----------------------------------------------------------------------------

/// A bounds-checked cursor over one chunk's payload.
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

type Dec<T> = Result<T, String>;

impl<'a> Cur<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cur { b, at: 0 }
    }
    fn done(&self) -> bool {
        self.at >= self.b.len()
    }
    fn u8(&mut self) -> Dec<u8> {
        let v = *self.b.get(self.at).ok_or("cut short")?;
        self.at += 1;
        Ok(v)
    }
    fn take(&mut self, n: usize) -> Dec<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or("length overflows")?;
        let s = self.b.get(self.at..end).ok_or("cut short")?;
        self.at = end;
        Ok(s)
    }
    fn u64le(&mut self) -> Dec<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "cut short")?,
        ))
    }
    fn varint(&mut self) -> Dec<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    fn len(&mut self, limit: usize) -> Dec<usize> {
        let n = self.varint()?;
        if n > limit as u64 {
            return Err(format!("length {n} over the limit {limit}"));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self, limit: usize) -> Dec<&'a [u8]> {
        let n = self.len(limit)?;
        self.take(n)
    }
    fn str(&mut self) -> Dec<String> {
        Ok(String::from_utf8_lossy(self.bytes(MAX_TEXT)?).into_owned())
    }
}

fn decode_meta(p: &[u8]) -> Dec<Meta> {
    let mut c = Cur::new(p);
    let gohook_version = c.str()?;
    let started_unix_ns = c.varint()?;
    let pid = c.varint()? as u32 as i32;
    let binary = BinaryIdentity {
        path: c.str()?,
        size: c.varint()?,
        crc32: c.varint()? as u32,
        go_build_id: c.str()?,
        gnu_build_id: c.str()?,
        go_version: c.str()?,
        main_module: c.str()?,
        bias: c.varint()?,
    };
    let clock = (c.varint()?, c.varint()?, f64::from_bits(c.u64le()?));
    let n = c.varint()?;
    if n > MAX_FUNCS {
        return Err(format!("{n} hooks, over the limit {MAX_FUNCS}"));
    }
    let mut hooks = Vec::new();
    for _ in 0..n {
        let function = c.str()?;
        let exits_complete = c.u8()? != 0;
        let np = c.len(MAX_STRINGS as usize)?;
        let mut string_params = Vec::with_capacity(np);
        for _ in 0..np {
            string_params.push(c.str()?);
        }
        let string_ptr_regs = c.bytes(MAX_STRINGS as usize)?.to_vec();
        hooks.push(HookInfo {
            function,
            exits_complete,
            string_params,
            string_ptr_regs,
        });
    }
    Ok(Meta {
        gohook_version,
        started_unix_ns,
        pid,
        binary,
        clock,
        hooks,
    })
}

fn decode_event(c: &mut Cur<'_>, prev_tsc: &mut u64) -> Dec<Event> {
    let flags = c.u8()?;
    let hook = u32::try_from(c.varint()?).map_err(|_| "hook index over 32 bits")?;
    let tsc = prev_tsc.wrapping_add(unzigzag(c.varint()?) as u64);
    *prev_tsc = tsc;
    let goid = c.varint()?;
    let parent_goid = if flags & F_PARENT != 0 {
        c.varint()?
    } else {
        0
    };
    let depth = c.varint()?;
    let mut int_regs = [0u64; 9];
    let mask = c.varint()?;
    if mask >> int_regs.len() != 0 {
        return Err("integer register mask names unknown registers".into());
    }
    for (i, r) in int_regs.iter_mut().enumerate() {
        if mask & (1 << i) != 0 {
            *r = c.varint()?;
        }
    }
    let mut float_regs = [0u64; 15];
    if flags & F_FLOATS != 0 {
        let mask = c.varint()?;
        if mask >> float_regs.len() != 0 {
            return Err("float register mask names unknown registers".into());
        }
        for (i, r) in float_regs.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *r = c.u64le()?;
            }
        }
    }
    let mut strings = Vec::new();
    if flags & F_STRINGS != 0 {
        let n = c.len(MAX_STRINGS as usize)?;
        for _ in 0..n {
            let len = u32::try_from(c.varint()?).map_err(|_| "string length over 32 bits")?;
            strings.push((len, c.bytes(1 << 16)?.to_vec()));
        }
    }
    Ok(Event {
        hook,
        kind: if flags & F_EXIT != 0 {
            EventKind::Exit
        } else {
            EventKind::Entry
        },
        tsc,
        goid,
        parent_goid,
        depth,
        int_regs,
        float_regs,
        strings,
    })
}

fn decode_data(p: &[u8], mut f: impl FnMut(Item)) -> Dec<()> {
    let mut c = Cur::new(p);
    let mut prev_tsc = 0;
    while !c.done() {
        let item = match c.u8()? {
            ITEM_EVENT => Item::Event(decode_event(&mut c, &mut prev_tsc)?),
            ITEM_DROPS => Item::Dropped {
                n: c.varint()?,
                from_tsc: c.varint()?,
                to_tsc: c.varint()?,
            },
            ITEM_BAD => Item::Bad(c.varint()?),
            ITEM_ADVANCE => Item::Advance(c.varint()?),
            ITEM_CLOCK => Item::Clock(c.varint()?, c.varint()?, f64::from_bits(c.u64le()?)),
            t => return Err(format!("unknown item {t}")),
        };
        f(item);
    }
    Ok(())
}

fn decode_end(p: &[u8]) -> Dec<End> {
    let mut c = Cur::new(p);
    Ok(End {
        events: c.varint()?,
        dropped: c.varint()?,
        bad: c.varint()?,
        ended_unix_ns: c.varint()?,
    })
}

/// How the data of a record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// With its `END` chunk.
    Complete(End),
    /// Before an `END` chunk: cut short (gohook was killed, or the file was truncated) or
    /// damaged; everything before `offset` was read.
    Cut {
        /// Bytes of the file that were read.
        offset: u64,
        /// What was found there.
        reason: String,
    },
}

/// An open record file, its header read.
pub struct RecordReader {
    path: PathBuf,
    r: BufReader<File>,
    offset: u64,
    /// The header.
    pub meta: Meta,
}

impl RecordReader {
    /// Opens `path` and reads its header; fails on anything that is not a readable record of a
    /// version this gohook knows.
    pub fn open(path: &Path) -> Result<Self, RecordError> {
        let io = |source| RecordError::Io {
            path: path.to_owned(),
            source,
        };
        let mut r = BufReader::new(File::open(path).map_err(io)?);
        let mut head = [0u8; 12];
        let got = read_full(&mut r, &mut head).map_err(io)?;
        if got == 0 {
            return Err(RecordError::BadHeader {
                path: path.to_owned(),
                reason: "the file is empty (the recording never started)".into(),
            });
        }
        if got < 8 || head[..8] != MAGIC {
            return Err(RecordError::NotARecord(path.to_owned()));
        }
        if got < 12 {
            return Err(RecordError::BadHeader {
                path: path.to_owned(),
                reason: "cut short before the version".into(),
            });
        }
        let version = u32::from_le_bytes(head[8..12].try_into().unwrap_or_default());
        if version > VERSION {
            return Err(RecordError::FutureVersion {
                path: path.to_owned(),
                version,
            });
        }
        if version == 0 {
            return Err(RecordError::BadHeader {
                path: path.to_owned(),
                reason: "version 0".into(),
            });
        }
        let mut rr = RecordReader {
            path: path.to_owned(),
            r,
            offset: 12,
            meta: Meta {
                gohook_version: String::new(),
                started_unix_ns: 0,
                pid: 0,
                binary: BinaryIdentity::default(),
                clock: (0, 0, 0.0),
                hooks: Vec::new(),
            },
        };
        let bad = |reason: String| RecordError::BadHeader {
            path: path.to_owned(),
            reason,
        };
        let (kind, payload) = match rr.chunk() {
            Ok(Some(c)) => c,
            Ok(None) => return Err(bad("no header chunk (recording ended at once)".into())),
            Err(e) => return Err(bad(e)),
        };
        if kind != KIND_META {
            return Err(bad(format!(
                "first chunk is of kind {kind}, not the header"
            )));
        }
        rr.meta = decode_meta(&payload).map_err(bad)?;
        Ok(rr)
    }

    /// The next whole chunk: `Ok(None)` at a clean end of file, `Err` when cut or damaged.
    fn chunk(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        let mut head = [0u8; 9];
        let got = read_full(&mut self.r, &mut head).map_err(|e| e.to_string())?;
        if got == 0 {
            return Ok(None);
        }
        if got < head.len() {
            return Err("the file ends inside a chunk header".into());
        }
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        let crc = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
        if len > MAX_CHUNK {
            return Err(format!("a chunk claims {len} bytes (damaged)"));
        }
        let mut payload = vec![0u8; len as usize];
        let got = read_full(&mut self.r, &mut payload).map_err(|e| e.to_string())?;
        if got < payload.len() {
            return Err(format!(
                "the file ends inside a chunk ({got} of its {len} bytes)"
            ));
        }
        if crc32fast::hash(&payload) != crc {
            return Err("a chunk's checksum does not match (damaged)".into());
        }
        self.offset += 9 + u64::from(len);
        Ok(Some((kind, payload)))
    }

    /// Hands every item of every good `DATA` chunk to `f`, in file order, and says how the file
    /// ended. Never fails: a damaged or cut chunk ends the reading.
    pub fn for_each(mut self, mut f: impl FnMut(Item)) -> Tail {
        loop {
            let at = self.offset;
            let cut = |reason: String| Tail::Cut { offset: at, reason };
            match self.chunk() {
                Ok(None) => return cut("the file ends without its end marker (cut short)".into()),
                Err(e) => return cut(e),
                Ok(Some((KIND_DATA, p))) => {
                    // Decode the whole chunk first: a damaged chunk contributes nothing.
                    let mut items = Vec::new();
                    if let Err(e) = decode_data(&p, |i| items.push(i)) {
                        return cut(format!("damaged data chunk: {e}"));
                    }
                    items.into_iter().for_each(&mut f);
                }
                Ok(Some((KIND_END, p))) => {
                    return match decode_end(&p) {
                        Ok(end) => Tail::Complete(end),
                        Err(e) => cut(format!("damaged end marker: {e}")),
                    }
                }
                Ok(Some((kind, _))) => return cut(format!("unknown chunk kind {kind}")),
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a first pass over a record finds: the most refined clock and counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// The last clock calibration in the file (the header's when there is none).
    pub clock: (u64, u64, f64),
    /// Events per hook, entries and exits.
    pub entries: Vec<u64>,
    /// Exits per hook.
    pub exits: Vec<u64>,
    /// Events naming no hook of the header.
    pub unknown_hook: u64,
    /// First and last event TSC.
    pub tsc_range: Option<(u64, u64)>,
    /// Records dropped, as the data says.
    pub dropped: u64,
    /// Bad ring slots, as the data says.
    pub bad: u64,
    /// How the file ended.
    pub tail: Tail,
}

/// Reads `path` once through: the header and an [`Overview`].
pub fn overview(path: &Path) -> Result<(Meta, Overview), RecordError> {
    let rr = RecordReader::open(path)?;
    let meta = rr.meta.clone();
    let n = meta.hooks.len();
    let mut o = Overview {
        clock: meta.clock,
        entries: vec![0; n],
        exits: vec![0; n],
        unknown_hook: 0,
        tsc_range: None,
        dropped: 0,
        bad: 0,
        tail: Tail::Complete(End::default()),
    };
    let tail = rr.for_each(|item| match item {
        Item::Event(e) => {
            match (e.kind, o.entries.get_mut(e.hook as usize)) {
                (EventKind::Entry, Some(c)) => *c += 1,
                (EventKind::Exit, Some(_)) => o.exits[e.hook as usize] += 1,
                (_, None) => o.unknown_hook += 1,
            }
            o.tsc_range = Some(match o.tsc_range {
                None => (e.tsc, e.tsc),
                Some((a, b)) => (a.min(e.tsc), b.max(e.tsc)),
            });
        }
        Item::Dropped { n, .. } => o.dropped += n,
        Item::Bad(n) => o.bad += n,
        Item::Clock(t, ns, r) => o.clock = (t, ns, r),
        Item::Advance(_) => {}
    });
    o.tail = tail;
    Ok((meta, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(hook: u32, kind: EventKind, tsc: u64) -> Event {
        Event {
            hook,
            kind,
            tsc,
            goid: 17,
            parent_goid: if hook == 1 { 3 } else { 0 },
            depth: 4096,
            int_regs: [1, 0, u64::MAX, 0, 0, 0, 0, 0, 9],
            float_regs: {
                let mut f = [0; 15];
                f[2] = 1.5f64.to_bits();
                f
            },
            strings: if kind == EventKind::Entry {
                vec![(300, b"GET /x".to_vec())]
            } else {
                vec![]
            },
        }
    }

    fn meta() -> Meta {
        Meta {
            gohook_version: "0.1.0".into(),
            started_unix_ns: 1_700_000_000_000_000_000,
            pid: 4242,
            binary: BinaryIdentity {
                path: "/srv/app".into(),
                size: 1234,
                crc32: 0xdead_beef,
                go_build_id: "abc/def".into(),
                gnu_build_id: String::new(),
                go_version: "go1.26.8".into(),
                main_module: "example.com/app v1.0.0".into(),
                bias: 0x5555_0000_0000,
            },
            clock: (1000, 1_700_000_000_000_000_000, 0.37),
            hooks: vec![
                HookInfo {
                    function: "main.f".into(),
                    exits_complete: true,
                    string_params: vec!["path".into()],
                    string_ptr_regs: vec![1],
                },
                HookInfo {
                    function: "main.g".into(),
                    ..HookInfo::default()
                },
            ],
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gohook-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn write_sample(path: &Path, events: &[Event]) {
        let clock = TscClock::from_parts(1000, 1_700_000_000_000_000_000, 0.37);
        let mut r = Recorder::create(path).unwrap();
        r.start(&meta());
        for (i, e) in events.iter().enumerate() {
            r.event(e);
            if i % 2 == 1 {
                r.dropped(2, e.tsc, e.tsc + 10);
                r.bad(1);
                r.advanced(e.tsc, &clock);
                r.flush_chunk(&clock);
            }
        }
        r.finish(&clock, &Stats::default()).unwrap();
    }

    fn read_all(path: &Path) -> (Meta, Vec<Item>, Tail) {
        let rr = RecordReader::open(path).unwrap();
        let meta = rr.meta.clone();
        let mut items = Vec::new();
        let tail = rr.for_each(|i| items.push(i));
        (meta, items, tail)
    }

    #[test]
    fn events_round_trip_exactly() {
        let events: Vec<Event> = (0..10)
            .map(|i| {
                ev(
                    i % 2,
                    if i % 3 == 0 {
                        EventKind::Exit
                    } else {
                        EventKind::Entry
                    },
                    // Not monotonic: records of several rings interleave.
                    5_000_000 + (i as u64 * 7919) % 1000,
                )
            })
            .collect();
        let path = scratch("roundtrip.gohook");
        write_sample(&path, &events);
        let (m, items, tail) = read_all(&path);
        assert_eq!(m, meta());
        let got: Vec<Event> = items
            .iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(got, events);
        assert!(items.contains(&Item::Dropped {
            n: 2,
            from_tsc: events[1].tsc,
            to_tsc: events[1].tsc + 10
        }));
        assert!(matches!(
            tail,
            Tail::Complete(End {
                events: 10,
                dropped: 10,
                bad: 5,
                ..
            })
        ));
        let (_, o) = overview(&path).unwrap();
        assert_eq!(o.clock, (1000, 1_700_000_000_000_000_000, 0.37));
        assert_eq!(
            o.entries.iter().sum::<u64>() + o.exits.iter().sum::<u64>(),
            10
        );
    }

    #[test]
    fn a_file_cut_anywhere_reads_up_to_its_last_whole_chunk_and_never_panics() {
        let events: Vec<Event> = (0..8).map(|i| ev(0, EventKind::Entry, 100 + i)).collect();
        let path = scratch("cut-source.gohook");
        write_sample(&path, &events);
        let bytes = std::fs::read(&path).unwrap();
        let cut = scratch("cut.gohook");
        let mut last = 0;
        for len in 0..bytes.len() {
            std::fs::write(&cut, &bytes[..len]).unwrap();
            match RecordReader::open(&cut) {
                Err(e) => assert!(!e.to_string().contains('\n')),
                Ok(rr) => {
                    let mut n = 0;
                    let tail = rr.for_each(|i| n += matches!(i, Item::Event(_)) as usize);
                    assert!(
                        matches!(tail, Tail::Cut { .. }),
                        "cut at {len} read as complete"
                    );
                    assert!(n >= last, "fewer events from a longer prefix");
                    last = n;
                }
            }
        }
        assert_eq!(
            last, 8,
            "the prefix before the end marker holds every event"
        );
    }

    #[test]
    fn flipped_bytes_and_garbage_are_errors_or_cut_files_never_panics() {
        let events: Vec<Event> = (0..6).map(|i| ev(1, EventKind::Exit, 50 + i)).collect();
        let path = scratch("flip-source.gohook");
        write_sample(&path, &events);
        let bytes = std::fs::read(&path).unwrap();
        let bad = scratch("flip.gohook");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            std::fs::write(&bad, &b).unwrap();
            if let Ok(rr) = RecordReader::open(&bad) {
                let _ = rr.for_each(|_| {});
            }
        }
        std::fs::write(&bad, b"hello, world\n").unwrap();
        assert!(matches!(
            RecordReader::open(&bad),
            Err(RecordError::NotARecord(_))
        ));
        let mut future = MAGIC.to_vec();
        future.extend_from_slice(&2u32.to_le_bytes());
        std::fs::write(&bad, &future).unwrap();
        let err = RecordReader::open(&bad).err().unwrap();
        assert!(
            matches!(err, RecordError::FutureVersion { version: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn varints_and_zigzag_cover_the_extremes() {
        for v in [0, 1, 127, 128, u64::MAX / 2, u64::MAX] {
            let mut o = Vec::new();
            put_varint(&mut o, v);
            assert_eq!(Cur::new(&o).varint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert!(Cur::new(&[0xff; 11]).varint().is_err());
    }
}
