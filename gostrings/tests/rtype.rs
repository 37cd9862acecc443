//! Type layouts read from runtime type metadata, with no DWARF, equal what the compiler laid
//! out (`unsafe.Offsetof` printed by the values fixture) and what DWARF says, on every
//! toolchain of the matrix, stripped or not.

use std::collections::BTreeMap;
use std::path::Path;

use fixtures::{Toolchain, Variant};
use gostrings::buildinfo::BuildInfo;
use gostrings::dwarf::Dwarf;
use gostrings::moduledata::ModuleData;
use gostrings::rtype::RuntimeTypes;
use gostrings::{ElfFile, Kind, Pclntab, Shape, TypeTable};

mod rtype_support;

/// Opens a binary and its runtime types the way a stripped binary forces (no symbols used).
fn runtime_types(path: &Path) -> RuntimeTypes<ElfFile> {
    let elf = ElfFile::open(path).unwrap();
    let pcl = Pclntab::from_elf(&elf).unwrap();
    let version = BuildInfo::from_elf(&elf).ok().and_then(|b| b.version());
    let md = ModuleData::from_elf(&elf, pcl.header_addr(), version.as_ref()).unwrap();
    RuntimeTypes::new(elf, md, version.as_ref())
}

/// `values -offsets`: type → [(field, offset, size)] in declaration order.
fn offsetof_oracle(exe: &Path) -> BTreeMap<String, Vec<(String, u64, u64)>> {
    let out = std::process::Command::new(exe)
        .arg("-offsets")
        .output()
        .unwrap();
    assert!(out.status.success(), "values -offsets failed");
    let mut m: BTreeMap<String, Vec<(String, u64, u64)>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        m.entry(v["type"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                v["field"].as_str().unwrap().to_owned(),
                v["offset"].as_u64().unwrap(),
                v["size"].as_u64().unwrap(),
            ));
    }
    assert!(m.len() >= 5, "the oracle printed too few types: {m:?}");
    m
}

/// Asserts that every struct the oracle printed has exactly those fields, offsets and sizes in
/// the runtime metadata of `exe`.
fn assert_layouts_match_offsetof(exe: &Path, what: &str) {
    let oracle = offsetof_oracle(exe);
    let rt = runtime_types(exe);
    for (ty, fields) in &oracle {
        let mut table = TypeTable::new();
        let id = rt
            .lookup(ty, &mut table)
            .unwrap_or_else(|e| panic!("{what}: {ty}: {e}"));
        let t = table.get(id).unwrap();
        assert_eq!(t.kind, Kind::Struct, "{what}: {ty}");
        let Shape::Struct { fields: got } = &t.shape else {
            panic!("{what}: {ty} has no fields")
        };
        let got: Vec<(String, u64, u64)> = got
            .iter()
            .map(|f| (f.name.clone(), f.offset, table.get(f.ty).unwrap().size))
            .collect();
        assert_eq!(
            &got, fields,
            "{what}: {ty}: runtime metadata vs unsafe.Offsetof"
        );
    }
}

#[test]
fn struct_layouts_from_runtime_metadata_equal_unsafe_offsetof_stripped_or_not() {
    for tc in fixtures::toolchains() {
        for variant in [Variant::Default, Variant::Stripped] {
            let exe = fixtures::must_build("values", variant, &tc);
            assert_layouts_match_offsetof(&exe, &format!("{tc:?} {}", variant.name()));
        }
    }
}

#[test]
fn struct_layouts_from_go_1_19_runtime_metadata_equal_unsafe_offsetof() {
    let Some(dir) = rtype_support::build_with_go119() else {
        return;
    };
    assert_layouts_match_offsetof(&dir.join("values"), "go1.19 default");
    assert_layouts_match_offsetof(&dir.join("values-stripped"), "go1.19 stripped");
}

/// Go 1.18 encodes struct field offsets as `offset<<1 | embedded`; the buildinfo version tells
/// the reader. Needs a Go 1.18 download, so it runs with `GOHOOK_FULL_MATRIX=1` only.
#[test]
fn struct_layouts_from_go_1_18_runtime_metadata_equal_unsafe_offsetof() {
    if std::env::var("GOHOOK_FULL_MATRIX").map_or(true, |v| v != "1") {
        eprintln!("Go 1.18 check skipped: set GOHOOK_FULL_MATRIX=1");
        return;
    }
    let Some(dir) = rtype_support::build_with_old_go("go1.18.10", "1.18") else {
        return;
    };
    assert_layouts_match_offsetof(&dir.join("values"), "go1.18 default");
    assert_layouts_match_offsetof(&dir.join("values-stripped"), "go1.18 stripped");
    let rt = runtime_types(&dir.join("values-stripped"));
    assert_eq!(
        rt.moduledata().layout,
        gostrings::moduledata::ModuleLayout::Go118
    );
    let mut table = TypeTable::new();
    let derived = rt.lookup("main.Derived", &mut table).unwrap();
    let Shape::Struct { fields } = &table.get(derived).unwrap().shape else {
        panic!()
    };
    assert!(fields[0].embedded && !fields[1].embedded);
}

