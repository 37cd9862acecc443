//! The consumer side of the shared ring region (layout: `trampolines::ring_layout`): drains every
//! per-M ring in order, advances the tails, and counts drops. The target can scribble anything
//! over the region, so every counter is clamped and every slot parsed defensively; nothing the
//! target writes can make this code panic, loop forever or read outside the mapping.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use memmap2::MmapMut;
use trampolines::record::{
    Record, RecordError, FIXED_SIZE, MAX_STRINGS, OFF_N_STRINGS, OFF_STRING_CAP,
};
use trampolines::ring_layout::{
    pending, RingLayout, HDR_GLOBAL_DROPS, RING_DROPS, RING_HEAD, RING_TAIL,
};

use crate::error::{Error, Result};

/// Counters from one [`RingReader::drain`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainStats {
    /// Records handed to the callback (parsed or not).
    pub records: u64,
    /// Slots that did not parse.
    pub malformed: u64,
    /// Times a ring's head was behind our tail or impossibly far ahead (scribbled): the tail
    /// was resynchronised.
    pub resyncs: u64,
}

/// Reads records out of a mapped ring region.
#[derive(Debug)]
pub struct RingReader {
    map: MmapMut,
    layout: RingLayout,
    /// Our own copy of every tail: the shared one is written for the producers, never trusted.
    tails: Vec<u64>,
}

impl RingReader {
    /// Takes a fresh (zeroed) mapping, writes the region header for `layout` (all hooks
    /// disabled) and returns a reader. Call this before any trampoline can run.
    pub fn create(mut map: MmapMut, layout: RingLayout) -> Result<RingReader> {
        if (map.len() as u64) < layout.region_size() {
            return Err(Error::Ring(format!(
                "mapping of {} bytes is smaller than the {}-byte region",
                map.len(),
                layout.region_size()
            )));
        }
        let header = layout.header_bytes();
        map[..header.len()].copy_from_slice(&header);
        let n = layout.n_rings() as usize;
        Ok(RingReader {
            map,
            layout,
            tails: vec![0; n],
        })
    }

    /// Opens a region whose header was written earlier (hostile: the header is validated and
    /// must fit the mapping). Tails start at the shared tail values, clamped to the heads.
    pub fn open(map: MmapMut) -> Result<RingReader> {
        let layout = RingLayout::from_header(&map[..map.len().min(4096)])
            .map_err(|e| Error::Ring(e.to_string()))?;
        if layout.region_size() > map.len() as u64 {
            return Err(Error::Ring(
                "header describes a region larger than the mapping".into(),
            ));
        }
        let mut r = RingReader {
            map,
            layout,
            tails: Vec::new(),
        };
        r.tails = (0..layout.n_rings())
            .map(|i| {
                let head = r.load(i, RING_HEAD);
                r.load(i, RING_TAIL).min(head)
            })
            .collect();
        Ok(r)
    }

    /// The geometry in use.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Enables or disables recording for `hook` (the trampoline checks its enable byte).
    pub fn set_enabled(&self, hook: u32, on: bool) -> Result<()> {
        let off = RingLayout::enable_offset(hook)
            .ok_or_else(|| Error::Ring(format!("hook id {hook} has no enable byte")))?;
        self.atomic_u8(off as usize)
            .store(on as u8, Ordering::Release);
        Ok(())
    }

    /// Records dropped so far: full rings plus records from Ms without a ring.
    pub fn drops(&self) -> u64 {
        let per_ring: u64 = (0..self.layout.n_rings())
            .map(|i| self.load(i, RING_DROPS))
            .fold(0, u64::saturating_add);
        per_ring.saturating_add(self.atomic_u64(HDR_GLOBAL_DROPS).load(Ordering::Acquire))
    }

    /// Drains up to `max` records (over all rings; each ring in order) into `f(ring, record)`.
    pub fn drain(
        &mut self,
        max: u64,
        mut f: impl FnMut(u32, Result<Record, RecordError>),
    ) -> DrainStats {
        let mut stats = DrainStats::default();
        let slots = self.layout.slots_per_ring() as u64;
        let slot_size = self.layout.slot_size() as usize;
        let mut slot = vec![0u8; slot_size];
        for ring in 0..self.layout.n_rings() {
            let head = self.load(ring, RING_HEAD);
            let mut tail = self.tails[ring as usize];
            if head < tail || head - tail > slots {
                // Scribbled or overrun: jump to the oldest record that can still be intact.
                stats.resyncs += 1;
                tail = head
                    .saturating_sub(slots)
                    .max(if head < tail { head } else { 0 });
            }
            let n = pending(&self.layout, head, tail).min(max.saturating_sub(stats.records));
            for _ in 0..n {
                let Some(off) = self.layout.slot_offset(ring, tail) else {
                    break;
                };
                // The fixed part first; then only the string bytes the header says are there.
                let off = off as usize;
                let fixed = FIXED_SIZE.min(slot_size);
                self.copy_out(off, &mut slot[..fixed]);
                let n_strings = usize::from(slot.get(OFF_N_STRINGS).copied().unwrap_or(0));
                let cap = slot
                    .get(OFF_STRING_CAP..OFF_STRING_CAP + 2)
                    .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
                let need = (fixed + n_strings.min(MAX_STRINGS) * cap).min(slot_size);
                if need > fixed {
                    self.copy_out(off + fixed, &mut slot[fixed..need]);
                }
                let rec = Record::parse(&slot[..need]);
                if rec.is_err() {
                    stats.malformed += 1;
                }
                f(ring, rec);
                stats.records += 1;
                tail += 1;
            }
            self.tails[ring as usize] = tail;
            self.store(ring, RING_TAIL, tail);
        }
        stats
    }

