//! DWARF types and functions read from real Go binaries: struct layouts equal the compiler's
//! (`values -offsets` prints `unsafe.Offsetof`/`Sizeof`), Go's encodings of strings, slices,
//! maps, channels, interfaces and funcs map to the right kinds, and compressed and uncompressed
//! DWARF read the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gostrings::abi::{Location, Reg, RegPiece};
use gostrings::dwarf::{Dwarf, DwarfError, EntryLocation};
use gostrings::signature::{self, NamedTypes};
use gostrings::{ElfFile, Kind, Shape, TypeTable};

fn load(path: &Path) -> Dwarf {
    let elf = ElfFile::open(path).expect("fixture opens");
    Dwarf::load(&elf).expect("fixture has DWARF")
}

/// `values -offsets`: type → [(field, offset, size)].
fn compiler_offsets(exe: &Path) -> BTreeMap<String, Vec<(String, u64, u64)>> {
    let out = Command::new(exe)
        .arg("-offsets")
        .output()
        .expect("values runs");
    assert!(out.status.success(), "values -offsets failed");
    let mut m: BTreeMap<String, Vec<(String, u64, u64)>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        m.entry(v["type"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                v["field"].as_str().unwrap().to_owned(),
                v["offset"].as_u64().unwrap(),
                v["size"].as_u64().unwrap(),
            ));
    }
    m
}

#[test]
fn struct_layouts_from_dwarf_equal_unsafe_offsetof_on_every_toolchain() {
    for tc in fixtures::toolchains() {
        let exe = fixtures::must_build("values", fixtures::Variant::Default, &tc);
        let expected = compiler_offsets(&exe);
        assert!(
            expected.len() >= 8,
            "values -offsets printed only {} types",
            expected.len()
        );
        let dwarf = load(&exe);
        let mut table = TypeTable::new();
        let mut types = dwarf.types();
        let mut fields_checked = 0;
        for (name, fields) in &expected {
            let id = types
                .named(name, &mut table)
                .unwrap()
                .unwrap_or_else(|| panic!("{}: DWARF has no type {name}", tc.gotoolchain()));
            let ty = table.get(id).unwrap();
            assert_eq!(ty.kind, Kind::Struct, "{name}");
            let Shape::Struct { fields: got } = &ty.shape else {
                panic!("{name} is not a struct")
            };
            assert_eq!(
                got.len(),
                fields.len(),
                "{}: field count of {name}",
                tc.gotoolchain()
            );
            for ((fname, off, size), g) in fields.iter().zip(got) {
                assert_eq!(&g.name, fname, "{name}");
                assert_eq!(
                    g.offset,
                    *off,
                    "{}: {name}.{fname} offset",
                    tc.gotoolchain()
                );
                assert_eq!(
                    table.get(g.ty).unwrap().size,
                    *size,
                    "{}: {name}.{fname} size",
                    tc.gotoolchain()
                );
                fields_checked += 1;
            }
        }
        eprintln!(
            "{}: {} types, {fields_checked} fields match unsafe.Offsetof",
            tc.gotoolchain(),
            expected.len()
        );
    }
}

#[test]
fn go_type_encodings_map_to_kinds_and_shapes() {
    let exe = fixtures::must_build(
        "values",
        fixtures::Variant::Default,
        &fixtures::Toolchain::installed(),
    );
    let dwarf = load(&exe);
    let mut table = TypeTable::new();
    let mut types = dwarf.types();
    let mut get = |name: &str| {
        let id = types
            .named(name, &mut table)
            .unwrap()
            .unwrap_or_else(|| panic!("no {name}"));
        (id, table.get(id).unwrap().clone(), table.clone())
    };

    let (_, user, t) = get("main.User");
    let Shape::Struct { fields } = &user.shape else {
        panic!()
    };
    let kinds: Vec<Kind> = fields.iter().map(|f| t.get(f.ty).unwrap().kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::String,
            Kind::Int,
            Kind::Bool,
            Kind::Pointer,
            Kind::Slice,
            Kind::Map
        ]
    );
    assert_eq!(user.size, 72);
    assert_eq!(user.align, 8);
    // Manager *User points back at User: the cycle is closed through the table, not recursion.
    let Shape::Pointer { elem } = t.get(fields[3].ty).unwrap().shape else {
        panic!()
    };
    assert_eq!(t.get(elem).unwrap().name, "main.User");
    let Shape::Slice { elem } = t.get(fields[4].ty).unwrap().shape else {
        panic!()
    };
    assert_eq!(t.get(elem).unwrap().kind, Kind::String);
    let Shape::Map { key, elem } = t.get(fields[5].ty).unwrap().shape else {
        panic!()
    };
    assert_eq!(
        (t.get(key).unwrap().kind, t.get(elem).unwrap().kind),
        (Kind::String, Kind::Int)
    );

    let (_, err, _) = get("error");
    assert_eq!(
        (err.kind, err.size, &err.shape),
        (Kind::Interface, 16, &Shape::Interface { empty: false })
    );
    let (_, any, _) = get("interface {}");
    assert_eq!(any.shape, Shape::Interface { empty: true });
    let (_, shape_iface, _) = get("main.Shape");
    assert_eq!(shape_iface.shape, Shape::Interface { empty: false });

    let (_, derived, t) = get("main.Derived");
    let Shape::Struct { fields } = &derived.shape else {
        panic!()
    };
    assert!(fields[0].embedded && fields[0].name == "Base", "{fields:?}");
    assert!(!fields[1].embedded);
    assert_eq!(t.get(fields[1].ty).unwrap().kind, Kind::Float32);

    let (_, inner, t) = get("main.Inner");
    let Shape::Struct { fields } = &inner.shape else {
        panic!()
    };
    let arr = t.get(fields[1].ty).unwrap();
    assert_eq!(
        (arr.kind, arr.size, &arr.name),
        (Kind::Array, 24, &"[3]int".to_owned())
    );
    assert!(matches!(arr.shape, Shape::Array { len: 3, .. }));

    let (_, time, t) = get("time.Time");
    let Shape::Struct { fields } = &time.shape else {
        panic!()
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["wall", "ext", "loc"]);
    assert_eq!(t.get(fields[2].ty).unwrap().kind, Kind::Pointer);

    // DW_AT_go_runtime_type is kept for the runtime-type reader.
    assert!(
        dwarf.runtime_type("main.User").is_some() || dwarf.runtime_type("*main.User").is_some()
    );
    assert!(dwarf.runtime_type("string").is_some());
}

