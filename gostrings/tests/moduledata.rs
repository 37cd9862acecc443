//! The moduledata found by scanning (no symbols) is the runtime's own `runtime.firstmoduledata`,
//! on every toolchain of the matrix and every link mode; the `g` offsets table agrees with DWARF.

use fixtures::{Toolchain, Variant};
use gostrings::buildinfo::BuildInfo;
use gostrings::dwarf::Dwarf;
use gostrings::moduledata::{GOffsets, GOffsetsSource, ModuleData, ModuleLayout, SearchSpace};
use gostrings::{ElfFile, Pclntab, TypeTable};

mod rtype_support;
use rtype_support::build_with_go119;

struct Found {
    elf: ElfFile,
    md: ModuleData,
    version: gostrings::GoVersion,
}

/// Finds the moduledata the way a stripped binary forces: pclntab by section or scan, then the
/// moduledata by scanning writable data, with no version hint.
fn scan(tc: &Toolchain, variant: Variant) -> Found {
    let path = fixtures::must_build("values", variant, tc);
    let elf = ElfFile::open(&path).unwrap();
    let pcl = Pclntab::from_elf(&elf).unwrap_or_else(|e| panic!("{path:?}: pclntab: {e}"));
    let md = ModuleData::from_elf(&elf, pcl.header_addr(), None)
        .unwrap_or_else(|e| panic!("{path:?} ({}): {e}", variant.name()));
    let version = BuildInfo::from_elf(&elf).unwrap().version().unwrap();
    Found { elf, md, version }
}

#[test]
fn scanned_moduledata_is_runtime_firstmoduledata_on_every_toolchain_and_link_mode() {
    for tc in fixtures::toolchains() {
        for variant in [
            Variant::Default,
            Variant::Pie,
            Variant::Cgo,
            Variant::PieExternal,
        ] {
            let f = scan(&tc, variant);
            let what = format!("{} {}", f.version, variant.name());
            let sym = f
                .elf
                .symbol("runtime.firstmoduledata")
                .unwrap_or_else(|| panic!("{what}: no runtime.firstmoduledata symbol"));
            assert_eq!(
                f.md.addr, sym.value,
                "{what}: scan found another address than the symbol"
            );
            let by_symbol = ModuleData::at(
                &f.elf,
                sym.value,
                f.md.pc_header,
                &SearchSpace::from_elf(&f.elf),
                Some(&f.version),
            )
            .unwrap();
            assert_eq!(f.md, by_symbol, "{what}: fields differ from the symbol's");
            // The invariants reject a moduledata read at the wrong place or with the wrong layout.
            let space = SearchSpace::from_elf(&f.elf);
            let shifted = ModuleData::at(&f.elf, sym.value + 8, f.md.pc_header, &space, None);
            assert!(
                shifted.is_err(),
                "{what}: a misaligned moduledata was accepted"
            );
            for wrong in ModuleLayout::ALL.iter().filter(|&&l| l != f.md.layout) {
                let v = match wrong {
                    ModuleLayout::Go118 => gostrings::GoVersion::new(1, 19, 0),
                    ModuleLayout::Go120 => gostrings::GoVersion::new(1, 22, 0),
                    ModuleLayout::Go126 => gostrings::GoVersion::new(1, 26, 0),
                    ModuleLayout::Go127 => gostrings::GoVersion::new(1, 27, 0),
                };
                let r = ModuleData::at(&f.elf, sym.value, f.md.pc_header, &space, Some(&v));
                assert!(r.is_err(), "{what}: accepted with the {wrong:?} layout");
            }
            // The layout was inferred without the version: it must be the release's.
            assert_eq!(
                Some(f.md.layout),
                ModuleLayout::for_version(&f.version),
                "{what}"
            );
            // And the text range is the one the symbols give.
            assert_eq!(
                Some(f.md.text),
                f.elf.symbol("runtime.text").map(|s| s.value),
                "{what}"
            );
            assert_eq!(
                Some(f.md.etext),
                f.elf.symbol("runtime.etext").map(|s| s.value),
                "{what}"
            );
            assert_eq!(
                Some(f.md.types),
                f.elf.symbol("runtime.types").map(|s| s.value),
                "{what}"
            );
            assert_eq!(
                Some(f.md.etypes),
                f.elf.symbol("runtime.etypes").map(|s| s.value),
                "{what}"
            );
        }
    }
}

