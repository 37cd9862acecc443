//! `gohook trace` (the lines view of `run` and `attach`): one line per call and per return with
//! decoded Go arguments and results, on DWARF builds and on stripped builds given signatures;
//! nesting, the filters, `--where` errors, and the live status line.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cli_support::*;
use fixtures::{must_build, Toolchain, Variant};

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Runs `gohook trace ARGS -- exe EXE_ARGS`; with `interrupt`, sends SIGINT after that long
/// (gohook forwards it to the program, then writes what it has).
fn trace(args: &[&str], exe: &Path, exe_args: &[&str], interrupt: Option<Duration>) -> Output {
    let child = Command::new(GOHOOK)
        .arg("trace")
        .args(["--no-default-scripts"])
        .args(args)
        .arg("--")
        .arg(exe)
        .args(exe_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(d) = interrupt {
        std::thread::sleep(d);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::SIGINT,
        )
        .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// `values -forever` traced for a second.
fn values_lines(variant: Variant, args: &[&str]) -> (Vec<String>, String) {
    let exe = must_build("values", variant, &Toolchain::installed());
    let out = trace(
        args,
        &exe,
        &["-forever", "-pause", "20ms"],
        Some(Duration::from_millis(1200)),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (view_lines(&err), err)
}

/// The view's call and return lines (indentation kept).
fn view_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('>'))
        .map(str::to_owned)
        .collect()
}

/// The lines without the goroutine number (`goroutine(N)` → `goroutine(_)`) and the duration
/// at the end of return lines (` 1.2µs` → ` DUR`), asserting each return line has one.
fn normalized(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let mut s = l.clone();
            if let (Some(a), Some(b)) = (s.find("goroutine("), s.find(") ")) {
                if a < b {
                    s.replace_range(a + "goroutine(".len()..b, "_");
                }
            }
            if s.trim_start().starts_with(">>") && s.contains(" => (") {
                let (head, dur) = s.rsplit_once(' ').unwrap();
                assert!(duration_ns(dur).is_some(), "no duration in {l:?}");
                s = format!("{head} DUR");
            }
            s
        })
        .collect()
}

