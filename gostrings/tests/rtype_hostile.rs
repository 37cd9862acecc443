//! Corrupting the type metadata of a real binary yields errors or degraded answers, never a
//! panic or a hang.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fixtures::{Toolchain, Variant};
use gostrings::moduledata::ModuleData;
use gostrings::rtype::{check_elf, RuntimeTypes};
use gostrings::{ElfFile, MemError, MemoryReader, Pclntab, TypeTable};

/// The binary's memory with some bytes replaced.
struct Corrupted<'a> {
    elf: &'a ElfFile,
    flips: HashMap<u64, u8>,
    /// The corrupted range (the type area): reads elsewhere skip the per-byte check.
    range: std::ops::Range<u64>,
}

impl MemoryReader for Corrupted<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.elf.read(addr, buf)?;
        let end = addr.saturating_add(buf.len() as u64);
        if self.flips.is_empty() || end <= self.range.start || addr >= self.range.end {
            return Ok(());
        }
        for (i, b) in buf.iter_mut().enumerate() {
            if let Some(v) = self.flips.get(&(addr.wrapping_add(i as u64))) {
                *b = *v;
            }
        }
        Ok(())
    }
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn random_corruption_of_a_real_type_area_gives_errors_not_panics_or_hangs() {
    for tc in [Toolchain::installed(), Toolchain::release("go1.27.4")] {
        let exe = fixtures::must_build("values", Variant::Stripped, &tc);
        let elf = ElfFile::open(&exe).unwrap();
        let pcl = Pclntab::from_elf(&elf).unwrap();
        let md = ModuleData::from_elf(&elf, pcl.header_addr(), None).unwrap();
        let area = md.etypes - md.types;
        let clean = RuntimeTypes::new(&elf, md.clone(), None).check_all();
        assert_eq!(
            clean.errors, 0,
            "{tc:?}: the clean binary already has errors: {clean:?}"
        );
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut degraded = 0;
        for round in 0..8 {
            // From a few bytes to 2% of the area, biased to descriptor headers and lengths.
            let n = 1 + xorshift(&mut seed) % (area / 50).max(2);
            let flips = (0..n)
                .map(|_| {
                    (
                        md.types + xorshift(&mut seed) % area,
                        xorshift(&mut seed) as u8,
                    )
                })
                .collect();
            let mem = Corrupted {
                elf: &elf,
                flips,
                range: md.types..md.etypes,
            };
            let start = Instant::now();
            let rt = RuntimeTypes::new(mem, md.clone(), None);
            let report = rt.check_all();
            let mut table = TypeTable::new();
            let user = rt.lookup("main.User", &mut table);
            let _ = rt.lookup("map[string]int", &mut table);
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(20),
                "{tc:?} round {round}: took {took:?}"
            );
            assert!(
                report.descriptors as u64 <= area / 8,
                "{tc:?} round {round}: {report:?}"
            );
            if report != clean || user.is_err() {
                degraded += 1;
            }
        }
        assert!(degraded > 0, "{tc:?}: no corruption was noticed at all");
    }
}

#[test]
fn the_whole_no_symbols_path_survives_a_corrupted_file() {
    let exe = fixtures::must_build("values", Variant::Stripped, &Toolchain::installed());
    let good = std::fs::read(&exe).unwrap();
    let elf = ElfFile::from_bytes(good.clone()).unwrap();
    let clean = check_elf(&elf).unwrap();
    assert!(clean.descriptors > 500 && clean.errors == 0, "{clean:?}");
    let types = elf
        .section(".rodata")
        .map(|s| s.offset as usize..(s.offset + s.size) as usize)
        .unwrap();
    let mut seed = 0x1234_5678_9abc_def1u64;
    for _ in 0..4 {
        let mut bad = good.clone();
        for _ in 0..2000 {
            let at = types.start + (xorshift(&mut seed) as usize % types.len());
            bad[at] = xorshift(&mut seed) as u8;
        }
        let Ok(elf) = ElfFile::from_bytes(bad) else {
            continue;
        };
        let start = Instant::now();
        // Either a clear error (no pclntab / no moduledata) or a report: never a panic.
        match check_elf(&elf) {
            Ok(report) => assert!(report.descriptors <= clean.descriptors * 4, "{report:?}"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        assert!(start.elapsed() < Duration::from_secs(30));
    }
}