    fn ring_field(&self, ring: u32, field: usize) -> usize {
        // ring < n_rings and the region fits the mapping (checked at construction).
        self.layout.ring_offset(ring).unwrap_or(0) as usize + field
    }

    fn load(&self, ring: u32, field: usize) -> u64 {
        self.atomic_u64(self.ring_field(ring, field))
            .load(Ordering::Acquire)
    }

    fn store(&self, ring: u32, field: usize, v: u64) {
        self.atomic_u64(self.ring_field(ring, field))
            .store(v, Ordering::Release)
    }

    /// Gives the ring's memory back after the last drain of a detach: the pages of the shared
    /// file are freed (`MADV_REMOVE` punches them out of the memfd), so the mapping gohook
    /// leaves in the target costs no memory. The target's view stays valid and reads zeros,
    /// which also reads as "every hook disabled". Call it only once no trampoline can run (the
    /// patches reverted) and the records are consumed: nothing can be read afterwards.
    pub fn release_pages(self) -> Result<()> {
        // SAFETY: MADV_REMOVE on our own MAP_SHARED mapping of a memfd only replaces the file's
        // contents by zeros; the mapping stays valid, and `self` (the only reader of it) is
        // consumed here, so no reference into the old contents outlives the call.
        unsafe { self.map.unchecked_advise(memmap2::UncheckedAdvice::Remove) }
            .map_err(|e| Error::Ring(format!("freeing the ring's pages: {e}")))
    }

    fn atomic_u64(&self, off: usize) -> &AtomicU64 {
        assert!(
            off.is_multiple_of(8) && off + 8 <= self.map.len(),
            "layout offsets are 8-aligned and inside the region"
        );
        // SAFETY: `off` is 8-aligned (mmap memory is page aligned) and in bounds (asserted); the
        // memory is shared with another process that accesses it atomically or with plain
        // aligned stores, which x86-64 makes atomic. The reference lives no longer than `self`.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(off) as *mut u64) }
    }

    fn atomic_u8(&self, off: usize) -> &AtomicU8 {
        assert!(off < self.map.len(), "enable byte inside the region");
        // SAFETY: in bounds (asserted); see `atomic_u64`.
        unsafe { AtomicU8::from_ptr(self.map.as_ptr().add(off) as *mut u8) }
    }

    /// Copies bytes out of shared memory with volatile reads (the producer may be writing
    /// them), eight at a time where aligned; bytes past the mapping read as zero.
    fn copy_out(&self, off: usize, out: &mut [u8]) {
        let end = off.saturating_add(out.len()).min(self.map.len());
        let avail = end.saturating_sub(off);
        let src = self.map.as_ptr();
        let mut i = 0;
        if (src as usize).wrapping_add(off) % 8 == 0 {
            while i + 8 <= avail {
                let w = read_word(src, off + i);
                out[i..i + 8].copy_from_slice(&w.to_ne_bytes());
                i += 8;
            }
        }
        for (j, b) in out.iter_mut().enumerate().skip(i) {
            *b = if j < avail {
                // SAFETY: `off + j < end <= map.len()`, so the pointer is inside the mapping.
                unsafe { std::ptr::read_volatile(src.add(off + j)) }
            } else {
                0
            };
        }
    }
}

