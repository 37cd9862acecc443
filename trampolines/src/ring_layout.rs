//! Layout of the shared recording region: one header, then one single-producer ring per M.
//!
//! The region is mapped read-write into the target and into gohook. Trampolines running on an M
//! append records to `ring[m.id]`; gohook consumes them. Every offset below is part of the
//! contract between the generated machine code (`stub`) and the consumer (`injector`), so all of
//! them are named constants, and [`RingLayout`] computes every derived address.
//!
//! ```text
//! region + 0                      region header (HEADER_SIZE bytes, one page)
//!   +0   magic          u64       MAGIC
//!   +8   version        u32       VERSION
//!   +12  n_rings        u32       rings that follow (indexed by m.id)
//!   +16  slots_per_ring u32       power of two
//!   +20  slot_size      u32       power of two, >= record::FIXED_SIZE
//!   +24  global_drops   u64       records dropped because m.id >= n_rings (lock inc)
//!   +32  max_hooks      u32       number of enable bytes (MAX_HOOKS)
//!   +64  enable[MAX_HOOKS] u8     per-hook enable byte; 0 = skip recording
//! region + HEADER_SIZE + i*ring_stride   ring i
//!   +0   head   u64   records ever written; stored by the producer (M i) only, after the slot
//!   +8   drops  u64   records dropped because the ring was full; producer only
//!   +64  tail   u64   records consumed; stored by the consumer only (own cache line)
//!   +RING_HEADER_SIZE + (n % slots_per_ring) * slot_size   slot for record number n
//! ```
//!
//! Ordering: the producer writes a slot with plain stores and then stores `head + 1`. x86-TSO
//! keeps stores in program order, so a consumer that reads `head` and then the slot sees a complete
//! record. The consumer reads the slot and then stores `tail`. The target may scribble over the
//! whole region; the consumer must treat every field as hostile ([`crate::record::Record::parse`]).

use thiserror::Error;

/// `b"GOHOOKRB"` as a little-endian u64: identifies a gohook ring region.
pub const MAGIC: u64 = u64::from_le_bytes(*b"GOHOOKRB");
/// Layout version; bumped whenever any offset in this module or in `record` changes.
pub const VERSION: u32 = 1;

/// Offset of the magic (u64) in the region header.
pub const HDR_MAGIC: usize = 0;
/// Offset of the layout version (u32) in the region header.
pub const HDR_VERSION: usize = 8;
/// Offset of the number of rings (u32) in the region header.
pub const HDR_N_RINGS: usize = 12;
/// Offset of the slots per ring (u32, power of two) in the region header.
pub const HDR_SLOTS_PER_RING: usize = 16;
/// Offset of the slot size in bytes (u32, power of two) in the region header.
pub const HDR_SLOT_SIZE: usize = 20;
/// Offset of the global drop counter (u64): records from an M whose id has no ring.
pub const HDR_GLOBAL_DROPS: usize = 24;
/// Offset of the number of enable bytes (u32) in the region header.
pub const HDR_MAX_HOOKS: usize = 32;
/// Offset of the per-hook enable bytes: `enable[hook_id]` at `HDR_ENABLE + hook_id`.
pub const HDR_ENABLE: usize = 64;
/// Size of the region header; the first ring starts here (page aligned).
pub const HEADER_SIZE: usize = 4096;
/// Number of hook ids that have an enable byte (hook ids are `0..MAX_HOOKS`).
pub const MAX_HOOKS: usize = HEADER_SIZE - HDR_ENABLE;

/// Offset of a ring's head counter (u64), written only by its producer.
pub const RING_HEAD: usize = 0;
/// Offset of a ring's full-ring drop counter (u64), written only by its producer.
pub const RING_DROPS: usize = 8;
/// Offset of a ring's tail counter (u64), written only by the consumer; on its own cache line.
pub const RING_TAIL: usize = 64;
/// Size of a ring's header; slots start here.
pub const RING_HEADER_SIZE: usize = 128;

/// Largest region the layout accepts (the stub multiplies `m.id * ring_stride` in 32 bits).
pub const MAX_REGION_SIZE: u64 = 1 << 31;