#[test]
fn embedded_fields_and_recursive_types_are_modelled() {
    for tc in fixtures::toolchains() {
        let rt = runtime_types(&fixtures::must_build("values", Variant::Stripped, &tc));
        let mut table = TypeTable::new();
        let derived = rt.lookup("main.Derived", &mut table).unwrap();
        let Shape::Struct { fields } = &table.get(derived).unwrap().shape else {
            panic!()
        };
        assert!(
            fields[0].embedded && fields[0].name == "Base",
            "{tc:?}: {fields:?}"
        );
        assert!(!fields[1].embedded);
        assert_eq!(table.get(fields[0].ty).unwrap().name, "main.Base");
        // User.Manager is *User: the pointer's element is the same table entry (a cycle).
        let user = rt.lookup("main.User", &mut table).unwrap();
        let Shape::Struct { fields } = &table.get(user).unwrap().shape else {
            panic!()
        };
        let manager = fields.iter().find(|f| f.name == "Manager").unwrap();
        let Shape::Pointer { elem } = table.get(manager.ty).unwrap().shape else {
            panic!()
        };
        assert_eq!(elem, user, "{tc:?}: *User's element is not User itself");
        let attrs = fields.iter().find(|f| f.name == "Attrs").unwrap();
        let Shape::Map { key, elem } = table.get(attrs.ty).unwrap().shape else {
            panic!()
        };
        assert_eq!(table.get(key).unwrap().kind, Kind::String);
        assert_eq!(table.get(elem).unwrap().kind, Kind::Int);
    }
}

/// Every named struct the runtime metadata describes, and that DWARF describes under the same
/// name, has the same size and the same fields (names, offsets, sizes, embedding).
#[test]
fn every_runtime_struct_layout_equals_dwarf() {
    let cases = fixtures::toolchains()
        .into_iter()
        .map(|tc| ("values", tc, 40));
    for (program, tc, at_least) in cases.chain([("httpsvc", Toolchain::installed(), 400)]) {
        let exe = fixtures::must_build(program, Variant::Default, &tc);
        let rt = runtime_types(&exe);
        let dwarf = Dwarf::load(&ElfFile::open(&exe).unwrap()).unwrap();
        let mut compared = 0;
        for addr in rt.all_types() {
            let h = rt.header(addr).unwrap();
            if h.kind != Kind::Struct || !h.is_named() {
                continue;
            }
            let name = rt.full_name(addr).unwrap();
            if !dwarf.has_type(&name) {
                continue;
            }
            // DWARF links the name to this very descriptor (offset from moduledata.types).
            if let Some(off) = dwarf.runtime_type(&name) {
                if off != addr - rt.moduledata().types {
                    continue; // two types with one name (function-local types): skip
                }
            }
            let mut rt_table = TypeTable::new();
            let mut dw_table = TypeTable::new();
            let a = rt.type_at(addr, &mut rt_table).unwrap();
            let b = dwarf.types().named(&name, &mut dw_table).unwrap().unwrap();
            let (ta, tb) = (rt_table.get(a).unwrap(), dw_table.get(b).unwrap());
            assert_eq!(ta.size, tb.size, "{tc:?} {name}: size");
            let fields = |table: &TypeTable, shape: &Shape| -> Vec<(String, u64, u64, bool)> {
                match shape {
                    Shape::Struct { fields } => fields
                        .iter()
                        .map(|f| {
                            (
                                f.name.clone(),
                                f.offset,
                                table.get(f.ty).unwrap().size,
                                f.embedded,
                            )
                        })
                        .collect(),
                    _ => panic!("{name} is not a struct in one source"),
                }
            };
            assert_eq!(
                fields(&rt_table, &ta.shape),
                fields(&dw_table, &tb.shape),
                "{tc:?} {name}: runtime metadata vs DWARF"
            );
            compared += 1;
        }
        eprintln!("{program} {tc:?}: {compared} struct layouts equal DWARF's");
        assert!(
            compared >= at_least,
            "{program} {tc:?}: only {compared} structs compared"
        );
    }
}

