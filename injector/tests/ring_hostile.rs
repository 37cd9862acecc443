//! The ring region is shared with the target, which can write anything into it at any time.
//! Here a second mapping of the same memfd plays a hostile target: while the real consumer
//! (`RingReader::drain`) drains, another thread writes random bytes and adversarial values
//! (huge and wrapping heads and tails, heads moving backwards, absurd string counts and
//! capacities, bogus kinds and hook ids, records torn half-way) into the region. The consumer
//! must never panic or hang, must count what it could not parse, and must stay within one slot
//! of buffer per record and one ring's worth of records per ring per drain.
//!
//! `GOHOOK_FUZZ_CASES=N` sets the number of drains (default 20,000).

use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use injector::ring::RingReader;
use memmap2::MmapMut;
use trampolines::record::{
    CapturedString, Record, RecordKind, OFF_HOOK_ID, OFF_KIND, OFF_N_STRINGS, OFF_STRING_CAP,
};
use trampolines::ring_layout::{RingLayout, HEADER_SIZE, RING_DROPS, RING_HEAD, RING_TAIL};

/// A small deterministic PRNG (xorshift64*), so a failure replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An anonymous memfd of `len` bytes, mapped twice: the consumer's view and the "target's".
fn shared_region(len: usize) -> (MmapMut, MmapMut) {
    // SAFETY: memfd_create with a valid NUL-terminated name; the fd is owned by `File` below.
    let fd = unsafe { libc::memfd_create(c"gohook-ring-hostile".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len as u64).unwrap();
    // SAFETY: the memfd is never truncated; both mappings are used with volatile or atomic
    // accesses only, like the real target/gohook pair.
    let a = unsafe { MmapMut::map_mut(&file) }.unwrap();
    // SAFETY: as above.
    let b = unsafe { MmapMut::map_mut(&file) }.unwrap();
    (a, b)
}

/// The hostile target's handle on the region: volatile writes through a raw pointer.
struct Scribbler {
    base: *mut u8,
    len: usize,
}

// SAFETY: the pointer is to a shared mapping that outlives the thread (the test joins it before
// dropping the mapping); concurrent access is the point and is done with volatile writes.
unsafe impl Send for Scribbler {}

impl Scribbler {
    fn write(&self, off: usize, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            if off + i < self.len {
                // SAFETY: in bounds of the mapping (checked just above).
                unsafe { std::ptr::write_volatile(self.base.add(off + i), b) }
            }
        }
    }
    fn u64(&self, off: usize, v: u64) {
        self.write(off, &v.to_le_bytes());
    }
    fn read_u64(&self, off: usize) -> u64 {
        assert!(off + 8 <= self.len);
        // SAFETY: in bounds (asserted); the consumer's 8-aligned fields are read whole.
        unsafe { std::ptr::read_volatile(self.base.add(off) as *const u64) }
    }
}

