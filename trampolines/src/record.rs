//! Byte layout of one event record in a ring slot, and its safe parser.
//!
//! The trampoline writes these fields with plain stores; gohook reads them back with
//! [`Record::parse`]. The target can scribble on the ring, so the parser validates every count and
//! length against the slot instead of trusting it.
//!
//! ```text
//! +0   hook_id     u32
//! +4   kind        u8    1 = entry, 2 = exit
//! +5   flags       u8    bit 0: parent_goid is valid (Go 1.21+)
//! +6   n_strings   u8    string captures present (<= MAX_STRINGS)
//! +8   int_mask    u16   bit i: INT_REGS[i] was captured
//! +10  float_mask  u16   bit i: X<i> was captured
//! +12  string_cap  u16   bytes reserved per string capture
//! +16  tsc         u64   RDTSC at record time
//! +24  goid        u64   g.goid
//! +32  parent_goid u64   g.parentGoid (0 unless flags bit 0)
//! +40  depth       u64   g.stack.hi - SP at function entry: equal for a call's entry and exit
//! +48  m_id        u64   m.id of the recording thread (= ring index)
//! +56  ints[9]     u64   RAX RBX RCX RDI RSI R8 R9 R10 R11 (results at exit)
//! +128 floats[15]  u64   low 64 bits of X0..X14
//! +248 strings[8]  {copied u32, len u32}   bytes copied, original length clamped to u32
//! +312 data        string i's bytes at DATA + i * string_cap
//!
//! A "string" is a string argument (pointer and length in registers) or a path capture (a field
//! reached from a pointer argument, read at the call: see `stub::PathCapture`); path captures
//! follow the string arguments.
//! ```

use thiserror::Error;

/// Offset of the hook id (u32).
pub const OFF_HOOK_ID: usize = 0;
/// Offset of the record kind (u8, [`RecordKind`]).
pub const OFF_KIND: usize = 4;
/// Offset of the flags byte (u8): [`FLAG_HAS_PARENT`].
pub const OFF_FLAGS: usize = 5;
/// Offset of the number of string captures (u8).
pub const OFF_N_STRINGS: usize = 6;
/// Offset of the captured integer register mask (u16, bit i = `INT_REGS[i]`).
pub const OFF_INT_MASK: usize = 8;
/// Offset of the captured float register mask (u16, bit i = `X<i>`).
pub const OFF_FLOAT_MASK: usize = 10;
/// Offset of the per-string byte budget (u16).
pub const OFF_STRING_CAP: usize = 12;
/// Offset of the RDTSC timestamp (u64).
pub const OFF_TSC: usize = 16;
/// Offset of the goroutine id (u64).
pub const OFF_GOID: usize = 24;
/// Offset of the parent goroutine id (u64).
pub const OFF_PARENT_GOID: usize = 32;
/// Offset of the stack depth key `stack.hi - SP_at_entry` (u64).
pub const OFF_DEPTH: usize = 40;
/// Offset of the recording M's id (u64).
pub const OFF_M_ID: usize = 48;
/// Offset of the integer register array (9 x u64, order [`INT_REGS`]).
pub const OFF_INTS: usize = 56;
/// Offset of the float register array (15 x u64, X0..X14 low halves).
pub const OFF_FLOATS: usize = 128;
/// Offset of the string descriptors (MAX_STRINGS x {copied u32, len u32}).
pub const OFF_STRINGS: usize = 248;
/// Offset of the string bytes; capture i starts at `OFF_DATA + i * string_cap`.
pub const OFF_DATA: usize = 312;
/// Bytes of a record before the string data: the smallest legal slot.
pub const FIXED_SIZE: usize = OFF_DATA;

/// Flag bit: `parent_goid` holds a real value.
pub const FLAG_HAS_PARENT: u8 = 1;
/// Maximum string captures (string arguments and path captures) per record.
pub const MAX_STRINGS: usize = 8;
/// Number of integer argument/result registers in the Go register ABI.
pub const N_INT_REGS: usize = 9;
/// Number of float argument/result registers (X0..X14; X15 is the fixed zero).
pub const N_FLOAT_REGS: usize = 15;
/// Go's integer argument registers, in ABI order; `ints[i]` of a record holds `INT_REGS[i]`.
pub const INT_REGS: [&str; N_INT_REGS] =
    ["rax", "rbx", "rcx", "rdi", "rsi", "r8", "r9", "r10", "r11"];

