//! Every parser of a Go binary must answer Ok or Err on any input — never panic, never hang,
//! never allocate on the input's say-so — because gohook reads binaries it did not build.
//!
//! Real fixture binaries are truncated and corrupted with a seeded generator, with most damage
//! aimed where parsers look (ELF headers, section headers, the pclntab header, function table
//! and records, buildinfo), and each variant goes through every entry point in [`PARSERS`].
//! A case that panics is reported with its seed and mutation so it can be replayed; a case
//! that takes longer than [`CASE_LIMIT`] fails the test as a hang.
//!
//! `GOHOOK_HOSTILE_CASES=N` sets the number of cases (default 10,000; about 30 s, plus about
//! 3 min for the DWARF reader on two busy cores);
//! `GOHOOK_HOSTILE_SEED=S` the seed. To cover another parser, add one entry to [`PARSERS`].

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fixtures::{Toolchain, Variant};
use gostrings::buildinfo::BuildInfo;
use gostrings::pclntab::{Pclntab, PCDATA_UNSAFE_POINT};
use gostrings::{ElfFile, GoBinary};

/// Longest a single case may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// A parser entry point exercised on a parsed (possibly damaged) ELF image. `case` varies which
/// parts of a large result are walked exhaustively, so the run stays fast but covers all.
type Exercise = fn(&ElfFile, u64);

/// Every parser under test. Other readers (DWARF, runtime types, moduledata) add a line here.
/// (`GoBinary` itself goes through `GoBinary::from_bytes` on a share of the cases, below.)
const PARSERS: &[(&str, Exercise)] = &[
    ("buildinfo", exercise_buildinfo),
    ("pclntab", exercise_pclntab),
    ("moduledata+rtype", exercise_runtime_types),
    ("dwarf", exercise_dwarf),
];

/// DWARF: load (decompress and index), then read a different sixteenth of the functions'
/// parameters and types per case.
fn exercise_dwarf(elf: &ElfFile, case: u64) {
    let Ok(d) = gostrings::dwarf::Dwarf::load(elf) else {
        return;
    };
    let mut table = gostrings::TypeTable::new();
    let mut types = d.types();
    for (i, f) in d.functions().iter().enumerate() {
        if (i as u64 + case) % 16 == 0 {
            let _ = types.function(f, &mut table);
        }
    }
}

/// The moduledata scan, then the runtime type descriptors it leads to: the typelinked ones'
/// headers and full names (a different share of them per case).
fn exercise_runtime_types(elf: &ElfFile, case: u64) {
    let Ok(t) = Pclntab::from_elf(elf) else {
        return;
    };
    let Ok(md) = gostrings::ModuleData::from_elf(elf, t.header_addr(), None) else {
        return;
    };
    let types = gostrings::RuntimeTypes::new(elf, md, None);
    for (i, &addr) in types.typelinked().iter().enumerate() {
        if (i as u64 + case) % 16 != 0 {
            continue;
        }
        if types.header(addr).is_ok() {
            let _ = types.full_name(addr);
        }
    }
}

fn exercise_buildinfo(elf: &ElfFile, _case: u64) {
    if let Ok(b) = BuildInfo::from_elf(elf) {
        let _ = b.version();
        let _ = b.setting("-buildmode");
    }
}

