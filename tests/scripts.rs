//! Hook scripts end to end: `gohook run -s script.rhai -- values` makes spans named and
//! attributed from the Go values of the calls (strings, ints, floats, time.Time, struct fields
//! through pointers, map lookups, error results), on builds with DWARF and stripped ones (where
//! the scripts give a SIGNATURE), on the installed Go and on Go 1.21 (the old map layout). Script
//! failures (syntax, runtime, sandbox escapes, unreadable memory) never affect the target.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fixtures::{must_build, Toolchain, Variant};
use serde_json::Value;

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes the scripts `(file name, text)` into a fresh directory and returns it.
fn script_dir(name: &str, scripts: &[(&str, &str)]) -> PathBuf {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in scripts {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

/// Parses `--format json` output into its spans.
fn read_spans(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("summary").is_none())
        .collect()
}

fn spans_of<'a>(spans: &'a [Value], function: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["function"] == function).collect()
}

/// `gohook run --no-default-scripts -s <each> --format json -o <out> -- exe args`.
fn gohook_run(scripts: &[&Path], out: &Path, exe: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(GOHOOK);
    cmd.args(["run", "--no-default-scripts", "--format", "json", "-o"])
        .arg(out);
    for s in scripts {
        cmd.arg("-s").arg(s);
    }
    cmd.arg("--").arg(exe).args(args).output().unwrap()
}

/// Scripts reading values that travel in registers or are copied at the call (strings), so
/// they decode even after the short-lived target exited. Each gives the SIGNATURE a stripped
/// build needs; with DWARF it is ignored.
const REGISTER_SCRIPTS: [(&str, &str); 5] = [
    (
        "concat.rhai",
        r#"
const HOOK = "main.Concat";
const SIGNATURE = "func(a string, b string) string";
fn on_enter(ctx) {
    ctx.span_start("concat " + ctx.arg("a").str(), "client");
    ctx.set("b", ctx.arg(1).str());
    ctx.set("b.len", ctx.arg("b").len());
}
"#,
    ),
    (
        "floats.rhai",
        r#"
const HOOK = "main.Floats";
const SIGNATURE = "func(a float32, b float64) (float32, float64)";
fn on_enter(ctx) {
    ctx.span_start("floats");
    ctx.set("a", ctx.arg("a").float());
    ctx.set("b", ctx.arg("b").float());
}
"#,
    ),
    (
        "divmod.rhai",
        r#"
const HOOK = "main.Divmod";
const SIGNATURE = "func(a int, b int) (q int, r int)";
fn on_enter(ctx) {
    ctx.span_start("divmod " + ctx.arg("a").int() + "/" + ctx.arg("b").int());
}
"#,
    ),
    (
        "later.rhai",
        r#"
const HOOK = "main.Later";
const SIGNATURE = "func(t time.Time, d time.Duration) time.Time";
fn on_enter(ctx) {
    ctx.span_start("later");
    ctx.set("t", ctx.arg("t").unix_nano());
    ctx.set("d", ctx.arg("d").int());
}
fn on_leave(ctx) { ctx.set("end", ctx.ret(0).unix_nano()); }
"#,
    ),
    (
        "nest.rhai",
        r#"
const HOOK = ["main.AreaOf", "main.Rect.Area"];
fn on_enter(ctx) { ctx.span_start("area: " + ctx.function); }
"#,
    ),
];

