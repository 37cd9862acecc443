//! Patching a live Go program: a real entry hook on the hot function `main.step` whose
//! trampoline counts calls into memory shared with gohook, then an exact restore.
//!
//! The hook site itself is chosen by hand here (the first instructions of `main.step`, checked
//! with iced-x86 to be position-independent); choosing safe sites from the pclntab is the
//! trampolines crate's job. Because `main.step` is a leaf without a stack check, async preemption
//! could park a goroutine inside its first instructions, which no ptrace-side check can see; the
//! target runs with `GODEBUG=asyncpreemptoff=1` so this test exercises only the injector.

mod support;

use std::time::Duration;

use fixtures::Variant;
use gostrings::ElfFile;
use iced_x86::{Decoder, DecoderOptions, FlowControl};
use injector::region::{main_text, map_code_near};
use injector::shm::map_shared;
use injector::{maps, AttachOptions, Error, Patch, PatchSet, ProcessMemory, Remote, World};
use support::{cpu_ticks, spin, start_spin};

/// Length of the whole instructions covering at least 5 bytes at `code`, refusing anything
/// that is not position-independent.
fn displaced_len(code: &[u8], ip: u64) -> usize {
    let mut dec = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut len = 0;
    while len < 5 {
        let ins = dec.decode();
        assert!(!ins.is_invalid());
        assert_eq!(
            ins.flow_control(),
            FlowControl::Next,
            "branch in the displaced bytes: {ins}"
        );
        assert!(
            !ins.is_ip_rel_memory_operand(),
            "RIP-relative operand in the displaced bytes: {ins}"
        );
        len += ins.len();
    }
    len
}

fn rel32(from_end: u64, to: u64) -> [u8; 4] {
    let d = to.wrapping_sub(from_end) as i64;
    assert!(
        i32::try_from(d).is_ok(),
        "{to:#x} not reachable from {from_end:#x}"
    );
    (d as i32).to_le_bytes()
}

fn counter(local: &memmap2::MmapMut) -> u64 {
    // SAFETY: 8-aligned, inside the mapping; the target increments it with LOCK INC.
    unsafe { std::ptr::read_volatile(local.as_ptr() as *const u64) }
}

/// Load bias of the main executable: runtime address minus link-time address.
fn load_bias(pid: i32, elf: &ElfFile) -> u64 {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let first = maps::read_maps(pid)
        .unwrap()
        .into_iter()
        .find(|m| m.offset == 0 && m.path == exe.to_string_lossy())
        .expect("mapping of the executable's first page");
    first.start - (elf.link_base() & !0xfff)
}

#[test]
fn hooking_main_step_counts_calls_and_unhooking_restores_the_file_bytes() {
    for variant in [Variant::Default, Variant::Pie, Variant::Cgo] {
        eprintln!("variant {variant:?}");
        hook_main_step(variant);
    }
}

