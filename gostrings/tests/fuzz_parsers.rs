//! Property tests (proptest) for every parser of Go binaries and signatures: the ELF reader,
//! pclntab, buildinfo, DWARF, the runtime type metadata (moduledata and type descriptors) and
//! the signature parser. Inputs are real fixture binaries whose sections are damaged by
//! generated mutations (bytes, bit flips, words set to boundary values, truncation), arbitrary
//! byte strings, and arbitrary or mutated signature text. Every parser must return Ok or Err:
//! never panic (a panic fails the property, and proptest shrinks the input to a small case),
//! and never take long (each property reports its slowest case and bounds it at 10 s, as
//! `hostile_input.rs` does).
//!
//! The default run is a few seconds per property. `GOHOOK_FUZZ_CASES=N` runs N cases per
//! property instead (e.g. 100000 for a long run); `PROPTEST_RNG_SEED` replays a seed.
//! `hostile_input.rs` is the complementary seeded harness over several binaries.

use std::ops::Range;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fixtures::{Toolchain, Variant};
use gostrings::buildinfo::BuildInfo;
use gostrings::pclntab::Pclntab;
use gostrings::signature::{self, NoNamedTypes};
use gostrings::{ElfFile, GoBinary, TypeTable};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Longest one case may take (a hang shows up as a case far over this).
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// The fixture mutated by every property, and its sections' file ranges.
struct Sample {
    bytes: Vec<u8>,
    sections: Vec<(String, Range<usize>)>,
}

fn sample() -> &'static Sample {
    static S: OnceLock<Sample> = OnceLock::new();
    S.get_or_init(|| {
        // values: DWARF, buildinfo, many runtime types; Default keeps the symbol table too.
        let path = fixtures::must_build("values", Variant::Default, &Toolchain::installed());
        let bytes = std::fs::read(path).unwrap();
        let elf = ElfFile::from_bytes(bytes.clone()).unwrap();
        let mut sections = vec![("elf header".to_owned(), 0..64)];
        let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
        sections.push(("section headers".to_owned(), shoff..bytes.len()));
        for name in [
            ".gopclntab",
            ".go.buildinfo",
            ".typelink",
            ".itablink",
            ".noptrdata",
            ".data",
            ".rodata",
            ".debug_info",
            ".debug_abbrev",
            ".debug_line",
            ".debug_str",
            ".debug_loc",
            ".debug_ranges",
            ".debug_frame",
        ] {
            if let Some(s) = elf.section(name) {
                let o = s.offset as usize;
                let end = (o + s.size as usize).min(bytes.len());
                if o < end {
                    sections.push((name.to_owned(), o..end));
                }
            }
        }
        Sample { bytes, sections }
    })
}