/// `1.2µs`, `310ns`, `4.00ms`, `1.50s` in ns.
fn duration_ns(d: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = d.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = d.strip_suffix("µs") {
        (n, 1e3)
    } else if let Some(n) = d.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = d.strip_suffix('s') {
        (n, 1e9)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}

fn has(lines: &[String], want: &str, err: &str) {
    assert!(
        lines.iter().any(|l| l == want),
        "no line {want:?} among:\n{}\n--- stderr ---\n{err}",
        lines.join("\n")
    );
}

const VALUES_FUNCS: &[&str] = &[
    "-f",
    "main.Concat",
    "-f",
    "main.Divmod",
    "-f",
    "main.Move",
    "-f",
    "main.Fail",
    "-f",
    "main.Apply",
    "-f",
    "main.Adder.func1",
];

/// Strings, integers, a struct mixing int, float and string, errors (nil, errors.New, %w) and
/// results of nested calls, as they read on a live `values`.
fn decoded_values_are_shown(lines: &[String], err: &str) {
    let n = normalized(lines);
    has(&n, r#"> goroutine(_) main.Concat("go", "hook")"#, err);
    has(&n, r#">> goroutine(_) main.Concat => ("gohook") DUR"#, err);
    has(&n, "> goroutine(_) main.Divmod(17, 5)", err);
    has(
        &n,
        r#"> goroutine(_) main.Move(main.P{X: 1, Y: 2.5, S: "p"}, 0.5)"#,
        err,
    );
    has(
        &n,
        r#">> goroutine(_) main.Move => (main.P{X: 1, Y: 3, S: "p'"}) DUR"#,
        err,
    );
    for kind in 0..4 {
        has(&n, &format!("> goroutine(_) main.Fail({kind})"), err);
    }
    has(&n, ">> goroutine(_) main.Fail => (nil) DUR", err);
    has(
        &n,
        r#">> goroutine(_) main.Fail => (error("not allowed")) DUR"#,
        err,
    );
    has(
        &n,
        r#">> goroutine(_) main.Fail => (error("opening config: not allowed")) DUR"#,
        err,
    );
    // The closure Apply calls is nested one level under it.
    has(&n, "  > goroutine(_) main.Adder.func1(5)", err);
    has(&n, "  >> goroutine(_) main.Adder.func1 => (15) DUR", err);
    has(&n, ">> goroutine(_) main.Apply => (15) DUR", err);
}

#[test]
fn lines_show_decoded_arguments_and_results_from_dwarf() {
    let (lines, err) = values_lines(Variant::Default, VALUES_FUNCS);
    decoded_values_are_shown(&lines, &err);
    // Entry lines come in call order: each Concat entry is followed by its return.
    let i = lines
        .iter()
        .position(|l| l.contains("main.Concat("))
        .unwrap();
    assert!(lines[i + 1].contains("main.Concat =>"), "{lines:?}");
    // Standard error is a pipe here: no live status line.
    assert!(!err.contains("events/s"), "{err}");
}

#[test]
fn lines_show_decoded_values_on_a_stripped_binary_given_signatures() {
    let mut args: Vec<&str> = VALUES_FUNCS.to_vec();
    args.extend([
        "--signature",
        "main.Concat(a, b string) string",
        "--signature",
        "main.Divmod(a, b int) (q, r int)",
        "--signature",
        "main.Move(p main.P, dx float64) main.P",
        "--signature",
        "main.Fail(kind int) error",
        "--signature",
        "main.Apply(f func(int) int, x int) int",
        "--signature",
        "main.Adder.func1(x int) int",
    ]);
    let (lines, err) = values_lines(Variant::Stripped, &args);
    decoded_values_are_shown(&lines, &err);
    assert!(!err.contains("no argument types"), "{err}");
}

#[test]
fn without_types_a_stripped_binary_shows_calls_and_says_how_to_give_types() {
    let (lines, err) = values_lines(Variant::Stripped, &["-f", "main.Concat"]);
    let n = normalized(&lines);
    has(&n, "> goroutine(_) main.Concat(?)", &err);
    assert!(
        err.contains("no argument types for main.Concat")
            && err.contains("--signature 'FUNC(name type, ...) results'"),
        "{err}"
    );
}

#[test]
fn verbosity_decides_how_much_of_a_struct_is_shown_and_a_hint_says_so() {
    // Rename(u *User, name string): u's manager is a pointer two levels down, its tags a slice.
    let (lines, err) = values_lines(Variant::Default, &["-f", "main.Rename"]);
    let first = lines
        .iter()
        .find(|l| l.contains("main.Rename(&main.User{"))
        .unwrap_or_else(|| panic!("no Rename line: {err}"));
    assert!(first.contains(r#"Name: "robert""#), "{first}");
    assert!(first.contains("Manager: (*main.User)(0x"), "{first}");
    assert!(first.contains("Tags: []string{…}"), "{first}");
    assert!(
        err.contains("values marked … were cut short; -v shows more"),
        "{err}"
    );

    let (lines, err) = values_lines(Variant::Default, &["-f", "main.Rename", "-vv"]);
    let first = lines
        .iter()
        .find(|l| l.contains("main.Rename(&main.User{"))
        .unwrap_or_else(|| panic!("no Rename line: {err}"));
    assert!(
        first.contains(r#"Manager: &main.User{Name: "ada", Age: 36, Admin: true"#),
        "{first}"
    );
    assert!(
        first.contains(r#"Tags: []string{"ops", "oncall"}"#),
        "{first}"
    );
    assert!(!err.contains("cut short"), "{err}");
}

#[test]
fn timestamps_prefix_each_line() {
    let (_, err) = values_lines(Variant::Default, &["-f", "main.Concat", "--timestamp"]);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("> goroutine(")).collect();
    assert!(!lines.is_empty(), "{err}");
    for l in &lines {
        let (ts, rest) = l.split_once(' ').unwrap();
        let b = ts.as_bytes();
        assert!(
            ts.len() == 15 && b[2] == b':' && b[5] == b':' && b[8] == b'.',
            "{l:?}"
        );
        assert!(rest.starts_with('>'), "{l:?}");
    }
}

#[test]
fn where_keeps_only_calls_whose_arguments_match() {
    let (lines, err) = values_lines(
        Variant::Default,
        &[
            "-f",
            "main.Concat",
            "--where",
            r#"a == "go" && b.len() == 4 && goroutine > 0"#,
        ],
    );
    let n = normalized(&lines);
    has(&n, r#"> goroutine(_) main.Concat("go", "hook")"#, &err);
    assert!(!err.contains("--where could not"), "{err}");

    let (lines, err) = values_lines(
        Variant::Default,
        &[
            "-f",
            "main.Fail",
            "-f",
            "main.Concat",
            "--where",
            "kind == 2",
        ],
    );
    let n = normalized(&lines);
    has(&n, "> goroutine(_) main.Fail(2)", &err);
    has(
        &n,
        r#">> goroutine(_) main.Fail => (error("opening config: not allowed")) DUR"#,
        &err,
    );
    // (The last return may be read after the target exited: its error text is then unknown.)
    assert!(
        n.iter()
            .all(|l| l.contains("main.Fail(2)") || l.starts_with(">> goroutine(_) main.Fail => (")),
        "--where let other calls through: {n:?}"
    );
    // Concat has no parameter `kind`: its calls are hidden, and the end says why.
    assert!(
        err.contains("--where could not be evaluated on")
            && err.contains("kind")
            && err.contains("(in main.Concat)"),
        "{err}"
    );
}

#[test]
fn a_bad_where_expression_is_one_line_before_anything_starts() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let out = Command::new(GOHOOK)
        .args(["trace", "-f", "main.Fail", "--where", "kind >"])
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    let e = assert_one_line_error(&out, "--where 'kind >'");
    assert!(e.starts_with("gohook: --where \"kind >\": "), "{e}");
}

#[test]
fn goroutine_filter_keeps_only_that_goroutines_calls() {
    let (all, err) = values_lines(Variant::Default, &["-f", "main.Concat"]);
    let g = all
        .first()
        .and_then(|l| l.split("goroutine(").nth(1))
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no lines: {err}"))
        .to_owned();
    let (mine, err) = values_lines(Variant::Default, &["-f", "main.Concat", "--goroutine", &g]);
    assert!(!mine.is_empty(), "{err}");
    assert!(mine.iter().all(|l| l.contains(&format!("goroutine({g})"))));
    let other = (g.parse::<u64>().unwrap() + 1000).to_string();
    let (none, err) = values_lines(
        Variant::Default,
        &["-f", "main.Concat", "--goroutine", &other],
    );
    assert!(none.is_empty(), "{none:?} {err}");
}

fn torture() -> PathBuf {
    must_build("torture", Variant::Default, &Toolchain::installed())
}

const PANICKY: &[&str] = &[
    "-f",
    "main.catcher",
    "-f",
    "main.middle",
    "-f",
    "main.mayPanic",
];

#[test]
fn nested_calls_are_indented_by_depth_and_panics_say_so() {
    let out = trace(PANICKY, &torture(), &[], None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let n = normalized(&view_lines(&err));
    // torture makes 30 catcher calls a round; every third mayPanic panics.
    let count = |p: &str| n.iter().filter(|l| l.starts_with(p)).count();
    assert_eq!(count("> goroutine(_) main.catcher("), 30, "{err}");
    assert_eq!(count("  > goroutine(_) main.middle("), 30, "{err}");
    assert_eq!(count("    > goroutine(_) main.mayPanic("), 30, "{err}");
    assert_eq!(
        count("    >> goroutine(_) main.mayPanic unwound (panic or runtime.Goexit)"),
        10,
        "{err}"
    );
    assert_eq!(count("    >> goroutine(_) main.mayPanic => ("), 20, "{err}");
    assert_eq!(count(">> goroutine(_) main.catcher => ("), 30, "{err}");

    // --max-depth 1 drops the third level, 0 the second too.
    let out = trace(
        &[PANICKY, &["--max-depth", "1"]].concat(),
        &torture(),
        &[],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = view_lines(&err);
    assert!(lines.iter().any(|l| l.contains("main.middle")), "{err}");
    assert!(!lines.iter().any(|l| l.contains("main.mayPanic")), "{err}");
    let out = trace(
        &[PANICKY, &["--max-depth", "0"]].concat(),
        &torture(),
        &[],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = view_lines(&err);
    assert_eq!(lines.len(), 60, "{err}");
    assert!(lines.iter().all(|l| l.contains("main.catcher")), "{err}");
}

#[test]
fn min_duration_keeps_only_slow_calls_written_at_their_return() {
    // main.spin loops until main has forced three collections; main.work calls are short.
    let args = [
        "-f",
        "main.spin",
        "-f",
        "main.work",
        "--min-duration",
        "1ms",
    ];
    let out = trace(&args, &torture(), &[], None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let lines = view_lines(&err);
    assert!(lines.iter().any(|l| l.contains("main.spin(")), "{err}");
    let returns: Vec<&String> = lines.iter().filter(|l| l.contains(" => (")).collect();
    assert!(!returns.is_empty(), "{err}");
    for r in &returns {
        let ns = duration_ns(r.rsplit(' ').next().unwrap()).unwrap();
        assert!(ns >= 1e6, "{r} is shorter than --min-duration");
    }
    // Each kept call's entry line comes right before its return line.
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("> ") {
            let f = l.split(") ").nth(1).unwrap().split('(').next().unwrap();
            assert!(
                lines[i + 1].contains(&format!("{f} =>")),
                "{l:?} then {:?}",
                lines[i + 1]
            );
        }
    }
    // torture makes 8 × 500 work calls; nearly all are far below 1 ms.
    let works = lines
        .iter()
        .filter(|l| l.contains("> goroutine(") && l.contains("main.work("))
        .count();
    assert!(works < 4000 / 2, "{works} work calls of at least 1 ms");
}

/// Runs `command` with a terminal as its standard streams (util-linux `script`); returns what
/// the terminal received.
fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qfec", command, "/dev/null"])
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: `script` (util-linux) cannot run: {e}");
            return String::new();
        }
        Err(e) => panic!("`script` (util-linux) is needed in CI: {e}"),
    };
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_status_line_is_drawn_on_a_terminal_and_never_on_a_pipe() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let lines_file = scratch("status-lines.txt");
    let command = format!(
        "timeout -s INT 2.5 {GOHOOK} trace --no-default-scripts -f main.Concat -f main.Fail -o {} -- {} -forever -pause 5ms",
        lines_file.display(),
        exe.display()
    );
    let tty = on_a_terminal(&command);
    if tty.is_empty() && std::env::var_os("CI").is_none() {
        return;
    }
    let status: Vec<&str> = tty
        .split(['\r', '\n'])
        .map(|l| l.trim_start_matches("\x1b[K"))
        .filter(|l| l.starts_with("gohook: 2 hooks · "))
        .collect();
    assert!(
        !status.is_empty(),
        "no status line on the terminal: {tty:?}"
    );
    let s = status[0];
    assert!(
        s.contains(" events/s · ") && s.contains(" spans · ") && s.ends_with(" drops"),
        "{s:?}"
    );
    // The lines went to the file, untouched by the status line.
    let text = std::fs::read_to_string(&lines_file).unwrap();
    assert!(text.contains("main.Concat(\"go\", \"hook\")"), "{text}");
    assert!(!text.contains("events/s"), "{text}");

    // The same trace with standard error on a pipe: no status line at all.
    let out = trace(
        &["-f", "main.Concat"],
        &exe,
        &["-forever", "-pause", "5ms"],
        Some(Duration::from_millis(1500)),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("main.Concat(\"go\", \"hook\")"), "{err}");
    assert!(!err.contains("events/s") && !err.contains('\r'), "{err}");
}

#[test]
fn trace_with_pid_attaches_for_a_while_and_detaches() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let mut target = Command::new(&exe)
        .args(["-forever", "-pause", "20ms"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Let the runtime start before attaching.
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(GOHOOK)
        .args([
            "trace",
            "--no-default-scripts",
            "-f",
            "main.Concat",
            "--pid",
        ])
        .arg(target.id().to_string())
        .args(["--duration", "1"])
        .output()
        .unwrap();
    let still_running = target.try_wait().unwrap().is_none();
    let _ = target.kill();
    let _ = target.wait();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        still_running,
        "the target did not survive the detach: {err}"
    );
    let n = normalized(&view_lines(&err));
    has(&n, r#"> goroutine(_) main.Concat("go", "hook")"#, &err);
    has(&n, r#">> goroutine(_) main.Concat => ("gohook") DUR"#, &err);
}

#[test]
fn trace_refuses_both_a_pid_and_a_program_and_a_duration_without_pid() {
    let out = gohook(["trace", "-f", "main.x", "--pid", "1", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
    let out = gohook([
        "trace",
        "-f",
        "main.x",
        "--duration",
        "1",
        "--",
        "/bin/true",
    ]);
    let e = assert_one_line_error(&out, "--duration without --pid");
    assert!(e.contains("--duration applies to --pid"), "{e}");
}