/// Whether a record marks a function entry or exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// Written by an entry trampoline after the stack check passed.
    Entry = 1,
    /// Written by an exit trampoline in place of an epilogue.
    Exit = 2,
}

/// Why a slot could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The slot is smaller than a record's fixed part.
    #[error("slot of {got} bytes is shorter than a record ({FIXED_SIZE} bytes)")]
    Short { got: usize },
    /// The kind byte is neither entry nor exit.
    #[error("unknown record kind {0}")]
    BadKind(u8),
    /// More string captures than the format allows.
    #[error("record claims {0} string captures (max {MAX_STRINGS})")]
    TooManyStrings(u8),
    /// A string capture's bytes do not fit in the slot, or exceed its budget.
    #[error("string capture {index} claims {copied} bytes but only {room} fit")]
    StringOverflow {
        index: usize,
        copied: u32,
        room: usize,
    },
}

/// A string argument copied by the trampoline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedString {
    /// The string's length in the register at the call (clamped to u32::MAX).
    pub len: u32,
    /// The first `min(len, string_cap)` bytes.
    pub bytes: Vec<u8>,
}

impl CapturedString {
    /// True when the copy holds fewer bytes than the string had.
    pub fn truncated(&self) -> bool {
        (self.bytes.len() as u64) < self.len as u64
    }
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub hook_id: u32,
    pub kind: RecordKind,
    pub tsc: u64,
    pub goid: u64,
    /// `None` for releases without `g.parentGoid` (before 1.21).
    pub parent_goid: Option<u64>,
    /// `g.stack.hi - SP_at_entry`; pairs an entry with its exit on the same goroutine.
    pub depth: u64,
    pub m_id: u64,
    /// Integer registers in [`INT_REGS`] order; `None` where not captured.
    pub ints: [Option<u64>; N_INT_REGS],
    /// Low 64 bits of X0..X14; `None` where not captured.
    pub floats: [Option<u64>; N_FLOAT_REGS],
    pub strings: Vec<CapturedString>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl Record {
    /// Parses one slot. Every count and length is checked against the slot, so arbitrary bytes
    /// give an error or a record, never a panic.
    pub fn parse(slot: &[u8]) -> Result<Record, RecordError> {
        if slot.len() < FIXED_SIZE {
            return Err(RecordError::Short { got: slot.len() });
        }
        let kind = match slot[OFF_KIND] {
            1 => RecordKind::Entry,
            2 => RecordKind::Exit,
            k => return Err(RecordError::BadKind(k)),
        };
        let n_strings = slot[OFF_N_STRINGS];
        if n_strings as usize > MAX_STRINGS {
            return Err(RecordError::TooManyStrings(n_strings));
        }
        let int_mask = u16_at(slot, OFF_INT_MASK);
        let float_mask = u16_at(slot, OFF_FLOAT_MASK);
        let cap = u16_at(slot, OFF_STRING_CAP) as usize;
        let mut ints = [None; N_INT_REGS];
        for (i, v) in ints.iter_mut().enumerate() {
            if int_mask & (1 << i) != 0 {
                *v = Some(u64_at(slot, OFF_INTS + 8 * i));
            }
        }
        let mut floats = [None; N_FLOAT_REGS];
        for (i, v) in floats.iter_mut().enumerate() {
            if float_mask & (1 << i) != 0 {
                *v = Some(u64_at(slot, OFF_FLOATS + 8 * i));
            }
        }
        let mut strings = Vec::with_capacity(n_strings as usize);
        for index in 0..n_strings as usize {
            let copied = u32_at(slot, OFF_STRINGS + 8 * index);
            let len = u32_at(slot, OFF_STRINGS + 8 * index + 4);
            let start = OFF_DATA + index * cap;
            let room = slot.len().saturating_sub(start).min(cap);
            if copied as usize > room {
                return Err(RecordError::StringOverflow {
                    index,
                    copied,
                    room,
                });
            }
            let bytes = slot
                .get(start..start + copied as usize)
                .unwrap_or(&[])
                .to_vec();
            strings.push(CapturedString { len, bytes });
        }
        let has_parent = slot[OFF_FLAGS] & FLAG_HAS_PARENT != 0;
        Ok(Record {
            hook_id: u32_at(slot, OFF_HOOK_ID),
            kind,
            tsc: u64_at(slot, OFF_TSC),
            goid: u64_at(slot, OFF_GOID),
            parent_goid: has_parent.then(|| u64_at(slot, OFF_PARENT_GOID)),
            depth: u64_at(slot, OFF_DEPTH),
            m_id: u64_at(slot, OFF_M_ID),
            ints,
            floats,
            strings,
        })
    }
}

impl Record {
    /// Writes this record in the slot format, as a trampoline would: for consumer tests and
    /// tools that replay events. Strings longer than `string_cap` or more than [`MAX_STRINGS`]
    /// are an error, so that `parse(write)` always round-trips.
    pub fn write_to(&self, slot: &mut [u8], string_cap: u16) -> Result<(), RecordError> {
        if self.strings.len() > MAX_STRINGS {
            return Err(RecordError::TooManyStrings(
                self.strings.len().min(255) as u8
            ));
        }
        let need = OFF_DATA + self.strings.len() * string_cap as usize;
        if slot.len() < need {
            return Err(RecordError::Short { got: slot.len() });
        }
        slot[..FIXED_SIZE].fill(0);
        let mut put = |o: usize, b: &[u8]| slot[o..o + b.len()].copy_from_slice(b);
        put(OFF_HOOK_ID, &self.hook_id.to_le_bytes());
        put(OFF_KIND, &[self.kind as u8]);
        put(
            OFF_FLAGS,
            &[if self.parent_goid.is_some() {
                FLAG_HAS_PARENT
            } else {
                0
            }],
        );
        put(OFF_N_STRINGS, &[self.strings.len() as u8]);
        let mask = |v: &[Option<u64>]| {
            v.iter()
                .enumerate()
                .fold(0u16, |m, (i, x)| m | ((x.is_some() as u16) << i))
        };
        put(OFF_INT_MASK, &mask(&self.ints).to_le_bytes());
        put(OFF_FLOAT_MASK, &mask(&self.floats).to_le_bytes());
        put(OFF_STRING_CAP, &string_cap.to_le_bytes());
        put(OFF_TSC, &self.tsc.to_le_bytes());
        put(OFF_GOID, &self.goid.to_le_bytes());
        put(
            OFF_PARENT_GOID,
            &self.parent_goid.unwrap_or(0).to_le_bytes(),
        );
        put(OFF_DEPTH, &self.depth.to_le_bytes());
        put(OFF_M_ID, &self.m_id.to_le_bytes());
        for (i, v) in self.ints.iter().enumerate() {
            put(OFF_INTS + 8 * i, &v.unwrap_or(0).to_le_bytes());
        }
        for (i, v) in self.floats.iter().enumerate() {
            put(OFF_FLOATS + 8 * i, &v.unwrap_or(0).to_le_bytes());
        }
        for (i, s) in self.strings.iter().enumerate() {
            if s.bytes.len() > string_cap as usize {
                return Err(RecordError::StringOverflow {
                    index: i,
                    copied: s.bytes.len() as u32,
                    room: string_cap as usize,
                });
            }
            put(OFF_STRINGS + 8 * i, &(s.bytes.len() as u32).to_le_bytes());
            put(OFF_STRINGS + 8 * i + 4, &s.len.to_le_bytes());
            put(OFF_DATA + i * string_cap as usize, &s.bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_with(fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[OFF_KIND] = 1;
        fill(&mut s);
        s
    }

    #[test]
    fn parses_the_documented_fields() {
        let s = slot_with(|s| {
            s[OFF_HOOK_ID..OFF_HOOK_ID + 4].copy_from_slice(&7u32.to_le_bytes());
            s[OFF_KIND] = 2;
            s[OFF_FLAGS] = FLAG_HAS_PARENT;
            s[OFF_N_STRINGS] = 1;
            s[OFF_INT_MASK..OFF_INT_MASK + 2].copy_from_slice(&0b101u16.to_le_bytes());
            s[OFF_FLOAT_MASK..OFF_FLOAT_MASK + 2].copy_from_slice(&0b10u16.to_le_bytes());
            s[OFF_STRING_CAP..OFF_STRING_CAP + 2].copy_from_slice(&16u16.to_le_bytes());
            s[OFF_GOID..OFF_GOID + 8].copy_from_slice(&42u64.to_le_bytes());
            s[OFF_PARENT_GOID..OFF_PARENT_GOID + 8].copy_from_slice(&1u64.to_le_bytes());
            s[OFF_DEPTH..OFF_DEPTH + 8].copy_from_slice(&0x100u64.to_le_bytes());
            s[OFF_INTS..OFF_INTS + 8].copy_from_slice(&11u64.to_le_bytes());
            s[OFF_INTS + 16..OFF_INTS + 24].copy_from_slice(&33u64.to_le_bytes());
            s[OFF_FLOATS + 8..OFF_FLOATS + 16].copy_from_slice(&1.5f64.to_bits().to_le_bytes());
            s[OFF_STRINGS..OFF_STRINGS + 4].copy_from_slice(&5u32.to_le_bytes());
            s[OFF_STRINGS + 4..OFF_STRINGS + 8].copy_from_slice(&20u32.to_le_bytes());
            s[OFF_DATA..OFF_DATA + 5].copy_from_slice(b"hello");
        });
        let r = Record::parse(&s).unwrap();
        assert_eq!(r.hook_id, 7);
        assert_eq!(r.kind, RecordKind::Exit);
        assert_eq!(r.goid, 42);
        assert_eq!(r.parent_goid, Some(1));
        assert_eq!(r.depth, 0x100);
        assert_eq!(r.ints[0], Some(11));
        assert_eq!(r.ints[1], None);
        assert_eq!(r.ints[2], Some(33));
        assert_eq!(r.floats[1].map(f64::from_bits), Some(1.5));
        assert_eq!(r.strings.len(), 1);
        assert_eq!(r.strings[0].bytes, b"hello");
        assert!(r.strings[0].truncated());
    }

    #[test]
    fn written_records_parse_back_identically() {
        let mut ints = [None; N_INT_REGS];
        ints[0] = Some(1);
        ints[8] = Some(u64::MAX);
        let mut floats = [None; N_FLOAT_REGS];
        floats[14] = Some(0.25f64.to_bits());
        let r = Record {
            hook_id: 12,
            kind: RecordKind::Entry,
            tsc: 99,
            goid: 7,
            parent_goid: None,
            depth: 0x400,
            m_id: 3,
            ints,
            floats,
            strings: vec![CapturedString {
                len: 40,
                bytes: b"abcd".to_vec(),
            }],
        };
        let mut slot = vec![0xAAu8; 512];
        r.write_to(&mut slot, 32).unwrap();
        assert_eq!(Record::parse(&slot), Ok(r.clone()));
        assert!(
            r.write_to(&mut slot, 2).is_err(),
            "4 bytes do not fit a 2-byte budget"
        );
        assert!(r.write_to(&mut slot[..100], 32).is_err());
    }

    #[test]
    fn hostile_counts_are_errors_not_panics() {
        assert_eq!(
            Record::parse(&[0u8; 10]),
            Err(RecordError::Short { got: 10 })
        );
        assert_eq!(
            Record::parse(&slot_with(|s| s[OFF_KIND] = 9)),
            Err(RecordError::BadKind(9))
        );
        assert_eq!(
            Record::parse(&slot_with(|s| s[OFF_N_STRINGS] = 200)),
            Err(RecordError::TooManyStrings(200))
        );
        let overflow = slot_with(|s| {
            s[OFF_N_STRINGS] = 4;
            s[OFF_STRING_CAP..OFF_STRING_CAP + 2].copy_from_slice(&u16::MAX.to_le_bytes());
            s[OFF_STRINGS + 24..OFF_STRINGS + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        });
        assert!(matches!(
            Record::parse(&overflow),
            Err(RecordError::StringOverflow { .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: xorshift-filled slots of many sizes.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in [0usize, 1, 287, 288, 300, 512, 1024] {
            for _ in 0..500 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let _ = Record::parse(&s);
            }
        }
        assert!(
            Record::parse(&[0u8; FIXED_SIZE]).is_err(),
            "kind 0 is not a record"
        );
    }
}
