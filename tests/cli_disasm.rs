//! `gohook disasm`: a function's code with its source lines and the patch plan (or the refusal),
//! from the file and, with `--pid`, from a process gohook is hooking at that moment.

mod cli_support;

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::*;
use fixtures::{Toolchain, Variant};
use serde_json::Value;

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn disasm_json(args: &[&OsStr]) -> Value {
    let mut all = vec![OsStr::new("disasm"), OsStr::new("--json")];
    all.extend_from_slice(args);
    let lines = json_lines(&ok_stdout(&gohook(all)));
    assert_eq!(lines.len(), 1, "one JSON object");
    lines.into_iter().next().unwrap()
}

fn texts(insns: &Value) -> Vec<String> {
    insns
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_hookable_function_shows_its_source_lines_entry_patch_and_hooked_exit() {
    let bin = fixtures::must_build("spin", Variant::Default, &Toolchain::installed());
    let text = ok_stdout(&gohook([
        OsStr::new("disasm"),
        bin.as_os_str(),
        OsStr::new("main.tick"),
    ]));
    assert!(text.starts_with("main.tick "), "{text}");
    assert!(text.contains("main.go:"), "source position: {text}");
    assert!(text.contains("hookable: entry patch"), "{text}");
    // The entry patch marks the stack check (cmp rsp,[r14+0x10] and its jbe).
    let marked: Vec<&str> = text.lines().filter(|l| l.starts_with("* ")).collect();
    assert!(
        marked.len() >= 2 && marked[0].contains("cmp") && marked[0].contains("[r14+0x10]"),
        "{marked:?}"
    );
    assert!(marked.iter().any(|l| l.contains("jbe")), "{marked:?}");
    assert!(
        text.contains("*  patched: jmp to the entry trampoline"),
        "{text}"
    );
    // The epilogue is marked and its RET says it is hooked; the call names its callee.
    let ret = text
        .lines()
        .find(|l| l.starts_with("> ") && l.contains("ret"))
        .unwrap_or_else(|| panic!("no hooked ret: {text}"));
    assert!(ret.contains("exit hooked"), "{ret}");
    assert!(
        text.contains("call") && text.contains("<main.step>"),
        "{text}"
    );

    let j = disasm_json(&[bin.as_os_str(), OsStr::new("main.tick")]);
    assert_eq!(j["hookable"], true);
    let entry = hex(&j["entry"]);
    let patch = &j["entry_patch"];
    assert_eq!(hex(&patch["start"]), entry);
    let len = patch["len"].as_u64().unwrap();
    assert!(len >= 5, "a jmp rel32 needs 5 bytes, plan says {len}");
    // Every instruction overlapping the patch is marked, and none after it.
    let insns = j["instructions"].as_array().unwrap();
    for i in insns {
        let at = hex(&i["addr"]);
        let in_patch = at < entry + len;
        assert_eq!(i["mark"] == "entry_patch", in_patch, "{i}");
    }
    assert_eq!(hex(&insns[0]["addr"]), entry);
    assert!(insns[0]["source"].as_str().unwrap().starts_with("main.go:"));
    let lines_with_source = insns.iter().filter(|i| i["source"].is_string()).count();
    assert!(lines_with_source >= 2, "source changes at the call: {j}");
    let exits = j["exits"].as_array().unwrap();
    assert!(exits.iter().any(|e| e["hooked"] == true), "{j}");
    assert!(j["live"].is_null(), "no --pid, no live bytes");
}

#[test]
fn a_refused_function_shows_the_reason_and_no_patch() {
    for variant in [Variant::Default, Variant::Stripped] {
        let bin = fixtures::must_build("spin", variant, &Toolchain::installed());
        let out = gohook([
            OsStr::new("disasm"),
            bin.as_os_str(),
            OsStr::new("main.step"),
        ]);
        let text = ok_stdout(&out);
        assert!(
            text.contains("not hookable: no stack check at the entry"),
            "{variant:?}: {text}"
        );
        assert!(text.contains("no bytes would be patched"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("* ")), "{text}");
        assert!(text.contains("ret"), "{text}");
        let j = disasm_json(&[bin.as_os_str(), OsStr::new("main.step")]);
        assert_eq!(j["hookable"], false);
        assert!(j["refusal"].as_str().unwrap().contains("no stack check"));
        assert!(j["entry_patch"].is_null());
    }
}

#[test]
fn stripped_and_values_binaries_list_with_the_plan() {
    let stripped = fixtures::must_build("spin", Variant::Stripped, &Toolchain::installed());
    let j = disasm_json(&[stripped.as_os_str(), OsStr::new("main.tick")]);
    assert_eq!(j["hookable"], true, "{j}");
    assert!(!j["entry_patch"].is_null());
    // The pclntab survives stripping: source lines are still there.
    assert!(j["file"].as_str().unwrap().ends_with("main.go"), "{j}");

    let values = fixtures::must_build("values", Variant::Default, &Toolchain::installed());
    let j = disasm_json(&[values.as_os_str(), OsStr::new("main.Concat")]);
    assert_eq!(j["hookable"], true, "{j}");
    assert!(texts(&j["instructions"])
        .iter()
        .any(|t| t.starts_with("ret")));
}

#[test]
fn an_unknown_or_ambiguous_function_is_one_line_error() {
    let bin = fixtures::must_build("spin", Variant::Default, &Toolchain::installed());
    let out = gohook([
        OsStr::new("disasm"),
        bin.as_os_str(),
        OsStr::new("main.tik"),
    ]);
    let err = assert_one_line_error(&out, "unknown");
    assert!(err.contains("closest names: main.tick"), "{err}");
    let out = gohook([OsStr::new("disasm"), bin.as_os_str(), OsStr::new("main.*")]);
    let err = assert_one_line_error(&out, "ambiguous");
    assert!(err.contains("matches") && err.contains("name one"), "{err}");
}

#[test]
fn with_pid_a_hooked_function_shows_the_live_jump_and_trampoline_then_the_original_bytes() {
    let bin = fixtures::must_build("spin", Variant::Default, &Toolchain::installed());
    let spin = Running(
        Command::new(&bin)
            .arg("-forever")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = spin.0.id().to_string();
    std::thread::sleep(Duration::from_millis(300));
    let file = disasm_json(&[bin.as_os_str(), OsStr::new("main.tick")]);
    let resume = hex(&file["entry_patch"]["resume"]);

    let before = disasm_json(&["--pid".as_ref(), pid.as_ref(), "main.tick".as_ref()]);
    assert_eq!(before["live"]["same_as_file"], true, "{}", before["live"]);

    let mut attach = Running(
        Command::new(env!("CARGO_BIN_EXE_gohook"))
            .args([
                "attach",
                "--pid",
                &pid,
                "-f",
                "main.tick",
                "--duration",
                "4",
            ])
            .args(["--format", "json", "-o", "/dev/null"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for the hook to be in place.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last;
    let live = loop {
        let j = disasm_json(&["--pid".as_ref(), pid.as_ref(), "main.tick".as_ref()]);
        // Patches are written a few bytes at a time while the process runs: wait for the
        // entry jump and an exit jump, both complete.
        let complete = j["live"]["sites"].as_array().is_some_and(|s| {
            s.len() >= 2
                && s.iter().all(|site| {
                    site["instructions"][0]["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("jmp"))
                        && !site["trampoline"].is_null()
                })
        });
        if complete {
            break j;
        }
        last = j;
        assert!(
            Instant::now() < deadline,
            "the hook never appeared: {}",
            last["live"]
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let sites = live["live"]["sites"].as_array().unwrap();
    let entry_site = &sites[0];
    assert_eq!(entry_site["addr"], file["entry"], "the entry is patched");
    let jmp = &texts(&entry_site["instructions"])[0];
    assert!(jmp.starts_with("jmp"), "{jmp}");
    let tramp = &entry_site["trampoline"];
    assert!(
        !tramp.is_null(),
        "the jump leads to a trampoline: {entry_site}"
    );
    let t = texts(&tramp["instructions"]);
    // The trampoline replays the stack check, then jumps back to where the function resumes.
    assert!(
        t[0].starts_with("cmp") && t[0].contains("[r14+0x10]"),
        "{t:?}"
    );
    let last = t.last().unwrap();
    assert!(
        last.starts_with("jmp") && last.contains(&format!("{resume:#x}")),
        "ends with jmp {resume:#x}: {t:?}"
    );
    assert_eq!(tramp["truncated"], false);
    assert!(
        sites.iter().skip(1).any(|s| s["trampoline"]["instructions"]
            .as_array()
            .is_some_and(|i| i.last().unwrap()["text"] == "ret")),
        "an exit trampoline ending in ret: {sites:?}"
    );
    // And as text.
    let text = ok_stdout(&gohook(["disasm", "--pid", &pid, "main.tick"]));
    assert!(text.contains("differ from the file"), "{text}");
    assert!(text.contains("trampoline at 0x"), "{text}");

    let out = attach.0.wait_with_output_ref();
    assert!(out.success(), "attach failed");
    let after = disasm_json(&["--pid".as_ref(), pid.as_ref(), "main.tick".as_ref()]);
    assert_eq!(after["live"]["same_as_file"], true, "{}", after["live"]);
    let text = ok_stdout(&gohook(["disasm", "--pid", &pid, "main.tick"]));
    assert!(
        text.contains("live: the bytes in the process are the file's"),
        "{text}"
    );
}

/// Waits for a child held in [`Running`] (so that a failed assertion before still kills it).
trait WaitRef {
    fn wait_with_output_ref(&mut self) -> std::process::ExitStatus;
}

impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "attach did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
