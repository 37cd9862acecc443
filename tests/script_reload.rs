//! A `-s` script edited while gohook runs is reloaded: spans made after the edit carry what the
//! new version sets; an edit that does not compile keeps the previous version and prints one
//! error line.

mod cli_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::*;
use fixtures::{Toolchain, Variant};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn script(version: &str) -> String {
    format!(
        "const HOOK = \"main.tick\";\nfn on_enter(ctx) {{\n    ctx.span_start(\"tick\", \"internal\");\n    ctx.set(\"reload.version\", \"{version}\");\n}}\n"
    )
}

/// Spans written so far with `reload.version` = `v`.
fn count(spans: &std::path::Path, v: &str) -> usize {
    std::fs::read_to_string(spans)
        .unwrap_or_default()
        .matches(&format!("\"{v}\""))
        .count()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_edited_script_is_reloaded_and_a_broken_edit_keeps_the_old_one() {
    let bin = fixtures::must_build("spin", Variant::Default, &Toolchain::installed());
    // 50 calls of main.tick every 20 ms, for far longer than the test.
    let spin = Running(
        Command::new(&bin)
            .args(["-bench", "100000000", "-burst", "50"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let path = scratch("reload.rhai");
    let spans = scratch("reload-spans.jsonl");
    std::fs::write(&path, script("one")).unwrap();
    let gohook = Running(
        Command::new(env!("CARGO_BIN_EXE_gohook"))
            .args([
                "attach",
                "--pid",
                &spin.0.id().to_string(),
                "--duration",
                "8",
            ])
            .arg("-s")
            .arg(&path)
            .args(["--no-default-scripts", "--format", "json", "-o"])
            .arg(&spans)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for("spans of the first version", || count(&spans, "one") > 0);
    std::fs::write(&path, script("two")).unwrap();
    wait_for("spans of the reloaded version", || count(&spans, "two") > 0);
    // A syntax error: the second version keeps running.
    std::fs::write(&path, script("three").replace("ctx.set(", "ctx.set(,")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let twos = count(&spans, "two");
    wait_for("spans after the broken edit", || {
        count(&spans, "two") > twos
    });

    let out = gohook.wait_with_output_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches(&format!("gohook: reloaded {}", path.display()))
            .count(),
        1,
        "{err}"
    );
    let kept: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("still running the previous version"))
        .collect();
    assert_eq!(kept.len(), 1, "one line for the broken edit: {err}");
    assert!(
        kept[0].starts_with(&format!("gohook: {}:4:", path.display())),
        "file:line of the error: {}",
        kept[0]
    );
    assert_eq!(count(&spans, "three"), 0, "the broken version never ran");
}

trait Owned {
    fn wait_with_output_owned(self) -> std::process::Output;
}

impl Owned for Running {
    fn wait_with_output_owned(mut self) -> std::process::Output {
        let child = std::mem::replace(
            &mut self.0,
            Command::new("true").spawn().expect("spawning true"),
        );
        child.wait_with_output().expect("waiting for gohook")
    }
}
