//! The goroutine scanner against live processes: the `gpark` fixture (spinners that only async
//! preemption can stop, blocked, sleeping and mutex-waiting goroutines), stopped with
//! `injector::World`, on the installed Go and Go 1.21, 1.23 and 1.27, default and stripped
//! builds (and PIE for the installed Go).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fixtures::{Toolchain, Variant};
use gostrings::dwarf::Dwarf;
use gostrings::goroutines::{
    any_parked_at, locate_allgs_by_decoding, parked_at, status_name, AllgsLocation, AllgsSource,
    GLayout, GoroutineError, GoroutineScanner, ParkedG, G_RUNNING,
};
use gostrings::moduledata::GOffsetsSource;
use gostrings::{GoBinary, MemoryReader, UnsafePoint};
use injector::{maps, AttachOptions, World};

const SPINNERS: usize = 8;
const BLOCKED: usize = 8;
/// spinners + blocked + 2 sleepers + 1 locker + main.
const AT_LEAST: usize = SPINNERS + BLOCKED + 3 + 1;
const ATTEMPTS: usize = 20;

/// One live test at a time: the tests share a process, and ptrace stops, clone events and child
/// exits are collected with waitpid, so two Worlds (or a World and another test's child) in
/// parallel can take each other's events.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live() -> std::sync::MutexGuard<'static, ()> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills the child however the test ends.
struct Target(Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(exe: &Path) -> Target {
    let mut child = Command::new(exe)
        .args([
            format!("-spinners={SPINNERS}"),
            "-procs=2".into(),
            format!("-blocked={BLOCKED}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gpark");
    let stdout = child.stdout.take().expect("stdout");
    let target = Target(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("gpark prints ready");
    assert_eq!(line.trim(), "gpark ready");
    target
}

fn load_bias(pid: i32, bin: &GoBinary) -> u64 {
    if !bin.is_pie() {
        return 0;
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let exe = exe.to_string_lossy().into_owned();
    let all = maps::read_maps(pid).unwrap();
    let first = all
        .iter()
        .find(|m| m.path == exe && m.offset == 0)
        .expect("the executable's first mapping");
    first.start - (bin.elf.link_base() & !0xfff)
}

/// What one stop of the world saw.
struct Seen {
    gs: Vec<ParkedG>,
    allgs: AllgsLocation,
    decoded: Option<AllgsLocation>,
    /// Async-preempted goroutines whose interrupted PC is inside main.spinLoop.
    preempted_in_spin: usize,
    /// Threads whose RIP is in asyncPreempt/asyncPreempt2, unwound to main.spinLoop.
    threads_in_async_preempt: usize,
}

fn scan(pid: i32, bin: &GoBinary, also_decode: bool) -> Result<Seen, GoroutineError> {
    let world = World::stop(pid, AttachOptions::default()).expect("stop the world");
    let mem = world.memory();
    let bias = load_bias(pid, bin);
    let result = (|| {
        let scanner = GoroutineScanner::new(&mem, bin, bias)?;
        let gs = scanner.goroutines(&mem)?;
        let decoded = if also_decode {
            Some(locate_allgs_by_decoding(&mem, bin, bias, scanner.layout())?)
        } else {
            None
        };
        let spin = bin
            .pclntab
            .func_by_name("main.spinLoop")
            .expect("main.spinLoop")
            .range();
        let in_spin = |pc: u64| spin.contains(&pc.wrapping_sub(bias));
        let preempted_in_spin = gs
            .iter()
            .filter(|g| g.async_preempt.is_some_and(|a| in_spin(a.interrupted_pc)))
            .count();
        let mut threads_in_async_preempt = 0;
        for tid in world.tids() {
            let r = world.regs(tid).expect("regs");
            let pcs = scanner.thread_resume_pcs(&mem, r.rip, r.rsp)?;
            if pcs.len() > 1 {
                assert!(
                    in_spin(pcs[1]),
                    "thread {tid} in asyncPreempt returns to {:#x}",
                    pcs[1]
                );
                threads_in_async_preempt += 1;
            }
        }
        // An async-preempted goroutine seen from its thread once resumed (RIP = sched.pc in
        // asyncPreempt2, RSP = sched.sp) unwinds to the same interrupted PC, and the query
        // functions find it.
        if let Some(g) = gs.iter().find(|g| g.async_preempt.is_some()) {
            let ap = g.async_preempt.unwrap();
            assert_eq!(
                scanner.thread_resume_pcs(&mem, g.sched_pc, g.sched_sp)?,
                vec![g.sched_pc, ap.interrupted_pc]
            );
            let hits = parked_at(&mem, bin, bias, &[ap.interrupted_pc, 1])?;
            assert!(
                hits.iter()
                    .any(|h| h.goid == g.goid && h.pc == ap.interrupted_pc),
                "{hits:?}"
            );
            assert!(hits.iter().all(|h| h.pc == ap.interrupted_pc));
            assert!(any_parked_at(&mem, bin, bias, &[ap.interrupted_pc])?);
        }
        assert!(!any_parked_at(&mem, bin, bias, &[1, 2, 3])?);
        check_resume_pcs(bin, bias, &gs);

        Ok(Seen {
            gs,
            allgs: scanner.allgs().clone(),
            decoded,
            preempted_in_spin,
            threads_in_async_preempt,
        })
    })();
    world.detach().expect("detach");
    result
}

/// Every resume PC is inside a Go function; every interrupted PC is an async safe point
/// outside the runtime (where `isAsyncSafePoint` lets a preemption land).
fn check_resume_pcs(bin: &GoBinary, bias: u64, gs: &[ParkedG]) {
    for g in gs {
        for &pc in &g.resume_pcs {
            assert!(
                bin.pclntab.func_at(pc.wrapping_sub(bias)).is_some(),
                "goroutine {} ({}) resumes at {pc:#x}, outside any Go function",
                g.goid,
                status_name(g.status)
            );
        }
        if let Some(ap) = g.async_preempt {
            let link = ap.interrupted_pc.wrapping_sub(bias);
            let f = bin.pclntab.func_at(link).unwrap();
            assert_eq!(
                bin.pclntab.unsafe_point_at(link),
                Some(UnsafePoint::Safe),
                "goroutine {} interrupted at {} {:#x}, not an async safe point",
                g.goid,
                f.name,
                ap.interrupted_pc
            );
            assert!(
                !f.name.starts_with("runtime."),
                "interrupted inside {}",
                f.name
            );
        }
    }
}

/// Runs gpark and scans it until an async-preempted spinner has been seen; returns the last
/// sighting and (attempts, attempts that saw one).
fn scan_until_preempted(exe: &Path, also_decode: bool) -> (Seen, usize, usize, usize) {
    let target = start(exe);
    let pid = target.0.id() as i32;
    let bin = GoBinary::open(exe).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut hits = 0;
    let mut preempted_total = 0;
    for attempt in 1..=ATTEMPTS {
        let seen = scan(pid, &bin, also_decode)
            .unwrap_or_else(|e| panic!("{}: scan failed: {e}", exe.display()));
        assert!(
            seen.gs.len() >= AT_LEAST,
            "only {} live goroutines",
            seen.gs.len()
        );
        assert!(
            seen.gs.iter().any(|g| g.goid == 1),
            "main goroutine present"
        );
        let mut goids: Vec<u64> = seen.gs.iter().map(|g| g.goid).collect();
        goids.sort_unstable();
        goids.dedup();
        assert_eq!(goids.len(), seen.gs.len(), "goids are unique");
        for g in &seen.gs {
            if g.status != G_RUNNING {
                assert!(
                    !g.resume_pcs.is_empty(),
                    "parked goroutine {} has a resume PC",
                    g.goid
                );
            }
        }
        preempted_total += seen.preempted_in_spin;
        if seen.preempted_in_spin > 0 {
            hits += 1;
            if hits >= 3 || attempt == ATTEMPTS {
                return (seen, attempt, hits, preempted_total);
            }
        }
        if attempt == ATTEMPTS {
            return (seen, attempt, hits, preempted_total);
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    unreachable!()
}

fn check_toolchain(tc: Toolchain) {
    let version = tc.version().unwrap();
    let default = fixtures::must_build("gpark", Variant::Default, &tc);
    let stripped = fixtures::must_build("gpark", Variant::Stripped, &tc);
    let _live = live();
    let started = Instant::now();

    // The table (used for stripped binaries) agrees with DWARF.
    let bin = GoBinary::open(&default).unwrap();
    let from_dwarf = GLayout::from_dwarf(&Dwarf::load(&bin.elf).unwrap()).unwrap();
    let table = GLayout::for_version(&bin.go_version()).expect("table for this release");
    assert_eq!(
        GLayout {
            source: GOffsetsSource::Dwarf,
            ..table
        },
        from_dwarf,
        "{version}: table vs DWARF"
    );

    let (seen_d, attempts_d, hits_d, pre_d) = scan_until_preempted(&default, true);
    assert_eq!(seen_d.allgs.source, AllgsSource::Symbols);
    let decoded = seen_d.decoded.as_ref().unwrap();
    assert_eq!(
        (decoded.allgs, decoded.allglen, decoded.allgptr),
        (
            seen_d.allgs.allgs,
            seen_d.allgs.allglen,
            seen_d.allgs.allgptr
        ),
        "{version}: decoding finds the symbols' addresses"
    );

    let (seen_s, attempts_s, hits_s, pre_s) = scan_until_preempted(&stripped, false);
    assert!(matches!(seen_s.allgs.source, AllgsSource::Decoded { .. }));
    // -s -w shifts the data sections by a few bytes (observed: 32), so compare each variable's
    // position inside its section.
    let sbin = GoBinary::open(&stripped).unwrap();
    let rel = |b: &GoBinary, l: &AllgsLocation| {
        [l.allgs, l.allglen, l.allgptr].map(|a| {
            let a = a.expect("all three found");
            let s = b.elf.section_at(a).expect("in a section");
            (s.name.clone(), a - s.addr)
        })
    };
    assert_eq!(
        rel(&sbin, &seen_s.allgs),
        rel(&bin, &seen_d.allgs),
        "{version}: stripped decoding finds the same variables as the unstripped symbols"
    );
    println!(
        "{version}: default: {} goroutines, async-preempted in spinLoop seen in {hits_d}/{attempts_d} stops ({pre_d} total), \
         threads in asyncPreempt {}; stripped: {} goroutines, {hits_s}/{attempts_s} stops ({pre_s} total), allgs {:#x?} via {:?}; {:.1}s",
        seen_d.gs.len(),
        seen_d.threads_in_async_preempt,
        seen_s.gs.len(),
        seen_s.allgs.allgs,
        seen_s.allgs.source,
        started.elapsed().as_secs_f64()
    );
    assert!(
        hits_d > 0,
        "{version} default: no async-preempted spinner in {attempts_d} stops"
    );
    assert!(
        hits_s > 0,
        "{version} stripped: no async-preempted spinner in {attempts_s} stops"
    );
}

#[test]
fn installed_go() {
    check_toolchain(Toolchain::installed());
}

#[test]
fn go1_21() {
    check_toolchain(Toolchain::release("go1.21.13"));
}

#[test]
fn go1_23() {
    check_toolchain(Toolchain::release("go1.23.12"));
}

#[test]
fn go1_27() {
    check_toolchain(Toolchain::release("go1.27.4"));
}

#[test]
fn pie_with_load_bias() {
    let exe = fixtures::must_build("gpark", Variant::Pie, &Toolchain::installed());
    let _live = live();
    let (seen, attempts, hits, total) = scan_until_preempted(&exe, true);
    println!(
        "pie: {} goroutines, {hits}/{attempts} stops saw {total} async-preempted spinners",
        seen.gs.len()
    );
    assert!(hits > 0);
}

/// The file image has no goroutines (allgs is zero in .bss): a clean error, never a panic.
#[test]
fn a_file_image_is_refused_cleanly() {
    for variant in [Variant::Default, Variant::Stripped] {
        let exe = fixtures::must_build("gpark", variant, &Toolchain::installed());
        let bin = GoBinary::open(&exe).unwrap();
        let err = GoroutineScanner::new(&bin.elf, &bin, 0).unwrap_err();
        assert!(
            matches!(
                err,
                GoroutineError::AllgsNotFound(_) | GoroutineError::NoMainGoroutine { .. }
            ),
            "{variant:?}: {err}"
        );
    }
}

/// Memory that answers every read with pseudo-random bytes: errors, no panic, no hang.
#[test]
fn garbage_memory_is_refused_cleanly() {
    struct Noise;
    impl MemoryReader for Noise {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), gostrings::MemError> {
            let mut x = addr ^ 0x9e37_79b9_7f4a_7c15;
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            Ok(())
        }
    }
    let exe = fixtures::must_build("gpark", Variant::Stripped, &Toolchain::installed());
    let bin = GoBinary::open(&exe).unwrap();
    let t = Instant::now();
    assert!(GoroutineScanner::new(&Noise, &bin, 0).is_err());
    assert!(gostrings::goroutines::parked_resume_pcs(&Noise, &bin, 0x5555_0000_0000).is_err());
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// The torture fixture (GC every allocation, deep recursion with stack copies, panics, Goexit,
/// spawned goroutines, the CPU profiler, cgo callbacks in the cgo build) scanned over and over
/// while it runs: every stop must give a consistent answer.
fn torture_scans(variant: Variant) {
    let exe = fixtures::must_build("torture", variant, &Toolchain::installed());
    let bin = GoBinary::open(&exe).unwrap();
    let _live = live();
    let mut child = Target(
        Command::new(&exe)
            .args(["-scale", "50"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start torture"),
    );
    let pid = child.0.id() as i32;
    std::thread::sleep(Duration::from_millis(30));
    let started = Instant::now();
    let (mut stops, mut max_gs, mut preempted, mut statuses) =
        (0, 0, 0, std::collections::BTreeMap::new());
    let mut layout = None;
    while started.elapsed() < Duration::from_millis(1500) {
        if child.0.try_wait().unwrap().is_some() {
            break;
        }
        let Ok(world) = World::stop(pid, AttachOptions::default()) else {
            break;
        };
        let mem = world.memory();
        let result = (|| {
            let l = match layout {
                Some(l) => l,
                None => GLayout::for_binary(&bin)?,
            };
            layout = Some(l);
            let scanner = GoroutineScanner::with_layout(&mem, &bin, 0, l)?;
            scanner.goroutines(&mem)
        })();
        let _ = world.detach();
        let gs = match result {
            Ok(gs) => gs,
            // The program may be tearing down between our try_wait and the stop.
            Err(_) if child.0.try_wait().unwrap().is_some() => break,
            Err(e) => panic!("{variant:?}: stop {stops}: {e}"),
        };
        check_resume_pcs(&bin, 0, &gs);
        stops += 1;
        max_gs = max_gs.max(gs.len());
        preempted += gs.iter().filter(|g| g.async_preempt.is_some()).count();
        for g in &gs {
            *statuses.entry(status_name(g.status)).or_insert(0) += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);
    println!("torture {variant:?}: {stops} stops, up to {max_gs} goroutines, {preempted} async-preempted seen, statuses {statuses:?}");
    assert!(stops >= 5, "only {stops} stops");
}

#[test]
fn torture_default() {
    torture_scans(Variant::Default);
}

#[test]
fn torture_cgo() {
    torture_scans(Variant::Cgo);
}