#[test]
fn net_http_request_layout_from_a_stripped_binary_equals_dwarf_of_the_unstripped_one() {
    for tc in [Toolchain::installed(), Toolchain::release("go1.21.13")] {
        let stripped = runtime_types(&fixtures::must_build("httpsvc", Variant::Stripped, &tc));
        let full = fixtures::must_build("httpsvc", Variant::Default, &tc);
        let dwarf = Dwarf::load(&ElfFile::open(&full).unwrap()).unwrap();
        for name in [
            "net/http.Request",
            "net/url.URL",
            "database/sql.DB",
            "net/http.Server",
        ] {
            let mut rt_table = TypeTable::new();
            let mut dw_table = TypeTable::new();
            let a = stripped
                .lookup(name, &mut rt_table)
                .unwrap_or_else(|e| panic!("{tc:?}: {e}"));
            let b = dwarf.types().named(name, &mut dw_table).unwrap().unwrap();
            let summary = |table: &TypeTable, id| -> (u64, Vec<(String, u64, String)>) {
                let t: &gostrings::GoType = table.get(id).unwrap();
                let Shape::Struct { fields } = &t.shape else {
                    panic!("{name} is not a struct")
                };
                let f = fields.iter().map(|f| {
                    (
                        f.name.clone(),
                        f.offset,
                        table.get(f.ty).unwrap().name.clone(),
                    )
                });
                (t.size, f.collect())
            };
            assert_eq!(
                summary(&rt_table, a),
                summary(&dw_table, b),
                "{tc:?} {name}"
            );
        }
    }
}

#[test]
fn typelinked_descriptors_are_sorted_by_type_string() {
    for tc in fixtures::toolchains() {
        let rt = runtime_types(&fixtures::must_build("values", Variant::Stripped, &tc));
        let strings: Vec<String> = rt
            .typelinked()
            .iter()
            .map(|&a| rt.type_string(a).unwrap())
            .collect();
        assert!(
            strings.len() > 100,
            "{tc:?}: {} typelinked descriptors",
            strings.len()
        );
        assert!(
            strings.windows(2).all(|w| w[0] <= w[1]),
            "{tc:?}: typelinked descriptors are not sorted"
        );
        assert!(strings.iter().any(|s| s == "*main.User"), "{tc:?}");
        if let Some(len) = rt.moduledata().typedesclen {
            // Go 1.27: the walk over back-to-back descriptors ends exactly at typedesclen, so
            // every descriptor size (maps, funcs, structs with methods…) was computed right.
            let last = *rt.typelinked().last().unwrap();
            let end = (last + rt.descriptor_size(last).unwrap()).next_multiple_of(8);
            assert_eq!(
                end,
                rt.moduledata().types + len,
                "{tc:?}: the descriptor walk stopped early"
            );
            assert!(
                strings.iter().any(|s| s.starts_with("map["))
                    && strings.iter().any(|s| s.starts_with("struct {"))
            );
        }
    }
}

#[test]
fn itabs_lead_to_their_concrete_types() {
    for tc in fixtures::toolchains() {
        let rt = runtime_types(&fixtures::must_build("values", Variant::Stripped, &tc));
        let pairs: Vec<(String, String)> = rt
            .itabs()
            .into_iter()
            .map(|(inter, ty)| (rt.full_name(inter).unwrap(), rt.full_name(ty).unwrap()))
            .collect();
        assert!(
            pairs.contains(&("error".into(), "*main.NotFoundError".into())),
            "{tc:?}: {pairs:?}"
        );
        assert!(
            pairs.contains(&("main.Shape".into(), "main.Rect".into())),
            "{tc:?}: {pairs:?}"
        );
        // What interface decoding does with an itab word: the concrete type, by address.
        let mut table = TypeTable::new();
        let (_, circle) = rt
            .itabs()
            .into_iter()
            .find(|&(_, t)| rt.full_name(t).unwrap() == "*main.Circle")
            .unwrap();
        let id = rt.type_at(circle, &mut table).unwrap();
        let Shape::Pointer { elem } = table.get(id).unwrap().shape else {
            panic!()
        };
        assert_eq!(table.get(elem).unwrap().name, "main.Circle");
        assert!(
            rt.header(circle).unwrap().direct_iface,
            "{tc:?}: pointers are direct-interface"
        );
        let rect = rt.find("main.Rect").unwrap();
        assert!(
            !rt.header(rect).unwrap().direct_iface,
            "{tc:?}: a 16-byte struct is not"
        );
    }
}