/// One aligned volatile 8-byte read at `base + at`.
fn read_word(base: *const u8, at: usize) -> u64 {
    // SAFETY: the only caller checks that `base + at` is 8-aligned and that `at + 8` bytes lie
    // inside the mapping that starts at `base`.
    unsafe { std::ptr::read_volatile(base.add(at) as *const u64) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trampolines::record::{FIXED_SIZE, OFF_GOID, OFF_HOOK_ID, OFF_KIND};

    fn reader(rings: u32, slots: u32) -> RingReader {
        let layout = RingLayout::new(rings, slots, 512).unwrap();
        let map = MmapMut::map_anon(layout.region_size() as usize).unwrap();
        RingReader::create(map, layout).unwrap()
    }

    /// Plays the producer: writes record `seq` into `ring` and bumps the head.
    fn produce(r: &mut RingReader, ring: u32, hook: u32, goid: u64) {
        let head = r.load(ring, RING_HEAD);
        let off = r.layout.slot_offset(ring, head).unwrap() as usize;
        let slot = &mut r.map[off..off + FIXED_SIZE];
        slot.fill(0);
        slot[OFF_HOOK_ID..OFF_HOOK_ID + 4].copy_from_slice(&hook.to_le_bytes());
        slot[OFF_KIND] = 1;
        slot[OFF_GOID..OFF_GOID + 8].copy_from_slice(&goid.to_le_bytes());
        r.store(ring, RING_HEAD, head + 1);
    }

    #[test]
    fn drains_each_ring_in_order_and_publishes_the_tail() {
        let mut r = reader(2, 8);
        for g in 1..=3 {
            produce(&mut r, 0, 7, g);
        }
        produce(&mut r, 1, 9, 100);
        let mut seen = Vec::new();
        let stats = r.drain(u64::MAX, |ring, rec| seen.push((ring, rec.unwrap().goid)));
        assert_eq!(seen, vec![(0, 1), (0, 2), (0, 3), (1, 100)]);
        assert_eq!(stats.records, 4);
        assert_eq!(r.load(0, RING_TAIL), 3);
        assert_eq!(r.drain(u64::MAX, |_, _| panic!("nothing left")).records, 0);
    }

    #[test]
    fn records_with_strings_round_trip_and_a_stale_tail_from_an_older_record_is_ignored() {
        use trampolines::record::{CapturedString, RecordKind};
        let mut r = reader(1, 4);
        let slot_size = r.layout.slot_size() as usize;
        let rec = |strings: Vec<CapturedString>| Record {
            hook_id: 3,
            kind: RecordKind::Entry,
            tsc: 42,
            goid: 7,
            parent_goid: Some(1),
            depth: 128,
            m_id: 0,
            ints: [Some(5); 9],
            floats: [None; 15],
            strings,
        };
        let with = rec(vec![
            CapturedString {
                len: 5,
                bytes: b"hello".to_vec(),
            },
            CapturedString {
                len: 100,
                bytes: vec![b'x'; 56],
            },
        ]);
        let without = rec(vec![]);
        for (i, want) in [&with, &without].into_iter().enumerate() {
            let off = r.layout.slot_offset(0, i as u64).unwrap() as usize;
            want.write_to(&mut r.map[off..off + slot_size], 56).unwrap();
            r.store(0, RING_HEAD, i as u64 + 1);
        }
        let mut seen = Vec::new();
        r.drain(u64::MAX, |_, got| seen.push(got.unwrap()));
        assert_eq!(seen, vec![with, without]);
    }

    #[test]
    fn drain_respects_the_budget_and_resumes_where_it_stopped() {
        let mut r = reader(1, 8);
        for g in 0..5 {
            produce(&mut r, 0, 1, g);
        }
        let mut got = Vec::new();
        r.drain(2, |_, rec| got.push(rec.unwrap().goid));
        r.drain(10, |_, rec| got.push(rec.unwrap().goid));
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn scribbled_heads_are_clamped_not_trusted() {
        let mut r = reader(1, 8);
        r.store(0, RING_HEAD, u64::MAX);
        let stats = r.drain(u64::MAX, |_, _| {});
        assert_eq!(stats.resyncs, 1);
        assert!(
            stats.records <= 8,
            "at most one ring's worth, got {}",
            stats.records
        );
        assert_eq!(stats.malformed, stats.records, "zeroed slots have kind 0");
        // A head moved backwards does not make us replay or underflow.
        r.store(0, RING_HEAD, 3);
        let stats = r.drain(u64::MAX, |_, _| {});
        assert_eq!(stats.records, 0);
    }

    #[test]
    fn drops_sum_full_rings_and_orphan_ms() {
        let r = reader(2, 8);
        r.store(0, RING_DROPS, 2);
        r.store(1, RING_DROPS, 3);
        r.atomic_u64(HDR_GLOBAL_DROPS).store(4, Ordering::Release);
        assert_eq!(r.drops(), 9);
    }

    #[test]
    fn open_refuses_a_header_that_does_not_fit_the_mapping() {
        let mut map = MmapMut::map_anon(8192).unwrap();
        let big = RingLayout::new(64, 1024, 512).unwrap();
        map[..4096].copy_from_slice(&big.header_bytes());
        assert!(RingReader::open(map).is_err());
        let garbage = MmapMut::map_anon(8192).unwrap();
        assert!(RingReader::open(garbage).is_err());
    }

    #[test]
    fn enable_bytes_are_written_where_the_stub_reads_them() {
        let r = reader(1, 8);
        r.set_enabled(5, true).unwrap();
        assert_eq!(r.map[RingLayout::enable_offset(5).unwrap() as usize], 1);
        assert!(r.set_enabled(1 << 20, true).is_err());
    }
}