/// Number of cases for a property: `GOHOOK_FUZZ_CASES`, or `default`.
fn cases(default: u32) -> u32 {
    std::env::var("GOHOOK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One damage to a byte image.
#[derive(Debug, Clone)]
enum Mutation {
    /// Set the byte at (section, position) to a value.
    Byte(usize, usize, u8),
    /// Flip a bit.
    Flip(usize, usize, u8),
    /// Write a 4- or 8-byte little-endian boundary value.
    Word(usize, usize, bool, u64),
    /// Cut the file inside a section.
    Truncate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let sec = any::<usize>();
    let pos = any::<usize>();
    let word = prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(u32::MAX as u64),
        Just(1u64 << 31),
        Just(1u64 << 63),
        0u64..0x1_0000,
        any::<u64>(),
    ];
    prop_oneof![
        4 => (sec.clone(), pos.clone(), any::<u8>()).prop_map(|(s, p, v)| Mutation::Byte(s, p, v)),
        3 => (sec.clone(), pos.clone(), 0u8..8).prop_map(|(s, p, b)| Mutation::Flip(s, p, b)),
        4 => (sec.clone(), pos.clone(), any::<bool>(), word)
            .prop_map(|(s, p, w, v)| Mutation::Word(s, p, w, v)),
        1 => (sec, pos).prop_map(|(s, p)| Mutation::Truncate(s, p)),
    ]
}

/// Applies `muts` to a copy of the sample, aiming each at one of the sections whose name
/// contains any of `targets` (all sections when `targets` is empty).
fn damaged(muts: &[Mutation], targets: &[&str]) -> Vec<u8> {
    let s = sample();
    let ranges: Vec<&Range<usize>> = s
        .sections
        .iter()
        .filter(|(n, _)| targets.is_empty() || targets.iter().any(|t| n.contains(t)))
        .map(|(_, r)| r)
        .collect();
    assert!(!ranges.is_empty(), "no section matches {targets:?}");
    let mut b = s.bytes.clone();
    let at = |sec: usize, pos: usize| {
        let r = ranges[sec % ranges.len()];
        r.start + pos % (r.end - r.start).max(1)
    };
    let mut cut = None;
    let last = b.len() - 1;
    for m in muts {
        match *m {
            Mutation::Byte(s, p, v) => b[at(s, p).min(last)] = v,
            Mutation::Flip(s, p, bit) => b[at(s, p).min(last)] ^= 1 << bit,
            Mutation::Word(s, p, wide, v) => {
                let o = at(s, p) & !3;
                let n = if wide { 8 } else { 4 };
                for (i, x) in v.to_le_bytes()[..n].iter().enumerate() {
                    if let Some(y) = b.get_mut(o + i) {
                        *y = *x;
                    }
                }
            }
            Mutation::Truncate(s, p) => cut = Some(at(s, p)),
        }
    }
    if let Some(c) = cut {
        b.truncate(c);
    }
    b
}

/// Runs `prop` over `n` cases of `strategy`; reports cases and time, bounds the slowest case.
fn check<S: Strategy>(name: &str, n: u32, strategy: S, prop: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let slowest = std::cell::Cell::new(Duration::ZERO);
    let result = runner.run(&strategy, |v| {
        let t = Instant::now();
        prop(v);
        let took = t.elapsed();
        slowest.set(slowest.get().max(took));
        prop_assert!(took < CASE_LIMIT, "one case took {took:?}");
        Ok(())
    });
    eprintln!(
        "fuzz {name}: {n} cases in {:?}, slowest {:?}",
        started.elapsed(),
        slowest.get()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

fn walk_pclntab(elf: &ElfFile) {
    let Ok(t) = Pclntab::from_elf(elf) else {
        return;
    };
    let text = t.text_range();
    for f in t.funcs().take(1 << 16).flatten() {
        for table in [t.pcsp(&f), t.pcfile(&f), t.pcln(&f)].into_iter().flatten() {
            assert!(
                table.take(1 << 16).count() < 1 << 16,
                "{}: endless pc table",
                f.name
            );
        }
        let _ = t.unsafe_points(&f);
    }
    for pc in [
        text.start,
        text.end,
        text.start.wrapping_add(0x1234),
        0,
        u64::MAX,
    ] {
        let _ = (
            t.func_at(pc),
            t.line_at(pc),
            t.file_at(pc),
            t.sp_delta_at(pc),
        );
    }
    let _ = t.func_by_name("main.main");
}

fn walk_runtime_types(elf: &ElfFile) {
    let Ok(t) = Pclntab::from_elf(elf) else {
        return;
    };
    let Ok(md) = gostrings::ModuleData::from_elf(elf, t.header_addr(), None) else {
        return;
    };
    let types = gostrings::RuntimeTypes::new(elf, md, None);
    for &addr in types.typelinked().iter().take(4096) {
        if types.header(addr).is_ok() {
            let _ = types.full_name(addr);
        }
    }
}

fn walk_dwarf(elf: &ElfFile) {
    let Ok(d) = gostrings::dwarf::Dwarf::load(elf) else {
        return;
    };
    let mut table = TypeTable::new();
    let mut types = d.types();
    for f in d.functions().iter().take(2048) {
        let _ = types.function(f, &mut table);
    }
}

fn muts() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..12)
}

#[test]
fn elf_reader_and_go_binary_facade_survive_damaged_headers() {
    check("elf", cases(128), muts(), |m| {
        let b = damaged(&m, &["elf header", "section headers"]);
        if let Ok(elf) = ElfFile::from_bytes(b.clone()) {
            for s in [".gopclntab", ".text", ".debug_info"] {
                if let Some(sec) = elf.section(s) {
                    let _ = elf.bytes_at(sec.addr, 64);
                }
            }
            let _ = elf.bytes_at(u64::MAX - 4, 16);
        }
        if let Ok(g) = GoBinary::from_bytes(b) {
            let _ = (g.go_version(), g.is_pie(), g.is_stripped(), g.text_range());
        }
    });
}

#[test]
fn elf_reader_survives_arbitrary_bytes() {
    let elf_magic = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..4096),
        // Valid magic and class, so the header fields are what gets fuzzed.
        proptest::collection::vec(any::<u8>(), 64..4096).prop_map(|mut v| {
            v[..6].copy_from_slice(b"\x7fELF\x02\x01");
            v
        }),
    ];
    check("elf arbitrary bytes", cases(2048), elf_magic, |b| {
        if let Ok(elf) = ElfFile::from_bytes(b.clone()) {
            let _ = Pclntab::from_elf(&elf);
            let _ = BuildInfo::from_elf(&elf);
        }
        let _ = GoBinary::from_bytes(b);
    });
}

