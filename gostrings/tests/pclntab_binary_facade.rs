//! `GoBinary`, the facade over ELF + pclntab + buildinfo: what it reports for ordinary builds, and
//! how it degrades when buildinfo is gone (a scrubbed or damaged binary still lists functions).

use fixtures::{Toolchain, Variant};
use gostrings::{GoBinary, GoVersion};

#[test]
fn facts_of_ordinary_builds() {
    let tc = Toolchain::installed();
    let want = GoVersion::parse(&tc.version().unwrap()).unwrap();
    let plain = GoBinary::open(fixtures::must_build("spin", Variant::Default, &tc)).unwrap();
    assert_eq!(plain.go_version(), want);
    assert!(plain.go_version_is_exact());
    assert!(!plain.is_pie() && !plain.is_stripped() && plain.has_dwarf());
    let text = plain.text_range();
    let main = plain.pclntab.func_by_name("main.main").unwrap();
    assert!(text.contains(&main.entry), "main.main outside {text:x?}");

    let stripped = GoBinary::open(fixtures::must_build("spin", Variant::Stripped, &tc)).unwrap();
    assert!(stripped.is_stripped() && !stripped.has_dwarf());
    assert_eq!(stripped.pclntab.len(), plain.pclntab.len());

    let pie = GoBinary::open(fixtures::must_build(
        "spin",
        Variant::PieExternal,
        &Toolchain::release("go1.21.13"),
    ))
    .unwrap();
    assert!(pie.is_pie());
    assert_eq!(
        pie.buildinfo.as_ref().unwrap().setting("-buildmode"),
        Some("pie")
    );
}

#[test]
fn without_buildinfo_the_version_is_a_lower_bound_from_the_layout() {
    let path = fixtures::must_build("spin", Variant::Default, &Toolchain::installed());
    let mut bytes = std::fs::read(path).unwrap();
    // Wipe every copy of the buildinfo magic.
    let magic = b"\xff Go buildinf:";
    let mut wiped = 0;
    for i in 0..bytes.len().saturating_sub(magic.len()) {
        if &bytes[i..i + magic.len()] == magic {
            bytes[i] = 0;
            wiped += 1;
        }
    }
    assert!(wiped >= 1);
    let b = GoBinary::from_bytes(bytes).unwrap();
    assert!(b.buildinfo.is_none());
    assert!(b.buildinfo_error().is_some());
    assert_eq!(b.go_version(), GoVersion::new(1, 20, 0));
    assert!(!b.go_version_is_exact());
    assert!(
        b.pclntab.func_by_name("main.step").is_some(),
        "functions are still listed"
    );
}
