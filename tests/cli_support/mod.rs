//! Shared helpers of the `cli_*` tests: run the built `gohook` and look at what it printed.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `gohook` with `args`.
pub fn gohook<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_gohook"))
        .args(args)
        .output()
        .expect("running gohook")
}

/// stdout of a run that must succeed.
pub fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "gohook failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// Parses JSON lines.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// A `0x…` string as a number.
pub fn hex(v: &serde_json::Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    u64::from_str_radix(
        s.strip_prefix("0x")
            .unwrap_or_else(|| panic!("{s} lacks 0x")),
        16,
    )
    .unwrap()
}

/// A scratch path unique to this test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Asserts the run failed with exactly one line `gohook: …` on stderr and no panic.
pub fn assert_one_line_error(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what}: exit status 0");
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(err.starts_with("gohook: "), "{what}: {err:?}");
    assert!(out.stdout.is_empty(), "{what}: printed to stdout");
    err.trim_end().to_owned()
}

/// `go tool nm -size` of a binary: name → (address, size).
pub fn go_nm(binary: &Path) -> std::collections::HashMap<String, (u64, u64)> {
    let out = Command::new("go")
        .args(["tool", "nm", "-size"])
        .arg(binary)
        .output()
        .expect("go tool nm");
    assert!(
        out.status.success(),
        "go tool nm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let size = it.next()?.parse().ok()?;
            let _kind = it.next()?;
            let name = it.collect::<Vec<_>>().join(" ");
            Some((name, (addr, size)))
        })
        .collect()
}
