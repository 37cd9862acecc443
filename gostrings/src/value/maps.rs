//! Go maps: walking every entry of a `runtime.hmap` (Go < 1.24) or an `internal/runtime/maps`
//! swiss map (Go >= 1.24) without hashing, bounded by [`Limits::max_entries_scanned`].
//!
//! Slot layouts are not stored in DWARF or in the decoder's [`TypeTable`]; they are computed
//! from the key and element types as the compiler lays out its hidden bucket/group struct
//! types (`cmd/compile/internal/reflectdata`, `MapBucketType` ≤ 1.23, `MapGroupType` 1.24+):
//!
//! * A key or element larger than 128 bytes (`abi.MapMaxKeyBytes`/`MapMaxElemBytes`, and
//!   `maxKeySize`/`maxElemSize` before) is stored as a pointer to it ("indirect").
//! * Buckets: `struct { tophash [8]uint8; keys [8]K; elems [8]E; overflow *bmap }` with normal
//!   struct alignment (keys at 8, elems after the keys aligned to E, overflow word-aligned last).
//! * Swiss groups: `struct { ctrl uint64; slots [8]struct{ key K; elem E } }`: the slot struct
//!   aligns `elem` to E's alignment, rounds its size up to the larger alignment, and — like every
//!   Go struct of non-zero size ending in a zero-sized field — gets one byte of padding first
//!   (`map[string]struct{}` has 24-byte slots).
//! * Go 1.27's `GOEXPERIMENT=mapsplitgroup` groups ([`MapLayout::SwissSplit`]):
//!   `struct { ctrl uint64; keys [8]K; elems [8]E }`, laid out like a bucket without the
//!   overflow word (and padded by one byte when `elems` is zero-sized).
//!
//! [`Limits::max_entries_scanned`]: super::Limits::max_entries_scanned

use std::collections::HashSet;

use super::{Decoder, MapKey, MapLayout, Value, ValueError, R};
use crate::gotype::{GoType, Kind, Shape, TypeId};
use crate::memory::{MemoryReader, Overlay};

/// Keys and elements larger than this are stored indirectly (both layouts, every release).
const MAX_INLINE: u64 = 128;
/// Entries per bucket (classic) and slots per group (swiss).
const SLOTS: u64 = 8;
/// Classic `tophash` values (`runtime/map.go`): below `MIN_TOP_HASH` a slot holds no live entry
/// (0 emptyRest, 1 emptyOne, 2 evacuatedX, 3 evacuatedY, 4 evacuatedEmpty).
const MIN_TOP_HASH: u8 = 5;
/// `hmap.flags` bit: the map is growing to a table of the same size.
const SAME_SIZE_GROW: u8 = 8;
/// Largest directory a swiss map is believed to have (2^globalDepth tables).
const MAX_DIR_LEN: u64 = 1 << 24;

/// Where a key and an element sit inside one slot, computed from their types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotLayout {
    /// The key is stored as a pointer to it.
    pub key_indirect: bool,
    /// The element is stored as a pointer to it.
    pub elem_indirect: bool,
    /// Bytes the stored key occupies (8 when indirect).
    pub key_size: u64,
    /// Bytes the stored element occupies (8 when indirect).
    pub elem_size: u64,
    /// Swiss: offset of the element within a slot.
    pub elem_off: u64,
    /// Swiss: size of one slot.
    pub slot_size: u64,
    /// Classic: offset of `keys` in the bucket.
    pub keys_off: u64,
    /// Classic: offset of `elems` in the bucket.
    pub elems_off: u64,
    /// Classic: offset of `overflow`; swiss: offset of the slots.
    pub overflow_off: u64,
    /// Size of a bucket (classic).
    pub unit_size: u64,
    /// Size of a split group (`GOEXPERIMENT=mapsplitgroup`).
    pub split_group_size: u64,
}

fn align_up(x: u64, a: u64) -> u64 {
    let a = a.max(1);
    x.div_ceil(a).saturating_mul(a)
}

