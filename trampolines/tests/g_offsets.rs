//! `GOffsets::for_go_minor` (the table the trampolines read g/m through) agrees with the DWARF
//! of a real binary from each toolchain in the test matrix.

use gostrings::dwarf::Dwarf;
use gostrings::elf::ElfFile;
use gostrings::gotype::{Shape, TypeTable};
use trampolines::stub::GOffsets;

fn field(table: &TypeTable, ty: gostrings::gotype::TypeId, name: &str) -> Option<u64> {
    match &table.get(ty)?.shape {
        Shape::Struct { fields } => fields.iter().find(|f| f.name == name).map(|f| f.offset),
        _ => None,
    }
}

#[test]
fn g_and_m_offsets_match_each_toolchains_dwarf() {
    for tc in fixtures::toolchains() {
        let version = tc.version().unwrap();
        let minor: u32 = version
            .trim_start_matches("go1.")
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let path = fixtures::must_build("spin", fixtures::Variant::Default, &tc);
        let elf = ElfFile::open(&path).unwrap();
        let dwarf = Dwarf::load(&elf).unwrap();
        let mut table = TypeTable::new();
        let mut types = dwarf.types();
        let g = types
            .named("runtime.g", &mut table)
            .unwrap()
            .expect("runtime.g in DWARF");
        let m = types
            .named("runtime.m", &mut table)
            .unwrap()
            .expect("runtime.m in DWARF");
        let from_dwarf = GOffsets {
            goid: field(&table, g, "goid").unwrap() as i32,
            parent_goid: field(&table, g, "parentGoid").map(|o| o as i32),
            stack_hi: field(&table, g, "stack").unwrap() as i32 + 8,
            m: field(&table, g, "m").unwrap() as i32,
            m_id: field(&table, m, "id").unwrap() as i32,
        };
        eprintln!("{version}: {from_dwarf:?}");
        assert_eq!(GOffsets::for_go_minor(minor), Some(from_dwarf), "{version}");
    }
}
