//! Hook scripts cannot read files, open sockets, run programs, or exhaust gohook's time or
//! memory: the engine has no function that reaches outside it, and every runaway (an endless
//! loop, a string or array that keeps growing, deep recursion, too many variables) stops at a
//! limit with one error line while gohook and the target carry on.

use std::process::Command;
use std::time::{Duration, Instant};

use fixtures::{must_build, Toolchain, Variant};
use gohook::script::sandbox::{self, MAX_ARRAY, MAX_MAP, MAX_STRING};
use rhai::{Engine, EvalAltResult, Scope};

/// Compiles `body` as `fn f() { body }` in the sandbox and calls it; the error text, or `None`.
fn run(body: &str) -> Option<String> {
    let e: Engine = sandbox::engine("limits.rhai");
    let ast = match e.compile(format!("fn f() {{\n{body}\n}}")) {
        Ok(ast) => ast,
        Err(err) => return Some(format!("parse: {err}")),
    };
    let started = Instant::now();
    let r = e.call_fn::<rhai::Dynamic>(&mut Scope::new(), &ast, "f", ());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{body}: took {:?}",
        started.elapsed()
    );
    r.err().map(|e: Box<EvalAltResult>| e.to_string())
}

#[track_caller]
fn refused(body: &str, want: &str) {
    let err = run(body).unwrap_or_else(|| panic!("{body}: ran to completion"));
    assert!(err.contains(want), "{body}: {err}");
}

