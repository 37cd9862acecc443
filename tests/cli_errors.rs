//! Bad input gives one line `gohook: <message>` on stderr and a non-zero exit — never a panic,
//! never a screenful.

mod cli_support;

use std::ffi::OsStr;

use cli_support::*;
use fixtures::{Toolchain, Variant};

fn both_commands_fail(path: &std::path::Path, what: &str, expect: &str) {
    for cmd in ["info", "funcs"] {
        let out = gohook([OsStr::new(cmd), path.as_os_str()]);
        let err = assert_one_line_error(&out, &format!("{cmd} on {what}"));
        assert!(
            err.contains(expect),
            "{cmd} on {what}: {err:?} lacks {expect:?}"
        );
    }
}

#[test]
fn a_text_file_is_not_elf() {
    let p = scratch("script.sh");
    std::fs::write(&p, "#!/bin/sh\necho hi\n").unwrap();
    both_commands_fail(&p, "a shell script", "not an ELF file");
}

#[test]
fn an_elf_without_a_pclntab_is_not_go() {
    // gohook itself is a Rust binary.
    both_commands_fail(
        env!("CARGO_BIN_EXE_gohook").as_ref(),
        "a Rust ELF",
        "not a Go binary: no pclntab found",
    );
}

#[test]
fn empty_files_directories_and_missing_paths_are_named() {
    let p = scratch("empty");
    std::fs::write(&p, b"").unwrap();
    both_commands_fail(&p, "an empty file", "is empty");
    both_commands_fail(&std::env::temp_dir(), "a directory", "is a directory");
    both_commands_fail("/no/such/binary".as_ref(), "a missing path", "No such file");
}

#[test]
fn truncated_and_corrupt_go_binaries_fail_cleanly() {
    let bin = fixtures::must_build("spin", Variant::Default, &Toolchain::installed());
    let bytes = std::fs::read(&bin).unwrap();
    for cut in [64, 4096, bytes.len() / 2, bytes.len() - 1] {
        let p = scratch(&format!("truncated-{cut}"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        for cmd in ["info", "funcs"] {
            assert_one_line_error(
                &gohook([OsStr::new(cmd), p.as_os_str()]),
                &format!("{cmd} truncated at {cut}"),
            );
        }
    }
    // Corrupt the pclntab header's function count: the table no longer fits.
    let elf = gostrings::ElfFile::from_bytes(bytes.clone()).unwrap();
    let sec = elf.section(".gopclntab").expect(".gopclntab");
    let mut bad = bytes.clone();
    let nfunc_at = sec.offset as usize + 8;
    bad[nfunc_at..nfunc_at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let p = scratch("corrupt-nfunc");
    std::fs::write(&p, &bad).unwrap();
    let err = assert_one_line_error(
        &gohook([OsStr::new("funcs"), p.as_os_str()]),
        "corrupt nfunc",
    );
    assert!(err.contains("pclntab"), "{err}");
}

#[test]
fn a_dead_pid_is_reported_as_such() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    for cmd in ["info", "funcs"] {
        let out = gohook([cmd, "--pid", &pid.to_string()]);
        let err = assert_one_line_error(&out, &format!("{cmd} --pid of an exited process"));
        assert!(err.contains(&format!("no process with pid {pid}")), "{err}");
    }
}
