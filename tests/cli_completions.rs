//! `gohook completions` and `gohook man`: generated from the CLI definition, they cover every
//! subcommand, and the man pages are roff that groff accepts without a warning.

mod cli_support;

use std::process::Command;

use cli_support::*;

/// Every visible subcommand name, from `gohook --help`'s command list.
fn subcommands() -> Vec<String> {
    let help = ok_stdout(&gohook(["--help"]));
    let list = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .split("\n\n")
        .next()
        .unwrap();
    let names: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    for expected in [
        "info",
        "funcs",
        "run",
        "attach",
        "disasm",
        "completions",
        "man",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    names
}

#[test]
fn bash_completion_offers_every_subcommand_and_their_flags() {
    let script = ok_stdout(&gohook(["completions", "bash"]));
    assert!(script.contains("complete -F _gohook"), "a bash completion");
    for name in subcommands() {
        assert!(
            script.contains(&format!("gohook__subcmd__{}", name.replace('-', "__"))),
            "no completion for {name}"
        );
    }
    assert!(script.contains("--pid"), "flags are completed");
    // The script is valid bash.
    let path = scratch("gohook.bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let s = ok_stdout(&gohook(["completions", shell]));
        assert!(s.contains("disasm"), "{shell}");
    }
    let out = gohook(["completions", "tcsh"]);
    assert!(!out.status.success(), "an unknown shell is refused");
}

/// groff's verdict on `page` (UTF-8 input through preconv, `-k`, as man-db does): its warnings (`-ww`), or `None` when groff is not installed
/// (outside CI).
fn groff_warnings(page: &std::path::Path) -> Option<String> {
    match Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "groff failed on {}", page.display());
            Some(String::from_utf8_lossy(&out.stderr).into_owned())
        }
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "groff is needed in CI (groff-base): {e}"
            );
            None
        }
    }
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand_and_pages_are_written_per_command() {
    let page = ok_stdout(&gohook(["man"]));
    assert!(page.contains(".TH gohook 1"), "a section-1 page: {page}");
    assert!(page.contains(".SH SYNOPSIS") && page.contains(".SH SUBCOMMANDS"));
    let path = scratch("gohook.1");
    std::fs::write(&path, &page).unwrap();
    if let Some(w) = groff_warnings(&path) {
        assert_eq!(w, "", "groff warns about gohook.1");
    }
    let names = subcommands();
    for name in &names {
        assert!(
            page.contains(&format!("gohook\\-{}(1)", name.replace('-', "\\-"))),
            "gohook.1 does not list {name}"
        );
    }

    let dir = scratch("man");
    ok_stdout(&gohook(["man".as_ref(), "-o".as_ref(), dir.as_os_str()]));
    for name in &names {
        let p = dir.join(format!("gohook-{name}.1"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(text.contains(&format!(".TH gohook-{name} 1")), "{text}");
        if let Some(w) = groff_warnings(&p) {
            assert_eq!(w, "", "groff warns about {}", p.display());
        }
    }
    let disasm = std::fs::read_to_string(dir.join("gohook-disasm.1")).unwrap();
    assert!(
        disasm.contains("\\-\\-pid"),
        "options are documented: {disasm}"
    );
}