/// Runs values (3 rounds) plain and under the register scripts; checks the output is
/// identical and the spans carry the arguments.
fn register_values_are_decoded(tc: &Toolchain, variant: Variant) {
    let exe = must_build("values", variant, tc);
    let plain = Command::new(&exe).output().unwrap();
    let dir = script_dir(&format!("reg-{variant:?}"), &REGISTER_SCRIPTS);
    let out = tmp(&format!("reg-{variant:?}.json"));
    let r = gohook_run(&[&dir], &out, &exe, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert_eq!(r.stdout, plain.stdout, "the target's output is unchanged");
    assert!(!err.contains("hook-script error"), "{err}");
    let spans = read_spans(&out);

    let concat = spans_of(&spans, "main.Concat");
    assert_eq!(concat.len(), 3, "one span per call");
    assert_eq!(concat[0]["name"], "concat go");
    assert_eq!(concat[0]["kind"], "client");
    assert_eq!(concat[0]["attributes"]["b"], "hook");
    assert_eq!(concat[0]["attributes"]["b.len"], 4);

    let floats = spans_of(&spans, "main.Floats")[0];
    assert_eq!(floats["attributes"]["a"], 1.5);
    assert_eq!(floats["attributes"]["b"], 2.25);

    let divmod = spans_of(&spans, "main.Divmod")[0];
    assert_eq!(divmod["name"], "divmod 17/5");

    let later = spans_of(&spans, "main.Later")[0];
    // time.Date(2024, February, 29, 23, 59, 30, 0, UTC) and 90 * time.Second.
    assert_eq!(later["attributes"]["t"], 1_709_251_170_000_000_000i64);
    assert_eq!(later["attributes"]["d"], 90_000_000_000i64);
    assert_eq!(
        later["attributes"]["end"], 1_709_251_260_000_000_000i64,
        "the result, read in on_leave"
    );

    let area_of = spans_of(&spans, "main.AreaOf");
    let rect = spans_of(&spans, "main.Rect.Area");
    assert_eq!(rect.len(), 3);
    for r in rect {
        assert_eq!(r["name"], "area: main.Rect.Area");
        let parent = area_of
            .iter()
            .find(|a| a["span_id"] == r["parent_span_id"])
            .expect("Rect.Area's span is a child of an AreaOf span");
        assert_eq!(parent["trace_id"], r["trace_id"]);
        assert_eq!(parent["name"], "area: main.AreaOf");
    }
}

#[test]
fn scripts_name_and_attribute_spans_from_register_and_string_arguments() {
    register_values_are_decoded(&Toolchain::installed(), Variant::Default);
    register_values_are_decoded(&Toolchain::installed(), Variant::Stripped);
}

/// Scripts reading through pointers into the heap: the target must still be running when the
/// records are processed.
const LIVE_SCRIPTS: [(&str, &str); 3] = [
    (
        "rename.rhai",
        r#"
const HOOK = "main.Rename";
const SIGNATURE = "func(u *main.User, name string) *main.User";
fn on_enter(ctx) {
    let u = ctx.arg("u");
    ctx.span_start("rename to " + ctx.arg("name").str());
    ctx.set("manager", u.field("Manager").field("Name").str());
    ctx.set("manager.admin", u.deref().field("Manager").deref().field("Admin").bool());
    ctx.set("tags", u.field("Tags").len());
    try {
        u.field("Manager").field("Manager").field("Name").str();
        ctx.set("nil", "read");
    } catch (e) {
        ctx.set("nil", "caught: " + e);
    }
}
"#,
    ),
    (
        "countmap.rhai",
        r#"
const HOOK = "main.CountMap";
const SIGNATURE = "func(m map[string]int) int";
fn on_enter(ctx) {
    let m = ctx.arg("m");
    ctx.span_start("countmap");
    ctx.set("team", m.get("team").int());
    ctx.set("missing", m.get("nope") == ());
    ctx.set("len", m.len());
}
"#,
    ),
    (
        "fail.rhai",
        r#"
const HOOK = "main.Fail";
const SIGNATURE = "func(kind int) error";
fn on_enter(ctx) { ctx.span_start("fail"); ctx.state.kind = ctx.arg("kind").int(); }
fn on_leave(ctx) {
    let e = ctx.ret(0).error_text();
    ctx.set("kind", ctx.state.kind);
    if e != () { ctx.error(e); }
}
"#,
    ),
];

/// Runs `values -forever` under the live scripts for a while, then interrupts it.
fn live_values_are_decoded(tc: &Toolchain, variant: Variant) {
    let exe = must_build("values", variant, tc);
    let dir = script_dir(
        &format!("live-{variant:?}-{}", tc.gotoolchain()),
        &LIVE_SCRIPTS,
    );
    let out = tmp(&format!("live-{variant:?}-{}.json", tc.gotoolchain()));
    let mut cmd = Command::new(GOHOOK);
    cmd.args(["run", "--no-default-scripts", "--format", "json", "-o"])
        .arg(&out)
        .arg("-s")
        .arg(&dir)
        .arg("--")
        .arg(&exe)
        .args(["-forever", "-pause", "20ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // gohook forwards SIGINT to the target and then writes what it has.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    let r = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    let spans = read_spans(&out);

    let renames = spans_of(&spans, "main.Rename");
    assert!(renames.len() > 5, "{} Rename spans; {err}", renames.len());
    let good = renames
        .iter()
        .find(|s| s["attributes"]["manager"] == "ada")
        .unwrap_or_else(|| panic!("no Rename span read the manager's name: {err}"));
    assert_eq!(good["name"], "rename to robert");
    assert_eq!(good["attributes"]["manager.admin"], true);
    assert_eq!(good["attributes"]["tags"], 2);
    let nil = good["attributes"]["nil"].as_str().unwrap();
    assert!(
        nil.starts_with("caught: "),
        "reading through nil is an error: {nil}"
    );

    let counts = spans_of(&spans, "main.CountMap");
    let good = counts
        .iter()
        .find(|s| s["attributes"]["team"] == 7)
        .unwrap_or_else(|| panic!("no CountMap span read m[\"team\"]: {err}"));
    assert_eq!(good["attributes"]["missing"], true);
    assert_eq!(good["attributes"]["len"], 2);

    let fails = spans_of(&spans, "main.Fail");
    let with = |kind: i64| {
        fails
            .iter()
            .filter(|s| s["attributes"]["kind"] == kind)
            .map(|s| s["status"].clone())
            .collect::<Vec<_>>()
    };
    assert!(with(0).iter().any(|s| s["code"] == "unset"), "{err}");
    assert!(
        with(1)
            .iter()
            .any(|s| s["code"] == "error" && s["message"] == "not allowed"),
        "{:?} {err}",
        with(1)
    );
    assert!(
        with(2)
            .iter()
            .any(|s| s["message"] == "opening config: not allowed"),
        "{:?}",
        with(2)
    );
}

#[test]
fn scripts_read_struct_fields_through_pointers_maps_and_error_results_of_a_live_target() {
    live_values_are_decoded(&Toolchain::installed(), Variant::Default);
    live_values_are_decoded(&Toolchain::installed(), Variant::Stripped);
    live_values_are_decoded(&Toolchain::release("go1.21.13"), Variant::Default);
}

#[test]
fn a_syntax_error_stops_gohook_before_the_target_starts() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let bad = tmp("bad.rhai");
    std::fs::write(
        &bad,
        "const HOOK = \"main.Concat\";\nfn on_enter(ctx) {\n    let x = ;\n}\n",
    )
    .unwrap();
    let out = tmp("bad.json");
    let r = gohook_run(&[&bad], &out, &exe, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(r.stdout.is_empty(), "the target never ran");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("gohook: {}:3:13: ", bad.display())),
        "{err}"
    );
}

#[test]
fn a_hook_pattern_matching_nothing_names_the_closest_functions() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let s = tmp("typo.rhai");
    std::fs::write(
        &s,
        "const HOOK = \"main.Concatt\";\nfn on_enter(ctx) { ctx.span_start(\"x\"); }\n",
    )
    .unwrap();
    let r = gohook_run(&[&s], &tmp("typo.json"), &exe, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(r.stdout.is_empty(), "the target never ran");
    assert!(
        err.contains("HOOK \"main.Concatt\" matches no hookable function"),
        "{err}"
    );
    assert!(err.contains("main.Concat"), "{err}");
}

#[test]
fn runtime_errors_and_sandbox_escapes_leave_the_target_untouched() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let plain = Command::new(&exe).output().unwrap();
    let dir = script_dir(
        "escapes",
        &[
            (
                "field.rhai",
                "const HOOK = \"main.Concat\";\nfn on_enter(ctx) {\n    ctx.span_start(\"c\");\n    ctx.arg(\"a\").field(\"Nope\");\n}\n",
            ),
            (
                "import.rhai",
                "const HOOK = \"main.Divmod\";\nfn on_enter(ctx) {\n    import \"/etc/passwd\" as p;\n}\n",
            ),
            (
                "stack.rhai",
                "const HOOK = \"main.Nest\";\nfn on_enter(ctx) {\n    ctx.arg(\"o\");\n}\n",
            ),
            (
                "loop.rhai",
                "const HOOK = \"main.Floats\";\nfn on_enter(ctx) {\n    loop { }\n}\n",
            ),
            (
                // Network, processes and files: none of these exist in the sandbox.
                "outside.rhai",
                "const HOOK = \"main.Upper\";\nfn on_enter(ctx) {\n    let s = connect(\"127.0.0.1:9\");\n    system(\"touch /tmp/gohook-escaped\");\n    write_file(\"/tmp/gohook-escaped\", \"x\");\n}\n",
            ),
        ],
    );
    let _ = std::fs::remove_file("/tmp/gohook-escaped");
    let out = tmp("escapes.json");
    let r = gohook_run(&[&dir], &out, &exe, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert_eq!(r.stdout, plain.stdout, "the target's output is unchanged");
    let field_errors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("field.rhai:4: "))
        .collect();
    assert_eq!(field_errors.len(), 1, "printed once for 3 calls: {err}");
    assert!(
        field_errors[0].ends_with("(in on_enter of main.Concat)"),
        "{err}"
    );
    assert!(err.contains("import.rhai:3: Module not found"), "{err}");
    assert!(err.contains("loop.rhai"), "{err}");
    assert!(err.contains("too many operations"), "{err}");
    assert!(
        err.contains("stack.rhai:3: parameter o of main.Nest is passed on the stack, which gohook does not record"),
        "{err}"
    );
    assert!(
        err.contains("outside.rhai:3: Function not found: connect"),
        "{err}"
    );
    assert!(
        !std::path::Path::new("/tmp/gohook-escaped").exists(),
        "no script reached the file system"
    );
    assert!(err.contains("gohook: 15 hook-script errors"), "{err}");
    // A failing script makes no span for that call.
    assert!(spans_of(&read_spans(&out), "main.Concat").is_empty());
}