#[test]
fn pclntab_survives_damage() {
    check("pclntab", cases(96), muts(), |m| {
        if let Ok(elf) = ElfFile::from_bytes(damaged(&m, &[".gopclntab"])) {
            walk_pclntab(&elf);
        }
    });
}

#[test]
fn buildinfo_survives_damage() {
    check("buildinfo", cases(256), muts(), |m| {
        if let Ok(elf) = ElfFile::from_bytes(damaged(&m, &[".go.buildinfo", ".data"])) {
            if let Ok(b) = BuildInfo::from_elf(&elf) {
                let _ = (
                    b.version(),
                    b.setting("-buildmode"),
                    b.setting("GOEXPERIMENT"),
                );
            }
        }
    });
}

#[test]
fn runtime_type_metadata_survives_damage() {
    check("type metadata", cases(96), muts(), |m| {
        let targets = [".typelink", ".rodata", ".noptrdata", ".data", ".itablink"];
        if let Ok(elf) = ElfFile::from_bytes(damaged(&m, &targets)) {
            walk_runtime_types(&elf);
        }
    });
}

#[test]
fn dwarf_survives_damage() {
    check("dwarf", cases(48), muts(), |m| {
        if let Ok(elf) = ElfFile::from_bytes(damaged(&m, &[".debug_"])) {
            walk_dwarf(&elf);
        }
    });
}

/// Signature text: arbitrary strings, and real signatures with bytes inserted, deleted and
/// replaced by Go punctuation.
#[test]
fn signature_parser_survives_any_text() {
    const REAL: &[&str] = &[
        "func(sh struct{srv *net/http.Server}, rw net/http.ResponseWriter, req *net/http.Request)",
        "func(db *database/sql.DB, ctx context.Context, dc *database/sql.driverConn, release func(error), query string) (res database/sql.Result, err error)",
        "func(a, b int, m map[string][]*[4]uint8, ch <-chan bool, f func(int) (int, error), s ...string) (x struct{a int; b [2]float64}, e interface{})",
    ];
    let edit = (
        0usize..400,
        0usize..3,
        prop::sample::select(&b"()[]{}*.,; \x00func chan map ...<-"[..]),
    );
    let text = prop_oneof![
        "\\PC{0,120}",
        "[(){}\\[\\]*.,;a-z0-9 ]{0,200}",
        (
            prop::sample::select(REAL),
            proptest::collection::vec(edit, 1..8)
        )
            .prop_map(|(s, edits)| {
                let mut b = s.as_bytes().to_vec();
                for (at, op, c) in edits {
                    let at = at % (b.len() + 1);
                    match op {
                        0 => b.insert(at, c),
                        1 if at < b.len() => {
                            b.remove(at);
                        }
                        _ if at < b.len() => b[at] = c,
                        _ => {}
                    }
                }
                String::from_utf8_lossy(&b).into_owned()
            }),
    ];
    check("signatures", cases(4096), text, |s| {
        let mut t = TypeTable::new();
        let _ = signature::parse(&s, &mut NoNamedTypes, &mut t);
        let _ = signature::parse_type(&s, &mut NoNamedTypes, &mut t);
        assert!(
            t.len() < 100_000,
            "{} types from {} bytes",
            t.len(),
            s.len()
        );
    });
}

/// The case a 2,000-case run shrank to when one DWARF case took 5.05 s on a machine at load
/// average 27: one bit flipped in a debug section. Kept to time it alone.
#[test]
fn dwarf_case_found_by_a_long_run_stays_fast() {
    let m = [Mutation::Flip(3418989143860689004, 3844541922850098028, 7)];
    let b = damaged(&m, &[".debug_"]);
    let started = Instant::now();
    if let Ok(elf) = ElfFile::from_bytes(b) {
        walk_dwarf(&elf);
    }
    let took = started.elapsed();
    eprintln!("dwarf long-run case: {took:?}");
    assert!(took < CASE_LIMIT, "{took:?}");
}