fn cases() -> u64 {
    std::env::var("GOHOOK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// One hostile write: what a buggy or malicious target could do to the region.
fn scribble(s: &Scribbler, layout: &RingLayout, rng: &mut Rng, valid: &[u8]) {
    let ring = rng.below(layout.n_rings() as u64) as u32;
    let ring_off = layout.ring_offset(ring).unwrap() as usize;
    let slot_size = layout.slot_size() as usize;
    let slot = layout.slot_offset(ring, rng.next()).unwrap() as usize;
    match rng.below(10) {
        // Heads: huge, wrapping, backwards, just ahead.
        0 => {
            let v = match rng.below(5) {
                0 => u64::MAX,
                1 => u64::MAX - rng.below(4),
                2 => rng.below(4),
                3 => 1 << 63,
                _ => rng.next(),
            };
            s.u64(ring_off + RING_HEAD, v);
        }
        // Our published tail and the drop counter are the target's to scribble too.
        1 => s.u64(ring_off + RING_TAIL, rng.next()),
        2 => s.u64(ring_off + RING_DROPS, u64::MAX - rng.below(3)),
        // Random bytes over a whole slot.
        3 => {
            let off = slot + (rng.below(slot_size as u64) as usize & !7);
            let mut buf = vec![0u8; (rng.below(slot_size as u64) + 1) as usize];
            buf.iter_mut().for_each(|b| *b = rng.next() as u8);
            s.write(off, &buf);
        }
        // Adversarial record headers: absurd string counts and capacities, bogus kinds.
        4 => {
            let off = slot;
            s.write(off + OFF_N_STRINGS, &[rng.next() as u8]);
            s.write(off + OFF_STRING_CAP, &(rng.next() as u16).to_le_bytes());
            s.write(off + OFF_KIND, &[1 + rng.below(2) as u8]);
        }
        5 => s.write(slot + OFF_KIND, &[rng.next() as u8]),
        // Bogus hook ids on otherwise valid records (the collector counts them; the ring
        // hands them over).
        6 => {
            let off = slot;
            s.write(off, valid);
            s.write(off + OFF_HOOK_ID, &(rng.next() as u32).to_le_bytes());
        }
        // A torn record: the first part of a valid one, the rest stale garbage.
        7 => {
            let off = slot;
            let cut = rng.below(valid.len() as u64) as usize;
            s.write(off, &valid[..cut]);
        }
        // Well-formed records published normally, as the real producer does: slot, then head.
        _ => {
            let mut head = s.read_u64(ring_off + RING_HEAD);
            for _ in 0..rng.below(8) {
                s.write(layout.slot_offset(ring, head).unwrap() as usize, valid);
                head = head.wrapping_add(1);
                s.u64(ring_off + RING_HEAD, head);
            }
        }
    }
}

#[test]
fn a_target_scribbling_over_the_ring_while_it_is_drained_cannot_hurt_the_consumer() {
    let layout = RingLayout::new(4, 64, 512).unwrap();
    let (consumer_map, target_map) = shared_region(layout.region_size() as usize);
    let mut reader = RingReader::create(consumer_map, layout).unwrap();
    let slot_size = layout.slot_size() as usize;
    let mut valid = vec![0u8; slot_size];
    Record {
        hook_id: 3,
        kind: RecordKind::Entry,
        tsc: 42,
        goid: 7,
        parent_goid: Some(1),
        depth: 128,
        m_id: 0,
        ints: [Some(5); 9],
        floats: [None; 15],
        strings: vec![CapturedString {
            len: 1 << 30, // an absurd Go string length: only the copied bytes are held
            bytes: b"hello".to_vec(),
        }],
    }
    .write_to(&mut valid, 56)
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = Scribbler {
        base: target_map.as_ptr() as *mut u8,
        len: target_map.len(),
    };
    let target = {
        let stop = stop.clone();
        let valid = valid.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(0x5eed_1234_abcd_ef01);
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                scribble(&scribbler, &layout, &mut rng, &valid);
                writes += 1;
            }
            writes
        })
    };

    // Besides the racing thread, the test itself scribbles between drains, so every drain meets
    // a freshly damaged region (the thread supplies the torn, mid-read writes).
    let here = Scribbler {
        base: target_map.as_ptr() as *mut u8,
        len: target_map.len(),
    };
    let mut rng = Rng(0xdead_beef_0bad_f00d);
    let n = cases();
    let started = Instant::now();
    let per_drain_limit = layout.n_rings() as u64 * layout.slots_per_ring() as u64;
    let (mut records, mut malformed, mut resyncs, mut parsed, mut slowest) = (0, 0, 0, 0, 0u128);
    for _ in 0..n {
        for _ in 0..1 + rng.below(4) {
            scribble(&here, &layout, &mut rng, &valid);
        }
        let t = Instant::now();
        let stats = reader.drain(u64::MAX, |_, rec| {
            if let Ok(r) = rec {
                parsed += 1;
                let held: usize = r.strings.iter().map(|s| s.bytes.len()).sum();
                assert!(held <= slot_size, "a record holds more than its slot");
            }
        });
        slowest = slowest.max(t.elapsed().as_micros());
        assert!(
            stats.records <= per_drain_limit,
            "{} records from one drain of {per_drain_limit} slots",
            stats.records
        );
        records += stats.records;
        malformed += stats.malformed;
        resyncs += stats.resyncs;
        // drops() sums hostile counters: it must saturate, not overflow.
        let _ = reader.drops();
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let writes = target.join().expect("the scribbler thread");
    drop(target_map);
    eprintln!(
        "ring_hostile: {n} drains in {elapsed:?} (slowest {slowest} µs) against {writes} hostile \
         writes: {records} records ({parsed} parsed, {malformed} malformed), {resyncs} resyncs"
    );
    assert!(writes > 0 && records > 0, "the two sides met");
    assert!(malformed > 0, "garbage was counted as malformed");
    assert!(parsed > 0, "valid records still came through");
    assert!(resyncs > 0, "scribbled heads were resynchronised");
    // A hang detector, not a performance figure: on a loaded machine one drain can be
    // descheduled for a good fraction of a second.
    assert!(
        slowest < 10_000_000,
        "one drain took {slowest} µs: bounded work per drain"
    );
    assert_eq!(parsed + malformed, records);
}

