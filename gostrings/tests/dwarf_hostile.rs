//! DWARF is hostile input: corrupted debug sections must give errors or partial answers, never a
//! panic, a hang or an unbounded allocation.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gostrings::abi;
use gostrings::dwarf::Dwarf;
use gostrings::{ElfFile, TypeTable};

/// `values` with uncompressed DWARF, so byte flips land in the DWARF itself rather than in a
/// zlib stream (which would just fail to inflate).
fn uncompressed_values() -> PathBuf {
    let out = fixtures::workspace_root()
        .join("target")
        .join("fixtures")
        .join("values-uncompressed-dwarf-hostile");
    std::fs::create_dir_all(&out).unwrap();
    let exe = out.join("values");
    let tmp = out.join(format!(".values.{}.tmp", std::process::id()));
    let status = Command::new("go")
        .args(["build", "-ldflags=-compressdwarf=false", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(fixtures::source_dir("values"))
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-buildvcs=false -mod=mod")
        .status()
        .expect("go runs");
    assert!(status.success());
    std::fs::rename(&tmp, &exe).unwrap();
    exe
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Reads everything a hook would: every function's parameters and ABI assignment, and every
/// named type in the index.
fn read_everything(dwarf: &Dwarf) -> usize {
    let mut answers = 0;
    let mut table = TypeTable::new();
    let mut types = dwarf.types();
    for f in dwarf.functions() {
        if let Ok(df) = types.function(f, &mut table) {
            let sig = df.signature();
            if abi::assign(
                &table,
                &sig.param_types(),
                &sig.result_types(),
                abi::dictionary_index(&f.name),
            )
            .is_ok()
            {
                answers += 1;
            }
        }
    }
    for name in [
        "main.User",
        "main.Outer",
        "time.Time",
        "runtime.g",
        "runtime.m",
    ] {
        if let Ok(Some(_)) = types.named(name, &mut table) {
            answers += 1;
        }
    }
    answers
}

#[test]
fn corrupted_debug_sections_never_panic_or_hang() {
    let exe = uncompressed_values();
    let pristine = std::fs::read(&exe).unwrap();
    let elf = ElfFile::from_bytes(pristine.clone()).unwrap();
    let targets: Vec<(u64, u64)> = [
        ".debug_info",
        ".debug_abbrev",
        ".debug_loclists",
        ".debug_addr",
        ".debug_line",
    ]
    .iter()
    .filter_map(|n| elf.section(n))
    .map(|s| (s.offset, s.size))
    .collect();
    assert!(targets.len() >= 3, "uncompressed DWARF 5 sections present");
    let baseline = read_everything(&Dwarf::load(&elf).unwrap());
    assert!(baseline > 2000);

    // GOHOOK_DWARF_FUZZ_ROUNDS / _SEED run a longer campaign by hand; the default stays short.
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let max_rounds = env("GOHOOK_DWARF_FUZZ_ROUNDS", 24);
    let budget = Duration::from_secs(if max_rounds > 24 { 3600 } else { 20 });
    let mut rng = Rng(env("GOHOOK_DWARF_FUZZ_SEED", 0x9e37_79b9_7f4a_7c15) | 1);
    let start = Instant::now();
    let mut rounds = 0;
    let mut degraded = 0;
    let mut loaded = 0;
    while rounds < max_rounds && start.elapsed() < budget {
        let mut bytes = pristine.clone();
        // Flip a few bytes spread over the DWARF sections; small values (0, 1, 0xff, 0x80) hit
        // lengths, abbreviation codes and references hardest.
        let flips = 1 + rng.next() % 8;
        for _ in 0..flips {
            let (off, size) = targets[(rng.next() % targets.len() as u64) as usize];
            let at = (off + rng.next() % size.max(1)) as usize;
            bytes[at] = [0, 1, 0xff, 0x80, rng.next() as u8][(rng.next() % 5) as usize];
        }
        let elf = ElfFile::from_bytes(bytes).unwrap();
        match Dwarf::load(&elf) {
            Ok(d) => {
                loaded += 1;
                if read_everything(&d) < baseline {
                    degraded += 1;
                }
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                degraded += 1;
            }
        }
        rounds += 1;
    }
    eprintln!(
        "{rounds} corrupted binaries read without panic in {:?}: {loaded} loaded, {degraded} gave fewer answers",
        start.elapsed()
    );
    assert!(rounds >= 5, "each round must stay fast");
    assert!(
        loaded > 0,
        "damage to one unit must not make the whole binary unreadable"
    );
}