#[test]
fn functions_carry_parameters_results_and_entry_locations() {
    let exe = fixtures::must_build(
        "values",
        fixtures::Variant::Default,
        &fixtures::Toolchain::installed(),
    );
    let dwarf = load(&exe);
    let mut table = TypeTable::new();
    let mut types = dwarf.types();
    let f = dwarf.function("main.Move").expect("main.Move in DWARF");
    assert!(dwarf
        .function_at(f.low_pc)
        .is_some_and(|g| g.name == f.name));
    let df = types.function(f, &mut table).unwrap();
    let p = &df.params[0];
    assert_eq!(table.get(p.ty).unwrap().name, "main.P");
    // P{X int; Y float64; S string} → X=RAX, Y=X0, S=(RBX, RCX), as the compiler wrote it.
    assert_eq!(
        p.entry,
        EntryLocation::Known {
            location: Location::Registers(vec![
                RegPiece {
                    reg: Reg::Rax,
                    value_offset: 0,
                    size: 8
                },
                RegPiece {
                    reg: Reg::X0,
                    value_offset: 8,
                    size: 8
                },
                RegPiece {
                    reg: Reg::Rbx,
                    value_offset: 16,
                    size: 8
                },
                RegPiece {
                    reg: Reg::Rcx,
                    value_offset: 24,
                    size: 8
                },
            ]),
            unknown: vec![],
        }
    );
    assert!(df.results.iter().all(|r| r.is_result));
}

#[test]
fn dwarf_names_resolve_user_signatures() {
    let exe = fixtures::must_build(
        "values",
        fixtures::Variant::Default,
        &fixtures::Toolchain::installed(),
    );
    let dwarf = load(&exe);
    let mut table = TypeTable::new();
    let mut types = dwarf.types();
    let sig = signature::parse(
        "func(u main.User, p *main.Outer, t time.Time) error",
        &mut types,
        &mut table,
    )
    .unwrap();
    assert_eq!(table.get(sig.params[0].ty).unwrap().size, 72);
    assert_eq!(table.get(sig.params[2].ty).unwrap().size, 24);
    assert!(types.resolve("main.NoSuchType", &mut table).is_none());
    let err = signature::parse("func(x main.NoSuchType)", &mut types, &mut table).unwrap_err();
    assert_eq!(err.column(), 8, "{err}");
}

/// Builds `values` with `-ldflags=-compressdwarf=false` into the fixtures cache.
fn build_uncompressed() -> PathBuf {
    let out = fixtures::workspace_root()
        .join("target")
        .join("fixtures")
        .join("values-uncompressed-dwarf");
    std::fs::create_dir_all(&out).unwrap();
    let exe = out.join("values");
    // Build to a private name and rename, so concurrent test runs never see a partial file.
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
    assert!(status.success(), "go build -compressdwarf=false failed");
    std::fs::rename(&tmp, &exe).unwrap();
    exe
}

#[test]
fn compressed_and_uncompressed_dwarf_read_the_same() {
    let compressed = fixtures::must_build(
        "values",
        fixtures::Variant::Default,
        &fixtures::Toolchain::installed(),
    );
    let plain = build_uncompressed();
    let celf = ElfFile::open(&compressed).unwrap();
    let pelf = ElfFile::open(&plain).unwrap();
    assert!(
        celf.section(".debug_info").unwrap().is_compressed(),
        "default Go builds compress DWARF"
    );
    assert!(!pelf.section(".debug_info").unwrap().is_compressed());
    let (c, p) = (Dwarf::load(&celf).unwrap(), Dwarf::load(&pelf).unwrap());
    assert_eq!(c.functions().len(), p.functions().len());
    assert!(c.functions().len() > 1000);
    let (mut ct, mut pt) = (TypeTable::new(), TypeTable::new());
    let (mut cs, mut ps) = (c.types(), p.types());
    for name in ["main.User", "main.Outer", "main.Large", "time.Time"] {
        let a = cs.named(name, &mut ct).unwrap().unwrap();
        let b = ps.named(name, &mut pt).unwrap().unwrap();
        assert_eq!(ct.get(a), pt.get(b), "{name}");
    }
    let f = p.function("main.Move").unwrap();
    let df = ps.function(f, &mut pt).unwrap();
    assert!(matches!(df.params[0].entry, EntryLocation::Known { .. }));
}

#[test]
fn binaries_without_dwarf_say_so() {
    let exe = fixtures::must_build(
        "values",
        fixtures::Variant::Stripped,
        &fixtures::Toolchain::installed(),
    );
    let elf = ElfFile::open(&exe).unwrap();
    let err = Dwarf::load(&elf).unwrap_err();
    assert!(matches!(err, DwarfError::Missing), "{err}");
    assert!(err.to_string().contains("no DWARF"));
}