impl SlotLayout {
    /// The layout for keys of type `k` and elements of type `e`.
    pub(crate) fn compute(k: &GoType, e: &GoType) -> SlotLayout {
        let stored = |t: &GoType| {
            if t.size > MAX_INLINE {
                (true, 8, 8)
            } else {
                (false, t.size, t.align.clamp(1, 8))
            }
        };
        let (key_indirect, ks, ka) = stored(k);
        let (elem_indirect, es, ea) = stored(e);
        // Swiss slot: struct { key K; elem E }.
        let elem_off = align_up(ks, ea);
        let mut slot_end = elem_off + es;
        if slot_end > 0 && es == 0 {
            slot_end += 1;
        }
        let slot_size = align_up(slot_end, ka.max(ea));
        // Classic bucket: struct { tophash [8]uint8; keys [8]K; elems [8]E; overflow ptr }.
        let keys_off = align_up(SLOTS, ka);
        let elems_off = align_up(keys_off + SLOTS * ks, ea);
        let overflow_off = align_up(elems_off + SLOTS * es, 8);
        // Split group: struct { ctrl uint64; keys [8]K; elems [8]E }.
        let mut split_end = elems_off + SLOTS * es;
        if es == 0 {
            split_end += 1;
        }
        let split_group_size = align_up(split_end, ka.max(ea).max(8));
        SlotLayout {
            key_indirect,
            elem_indirect,
            key_size: ks,
            elem_size: es,
            elem_off,
            slot_size,
            keys_off,
            elems_off,
            overflow_off,
            unit_size: overflow_off + 8,
            split_group_size,
        }
    }

    /// Size of an interleaved swiss group.
    pub(crate) fn group_size(&self) -> u64 {
        // ctrl word, then 8 slots (slot alignment is at most 8, so they start at 8).
        8 + SLOTS * self.slot_size
    }

    /// `(group size, keys offset, key stride, elems offset, elem stride)` of a swiss group,
    /// interleaved or split.
    fn group_geometry(&self, split: bool) -> (u64, u64, u64, u64, u64) {
        if split {
            (
                self.split_group_size,
                self.keys_off,
                self.key_size,
                self.elems_off,
                self.elem_size,
            )
        } else {
            (
                self.group_size(),
                8,
                self.slot_size,
                8 + self.elem_off,
                self.slot_size,
            )
        }
    }
}

/// What the entry visitor wants next.
pub(crate) enum Next {
    Continue,
    Stop,
}

impl Decoder {
    fn map_types(&self, v: Value, op: &'static str) -> R<(GoType, TypeId, TypeId)> {
        let t = self.ty(v.ty)?;
        match t.shape {
            Shape::Map { key, elem } => Ok((t, key, elem)),
            _ => Err(ValueError::WrongKind {
                op,
                want: "a map",
                ty: t.name,
            }),
        }
    }

    /// Number of entries (`hmap.count` / `maps.Map.used`, both the first word).
    pub(crate) fn map_len(&self, mem: &dyn MemoryReader, v: Value) -> R<u64> {
        self.map_types(v, "len")?;
        let h = Self::read_u64(mem, v.addr)?;
        if h == 0 {
            return Ok(0);
        }
        Self::read_u64(mem, h)
    }

    /// The keys of map `v`, in the map's internal order; at most
    /// [`super::Limits::max_entries_scanned`] slots are scanned (more is an error).
    pub fn map_keys(&self, mem: &dyn MemoryReader, v: Value) -> R<Vec<Value>> {
        let mut keys = Vec::new();
        self.map_entries("map_keys", mem, v, &mut |_, k, _| {
            keys.push(k);
            Ok(Next::Continue)
        })?;
        Ok(keys)
    }

    /// The `(key, element)` pairs of map `v`, in the map's internal order; bounded as
    /// [`Decoder::map_keys`].
    pub fn map_items(&self, mem: &dyn MemoryReader, v: Value) -> R<Vec<(Value, Value)>> {
        let mut items = Vec::new();
        self.map_entries("map_items", mem, v, &mut |_, k, e| {
            items.push((k, e));
            Ok(Next::Continue)
        })?;
        Ok(items)
    }

