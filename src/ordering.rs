//! Merges records from the per-thread rings into one stream ordered by timestamp.
//!
//! Each Go thread (M) writes its own ring, and a goroutine can move between threads between
//! its entry and its exit, so the two records of one call may sit in different rings. Draining
//! ring by ring would then see an exit before its entry. Records are therefore held in a heap
//! and released in timestamp order only once they are older than a watermark: a point in time
//! before which every ring has certainly published what it recorded.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

struct Keyed<R> {
    tsc: u64,
    seq: u64,
    rec: R,
}

impl<R> PartialEq for Keyed<R> {
    fn eq(&self, o: &Self) -> bool {
        (self.tsc, self.seq) == (o.tsc, o.seq)
    }
}
impl<R> Eq for Keyed<R> {}
impl<R> PartialOrd for Keyed<R> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<R> Ord for Keyed<R> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.tsc, self.seq).cmp(&(o.tsc, o.seq))
    }
}

/// A timestamp-ordered holding area for records.
pub struct Reorder<R> {
    heap: BinaryHeap<Reverse<Keyed<R>>>,
    seq: u64,
}

impl<R> Default for Reorder<R> {
    fn default() -> Self {
        Reorder {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<R> Reorder<R> {
    /// An empty holding area.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record stamped `tsc`. Records with equal stamps keep their arrival order.
    pub fn push(&mut self, tsc: u64, rec: R) {
        self.seq += 1;
        self.heap.push(Reverse(Keyed {
            tsc,
            seq: self.seq,
            rec,
        }));
    }

    /// Releases, oldest first, every record stamped at or before `watermark`.
    pub fn pop_until(&mut self, watermark: u64, mut f: impl FnMut(R)) {
        while self.heap.peek().is_some_and(|r| r.0.tsc <= watermark) {
            if let Some(Reverse(k)) = self.heap.pop() {
                f(k.rec);
            }
        }
    }

    /// Releases everything, oldest first.
    pub fn drain(&mut self, f: impl FnMut(R)) {
        self.pop_until(u64::MAX, f);
    }

    /// Number of records held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_two_rings_come_out_in_timestamp_order() {
        let mut r = Reorder::new();
        // ring A drained first holds the exit; ring B holds the entry, which is older.
        r.push(20, "exit");
        r.push(10, "entry");
        let mut out = vec![];
        r.drain(|x| out.push(x));
        assert_eq!(out, ["entry", "exit"]);
    }

    #[test]
    fn records_newer_than_the_watermark_wait() {
        let mut r = Reorder::new();
        r.push(5, 'a');
        r.push(15, 'b');
        let mut out = vec![];
        r.pop_until(10, |x| out.push(x));
        assert_eq!(out, ['a']);
        assert_eq!(r.len(), 1);
        r.push(12, 'c');
        r.pop_until(20, |x| out.push(x));
        assert_eq!(out, ['a', 'c', 'b']);
    }

    #[test]
    fn equal_stamps_keep_arrival_order() {
        let mut r = Reorder::new();
        for i in 0..5 {
            r.push(7, i);
        }
        let mut out = vec![];
        r.drain(|x| out.push(x));
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }
}
