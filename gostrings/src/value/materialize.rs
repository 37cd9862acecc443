//! Register-assigned values laid out as the bytes they would have in memory, so the same
//! [`super::Decoder`] reads them (through an [`crate::memory::Overlay`] at a synthetic address).

use crate::abi::Location;
use crate::gotype::{TypeId, TypeTable};

/// Synthetic addresses for materialized values: kernel-half addresses no user process can map,
/// so they never collide with target memory.
pub const SYNTHETIC_BASE: u64 = 0xffff_f000_0000_0000;

/// Spacing of [`synthetic_addr`] slots: the largest value [`materialize`] lays out.
const SYNTHETIC_STRIDE: u64 = 0x10000;

/// The `i`-th synthetic address: `SYNTHETIC_BASE + i * 0x10000` (saturating, so any `i` gives
/// an address in the kernel half).
pub fn synthetic_addr(i: usize) -> u64 {
    let off = (i as u64).saturating_mul(SYNTHETIC_STRIDE);
    SYNTHETIC_BASE.saturating_add(off)
}

/// Lays a register-assigned value's pieces into its in-memory image (size of the type), from the
/// record's integer registers (ABI order RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11) and the low 64
/// bits of X0–X14. Bytes no piece covers (padding) are zero.
///
/// `None` for `Location::Stack`, for pieces naming registers out of range or lying outside the
/// type, and for types larger than a synthetic slot (64 KiB; no register-assigned value comes
/// near).
pub fn materialize(
    table: &TypeTable,
    ty: TypeId,
    loc: &Location,
    ints: &[u64; 9],
    floats: &[u64; 15],
) -> Option<Vec<u8>> {
    let Location::Registers(pieces) = loc else {
        return None;
    };
    let size = table.get(ty)?.size;
    if size > SYNTHETIC_STRIDE {
        return None;
    }
    let mut image = vec![0u8; size as usize];
    for p in pieces {
        let word = if p.reg.is_float() {
            *floats.get(p.reg.index())?
        } else {
            *ints.get(p.reg.index())?
        };
        if p.size == 0 || p.size > 8 {
            return None;
        }
        let start = usize::try_from(p.value_offset).ok()?;
        let end = start.checked_add(p.size as usize)?;
        image
            .get_mut(start..end)?
            .copy_from_slice(&word.to_le_bytes()[..p.size as usize]);
    }
    Some(image)
}