#[test]
fn import_at_the_top_level_is_refused_before_the_target_starts() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let s = tmp("import-top.rhai");
    std::fs::write(
        &s,
        "import \"/etc/passwd\" as p;\nconst HOOK = \"main.Concat\";\nfn on_enter(ctx) { }\n",
    )
    .unwrap();
    let r = gohook_run(&[&s], &tmp("import-top.json"), &exe, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(r.stdout.is_empty());
    assert!(err.contains("Module not found"), "{err}");
}

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(std::process::Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn attach_runs_scripts_on_a_running_process_and_prints_go_to_stderr() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    let mut target = Reaper(
        Command::new(&exe)
            .args(["-forever", "-pause", "20ms"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let dir = script_dir(
        "attach",
        &[(
            "rename.rhai",
            r#"
const HOOK = "main.Rename";
fn on_enter(ctx) {
    ctx.span_start("rename");
    ctx.set("manager", ctx.arg("u").field("Manager").field("Name").str());
    if ctx.state.printed != true { print("first call"); }
    let u = ctx.arg("u");
    ctx.set("type", u.type_name());
    ctx.set("tag1", u.field("Tags").index(1).str());
    ctx.set("tags.cap", u.field("Tags").cap());
    ctx.set("attr.keys", u.field("Attrs").keys().len());
    ctx.set("name.bytes", u.field("Manager").field("Name").bytes(2).len());
    ctx.set("age", u.field("Age").uint());
    ctx.set("manager.nil", u.field("Manager").is_nil());
    ctx.set("rendered", u.field("Manager").deref().to_string());
}
"#,
        )],
    );
    let out = tmp("attach.json");
    let r = Command::new(GOHOOK)
        .args(["attach", "--pid", &target.0.id().to_string()])
        .args([
            "--no-default-scripts",
            "--duration",
            "1",
            "--format",
            "json",
        ])
        .arg("-s")
        .arg(&dir)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(target.0.try_wait().unwrap().is_none(), "the target runs on");
    let spans = read_spans(&out);
    let renames = spans_of(&spans, "main.Rename");
    assert!(renames.len() > 5, "{} spans: {err}", renames.len());
    assert!(
        renames.iter().all(|s| s["attributes"]["manager"] == "ada"),
        "{err}"
    );
    let a = &renames[0]["attributes"];
    assert_eq!(a["type"], "*main.User");
    assert_eq!(a["tag1"], "oncall");
    assert!(a["tags.cap"].as_i64().unwrap() >= 2);
    assert_eq!(a["attr.keys"], 2);
    assert_eq!(a["name.bytes"], 2);
    assert_eq!(a["manager.nil"], false);
    assert!(a["age"] == 29 || a["age"] == 30, "{a}");
    assert!(a["rendered"].as_str().unwrap().contains("ada"), "{a}");
    let prefix = format!("gohook: {}: first call", dir.join("rename.rhai").display());
    assert!(err.lines().any(|l| l == prefix), "{err}");
    assert!(!err.contains("hook-script error"), "{err}");
}

#[test]
fn an_unresolvable_type_in_a_signature_is_named_before_the_target_starts() {
    let exe = must_build("values", Variant::Stripped, &Toolchain::installed());
    let s = tmp("unknown-type.rhai");
    std::fs::write(
        &s,
        "const HOOK = \"main.Concat\";\nconst SIGNATURE = \"func(a main.NoSuchType, b string) string\";\nfn on_enter(ctx) { }\n",
    )
    .unwrap();
    let r = gohook_run(&[&s], &tmp("unknown-type.json"), &exe, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(r.stdout.is_empty(), "the target never ran");
    assert!(err.contains("SIGNATURE for main.Concat"), "{err}");
    assert!(err.contains("main.NoSuchType"), "{err}");
    assert!(
        err.contains("struct{"),
        "suggests an explicit struct type: {err}"
    );
}

#[test]
fn a_goroutines_first_scripted_span_is_a_child_of_the_span_open_on_the_goroutine_that_started_it() {
    use std::io::{BufRead, BufReader, Read, Write};
    let exe = must_build("httpsvc", Variant::Default, &Toolchain::installed());
    // Serve runs on one goroutine and starts a goroutine per connection, where the bundled
    // HTTP server script makes the request's span.
    let dir = script_dir(
        "goparent",
        &[(
            "serve.rhai",
            "const HOOK = \"net/http.(*Server).Serve\";\nfn on_enter(ctx) { ctx.span_start(\"serve\"); }\n",
        )],
    );
    let out = tmp("goparent.json");
    let mut child = Reaper(
        Command::new(GOHOOK)
            .args(["run", "--format", "json", "-o"])
            .arg(&out)
            .arg("-s")
            .arg(&dir)
            .args(["--"])
            .arg(&exe)
            .args(["-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .expect("httpsvc listens");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    std::thread::sleep(Duration::from_millis(100));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    let spans = read_spans(&out);
    let serve = spans_of(&spans, "net/http.(*Server).Serve");
    assert_eq!(serve.len(), 1, "{err}");
    let request = spans
        .iter()
        .find(|s| s["attributes"]["url.path"] == "/hello")
        .unwrap_or_else(|| panic!("no span for GET /hello: {err}"));
    assert_ne!(request["goroutine"], serve[0]["goroutine"]);
    assert_eq!(request["parent_span_id"], serve[0]["span_id"]);
    assert_eq!(request["trace_id"], serve[0]["trace_id"]);
}

/// `CAPTURE` copies a field behind a pointer at the call: `main.Rename` overwrites `u.Name`, so
/// the live read (made later, after the target even exited) sees the new name or fails, while
/// the capture holds the name as it was passed in; on DWARF and on stripped + SIGNATURE builds.
#[test]
fn captured_fields_hold_their_value_at_the_call_not_after_it() {
    for variant in [Variant::Default, Variant::Stripped] {
        let exe = must_build("values", variant, &Toolchain::installed());
        let dir = script_dir(
            &format!("capture-{}", variant.name()),
            &[(
                "capture.rhai",
                r#"
const HOOK = "main.Rename";
const SIGNATURE = "func(u *main.User, name string) *main.User";
const CAPTURE = ["u.Name", "u.Age", "u.Admin", "u.Manager.Name", "u.Manager.Manager.Name",
                 "?u.NoSuchField"];
fn on_enter(ctx) {
    ctx.span_start("rename");
    ctx.set("before", ctx.captured("u.Name"));
    ctx.set("age", ctx.captured("u.Age"));
    ctx.set("admin", ctx.captured("u.Admin"));
    ctx.set("manager", ctx.captured("u.Manager.Name"));
    ctx.set("nil.manager", if ctx.captured("u.Manager.Manager.Name") == "" { "empty" } else { "?" });
    // The same field read live, when gohook gets to it: renamed by then, or gone.
    let live = "unreadable";
    try { live = ctx.arg("u").field("Name").str(); } catch {}
    ctx.set("live", live);
}
"#,
            )],
        );
        let out = tmp(&format!("capture-{}.json", variant.name()));
        let r = gohook_run(&[&dir], &out, &exe, &[]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success(), "{variant:?}: {err}");
        assert!(!err.contains("error"), "{variant:?}: {err}");
        let stdout = String::from_utf8_lossy(&r.stdout);
        assert!(
            stdout.contains("Rename(bob, \"robert\").Name = robert"),
            "{stdout}"
        );
        let spans = read_spans(&out);
        let s = spans_of(&spans, "main.Rename");
        assert!(!s.is_empty(), "{variant:?}: {spans:#?}");
        let a = &s[0]["attributes"];
        assert_eq!(a["before"], "bob", "{variant:?}: the name at the call: {a}");
        assert_ne!(
            a["live"], "bob",
            "{variant:?}: a live read sees later memory: {a}"
        );
        assert_eq!(a["manager"], "ada", "{variant:?}: {a}");
        assert_eq!(a["nil.manager"], "empty", "{variant:?}: {a}");
        assert!(
            a["age"].is_i64() && a["admin"].is_boolean(),
            "{variant:?}: {a}"
        );
    }
}

#[test]
fn a_capture_path_that_does_not_resolve_stops_gohook_with_the_fields_it_has() {
    let exe = must_build("values", Variant::Default, &Toolchain::installed());
    for (capture, expect) in [
        (
            "u.Nmae",
            "main.User has no field Nmae (fields: Name, Age, Admin, Manager, Tags, Attrs)",
        ),
        ("name.Len", "name is a string passed in registers"),
        ("x.Name", "no parameter x (parameters: u, name)"),
        (
            "u.Tags.Len",
            "Tags is a []string; a path goes through structs and pointers",
        ),
    ] {
        let s = tmp(&format!("capture-bad-{}.rhai", capture.replace('.', "-")));
        std::fs::write(
            &s,
            format!(
                "const HOOK = \"main.Rename\";\nconst CAPTURE = [\"{capture}\"];\n\
                 fn on_enter(ctx) {{ }}\n"
            ),
        )
        .unwrap();
        let r = gohook_run(&[&s], &tmp("capture-bad.json"), &exe, &[]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{capture}: {err}");
        assert!(r.stdout.is_empty(), "{capture}: the target never ran");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{capture}: {err}");
        assert!(err.contains("CAPTURE for main.Rename"), "{err}");
    }
}