fn exercise_pclntab(elf: &ElfFile, case: u64) {
    let Ok(t) = Pclntab::from_elf(elf) else {
        return;
    };
    let text = t.text_range();
    let _ = (t.header_addr(), t.text_start(), t.len(), t.nfiles());
    // Every 8th function's record and every 32nd one's pc tables (a different share per case,
    // so the whole table is covered across cases), plus the last record.
    for i in 0..t.len() {
        if (i as u64 + case) % 8 != 0 && i + 1 != t.len() {
            continue;
        }
        let Ok(f) = t.func(i) else { continue };
        if (i as u64 + case) % 32 != 0 {
            continue;
        }
        for table in [t.pcsp(&f), t.pcfile(&f), t.pcln(&f)].into_iter().flatten() {
            assert!(
                table.take(1 << 20).count() < 1 << 20,
                "pc table of {} does not end",
                f.name
            );
        }
        for idx in 0..f.npcdata.min(8) {
            if let Some(table) = t.pcdata(&f, idx) {
                let _ = table.take(1 << 20).count();
            }
        }
        let _ = t.unsafe_points(&f);
        let _ = t.pcdata(&f, PCDATA_UNSAFE_POINT);
    }
    // Point lookups across (and just outside) the text range.
    let span = text.end.saturating_sub(text.start).max(1);
    for k in 0..32u64 {
        let pc = text
            .start
            .wrapping_add((k.wrapping_mul(0x9e37_79b9).wrapping_add(case)) % (span + 64))
            .wrapping_sub(32);
        let _ = t.func_at(pc);
        let _ = t.unsafe_point_at(pc);
        let _ = t.line_at(pc);
        let _ = t.file_at(pc);
        let _ = t.sp_delta_at(pc);
    }
    let _ = t.func_by_name("main.main");
}

fn exercise_gobinary(bytes: Vec<u8>) {
    if let Ok(b) = GoBinary::from_bytes(bytes) {
        let _ = (
            b.go_version(),
            b.is_pie(),
            b.is_stripped(),
            b.has_dwarf(),
            b.text_range(),
        );
    }
}

/// xorshift64*: a tiny seeded generator, so a failing case replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn in_range(&mut self, r: &Range<usize>) -> usize {
        r.start + self.below(r.end.saturating_sub(r.start))
    }
}

/// A real binary and the byte ranges worth damaging.
struct Sample {
    name: String,
    bytes: Vec<u8>,
    hot: Vec<Range<usize>>,
}

fn sample(program: &str, variant: Variant, tc: &Toolchain) -> Sample {
    let path = fixtures::must_build(program, variant, tc);
    let bytes = std::fs::read(&path).unwrap();
    let elf = ElfFile::from_bytes(bytes.clone()).unwrap();
    let len = bytes.len();
    let mut hot = vec![0..4096.min(len)];
    // Section header table (at the end of Go binaries).
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    if shoff < len {
        hot.push(shoff..len);
    }
    let t = Pclntab::from_elf(&elf).unwrap();
    let file_of = |addr: u64| {
        elf.segments
            .iter()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)
            .map(|s| (s.offset + addr - s.vaddr) as usize)
    };
    if let Some(start) = file_of(t.header_addr()) {
        // Header, function table, and the first records and names after it.
        hot.push(start..(start + 96).min(len));
        hot.push(start..(start + 64 * 1024).min(len));
        let functab_bytes = (t.len() + 1) * 8;
        let names = start..(start + functab_bytes * 8).min(len);
        hot.push(names);
    }
    if let Some(sec) = elf.section(".go.buildinfo") {
        let o = sec.offset as usize;
        hot.push(o..(o + sec.size as usize).min(len));
    }
    Sample {
        name: format!("{program} {} {}", variant.name(), tc.gotoolchain()),
        bytes,
        hot,
    }
}