    /// The element stored under `key`, found by comparing `key` with every decoded key (no
    /// hashing), or `None`.
    pub fn map_get(&self, mem: &dyn MemoryReader, v: Value, key: &MapKey) -> R<Option<Value>> {
        let (t, kt, _) = self.map_types(v, "map_get")?;
        let kty = self.ty(kt)?;
        let fits = match key {
            MapKey::Str(_) => kty.kind == Kind::String,
            MapKey::Int(_) | MapKey::Uint(_) => kty.kind.is_integer(),
            MapKey::Bool(_) => kty.kind == Kind::Bool,
            MapKey::Float(_) => matches!(kty.kind, Kind::Float32 | Kind::Float64),
        };
        if !fits {
            return Err(ValueError::KeyKind {
                key: match key {
                    MapKey::Str(_) => "string",
                    MapKey::Int(_) => "signed integer",
                    MapKey::Uint(_) => "unsigned integer",
                    MapKey::Bool(_) => "bool",
                    MapKey::Float(_) => "float",
                },
                ty: t.name,
            });
        }
        let mut found = None;
        self.map_entries("map_get", mem, v, &mut |m, k, e| {
            if self.key_equals(m, k, key)? {
                found = Some(e);
                return Ok(Next::Stop);
            }
            Ok(Next::Continue)
        })?;
        Ok(found)
    }

    fn key_equals(&self, mem: &dyn MemoryReader, k: Value, want: &MapKey) -> R<bool> {
        Ok(match want {
            MapKey::Str(s) => {
                let t = self.ty(k.ty)?;
                let (ptr, len) = self.string_header(mem, k, &t)?;
                if len != s.len() as u64 {
                    return Ok(false);
                }
                len == 0 || Self::read_exact(mem, ptr, len, s.len())? == s.as_bytes()
            }
            MapKey::Int(i) => match self.int(mem, k) {
                Ok(x) => x == *i,
                Err(ValueError::Overflow { .. }) => false,
                Err(e) => return Err(e),
            },
            MapKey::Uint(u) => match self.uint(mem, k) {
                Ok(x) => x == *u,
                Err(ValueError::Overflow { .. }) => false,
                Err(e) => return Err(e),
            },
            MapKey::Bool(b) => self.bool(mem, k)? == *b,
            MapKey::Float(f) => self.float(mem, k)? == *f,
        })
    }

    /// Calls `visit(mem, key, elem)` for every live entry of map `v`. `mem` serves the current
    /// bucket/group from one read (keys compared there cost no further reads).
    pub(crate) fn map_entries(
        &self,
        op: &'static str,
        mem: &dyn MemoryReader,
        v: Value,
        visit: &mut dyn FnMut(&dyn MemoryReader, Value, Value) -> R<Next>,
    ) -> R<()> {
        let (t, kt, et) = self.map_types(v, op)?;
        let (kty, ety) = (self.ty(kt)?, self.ty(et)?);
        Self::opaque_check(&kty)?;
        Self::opaque_check(&ety)?;
        let layout = SlotLayout::compute(&kty, &ety);
        let h = Self::read_u64(mem, v.addr)?;
        if h == 0 {
            return Ok(());
        }
        let mut scan = Scan {
            dec: self,
            mem,
            map: &t,
            key: kt,
            elem: et,
            layout,
            // Inside one render, all maps share one budget (nested maps cannot multiply it).
            budget: self
                .shared_scan_budget
                .get()
                .unwrap_or(self.limits.max_entries_scanned),
            visit,
        };
        let r = match self.layout {
            MapLayout::Buckets => scan.buckets(h),
            MapLayout::Swiss => scan.swiss(h, false),
            MapLayout::SwissSplit => scan.swiss(h, true),
        };
        if self.shared_scan_budget.get().is_some() {
            self.shared_scan_budget.set(Some(scan.budget));
        }
        r.map(|_| ())
    }
}

/// One walk over a map's storage.
struct Scan<'a, 'v> {
    dec: &'a Decoder,
    mem: &'a dyn MemoryReader,
    map: &'a GoType,
    key: TypeId,
    elem: TypeId,
    layout: SlotLayout,
    budget: usize,
    visit: &'v mut dyn FnMut(&dyn MemoryReader, Value, Value) -> R<Next>,
}

