//! Reading target memory through a trait, so every decoder works the same on a binary's file
//! image, a byte buffer built by a test, or a live process (the injector implements this trait
//! over `process_vm_readv`).

/// A read that could not be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// Some byte of `[addr, addr+len)` is not mapped (or was freed).
    #[error("cannot read {len} bytes at {addr:#x}: not mapped")]
    Unmapped {
        /// Start of the failed read.
        addr: u64,
        /// Requested length.
        len: usize,
    },
    /// The request was larger than the caller's limit allows.
    #[error("refusing to read {len} bytes at {addr:#x}: over the {limit}-byte limit")]
    TooLarge {
        /// Start of the refused read.
        addr: u64,
        /// Requested length.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The target process is gone or cannot be read.
    #[error("cannot read process memory: {0}")]
    Process(String),
}

/// Random-access reads of a target's address space. Implementations must never panic on any
/// address or length; unreadable ranges return [`MemError`].
pub trait MemoryReader {
    /// Fills `buf` with the bytes at `addr`, or fails without a partial guarantee.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError>;

    /// Reads one byte.
    fn read_u8(&self, addr: u64) -> Result<u8, MemError> {
        let mut b = [0u8; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }
    /// Reads a little-endian u16.
    fn read_u16(&self, addr: u64) -> Result<u16, MemError> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Reads a little-endian u32.
    fn read_u32(&self, addr: u64) -> Result<u32, MemError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads a little-endian u64.
    fn read_u64(&self, addr: u64) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads `len` bytes, refusing lengths above `limit` before allocating anything.
    fn read_vec(&self, addr: u64, len: u64, limit: u64) -> Result<Vec<u8>, MemError> {
        if len > limit {
            return Err(MemError::TooLarge { addr, len, limit });
        }
        let mut v = vec![0u8; len as usize];
        self.read(addr, &mut v)?;
        Ok(v)
    }
}

impl<M: MemoryReader + ?Sized> MemoryReader for &M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read(addr, buf)
    }
}

/// A byte buffer standing at a chosen base address: the memory of unit tests and fuzzers.
#[derive(Debug, Clone, Default)]
pub struct SliceMemory {
    /// Address of `bytes[0]`.
    pub base: u64,
    /// The contents.
    pub bytes: Vec<u8>,
}

impl SliceMemory {
    /// A buffer whose first byte is at `base`.
    pub fn new(base: u64, bytes: Vec<u8>) -> Self {
        SliceMemory { base, bytes }
    }
}

impl MemoryReader for SliceMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let fault = || MemError::Unmapped {
            addr,
            len: buf.len(),
        };
        let start = addr.checked_sub(self.base).ok_or_else(fault)?;
        let start = usize::try_from(start).map_err(|_| fault())?;
        let end = start.checked_add(buf.len()).ok_or_else(fault)?;
        let src = self.bytes.get(start..end).ok_or_else(fault)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A view of `base` with some regions replaced: values materialized from registers, and string
/// bytes copied at the call (which must win over live memory that may have changed since).
///
/// A read lying wholly inside an added region is served from it (the most recently added
/// region wins where regions overlap); any other read goes to `base`.
pub struct Overlay<'a> {
    base: &'a dyn MemoryReader,
    regions: Vec<(u64, Vec<u8>)>,
}

impl std::fmt::Debug for Overlay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for (addr, bytes) in &self.regions {
            l.entry(&format_args!("{addr:#x}+{}", bytes.len()));
        }
        l.finish()
    }
}

impl<'a> Overlay<'a> {
    /// An overlay with no regions yet: every read goes to `base`.
    pub fn new(base: &'a dyn MemoryReader) -> Self {
        Overlay {
            base,
            regions: Vec::new(),
        }
    }

    /// Serves reads inside `[addr, addr + bytes.len())` from `bytes`.
    pub fn add(&mut self, addr: u64, bytes: Vec<u8>) {
        self.regions.push((addr, bytes));
    }

    /// The bytes of the region added at exactly `addr`, if any.
    pub fn region(&self, addr: u64) -> Option<&[u8]> {
        self.regions
            .iter()
            .rev()
            .find(|(a, _)| *a == addr)
            .map(|(_, b)| b.as_slice())
    }
}

impl MemoryReader for Overlay<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if read_from_regions(&self.regions, addr, buf) {
            return Ok(());
        }
        self.base.read(addr, buf)
    }
}

/// Fills `buf` from the last of `regions` (`(start, bytes)`) that holds all of
/// `[addr, addr + buf.len())`; false when none does. The lookup of [`Overlay`], shared with
/// overlays that keep their regions elsewhere.
pub fn read_from_regions(regions: &[(u64, Vec<u8>)], addr: u64, buf: &mut [u8]) -> bool {
    for (start, bytes) in regions.iter().rev() {
        let Some(off) = addr
            .checked_sub(*start)
            .and_then(|o| usize::try_from(o).ok())
        else {
            continue;
        };
        if let Some(src) = off
            .checked_add(buf.len())
            .and_then(|end| bytes.get(off..end))
        {
            buf.copy_from_slice(src);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_the_buffer_and_refuses_outside() {
        let m = SliceMemory::new(0x1000, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(m.read_u32(0x1000).unwrap(), 0x04030201);
        assert_eq!(m.read_u8(0x1008).unwrap(), 9);
        assert!(m.read_u16(0x1008).is_err());
        assert!(m.read_u8(0xfff).is_err());
        assert!(m.read_u64(u64::MAX).is_err());
    }

    #[test]
    fn read_vec_refuses_absurd_lengths_before_allocating() {
        let m = SliceMemory::new(0, vec![0; 16]);
        assert!(matches!(
            m.read_vec(0, 1 << 40, 1 << 20),
            Err(MemError::TooLarge { .. })
        ));
        assert_eq!(m.read_vec(0, 16, 16).unwrap().len(), 16);
    }

    #[test]
    fn overlay_serves_reads_inside_its_regions_and_passes_others_to_the_base() {
        let base = SliceMemory::new(0x1000, vec![0xAA; 32]);
        let mut ov = Overlay::new(&base);
        ov.add(0x1008, vec![1, 2, 3, 4]);
        ov.add(0xffff_f000_0000_0000, vec![9; 8]);
        assert_eq!(ov.read_u32(0x1008).unwrap(), 0x04030201);
        assert_eq!(ov.read_u8(0x100b).unwrap(), 4);
        // Straddling the region's end: the whole read goes to the base.
        assert_eq!(ov.read_u32(0x100a).unwrap(), 0xAAAAAAAA);
        assert_eq!(
            ov.read_u64(0xffff_f000_0000_0000).unwrap(),
            0x0909090909090909
        );
        assert!(ov.read_u8(0xffff_f000_0000_0008).is_err());
        // A later region wins over an earlier one.
        ov.add(0x1008, vec![7; 4]);
        assert_eq!(ov.read_u8(0x1008).unwrap(), 7);
    }
}