/// Damages a copy of `s` and describes what was done.
fn mutate(s: &Sample, rng: &mut Rng) -> (Vec<u8>, String) {
    let mut b = s.bytes.clone();
    let mut what = Vec::new();
    let kind = rng.below(10);
    // Corrupt a few places, mostly in hot ranges.
    let spots = if kind < 8 { 1 + rng.below(8) } else { 0 };
    for _ in 0..spots {
        let range = if rng.below(10) < 9 {
            s.hot[rng.below(s.hot.len())].clone()
        } else {
            0..b.len()
        };
        let at = rng.in_range(&range);
        match rng.below(4) {
            0 => {
                let v = rng.next() as u8;
                if let Some(x) = b.get_mut(at) {
                    *x = v;
                }
                what.push(format!("byte {at:#x}={v:#x}"));
            }
            1 => {
                let bit = rng.below(8);
                if let Some(x) = b.get_mut(at) {
                    *x ^= 1 << bit;
                }
                what.push(format!("flip {at:#x}.{bit}"));
            }
            _ => {
                let v: u64 = match rng.below(6) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => u32::MAX as u64,
                    3 => b.len() as u64,
                    4 => rng.next() & 0xffff,
                    _ => rng.next(),
                };
                let at = at & !3;
                let width = if rng.below(2) == 0 { 4 } else { 8 };
                for (i, byte) in v.to_le_bytes()[..width].iter().enumerate() {
                    if let Some(x) = b.get_mut(at + i) {
                        *x = *byte;
                    }
                }
                what.push(format!("word{} {at:#x}={v:#x}", width * 8));
            }
        }
    }
    // Truncate: anywhere, or inside a hot range.
    if kind >= 6 {
        let cut = if rng.below(2) == 0 {
            rng.below(b.len())
        } else {
            let r = s.hot[rng.below(s.hot.len())].clone();
            rng.in_range(&r)
        };
        b.truncate(cut);
        what.push(format!("truncate {cut:#x}"));
    }
    (b, what.join(", "))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn damaged_go_binaries_give_errors_never_panics_or_hangs() {
    let cases = env_u64("GOHOOK_HOSTILE_CASES", 10_000);
    let seed = env_u64("GOHOOK_HOSTILE_SEED", 0x5eed_90b1_7e5f_0001);
    let samples = vec![
        sample("spin", Variant::Default, &Toolchain::installed()),
        sample("spin", Variant::Stripped, &Toolchain::installed()),
        // No .gopclntab section: found through runtime.pclntab, or by scanning once damaged.
        sample(
            "spin",
            Variant::PieExternal,
            &Toolchain::release("go1.21.13"),
        ),
    ];
    // The cases run on a worker thread; this thread watches for a case that never finishes.
    let (tx, rx) = mpsc::channel::<Result<(u64, Duration), String>>();
    std::thread::spawn(move || {
        let mut rng = Rng(seed | 1);
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for case in 0..cases {
            let s = &samples[(case % samples.len() as u64) as usize];
            let (bytes, what) = mutate(s, &mut rng);
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                // Every 16th case also goes through the GoBinary facade.
                if case % 16 == 0 {
                    exercise_gobinary(bytes.clone());
                }
                if let Ok(elf) = ElfFile::from_bytes(bytes) {
                    for (_, exercise) in PARSERS {
                        exercise(&elf, case);
                    }
                }
            }));
            if let Err(p) = outcome {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let _ = tx.send(Err(format!(
                    "case {case} (seed {seed:#x}) on {}: {what}: panicked: {msg}",
                    s.name
                )));
                std::panic::set_hook(quiet);
                return;
            }
            if tx.send(Ok((case, started.elapsed()))).is_err() {
                return;
            }
        }
        std::panic::set_hook(quiet);
    });
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for expected in 0..cases {
        match rx.recv_timeout(CASE_LIMIT) {
            Ok(Ok((case, took))) => {
                assert_eq!(case, expected);
                slowest = slowest.max(took);
            }
            Ok(Err(panic)) => panic!("{panic}"),
            Err(_) => {
                panic!("case {expected} (seed {seed:#x}) ran longer than {CASE_LIMIT:?}: a hang")
            }
        }
    }
    eprintln!(
        "{cases} damaged binaries through {} parsers in {:.1?} (slowest case {:.1?})",
        PARSERS.len(),
        started.elapsed(),
        slowest
    );
    assert!(slowest < CASE_LIMIT);
}

#[test]
fn the_mutator_really_damages_its_inputs() {
    let s = Sample {
        name: "synthetic".into(),
        bytes: vec![0u8; 8192],
        hot: vec![0..64],
    };
    let mut rng = Rng(7);
    let changed = (0..100)
        .filter(|_| mutate(&s, &mut rng).0 != s.bytes)
        .count();
    assert!(
        changed > 80,
        "only {changed} of 100 mutations changed anything"
    );
}