#[test]
fn after_the_scribbling_stops_a_well_behaved_producer_is_read_exactly() {
    let layout = RingLayout::new(2, 16, 512).unwrap();
    let (consumer_map, target_map) = shared_region(layout.region_size() as usize);
    let mut reader = RingReader::create(consumer_map, layout).unwrap();
    let s = Scribbler {
        base: target_map.as_ptr() as *mut u8,
        len: target_map.len(),
    };
    // Garbage everywhere past the header, including heads, tails and every slot.
    let mut rng = Rng(99);
    let mut junk = vec![0u8; target_map.len() - HEADER_SIZE];
    junk.iter_mut().for_each(|b| *b = rng.next() as u8);
    s.write(HEADER_SIZE, &junk);
    reader.drain(u64::MAX, |_, _| {});
    // Now the producer behaves: head continues from where the consumer left its tail.
    // The scribbling destroyed the producer's head; it restarts from the tail the consumer
    // published.
    let ring_off = layout.ring_offset(0).unwrap() as usize;
    let mut head = s.read_u64(ring_off + RING_TAIL);
    s.u64(ring_off + RING_HEAD, head);
    reader.drain(u64::MAX, |_, _| {});
    let mut want = Vec::new();
    for goid in 1..=5u64 {
        let mut slot = vec![0u8; layout.slot_size() as usize];
        let rec = Record {
            hook_id: 1,
            kind: RecordKind::Exit,
            tsc: goid * 10,
            goid,
            parent_goid: None,
            depth: 64,
            m_id: 0,
            ints: [None; 9],
            floats: [None; 15],
            strings: vec![],
        };
        rec.write_to(&mut slot, 0).unwrap();
        s.write(layout.slot_offset(0, head).unwrap() as usize, &slot);
        head += 1;
        s.u64(ring_off + RING_HEAD, head);
        want.push(rec);
    }
    let mut got = Vec::new();
    let stats = reader.drain(u64::MAX, |ring, rec| {
        if ring == 0 {
            got.push(rec.expect("a well-formed record parses"));
        }
    });
    assert_eq!(got, want);
    assert_eq!(stats.malformed, 0);
}

#[test]
fn a_scribbled_region_header_is_refused_on_open_never_trusted() {
    let layout = RingLayout::new(2, 16, 512).unwrap();
    let mut rng = Rng(7);
    let (mut refused, mut accepted) = (0, 0);
    for case in 0..2_000 {
        let (mut map, _) = shared_region(layout.region_size() as usize);
        map[..layout.header_bytes().len()].copy_from_slice(&layout.header_bytes());
        // Damage one field of the header (or nothing, every 16th case).
        if case % 16 != 0 {
            let off = rng.below(40) as usize;
            map[off] = rng.next() as u8;
        }
        match RingReader::open(map) {
            Ok(mut r) => {
                assert!(r.layout().region_size() <= layout.region_size());
                r.drain(u64::MAX, |_, _| {});
                accepted += 1;
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("ring headers: {refused} damaged ones refused, {accepted} opened within bounds");
    // Damage to the drop counter or a smaller ring count still describes a region that fits.
    assert!(
        refused >= 500 && accepted >= 125,
        "{refused} refused, {accepted} opened"
    );
}