#[test]
fn no_function_reaches_files_sockets_processes_or_the_environment() {
    for call in [
        r#"open("/etc/passwd")"#,
        r#"read_file("/etc/passwd")"#,
        r#"write_file("/tmp/x", "y")"#,
        r#"File("/etc/passwd")"#,
        r#"fs::read("/etc/passwd")"#,
        r#"connect("127.0.0.1:9")"#,
        r#"socket("tcp")"#,
        r#"http_get("http://127.0.0.1/")"#,
        r#"system("id")"#,
        r#"exec("id")"#,
        r#"spawn("id")"#,
        r#"command("id")"#,
        r#"env("HOME")"#,
        r#"getenv("HOME")"#,
    ] {
        let err = run(call).unwrap_or_else(|| panic!("{call} ran"));
        // Not a function at all, or (spawn) a word Rhai reserves and refuses to parse.
        assert!(
            err.contains("Function not found")
                || err.contains("Module not found")
                || err.contains("reserved keyword"),
            "{call}: {err}"
        );
    }
    // `import` finds nothing, and `eval` (code from strings) does not exist.
    refused(r#"import "/etc/passwd" as p;"#, "Module not found");
    refused(r#"eval("40 + 2")"#, "parse");
    // Rhai's `exit` ends the script, not the process: we are still here to see it return.
    assert_eq!(run("exit(1); 2"), None);
    // Rhai's own sleep would hold up gohook's consumer: it is replaced by an error.
    refused("sleep(1000)", "sleep is not available");
    refused("sleep(1000.0)", "sleep is not available");
}

#[test]
fn an_endless_loop_stops_at_the_operation_limit() {
    refused("loop { }", "Too many operations");
    refused("let i = 0; while true { i += 1; }", "Too many operations");
}

#[test]
fn strings_arrays_maps_and_blobs_stop_growing_at_their_limits() {
    refused(r#"let s = "xx"; loop { s += s; }"#, "Length of string");
    refused(
        &format!(r#"let s = ""; s.pad({}, 'x'); s"#, MAX_STRING + 1),
        "Length of string",
    );
    refused(
        &format!("let a = []; a.pad({}, 0); a", MAX_ARRAY + 1),
        "Size of array",
    );
    refused("let a = [0]; loop { a += a; }", "Size of array");
    refused(
        &format!("let b = blob({}); b", MAX_ARRAY + 1),
        "Size of array/BLOB",
    );
    // A map literal or a map returned from a function is checked; a map grown key by key
    // (`m[k] = v`) is not (Rhai checks only the assigned item there): the operation limit stops
    // it instead. The live test below measures what that costs in memory.
    refused(
        &format!(
            "let m = #{{}}; for i in 0..{} {{ m[`k${{i}}`] = i; }} m + #{{}}",
            MAX_MAP + 1
        ),
        "Size of object map",
    );
    refused(
        "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
        "Too many operations",
    );
    // Sizes count whole values: an array of strings counts its strings' bytes.
    refused(
        r#"let s = ""; s.pad(65536, 'x'); let a = []; loop { a.push(s + "y"); }"#,
        "Length of string",
    );
}

#[test]
fn deep_recursion_stops_at_the_call_depth_limit() {
    let e = sandbox::engine("limits.rhai");
    let ast = e.compile("fn r(n) { r(n + 1) } fn f() { r(0) }").unwrap();
    let err = e
        .call_fn::<rhai::Dynamic>(&mut Scope::new(), &ast, "f", ())
        .unwrap_err();
    assert!(
        matches!(*err, EvalAltResult::ErrorStackOverflow(..))
            || err.to_string().contains("Stack overflow"),
        "{err}"
    );
}

#[test]
fn too_many_variables_or_too_deep_an_expression_is_refused() {
    let lets: String = (0..200).map(|i| format!("let v{i} = {i};\n")).collect();
    refused(&lets, "Too many variables");
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    refused(&deep, "parse");
}

/// Runs `cmd` to completion; returns its peak resident memory (KiB, from wait4), whether it
/// exited 0, its standard error and its standard output.
fn run_measured(cmd: &mut Command, dir: &std::path::Path) -> (i64, bool, String, Vec<u8>) {
    let (o, e) = (dir.join("stdout"), dir.join("stderr"));
    let child = cmd
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; both pointers are to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    std::mem::forget(child); // reaped above
    (
        ru.ru_maxrss,
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        std::fs::read_to_string(&e).unwrap(),
        std::fs::read(&o).unwrap(),
    )
}

#[test]
fn runaway_scripts_on_a_live_target_each_print_one_error_and_change_nothing() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let plain = Command::new(&exe).output().unwrap();
    let dir = std::env::temp_dir().join(format!("gohook-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scripts = [
        ("loop.rhai", "main.Concat", "loop { }"),
        (
            "string.rhai",
            "main.Upper",
            r#"let s = "xx"; loop { s += s; }"#,
        ),
        (
            "recursion.rhai",
            "main.Divmod",
            "r(0);\n}\nfn r(n) { r(n + 1) }\nfn unused() {",
        ),
        (
            "map.rhai",
            "main.Ints",
            "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
        ),
        // A state kept for on_leave, grown key by key past the map limit: refused when the call
        // returns, so open calls cannot pile such maps up in gohook.
        (
            "state.rhai",
            "main.CountMap",
            "let s = ctx.state; for i in 0..5000 { s[`k${i}`] = i; } ctx.state = s;",
        ),
        // As much memory as the limits allow in one call: 100 variables, each a full array,
        // map and string.
        ("hog.rhai", "main.Floats", &*{
            let mut b = String::from(
                "let s = \"\"; s.pad(MAXS, 'x'); let a = []; a.pad(MAXA, 0); let m = #{};\n\
                     for i in 0..MAXM { m[`${i}`] = i; }\n",
            )
            .replace("MAXS", &(MAX_STRING - 8).to_string())
            .replace("MAXA", &(MAX_ARRAY - 8).to_string())
            .replace("MAXM", &(MAX_MAP / 4).to_string());
            for i in 0..100 {
                b.push_str(&format!("let v{i} = [a, m, s + \"{i}\"];\n"));
            }
            b.push_str("throw \"held everything\";");
            b
        }),
    ];
    for (file, hook, body) in &scripts {
        std::fs::write(
            dir.join(file),
            format!("const HOOK = \"{hook}\";\nfn on_enter(ctx) {{\n{body}\n}}\n"),
        )
        .unwrap();
    }
    let out = dir.join("spans.json");
    let started = Instant::now();
    let (max_rss_kib, ok, err, stdout) = run_measured(
        Command::new(env!("CARGO_BIN_EXE_gohook"))
            .args(["run", "--no-default-scripts", "--format", "json", "-s"])
            .arg(&dir)
            .arg("-o")
            .arg(&out)
            .arg("--")
            .arg(&exe),
        &dir,
    );
    let elapsed = started.elapsed();
    eprintln!("runaway scripts: gohook ran for {elapsed:?}, peak RSS {max_rss_kib} KiB");
    assert!(ok, "{err}");
    assert_eq!(stdout, plain.stdout, "the target's output is unchanged");
    for (file, hook, _) in &scripts {
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(file)).collect();
        assert_eq!(lines.len(), 1, "{file}: one line for 3 calls: {err}");
        assert!(
            lines[0].contains(&format!("(in on_enter of {hook})")),
            "{err}"
        );
    }
    assert!(err.contains("too many operations"), "{err}");
    assert!(err.contains("Length of string"), "{err}");
    assert!(err.contains("Stack overflow"), "{err}");
    assert!(err.contains("held everything"), "{err}");
    assert!(err.contains("map.rhai"), "{err}");
    assert!(err.contains("ctx.state: more than 4096 entries"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The hog held ~100 × (16 K-element array + 1 K-entry map + 256 KiB string) at once.
    assert!(
        max_rss_kib < 512 * 1024,
        "gohook peaked at {max_rss_kib} KiB with a memory-hogging script"
    );
}