/// Why a ring geometry was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// `slots_per_ring` must be a power of two (the stub masks the index).
    #[error("slots per ring must be a non-zero power of two, got {0}")]
    SlotsNotPowerOfTwo(u32),
    /// `slot_size` must be a power of two no smaller than a record's fixed part.
    #[error("slot size must be a power of two of at least {min} bytes, got {got}")]
    BadSlotSize { got: u32, min: u32 },
    /// At least one ring is needed.
    #[error("the region needs at least one ring")]
    NoRings,
    /// The region would exceed [`MAX_REGION_SIZE`].
    #[error("region of {rings} rings x {slots} slots x {slot_size} bytes exceeds {MAX_REGION_SIZE} bytes")]
    TooLarge {
        rings: u32,
        slots: u32,
        slot_size: u32,
    },
    /// A header read back from memory does not describe a gohook region of this version.
    #[error("not a gohook ring region: {0}")]
    BadHeader(&'static str),
}

/// Geometry of a ring region; all derived offsets come from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    n_rings: u32,
    slots_per_ring: u32,
    slot_size: u32,
}

impl RingLayout {
    /// Validates a geometry: power-of-two slots and slot size, total size below [`MAX_REGION_SIZE`].
    pub fn new(n_rings: u32, slots_per_ring: u32, slot_size: u32) -> Result<Self, LayoutError> {
        if n_rings == 0 {
            return Err(LayoutError::NoRings);
        }
        if !slots_per_ring.is_power_of_two() {
            return Err(LayoutError::SlotsNotPowerOfTwo(slots_per_ring));
        }
        let min = crate::record::FIXED_SIZE as u32;
        if !slot_size.is_power_of_two() || slot_size < min {
            return Err(LayoutError::BadSlotSize {
                got: slot_size,
                min,
            });
        }
        let stride = RING_HEADER_SIZE as u64 + slots_per_ring as u64 * slot_size as u64;
        let total = HEADER_SIZE as u64 + n_rings as u64 * stride;
        if total > MAX_REGION_SIZE {
            return Err(LayoutError::TooLarge {
                rings: n_rings,
                slots: slots_per_ring,
                slot_size,
            });
        }
        Ok(Self {
            n_rings,
            slots_per_ring,
            slot_size,
        })
    }

    /// Number of rings (valid `m.id` values are `0..n_rings`).
    pub fn n_rings(&self) -> u32 {
        self.n_rings
    }
    /// Slots in each ring.
    pub fn slots_per_ring(&self) -> u32 {
        self.slots_per_ring
    }
    /// Bytes per slot (one record).
    pub fn slot_size(&self) -> u32 {
        self.slot_size
    }
    /// Distance between consecutive rings.
    pub fn ring_stride(&self) -> u64 {
        RING_HEADER_SIZE as u64 + self.slots_per_ring as u64 * self.slot_size as u64
    }
    /// Total bytes of the region (header and all rings).
    pub fn region_size(&self) -> u64 {
        HEADER_SIZE as u64 + self.n_rings as u64 * self.ring_stride()
    }
    /// Offset of ring `ring` from the region start, or `None` if there is no such ring.
    pub fn ring_offset(&self, ring: u32) -> Option<u64> {
        (ring < self.n_rings).then(|| HEADER_SIZE as u64 + ring as u64 * self.ring_stride())
    }
    /// Offset of the slot holding record number `seq` (a head/tail value) of ring `ring`.
    pub fn slot_offset(&self, ring: u32, seq: u64) -> Option<u64> {
        let index = seq & (self.slots_per_ring as u64 - 1);
        Some(self.ring_offset(ring)? + RING_HEADER_SIZE as u64 + index * self.slot_size as u64)
    }
    /// Offset of hook `hook`'s enable byte, or `None` past [`MAX_HOOKS`].
    pub fn enable_offset(hook: u32) -> Option<u64> {
        ((hook as usize) < MAX_HOOKS).then(|| (HDR_ENABLE + hook as usize) as u64)
    }

