//! `GoBinary`, the facade over ELF + pclntab + buildinfo: what it reports for ordinary builds, and
//! how it degrades when buildinfo is gone (a scrubbed or damaged binary still lists functions).

use fixtures::{Toolchain, Variant};
use gostrings::pclntab::{PclntabSource, TextStartSource};
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

/// Builds spin like the fixture variant `like`, plus `-s -w`: a stripped external link, which
/// the fixture matrix does not have.
fn build_stripped_external(tc: &Toolchain, pie: bool) -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!(
        "gohook-pclntab-{}-{}-{pie}",
        std::process::id(),
        tc.gotoolchain()
    ));
    let mut cmd = std::process::Command::new("go");
    cmd.arg("build").arg("-o").arg(&out);
    if pie {
        cmd.arg("-buildmode=pie");
    }
    cmd.arg("-ldflags=-linkmode=external -s -w")
        .arg(".")
        .current_dir(fixtures::source_dir("spin"))
        .env("GOTOOLCHAIN", tc.gotoolchain())
        .env("CGO_ENABLED", "1")
        .env("GOFLAGS", "-buildvcs=false -mod=mod");
    let res = cmd.output().unwrap();
    assert!(
        res.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

fn names_and_entries(b: &GoBinary) -> Vec<(String, u64, u64)> {
    b.pclntab
        .funcs()
        .map(|f| f.unwrap())
        .map(|f| (f.name, f.entry, f.end))
        .collect()
}

#[test]
fn stripped_external_links_are_read_without_sections_or_symbols() {
    // Go 1.21 PIE + external linking + -s: no .gopclntab section and no runtime.pclntab symbol,
    // so the table is found by scanning. Go 1.26 cgo + -s: the header's textStart is 0 and there
    // is no runtime.text symbol, so Go text (which C start-up code precedes) comes from the
    // moduledata.
    let cases = [
        (Toolchain::release("go1.21.13"), true, Variant::PieExternal),
        (Toolchain::installed(), false, Variant::Cgo),
    ];
    for (tc, pie, like) in cases {
        let stripped_path = build_stripped_external(&tc, pie);
        let stripped = GoBinary::open(&stripped_path).unwrap();
        let _ = std::fs::remove_file(&stripped_path);
        assert!(stripped.is_stripped());
        if pie {
            assert_eq!(stripped.pclntab.source(), &PclntabSource::Scan);
        } else {
            assert_eq!(
                stripped.pclntab.text_start_source(),
                TextStartSource::Moduledata
            );
        }
        let full = GoBinary::open(fixtures::must_build("spin", like, &tc)).unwrap();
        assert_eq!(
            names_and_entries(&stripped),
            names_and_entries(&full),
            "{} {}",
            tc.gotoolchain(),
            like.name()
        );
    }
}