impl<'a> Scan<'a, '_> {
    fn implausible(&self, addr: u64, why: String) -> ValueError {
        ValueError::Implausible {
            ty: self.map.name.clone(),
            addr,
            why,
        }
    }

    fn spend(&mut self, slots: u64) -> R<()> {
        let slots = usize::try_from(slots).unwrap_or(usize::MAX);
        if slots > self.budget {
            return Err(ValueError::Limit {
                what: format!("scanning {}", self.map.name),
                limit: self.dec.limits.max_entries_scanned,
                field: "max_entries_scanned",
            });
        }
        self.budget -= slots;
        Ok(())
    }

    /// Visits the entry whose stored key is at `kaddr` and stored element at `eaddr`, inside
    /// the unit image `ov`. Returns true to stop.
    fn entry(&mut self, ov: &Overlay<'_>, kaddr: u64, eaddr: u64) -> R<bool> {
        let follow = |indirect: bool, at: u64| -> R<u64> {
            if indirect {
                Decoder::read_u64(ov, at)
            } else {
                Ok(at)
            }
        };
        let k = Value {
            ty: self.key,
            addr: follow(self.layout.key_indirect, kaddr)?,
        };
        let e = Value {
            ty: self.elem,
            addr: follow(self.layout.elem_indirect, eaddr)?,
        };
        Ok(matches!((self.visit)(ov, k, e)?, Next::Stop))
    }

    /// Reads one bucket or group whole, as an overlay over the target's memory.
    fn unit(&self, addr: u64, size: u64) -> R<Overlay<'a>> {
        let bytes = Decoder::read_exact(self.mem, addr, size, 1 << 16)?;
        let mut ov = Overlay::new(self.mem);
        ov.add(addr, bytes);
        Ok(ov)
    }

    // ---- Go < 1.24: runtime.hmap ---------------------------------------------------------

    /// `runtime.hmap{count int; flags uint8; B uint8; noverflow uint16; hash0 uint32;
    /// buckets, oldbuckets unsafe.Pointer; nevacuate uintptr; extra *mapextra}` (1.21–1.23
    /// `runtime/map.go`, unchanged since 1.10). During growth, old buckets not yet evacuated
    /// (tophash[0] not in evacuatedX..evacuatedEmpty) still hold their entries; entries already
    /// moved are marked per slot, so reading new buckets plus the live slots of old ones sees
    /// each entry once.
    fn buckets(&mut self, h: u64) -> R<bool> {
        let hdr = Decoder::read_exact(self.mem, h, 48, 48)?;
        let w = |i: usize| u64::from_le_bytes(hdr[i..i + 8].try_into().unwrap_or([0; 8]));
        let (count, flags, b) = (w(0), hdr[8], hdr[9]);
        let (buckets, oldbuckets) = (w(16), w(24));
        if count == 0 {
            return Ok(false);
        }
        if b > 40 || buckets == 0 {
            return Err(self.implausible(h, format!("B = {b}, buckets at {buckets:#x}")));
        }
        let nb = 1u64 << b;
        let size = self.layout.unit_size;
        if oldbuckets != 0 {
            let old_nb = if flags & SAME_SIZE_GROW != 0 || b == 0 {
                nb
            } else {
                nb / 2
            };
            for i in 0..old_nb {
                let addr = oldbuckets.wrapping_add(i.wrapping_mul(size));
                let top0 = self.mem.read_u8(addr).map_err(ValueError::mem)?;
                if (2..MIN_TOP_HASH).contains(&top0) {
                    continue; // evacuated
                }
                if self.bucket_chain(addr)? {
                    return Ok(true);
                }
            }
        }
        for i in 0..nb {
            let addr = buckets.wrapping_add(i.wrapping_mul(size));
            if self.bucket_chain(addr)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A bucket and its overflow chain (bounded by the scan budget).
    fn bucket_chain(&mut self, mut addr: u64) -> R<bool> {
        let l = self.layout;
        loop {
            self.spend(SLOTS)?;
            let ov = self.unit(addr, l.unit_size)?;
            let img = ov.region(addr).unwrap_or(&[]);
            let tophash: Vec<u8> = img.iter().take(SLOTS as usize).copied().collect();
            let overflow = img
                .get(l.overflow_off as usize..l.overflow_off as usize + 8)
                .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])));
            for (i, &top) in tophash.iter().enumerate() {
                if top < MIN_TOP_HASH {
                    continue;
                }
                let i = i as u64;
                let k = addr + l.keys_off + i * l.key_size;
                let e = addr + l.elems_off + i * l.elem_size;
                if self.entry(&ov, k, e)? {
                    return Ok(true);
                }
            }
            if overflow == 0 {
                return Ok(false);
            }
            addr = overflow;
        }
    }

    // ---- Go >= 1.24: internal/runtime/maps ------------------------------------------------

    /// `maps.Map{used uint64; seed uintptr; dirPtr unsafe.Pointer; dirLen int; globalDepth,
    /// globalShift, writing, tombstonePossible uint8; clearSeq uint64}` (1.24–1.27 `map.go`).
    /// `dirLen == 0`: a small map, `dirPtr` is a single group. Otherwise `dirPtr` is
    /// `[dirLen]*table`, a table appearing at 2^(globalDepth-localDepth) consecutive indices;
    /// `table{used, capacity, growthLeft uint16; localDepth uint8; index int;
    /// groups{data unsafe.Pointer; lengthMask uint64}}` (groups at 16).
    fn swiss(&mut self, m: u64, split: bool) -> R<bool> {
        let hdr = Decoder::read_exact(self.mem, m, 32, 32)?;
        let w = |i: usize| u64::from_le_bytes(hdr[i..i + 8].try_into().unwrap_or([0; 8]));
        let (used, dir_ptr, dir_len) = (w(0), w(16), w(24));
        if used == 0 || dir_ptr == 0 {
            return Ok(false);
        }
        if dir_len == 0 {
            return self.group(dir_ptr, split);
        }
        if dir_len > MAX_DIR_LEN {
            return Err(self.implausible(m, format!("directory of {dir_len} tables")));
        }
        let mut seen = HashSet::new();
        let mut last = 0u64;
        for i in 0..dir_len {
            let table = Decoder::read_u64(self.mem, dir_ptr.wrapping_add(i * 8))?;
            if table == last || table == 0 || !seen.insert(table) {
                // Each table spans consecutive directory entries; a repeat costs one slot of
                // budget so a hostile directory cannot loop for long.
                self.spend(1)?;
                continue;
            }
            last = table;
            let t = Decoder::read_exact(self.mem, table, 32, 32)?;
            let groups = u64::from_le_bytes(t[16..24].try_into().unwrap_or([0; 8]));
            let mask = u64::from_le_bytes(t[24..32].try_into().unwrap_or([0; 8]));
            let n = mask
                .checked_add(1)
                .filter(|n| n.is_power_of_two())
                .ok_or_else(|| {
                    self.implausible(table, format!("table with group mask {mask:#x}"))
                })?;
            let gsize = self.layout.group_geometry(split).0;
            for g in 0..n {
                if self.group(groups.wrapping_add(g.wrapping_mul(gsize)), split)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// One swiss group: ctrl word (byte i for slot i: 0x80 empty, 0xFE deleted, top bit clear
    /// when full), then 8 slots.
    fn group(&mut self, addr: u64, split: bool) -> R<bool> {
        self.spend(SLOTS)?;
        let (size, koff, kstride, eoff, estride) = self.layout.group_geometry(split);
        let ov = self.unit(addr, size)?;
        let ctrl: Vec<u8> = ov
            .region(addr)
            .unwrap_or(&[])
            .iter()
            .take(SLOTS as usize)
            .copied()
            .collect();
        for (i, &c) in ctrl.iter().enumerate() {
            if c & 0x80 != 0 {
                continue;
            }
            let i = i as u64;
            if self.entry(&ov, addr + koff + i * kstride, addr + eoff + i * estride)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