    /// The region header bytes for this geometry (all hooks disabled, counters zero).
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_SIZE];
        h[HDR_MAGIC..HDR_MAGIC + 8].copy_from_slice(&MAGIC.to_le_bytes());
        h[HDR_VERSION..HDR_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        h[HDR_N_RINGS..HDR_N_RINGS + 4].copy_from_slice(&self.n_rings.to_le_bytes());
        h[HDR_SLOTS_PER_RING..HDR_SLOTS_PER_RING + 4]
            .copy_from_slice(&self.slots_per_ring.to_le_bytes());
        h[HDR_SLOT_SIZE..HDR_SLOT_SIZE + 4].copy_from_slice(&self.slot_size.to_le_bytes());
        h[HDR_MAX_HOOKS..HDR_MAX_HOOKS + 4].copy_from_slice(&(MAX_HOOKS as u32).to_le_bytes());
        h
    }

    /// Reads the geometry back from a header (hostile bytes: every field is validated).
    pub fn from_header(header: &[u8]) -> Result<Self, LayoutError> {
        let u32_at = |o: usize| -> Result<u32, LayoutError> {
            header
                .get(o..o + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
                .ok_or(LayoutError::BadHeader("header shorter than 64 bytes"))
        };
        let magic = header
            .get(HDR_MAGIC..HDR_MAGIC + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .ok_or(LayoutError::BadHeader("header shorter than 64 bytes"))?;
        if magic != MAGIC {
            return Err(LayoutError::BadHeader("magic mismatch"));
        }
        if u32_at(HDR_VERSION)? != VERSION {
            return Err(LayoutError::BadHeader("layout version mismatch"));
        }
        Self::new(
            u32_at(HDR_N_RINGS)?,
            u32_at(HDR_SLOTS_PER_RING)?,
            u32_at(HDR_SLOT_SIZE)?,
        )
    }
}

/// Number of records waiting in a ring given its head and tail, clamped to the ring capacity.
///
/// A scribbled head behind the tail, or further ahead than one ring, yields 0 or the capacity
/// instead of a huge count; the consumer then resynchronises its tail.
pub fn pending(layout: &RingLayout, head: u64, tail: u64) -> u64 {
    if head < tail {
        return 0;
    }
    (head - tail).min(layout.slots_per_ring as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_offsets_follow_the_documented_layout() {
        let l = RingLayout::new(4, 8, 512).unwrap();
        assert_eq!(l.ring_stride(), 128 + 8 * 512);
        assert_eq!(l.ring_offset(0), Some(4096));
        assert_eq!(l.ring_offset(3), Some(4096 + 3 * (128 + 4096)));
        assert_eq!(l.ring_offset(4), None);
        // Record 9 wraps to slot 1.
        assert_eq!(l.slot_offset(1, 9), Some(4096 + (128 + 4096) + 128 + 512));
        assert_eq!(l.region_size(), 4096 + 4 * (128 + 4096));
        assert_eq!(RingLayout::enable_offset(5), Some(69));
        assert_eq!(RingLayout::enable_offset(MAX_HOOKS as u32), None);
    }

    #[test]
    fn bad_geometries_are_rejected_with_the_reason() {
        assert_eq!(RingLayout::new(0, 8, 512), Err(LayoutError::NoRings));
        assert_eq!(
            RingLayout::new(1, 6, 512),
            Err(LayoutError::SlotsNotPowerOfTwo(6))
        );
        assert!(matches!(
            RingLayout::new(1, 8, 64),
            Err(LayoutError::BadSlotSize { .. })
        ));
        assert!(matches!(
            RingLayout::new(1024, 1 << 16, 1024),
            Err(LayoutError::TooLarge { .. })
        ));
    }

    #[test]
    fn header_round_trips_and_garbage_is_refused() {
        let l = RingLayout::new(2, 16, 512).unwrap();
        let h = l.header_bytes();
        assert_eq!(RingLayout::from_header(&h), Ok(l));
        let mut bad = h.clone();
        bad[0] ^= 1;
        assert_eq!(
            RingLayout::from_header(&bad),
            Err(LayoutError::BadHeader("magic mismatch"))
        );
        assert!(RingLayout::from_header(&h[..10]).is_err());
        let mut zero_slots = h;
        zero_slots[HDR_SLOTS_PER_RING..HDR_SLOTS_PER_RING + 4].fill(0);
        assert!(RingLayout::from_header(&zero_slots).is_err());
    }

    #[test]
    fn pending_is_clamped_against_scribbled_counters() {
        let l = RingLayout::new(1, 8, 512).unwrap();
        assert_eq!(pending(&l, 5, 2), 3);
        assert_eq!(pending(&l, 2, 5), 0);
        assert_eq!(pending(&l, u64::MAX, 0), 8);
    }
}
