//! The caller-supplied `PCDATA_UnsafePoint` knowledge the planners need.
//!
//! This crate does not read pclntab; the caller (gohook, via gostrings) passes the decoded table.

/// `PCDATA_UnsafePoint` value of an async-unsafe instruction (no goroutine can be parked there).
pub const UNSAFE: i32 = -2;
/// `PCDATA_UnsafePoint` value of an async-preemption safe point.
pub const SAFE: i32 = -1;

/// Answers "what is PCDATA_UnsafePoint at this pc?"; `None` when unknown.
pub trait UnsafePoints {
    /// The value in force at `pc`, or `None` if the table does not cover `pc`.
    fn value_at(&self, pc: u64) -> Option<i32>;
}

impl<F: Fn(u64) -> Option<i32>> UnsafePoints for F {
    fn value_at(&self, pc: u64) -> Option<i32> {
        self(pc)
    }
}

/// A decoded pc-value table: sorted, non-overlapping `[start, end)` ranges with their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsafePointTable {
    ranges: Vec<(u64, u64, i32)>,
}

impl UnsafePointTable {
    /// Builds a table from `(start, end, value)` ranges in any order; empty ranges are dropped.
    pub fn new(mut ranges: Vec<(u64, u64, i32)>) -> Self {
        ranges.retain(|r| r.0 < r.1);
        ranges.sort_unstable();
        Self { ranges }
    }
}

impl UnsafePoints for UnsafePointTable {
    fn value_at(&self, pc: u64) -> Option<i32> {
        let i = self.ranges.partition_point(|r| r.0 <= pc);
        let (start, end, v) = *self.ranges.get(i.checked_sub(1)?)?;
        (start <= pc && pc < end).then_some(v)
    }
}

/// No table available: every boundary is unknown, so nothing with an interior boundary is proven.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUnsafePointInfo;

impl UnsafePoints for NoUnsafePointInfo {
    fn value_at(&self, _pc: u64) -> Option<i32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookup_finds_the_covering_range_only() {
        let t = UnsafePointTable::new(vec![
            (0x10, 0x14, SAFE),
            (0x14, 0x16, UNSAFE),
            (0x20, 0x30, SAFE),
        ]);
        assert_eq!(t.value_at(0x0f), None);
        assert_eq!(t.value_at(0x10), Some(SAFE));
        assert_eq!(t.value_at(0x15), Some(UNSAFE));
        assert_eq!(t.value_at(0x18), None);
        assert_eq!(t.value_at(0x2f), Some(SAFE));
        assert_eq!(t.value_at(0x30), None);
    }
}