#[test]
fn user_signatures_resolve_named_types_from_runtime_metadata() {
    let rt = runtime_types(&fixtures::must_build(
        "values",
        Variant::Stripped,
        &Toolchain::installed(),
    ));
    let mut table = TypeTable::new();
    let mut named = rt.named_types();
    let sig = gostrings::signature::parse(
        "func(u main.User, p *main.Point, o main.Outer) error",
        &mut named,
        &mut table,
    )
    .unwrap();
    let sizes: Vec<u64> = sig
        .params
        .iter()
        .map(|p| table.get(p.ty).unwrap().size)
        .collect();
    assert_eq!(sizes, vec![72, 8, 64]);
}

#[test]
fn unknown_names_are_reported_not_guessed() {
    let rt = runtime_types(&fixtures::must_build(
        "values",
        Variant::Stripped,
        &Toolchain::installed(),
    ));
    let mut table = TypeTable::new();
    let err = rt.lookup("main.NoSuchType", &mut table).unwrap_err();
    assert!(err.to_string().contains("main.NoSuchType"), "{err}");
    assert!(table.is_empty());
}

/// `net/http.Header` is a named map type with methods: its package path sits in the uncommon
/// part after the map descriptor, whose size differs between classic (≤1.23), swiss (1.24–1.26)
/// and 1.27 maps.
#[test]
fn named_map_types_resolve_on_classic_and_swiss_map_layouts() {
    for tc in fixtures::toolchains() {
        let rt = runtime_types(&fixtures::must_build("httpsvc", Variant::Stripped, &tc));
        let mut table = TypeTable::new();
        let header = rt
            .lookup("net/http.Header", &mut table)
            .unwrap_or_else(|e| panic!("{tc:?}: {e}"));
        let t = table.get(header).unwrap();
        assert_eq!((t.kind, t.size), (Kind::Map, 8), "{tc:?}");
        let Shape::Map { key, elem } = t.shape else {
            panic!("{tc:?}: {t:?}")
        };
        assert_eq!(table.get(key).unwrap().name, "string");
        assert_eq!(table.get(elem).unwrap().name, "[]string");
        assert_eq!(
            rt.pkg_path(rt.find("net/http.Header").unwrap()).unwrap(),
            "net/http"
        );
    }
}

#[test]
fn layouts_read_the_same_in_pie_cgo_and_externally_linked_builds() {
    for variant in [Variant::Pie, Variant::Cgo, Variant::PieExternal] {
        let exe = fixtures::must_build("values", variant, &Toolchain::installed());
        assert_layouts_match_offsetof(&exe, variant.name());
    }
}

/// Past the depth limit, pointers stay pointers (8 bytes, register-assignable) whose element is
/// a named shell; by-value fields are still expanded.
#[test]
fn depth_limited_imports_keep_pointers_usable_and_elements_named() {
    use gostrings::rtype::{ImportLimits, ImportMemo};
    let rt = runtime_types(&fixtures::must_build(
        "httpsvc",
        Variant::Stripped,
        &Toolchain::installed(),
    ));
    let mut table = TypeTable::new();
    let addr = rt.find("net/http.Request").unwrap();
    let limits = ImportLimits {
        max_depth: 1,
        ..Default::default()
    };
    let req = rt
        .import(addr, &mut table, &mut ImportMemo::default(), limits)
        .unwrap();
    let Shape::Struct { fields } = &table.get(req).unwrap().shape else {
        panic!()
    };
    let field = |name: &str| {
        table
            .get(fields.iter().find(|f| f.name == name).unwrap().ty)
            .unwrap()
    };
    let Shape::Pointer { elem } = field("URL").shape else {
        panic!("{:?}", field("URL"))
    };
    let url = table.get(elem).unwrap();
    assert_eq!(
        (url.name.as_str(), url.kind, &url.shape),
        ("net/url.URL", Kind::Struct, &Shape::Opaque)
    );
    assert!(url.size > 0);
    assert!(matches!(field("Header").shape, Shape::Map { .. }));
    assert!(matches!(
        field("Body").shape,
        Shape::Interface { empty: false }
    ));
    // A signature taking the request by pointer is register-assignable.
    let mut named = rt.named_types();
    let sig = gostrings::signature::parse(
        "func(w net/http.ResponseWriter, r *net/http.Request)",
        &mut named,
        &mut table,
    )
    .unwrap();
    assert_eq!(table.get(sig.params[1].ty).unwrap().size, 8);
}