fn hook_main_step(variant: Variant) {
    let path = spin(variant);
    let elf = ElfFile::open(&path).unwrap();
    let step_link = elf.symbol("main.step").expect("main.step symbol").value;
    let window = elf.bytes_at(step_link, 16).unwrap();
    let k = displaced_len(window, step_link);
    let original = window[..k].to_vec();

    let mut target = start_spin(
        variant,
        &["-workers=2"],
        &[("GODEBUG", "asyncpreemptoff=1")],
    );
    let pid = target.pid();
    let bias = load_bias(pid, &elf);
    let step = step_link + bias;

    // Attach, map the trampoline region and the shared counter, install the hook.
    let mut world = World::stop(pid, AttachOptions::default()).unwrap();
    let remote = Remote::new(&world, None).unwrap();
    let text = main_text(pid).unwrap();
    let region = map_code_near(&mut world, &remote, Some(text), 4096).unwrap();
    let shared = map_shared(&mut world, &remote, "gohook-test", 4096, Some(text)).unwrap();
    assert!(maps::within_reach(
        shared.target_addr,
        shared.len,
        (region.addr, region.end())
    ));
    eprintln!(
        "region {:#x}, shared {:#x} via {:?}, fd fetched with {:?}",
        region.addr,
        shared.target_addr,
        remote.gadget().source,
        shared.fetch
    );

    let tramp = region.addr;
    let mut code = vec![0xf0, 0x48, 0xff, 0x05]; // lock inc qword ptr [rip+disp32]
    code.extend(rel32(tramp + 8, shared.target_addr));
    code.extend(&original); // the displaced instructions
    code.push(0xe9); // jmp back to the first instruction not displaced
    code.extend(rel32(tramp + code.len() as u64 + 4, step + k as u64));
    let mut jump = vec![0xe9];
    jump.extend(rel32(step + 5, tramp));
    jump.resize(k, 0x90);

    let mut set = PatchSet::new(pid);
    set.add_code(tramp, code.clone()).unwrap();
    set.add_patch(Patch {
        addr: step,
        new: jump.clone(),
        original: original.clone(),
    })
    .unwrap();
    let applied = set.apply(&mut world, Some(&remote)).unwrap();
    let report = world.detach().unwrap();
    eprintln!(
        "applied with {:?}, stepped {:?}, pause {:?}",
        applied.method, applied.stepped, report.pause
    );

    // The hook runs: the counter in shared memory climbs, the program keeps working.
    std::thread::sleep(Duration::from_millis(200));
    let c1 = counter(&shared.local);
    std::thread::sleep(Duration::from_millis(100));
    let c2 = counter(&shared.local);
    eprintln!("main.step calls counted: {c1} then {c2}");
    assert!(c1 > 1000 && c2 > c1, "hook counts calls: {c1}, {c2}");
    assert!(target.alive());

    // Unhook the way the CLI does on exit (a fresh stop-the-world) and compare the whole text
    // with the file.
    set.revert_in(AttachOptions::default()).unwrap();
    assert!(!set.is_applied());
    std::thread::sleep(Duration::from_millis(50));
    let c3 = counter(&shared.local);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        counter(&shared.local),
        c3,
        "no calls counted after unhooking"
    );
    let text_section = elf.section(".text").unwrap();
    let in_file = elf.section_data(text_section).unwrap();
    let in_memory = ProcessMemory::new(pid)
        .read_vec(text_section.addr + bias, in_file.len())
        .unwrap();
    assert!(
        in_memory == in_file,
        "text after unpatch differs from the ELF file"
    );
    // The trampoline stays mapped, unchanged.
    assert_eq!(
        ProcessMemory::new(pid).read_vec(tramp, code.len()).unwrap(),
        code
    );
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(200));
    assert!(cpu_ticks(pid) > t0 && target.alive());
}

#[test]
fn patching_refuses_bytes_that_are_not_the_expected_originals() {
    let path = spin(Variant::Default);
    let elf = ElfFile::open(&path).unwrap();
    let func = elf.symbol("main.countUSR1").expect("main.countUSR1").value;
    let before = elf.bytes_at(func, 5).unwrap().to_vec();
    let target = start_spin(Variant::Default, &[], &[]);
    let pid = target.pid();
    let mut world = World::stop(pid, AttachOptions::default()).unwrap();
    let mut wrong = before.clone();
    wrong[0] ^= 0xff;
    let mut set = PatchSet::new(pid);
    set.add_patch(Patch {
        addr: func,
        new: vec![0xcc; 5],
        original: wrong,
    })
    .unwrap();
    let err = set.apply(&mut world, None).unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedBytes { addr, found, .. } if *addr == func && *found == before),
        "{err}"
    );
    assert!(!set.is_applied());
    assert_eq!(
        world.memory().read_vec(func, 5).unwrap(),
        before,
        "nothing written"
    );

    // A correct patch of a function spin never runs, then a revert, restores the file bytes.
    let mut set = PatchSet::new(pid);
    set.add_patch(Patch {
        addr: func,
        new: vec![0xcc; 5],
        original: before.clone(),
    })
    .unwrap();
    set.apply(&mut world, None).unwrap();
    assert_eq!(world.memory().read_vec(func, 5).unwrap(), vec![0xcc; 5]);
    // Reverting refuses when the bytes are no longer ours.
    world.memory().write_bytes(func, &[0x90; 5]).unwrap();
    assert!(matches!(
        set.revert(&mut world, None),
        Err(Error::UnexpectedBytes { .. })
    ));
    world.memory().write_bytes(func, &[0xcc; 5]).unwrap();
    set.revert(&mut world, None).unwrap();
    assert_eq!(world.memory().read_vec(func, 5).unwrap(), before);

    // The PTRACE_POKEDATA fallback writes read-only text just as well, preserving the
    // neighbouring bytes of each word.
    let poke = world.memory().poke_only();
    let around = poke.read_vec(func - 3, 11).unwrap();
    assert_eq!(
        poke.write_bytes(func, &[0xcc; 5]).unwrap(),
        injector::mem::WriteMethod::PokeData
    );
    let mut expect = around.clone();
    expect[3..8].fill(0xcc);
    assert_eq!(poke.read_vec(func - 3, 11).unwrap(), expect);
    poke.write_bytes(func, &before).unwrap();
    assert_eq!(poke.read_vec(func - 3, 11).unwrap(), around);
    world.detach().unwrap();
}
