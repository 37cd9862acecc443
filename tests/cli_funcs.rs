//! `gohook funcs`: the function list a user picks hook targets from — entries must be the real
//! ones (checked against `go tool nm`), globs must select what a Go programmer means.

mod cli_support;

use std::ffi::OsStr;

use cli_support::*;
use fixtures::{Toolchain, Variant};

#[test]
fn funcs_text_gives_entry_size_name_and_source_position() {
    let bin = fixtures::must_build("spin", Variant::Default, &Toolchain::installed());
    let nm = go_nm(&bin);
    let text = ok_stdout(&gohook([
        OsStr::new("funcs"),
        bin.as_os_str(),
        "main.*".as_ref(),
    ]));
    let mut names = Vec::new();
    for line in text.lines() {
        // entry size name file:line [hookable | not hookable: why]
        let (line, verdict) = line
            .split_once(" [")
            .unwrap_or_else(|| panic!("no hook verdict: {line:?}"));
        assert!(
            verdict.ends_with(']')
                && (verdict.starts_with("hookable") || verdict.starts_with("not hookable: ")),
            "{verdict:?}"
        );
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 4, "entry size name file:line: {line:?}");
        let entry = u64::from_str_radix(cols[0].trim_start_matches("0x"), 16).unwrap();
        let size: u64 = cols[1].parse().unwrap();
        let (addr, nm_size) = nm
            .get(cols[2])
            .copied()
            .unwrap_or_else(|| panic!("{} not in go tool nm", cols[2]));
        assert_eq!(entry, addr, "{line}");
        assert!(size >= nm_size && size > 0, "{line}: nm size {nm_size}");
        assert!(cols[3].contains("spin/main.go:"), "{line}");
        names.push(cols[2]);
    }
    assert!(
        names.contains(&"main.step") && names.contains(&"main.main"),
        "{names:?}"
    );
    assert!(names.iter().all(|n| n.starts_with("main.")), "{names:?}");
}

#[test]
fn funcs_json_lines_carry_hex_entries_sizes_and_lines() {
    let bin = fixtures::must_build("spin", Variant::Stripped, &Toolchain::installed());
    let out = ok_stdout(&gohook([
        OsStr::new("funcs"),
        bin.as_os_str(),
        "--json".as_ref(),
    ]));
    let rows = json_lines(&out);
    assert!(rows.len() > 1000, "{} functions", rows.len());
    let mut prev = 0;
    for r in &rows {
        let (entry, end) = (hex(&r["entry"]), hex(&r["end"]));
        assert!(entry >= prev, "not in address order at {r}");
        assert_eq!(r["size"].as_u64().unwrap(), end - entry, "{r}");
        assert!(r["name"].as_str().is_some_and(|n| !n.is_empty()), "{r}");
        prev = entry;
    }
    let step = rows
        .iter()
        .find(|r| r["name"] == "main.step")
        .expect("main.step listed");
    assert!(
        step["file"].as_str().unwrap().ends_with("spin/main.go"),
        "{step}"
    );
    assert!(step["line"].as_u64().unwrap() > 0, "{step}");
}

#[test]
fn globs_cross_slashes_dots_and_receivers() {
    let bin = fixtures::must_build("httpsvc", Variant::Default, &Toolchain::installed());
    let names = |pattern: &str| -> Vec<String> {
        let out = ok_stdout(&gohook([
            OsStr::new("funcs"),
            bin.as_os_str(),
            "--json".as_ref(),
            pattern.as_ref(),
        ]));
        json_lines(&out)
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // `*` crosses `/`, `.`, `(` — and the receiver's own `*`, so http2Server methods match too.
    let loose = names("net/http.(*Server).*");
    assert!(
        loose.iter().any(|n| n == "net/http.(*Server).Serve"),
        "{loose:?}"
    );
    assert!(
        loose
            .iter()
            .any(|n| n.starts_with("net/http.(*http2Server).")),
        "{loose:?}"
    );
    assert!(
        loose
            .iter()
            .all(|n| n.starts_with("net/http.(") && n.contains("Server).")),
        "{loose:?}"
    );
    // `\*` is a literal star: only the (*Server) methods.
    let exact = names(r"net/http.(\*Server).*");
    assert!(
        exact.iter().any(|n| n == "net/http.(*Server).Serve"),
        "{exact:?}"
    );
    assert!(
        exact.iter().all(|n| n.starts_with("net/http.(*Server).")),
        "{exact:?}"
    );
    assert!(exact.len() < loose.len());

    // Several patterns are a union; `?` is exactly one character.
    let out = ok_stdout(&gohook([
        OsStr::new("funcs"),
        bin.as_os_str(),
        "main.mai?".as_ref(),
        "*.ServeHTTP".as_ref(),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().any(|l| l.contains(" main.main ")), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" net/http.HandlerFunc.ServeHTTP ")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" main.main ") || l.contains(".ServeHTTP ")),
        "{out}"
    );
}

#[test]
fn a_glob_matching_nothing_is_an_error() {
    let bin = fixtures::must_build("spin", Variant::Default, &Toolchain::installed());
    let out = gohook([OsStr::new("funcs"), bin.as_os_str(), "no.such.*".as_ref()]);
    let err = assert_one_line_error(&out, "no match");
    assert!(err.contains("no.such.*"), "{err}");
}
