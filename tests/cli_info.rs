//! `gohook info`: what a user needs to know about a Go binary before hooking it, as text and as
//! one JSON object, for the build variants met in the field.

mod cli_support;

use cli_support::*;
use fixtures::{Toolchain, Variant};

#[test]
fn info_text_names_version_module_and_build_facts() {
    let tc = Toolchain::installed();
    let bin = fixtures::must_build("spin", Variant::Default, &tc);
    let text = ok_stdout(&gohook([std::ffi::OsStr::new("info"), bin.as_os_str()]));
    let version = tc.version().unwrap();
    assert!(
        text.contains(&format!("go version:    {version}\n")),
        "{text}"
    );
    assert!(
        text.contains("main module:   example.com/spin (devel)"),
        "{text}"
    );
    assert!(text.contains("pie:           no\n"), "{text}");
    assert!(text.contains("stripped:      no\n"), "{text}");
    assert!(text.contains("dwarf:         yes\n"), "{text}");
    assert!(text.contains("  -buildmode=exe\n"), "{text}");
    let functions: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("functions:"))
        .expect("a functions line")
        .trim()
        .parse()
        .unwrap();
    assert!(functions > 1000, "{functions} functions");
}

#[test]
fn info_json_reports_stripped_pie_and_build_settings() {
    let cases = [
        (
            Variant::Stripped,
            Toolchain::installed(),
            false,
            true,
            false,
            "exe",
        ),
        (
            Variant::Pie,
            Toolchain::installed(),
            true,
            false,
            true,
            "pie",
        ),
        (
            Variant::PieExternal,
            Toolchain::release("go1.21.13"),
            true,
            false,
            true,
            "pie",
        ),
    ];
    for (variant, tc, pie, stripped, dwarf, buildmode) in cases {
        let bin = fixtures::must_build("spin", variant, &tc);
        let out = ok_stdout(&gohook([
            std::ffi::OsStr::new("info"),
            bin.as_os_str(),
            "--json".as_ref(),
        ]));
        let docs = json_lines(&out);
        assert_eq!(docs.len(), 1, "one object: {out}");
        let v = &docs[0];
        let what = format!("{} {}", variant.name(), tc.gotoolchain());
        assert_eq!(v["go_version"], tc.version().unwrap().as_str(), "{what}");
        assert_eq!(v["main_module"], "example.com/spin", "{what}");
        assert_eq!(v["pie"], pie, "{what}");
        assert_eq!(v["stripped"], stripped, "{what}");
        assert_eq!(v["dwarf"], dwarf, "{what}");
        assert_eq!(v["build_settings"]["-buildmode"], buildmode, "{what}");
        assert_eq!(v["build_settings"]["GOARCH"], "amd64", "{what}");
        assert!(hex(&v["text_start"]) < hex(&v["text_end"]), "{what}");
        // The function count is the number of functions `funcs` lists.
        let funcs = ok_stdout(&gohook([std::ffi::OsStr::new("funcs"), bin.as_os_str()]));
        assert_eq!(
            v["functions"].as_u64().unwrap() as usize,
            funcs.lines().count(),
            "{what}"
        );
    }
}

#[test]
fn info_lists_dependencies_of_a_module_with_them() {
    let bin = fixtures::must_build("httpsvc", Variant::Default, &Toolchain::installed());
    let out = ok_stdout(&gohook([
        std::ffi::OsStr::new("info"),
        bin.as_os_str(),
        "--json".as_ref(),
    ]));
    let v = &json_lines(&out)[0];
    let deps = v["dependencies"].as_array().expect("dependencies array");
    assert!(
        deps.iter().any(|d| d["path"] == "modernc.org/sqlite"),
        "modernc.org/sqlite missing from {deps:?}"
    );
}