#[test]
fn stripped_builds_yield_the_same_moduledata_shape_as_unstripped_ones() {
    for tc in fixtures::toolchains() {
        let full = scan(&tc, Variant::Default);
        let stripped = scan(&tc, Variant::Stripped);
        assert!(stripped.elf.is_stripped());
        let what = format!("{}", stripped.version);
        assert_eq!(stripped.md.layout, full.md.layout, "{what}");
        assert_eq!(
            stripped.md.typelinks.len(),
            full.md.typelinks.len(),
            "{what}"
        );
        assert_eq!(
            stripped.md.itablinks.len(),
            full.md.itablinks.len(),
            "{what}"
        );
        assert_eq!(stripped.md.typedesclen, full.md.typedesclen, "{what}");
        assert_eq!(
            stripped.md.etext - stripped.md.text,
            full.md.etext - full.md.text,
            "{what}"
        );
        if stripped.md.layout == ModuleLayout::Go127 {
            assert!(
                stripped.md.typedesclen.unwrap() > 0 && stripped.md.itabsize.unwrap() > 0,
                "{what}"
            );
            assert!(stripped.md.typelinks.is_empty());
        } else {
            assert!(
                !stripped.md.typelinks.is_empty() && !stripped.md.itablinks.is_empty(),
                "{what}"
            );
        }
    }
}

#[test]
fn go_1_19_moduledata_is_found_and_uses_the_1_18_layout() {
    let Some(dir) = build_with_go119() else {
        return;
    };
    for (name, expect_symbol) in [("values", true), ("values-stripped", false)] {
        let elf = ElfFile::open(dir.join(name)).unwrap();
        let pcl = Pclntab::from_elf(&elf).unwrap();
        let md = ModuleData::from_elf(&elf, pcl.header_addr(), None).unwrap();
        assert_eq!(md.layout, ModuleLayout::Go118);
        assert!(!md.typelinks.is_empty());
        match elf.symbol("runtime.firstmoduledata") {
            Some(sym) => assert_eq!(md.addr, sym.value),
            None => assert!(!expect_symbol, "{name} should have symbols"),
        }
    }
}

#[test]
fn g_offsets_table_matches_dwarf_of_runtime_g_and_m() {
    for tc in fixtures::toolchains() {
        let f = scan(&tc, Variant::Default);
        let dwarf = Dwarf::load(&f.elf).unwrap();
        let mut session = dwarf.types();
        let mut table = TypeTable::new();
        let g = session
            .named("runtime.g", &mut table)
            .unwrap()
            .expect("runtime.g in DWARF");
        let m = session
            .named("runtime.m", &mut table)
            .unwrap()
            .expect("runtime.m in DWARF");
        let from_dwarf = GOffsets::from_layouts(&table, g, m).expect("g/m fields");
        assert_eq!(from_dwarf.source, GOffsetsSource::Dwarf);
        let table = GOffsets::for_version(&f.version).expect("a table entry");
        assert_eq!(table.source, GOffsetsSource::TableVerified);
        assert_eq!(
            GOffsets {
                source: GOffsetsSource::Dwarf,
                ..table
            },
            from_dwarf,
            "{}: built-in g/m offsets differ from DWARF",
            f.version
        );
    }
}

#[test]
fn go_binary_exposes_moduledata_runtime_types_and_g_offsets() {
    let tc = Toolchain::release("go1.23.12");
    let stripped =
        gostrings::GoBinary::open(fixtures::must_build("values", Variant::Stripped, &tc)).unwrap();
    let md = stripped.moduledata().unwrap();
    assert_eq!(md.layout, ModuleLayout::Go120);
    let mut table = TypeTable::new();
    let user = stripped
        .runtime_types()
        .unwrap()
        .lookup("main.User", &mut table)
        .unwrap();
    assert_eq!(table.get(user).unwrap().size, 72);
    // No DWARF: the table for the buildinfo release (Go 1.23 moved goid to 160).
    let g = stripped.g_offsets(None).unwrap();
    assert_eq!((g.goid, g.source), (160, GOffsetsSource::TableVerified));
    // With DWARF: read from runtime.g itself, same numbers.
    let full =
        gostrings::GoBinary::open(fixtures::must_build("values", Variant::Default, &tc)).unwrap();
    let dwarf = Dwarf::load(&full.elf).unwrap();
    let g = full.g_offsets(Some(&dwarf)).unwrap();
    assert_eq!((g.goid, g.source), (160, GOffsetsSource::Dwarf));
}
