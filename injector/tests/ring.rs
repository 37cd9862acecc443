//! The shared ring region between a live target and gohook: a memfd created in the target,
//! mapped on both sides, consumed with `RingReader`.

mod support;

use fixtures::Variant;
use injector::region::main_text;
use injector::ring::RingReader;
use injector::shm::map_shared;
use injector::{maps, AttachOptions, ProcessMemory, Remote, World};
use support::start_spin;
use trampolines::record::{OFF_GOID, OFF_HOOK_ID, OFF_KIND};
use trampolines::ring_layout::{RingLayout, MAGIC, RING_HEAD, RING_TAIL};

#[test]
fn a_memfd_ring_made_in_the_target_is_shared_with_gohook_and_drained() {
    let mut target = start_spin(Variant::Default, &[], &[]);
    let pid = target.pid();
    let mut world = World::stop(pid, AttachOptions::default()).unwrap();
    let remote = Remote::new(&world, None).unwrap();
    let layout = RingLayout::new(2, 16, 512).unwrap();
    let text = main_text(pid).unwrap();
    let shared = map_shared(
        &mut world,
        &remote,
        "gohook-ring",
        layout.region_size(),
        Some(text),
    )
    .unwrap();
    let addr = shared.target_addr;
    world.detach().unwrap();

    // The target holds the memory only through its mapping: shared, read-write, not executable,
    // within reach of the text, and no fd left open.
    let m = maps::read_maps(pid)
        .unwrap()
        .into_iter()
        .find(|m| m.start == addr)
        .unwrap();
    assert_eq!(m.perms(), "rw-s");
    assert!(m.path.contains("memfd:gohook-ring"), "{}", m.path);
    assert!(maps::within_reach(addr, shared.len, text));
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        fds.iter().all(|p| !p.contains("gohook-ring")),
        "target fd closed: {fds:?}"
    );

    // gohook writes the header; the target sees it.
    let mut reader = RingReader::create(shared.local, layout).unwrap();
    let mem = ProcessMemory::new(pid);
    let magic = u64::from_le_bytes(mem.read_vec(addr, 8).unwrap().try_into().unwrap());
    assert_eq!(magic, MAGIC);

    // Play the producer from the target's side (writing its memory) and drain on ours.
    let ring1 = addr + layout.ring_offset(1).unwrap();
    for seq in 0..3u64 {
        let slot = addr + layout.slot_offset(1, seq).unwrap();
        let mut rec = vec![0u8; 512];
        rec[OFF_HOOK_ID..OFF_HOOK_ID + 4].copy_from_slice(&7u32.to_le_bytes());
        rec[OFF_KIND] = 1;
        rec[OFF_GOID..OFF_GOID + 8].copy_from_slice(&(100 + seq).to_le_bytes());
        mem.write_bytes(slot, &rec).unwrap();
        mem.write_bytes(ring1 + RING_HEAD as u64, &(seq + 1).to_le_bytes())
            .unwrap();
    }
    let mut got = Vec::new();
    let stats = reader.drain(u64::MAX, |ring, rec| got.push((ring, rec.unwrap().goid)));
    assert_eq!(got, vec![(1, 100), (1, 101), (1, 102)]);
    assert_eq!(stats.malformed, 0);
    let tail = u64::from_le_bytes(
        mem.read_vec(ring1 + RING_TAIL as u64, 8)
            .unwrap()
            .try_into()
            .unwrap(),
    );
    assert_eq!(tail, 3, "the target sees the consumer's tail");
    assert_eq!(reader.drops(), 0);

    // At detach the ring's pages are given back: the target's mapping stays (valid, zeros, so
    // every hook reads as disabled) but holds no memory any more.
    assert!(mapping_rss_kb(pid, addr) > 0, "the ring was resident");
    reader.release_pages().unwrap();
    assert_eq!(mapping_rss_kb(pid, addr), 0);
    assert_eq!(mem.read_vec(addr, 8).unwrap(), [0; 8]);
    assert!(target.alive());
}

/// Resident kB of the target's mapping starting at `addr` (from /proc/PID/smaps).
fn mapping_rss_kb(pid: i32, addr: u64) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let head = format!("{addr:08x}-");
    let block = smaps
        .split('\n')
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .find_map(|l| l.strip_prefix("Rss:"))
        .unwrap();
    block.trim().trim_end_matches("kB").trim().parse().unwrap()
}
