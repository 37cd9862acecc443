//! Our function table and Go version must equal what Go's own `debug/gosym` and
//! `debug/buildinfo` read from the same binary (the oracle in `fixtures/go/gosym`), for every
//! build variant a user meets in the field and every toolchain of the test matrix.
//!
//! `spin` and `values` run on every toolchain of `fixtures::toolchains()`; `httpsvc` (the largest
//! fixture, slow to build) on the installed Go only, unless `GOHOOK_FULL_MATRIX=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use fixtures::{Toolchain, Variant};
use gostrings::GoBinary;

const VARIANTS: [Variant; 5] = [
    Variant::Default,
    Variant::Stripped,
    Variant::Pie,
    Variant::PieExternal,
    Variant::Cgo,
];

#[derive(Debug, PartialEq)]
struct Row {
    name: String,
    entry: u64,
    end: u64,
    file: String,
    line: i64,
}

struct Oracle {
    go_version: String,
    funcs: Vec<Row>,
}

fn oracle_exe() -> PathBuf {
    fixtures::must_build("gosym", Variant::Default, &Toolchain::installed())
}

fn run_oracle(oracle: &Path, binary: &Path) -> Result<Oracle, String> {
    let out = Command::new(oracle)
        .arg(binary)
        .output()
        .map_err(|e| format!("running gosym: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gosym failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let head: serde_json::Value =
        serde_json::from_str(lines.next().ok_or("gosym printed nothing")?)
            .map_err(|e| e.to_string())?;
    let mut funcs = Vec::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| e.to_string())?;
        funcs.push(Row {
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            entry: v["entry"].as_u64().unwrap_or(u64::MAX),
            end: v["end"].as_u64().unwrap_or(u64::MAX),
            file: v["file"].as_str().unwrap_or_default().to_owned(),
            line: v["line"].as_i64().unwrap_or(-1),
        });
    }
    Ok(Oracle {
        go_version: head["go_version"].as_str().unwrap_or_default().to_owned(),
        funcs,
    })
}

fn ours(binary: &Path) -> Result<(String, Vec<Row>), String> {
    let bin = GoBinary::open(binary).map_err(|e| e.to_string())?;
    let version = bin
        .buildinfo
        .as_ref()
        .map(|b| b.go_version.clone())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for f in bin.pclntab.funcs() {
        let f = f.map_err(|e| e.to_string())?;
        rows.push(Row {
            name: f.name,
            entry: f.entry,
            end: f.end,
            file: f.file.unwrap_or_default(),
            line: f.line.map_or(-1, i64::from), // gosym reports -1 for "no line"
        });
    }
    Ok((version, rows))
}

/// Compares one program over `toolchains` × [`VARIANTS`]; returns the failures.
fn compare_program(program: &str, toolchains: &[Toolchain]) {
    compare_variants(program, toolchains, &VARIANTS);
}

fn compare_variants(program: &str, toolchains: &[Toolchain], variants: &[Variant]) {
    if !fixtures::source_dir(program).is_dir() {
        eprintln!("skipping {program}: fixtures/go/{program} does not exist yet");
        return;
    }
    let oracle = oracle_exe();
    let mut failures = Vec::new();
    let mut compared = 0;
    for tc in toolchains {
        for &variant in variants {
            let what = format!("{program} {} {}", variant.name(), tc.gotoolchain());
            let exe = match fixtures::build(program, variant, tc) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!("{what}: build failed: {e}"));
                    continue;
                }
            };
            let theirs = match run_oracle(&oracle, &exe) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{what}: {e}"));
                    continue;
                }
            };
            let (version, mine) = match ours(&exe) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{what}: gostrings: {e}"));
                    continue;
                }
            };
            if version != theirs.go_version {
                failures.push(format!(
                    "{what}: version {version:?}, buildinfo says {:?}",
                    theirs.go_version
                ));
            }
            if mine.len() != theirs.funcs.len() {
                failures.push(format!(
                    "{what}: {} functions, gosym has {}",
                    mine.len(),
                    theirs.funcs.len()
                ));
            }
            if let Some((a, b)) = mine.iter().zip(&theirs.funcs).find(|(a, b)| a != b) {
                failures.push(format!("{what}: first difference: ours {a:?}, gosym {b:?}"));
            }
            compared += 1;
            eprintln!(
                "{what} ({version}): {} functions, gosym {}",
                mine.len(),
                theirs.funcs.len()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} builds differ:\n{}",
        failures.len(),
        compared,
        failures.join("\n")
    );
    assert!(compared > 0, "nothing compared");
}

#[test]
fn spin_function_table_matches_debug_gosym_on_every_variant_and_toolchain() {
    compare_program("spin", &fixtures::toolchains());
}

#[test]
fn values_function_table_matches_debug_gosym_on_every_variant_and_toolchain() {
    compare_program("values", &fixtures::toolchains());
}

#[test]
fn httpsvc_function_table_matches_debug_gosym_on_every_variant() {
    let full = std::env::var("GOHOOK_FULL_MATRIX").is_ok_and(|v| v == "1");
    let toolchains = if full {
        fixtures::toolchains()
    } else {
        vec![Toolchain::installed()]
    };
    compare_program("httpsvc", &toolchains);
}

#[test]
fn go_1_17_layout_and_pointer_buildinfo_match_debug_gosym() {
    // The 0xfffffffa layout (Go 1.16–1.17): 8-byte functab entries with absolute entries, and
    // buildinfo that points at Go strings instead of holding them inline. Default and stripped
    // only: each further variant would compile Go 1.17's standard library once more.
    compare_variants(
        "spin",
        &[Toolchain::release("go1.17.13")],
        &[Variant::Default, Variant::Stripped],
    );
}

#[test]
fn go_1_19_layout_matches_debug_gosym() {
    // The 0xfffffff0 layout (Go 1.18–1.19): no startLine, textStart always in the header.
    compare_program("spin", &[Toolchain::release("go1.19.13")]);
}
