//! The bundled scripts (`scripts/*.rhai`) must work on binaries without DWARF, so each carries a
//! SIGNATURE. These tests pin that every SIGNATURE resolves against the runtime type metadata of
//! stripped builds and places each argument exactly where the compiler did (compared with the
//! DWARF of the same program built with symbols), with DWARF's parameter names, so
//! `ctx.arg("req")` means the same thing with and without DWARF.
//!
//! The default run checks the installed Go; `GOHOOK_FULL_MATRIX=1` adds every release of the
//! matrix for httpsvc (a cold httpsvc build takes minutes per release). grpcsvc needs a recent Go
//! (grpc-go's own requirement), so it is checked with the installed Go only. The HTTP client
//! script is checked against the `go` command of each release of the matrix, which uses
//! net/http's Transport (those binaries have no DWARF: there the signature must resolve).
//!
//! Then live, under `gohook run` with the bundled scripts on by default, on DWARF and stripped
//! builds: httpsvc serving real requests (one server span per request with method, path and
//! status; its SQL statements as client children with the statement text), grpcsvc calling
//! itself (client and server spans with service, method and status code) and grpcsvc's HTTP
//! client fetching from httpsvc (client spans with URL and status).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use fixtures::{must_build, Toolchain, Variant};
use gostrings::abi::{self, FrameLayout, Location};
use gostrings::dwarf::Dwarf;
use gostrings::{signature, GoBinary, TypeTable};

/// One bundled script's constants.
#[derive(Debug)]
struct Bundled {
    file: String,
    hooks: Vec<String>,
    signature: String,
    source: String,
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// Every `scripts/*.rhai`, compiled with a plain Rhai engine and its top level run to read
/// `HOOK` and `SIGNATURE`.
fn bundled() -> Vec<Bundled> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scripts_dir())
        .expect("scripts/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).unwrap();
            let engine = rhai::Engine::new();
            let ast = engine
                .compile(&source)
                .unwrap_or_else(|e| panic!("{file} is not valid Rhai: {e}"));
            let mut scope = rhai::Scope::new();
            engine
                .run_ast_with_scope(&mut scope, &ast)
                .unwrap_or_else(|e| panic!("{file}: top level fails: {e}"));
            let hook: rhai::Dynamic = scope
                .get_value("HOOK")
                .unwrap_or_else(|| panic!("{file} has no HOOK"));
            let hooks = if hook.is_array() {
                hook.into_array()
                    .unwrap()
                    .into_iter()
                    .map(|h| h.into_string().unwrap())
                    .collect()
            } else {
                vec![hook.into_string().unwrap()]
            };
            // Empty when the script has none (then it reads registers only: checked below).
            let signature: String = scope.get_value("SIGNATURE").unwrap_or_default();
            let has = |f: &str| {
                ast.iter_functions()
                    .any(|m| m.name == f && m.params.len() == 1)
            };
            assert!(has("on_enter"), "{file} has no on_enter(ctx)");
            Bundled {
                file,
                hooks,
                signature,
                source,
            }
        })
        .collect()
}

fn script<'a>(all: &'a [Bundled], file: &str) -> &'a Bundled {
    all.iter()
        .find(|b| b.file == file)
        .unwrap_or_else(|| panic!("no bundled script {file}"))
}

/// Parameter names and ABI frame from DWARF.
fn dwarf_frame(dwarf: &Dwarf, func: &str) -> (Vec<String>, FrameLayout) {
    let entry = dwarf
        .function(func)
        .unwrap_or_else(|| panic!("{func} not in DWARF"));
    let mut table = TypeTable::new();
    let f = dwarf
        .types()
        .function(entry, &mut table)
        .expect("its types");
    let sig = f.signature();
    let frame = abi::assign(
        &table,
        &sig.param_types(),
        &sig.result_types(),
        abi::dictionary_index(func),
    )
    .expect("ABI assignment from DWARF");
    (f.params.iter().map(|p| p.name.clone()).collect(), frame)
}

/// Parameter names and ABI frame from a SIGNATURE resolved against `bin`'s runtime types.
fn signature_frame(bin: &GoBinary, sig: &str) -> (Vec<String>, FrameLayout) {
    let rt = bin.runtime_types().expect("runtime type metadata");
    let mut table = TypeTable::new();
    let parsed = signature::parse(sig, &mut rt.named_types(), &mut table)
        .unwrap_or_else(|e| panic!("{sig}: {e}"));
    let frame = abi::assign(&table, &parsed.param_types(), &parsed.result_types(), None)
        .unwrap_or_else(|e| panic!("{sig}: {e}"));
    let names = parsed
        .params
        .iter()
        .map(|p| p.name.clone().unwrap_or_default())
        .collect();
    (names, frame)
}

/// Function names of `bin` that `b`'s HOOK selects (every pattern is an exact name).
fn hooked(bin: &GoBinary, b: &Bundled) -> Vec<String> {
    let names: HashSet<String> = bin.pclntab.funcs().map(|f| f.unwrap().name).collect();
    b.hooks
        .iter()
        .filter(|h| names.contains(h.as_str()))
        .cloned()
        .collect()
}

/// Asserts that `b`'s SIGNATURE, resolved against `stripped`, puts each parameter it declares
/// and each result where DWARF of `with_dwarf` says, under the same names; returns how many
/// functions were compared.
fn assert_signature_matches_dwarf(b: &Bundled, stripped: &Path, with_dwarf: &Path) -> usize {
    let s = GoBinary::open(stripped).unwrap();
    let d = GoBinary::open(with_dwarf).unwrap();
    let dwarf = Dwarf::load(&d.elf).expect("DWARF");
    let funcs = hooked(&d, b);
    for func in &funcs {
        let (sig_names, sig) = signature_frame(&s, &b.signature);
        let (dwarf_names, real) = dwarf_frame(&dwarf, func);
        let label = format!("{} on {func} ({})", b.file, stripped.display());
        assert!(
            sig.params.len() <= real.params.len(),
            "{label}: SIGNATURE declares more parameters than {func} has"
        );
        assert_eq!(
            sig_names,
            dwarf_names[..sig_names.len()],
            "{label}: names differ"
        );
        assert_eq!(
            sig.params,
            real.params[..sig.params.len()],
            "{label}: parameters placed differently"
        );
        // Results in registers do not depend on the parameters; stack results would.
        assert!(
            real.results
                .iter()
                .all(|l| matches!(l, Location::Registers(_))),
            "{label}"
        );
        assert_eq!(sig.results, real.results, "{label}: results differ");
    }
    funcs.len()
}

fn full_matrix() -> bool {
    std::env::var("GOHOOK_FULL_MATRIX").is_ok_and(|v| v == "1")
}

#[test]
fn every_bundled_script_compiles_and_names_its_functions_and_signature() {
    let all = bundled();
    let files: Vec<&str> = all.iter().map(|b| b.file.as_str()).collect();
    for f in [
        "http_server.rhai",
        "http_server_status.rhai",
        "http_client.rhai",
        "sql_exec.rhai",
        "sql_query.rhai",
        "grpc_server.rhai",
        "grpc_client.rhai",
    ] {
        assert!(files.contains(&f), "{f} missing from {files:?}");
    }
    for b in &all {
        assert!(b.source.starts_with("// Bundled script: "), "{}", b.file);
        // A script without a SIGNATURE reads registers only (its hooks' types differ, and a
        // stripped binary has none), never parameters by name.
        if b.signature.is_empty() {
            assert!(!b.source.contains("ctx.arg("), "{}", b.file);
        } else {
            assert!(b.signature.starts_with("func("), "{}", b.file);
        }
    }
}

#[test]
fn http_and_sql_signatures_place_arguments_as_the_compiler_did() {
    let all = bundled();
    let mut releases = vec![Toolchain::installed()];
    if full_matrix() {
        releases = fixtures::toolchains();
    }
    for tc in releases {
        let with_dwarf = must_build("httpsvc", Variant::Default, &tc);
        let stripped = must_build("httpsvc", Variant::Stripped, &tc);
        for file in ["http_server.rhai", "sql_exec.rhai", "sql_query.rhai"] {
            let n = assert_signature_matches_dwarf(script(&all, file), &stripped, &with_dwarf);
            assert_eq!(n, 1, "{file}: its function is not in httpsvc ({tc:?})");
        }
    }
}

#[test]
fn grpc_signatures_place_arguments_as_the_compiler_did() {
    let all = bundled();
    let tc = Toolchain::installed();
    let with_dwarf = must_build("grpcsvc", Variant::Default, &tc);
    let stripped = must_build("grpcsvc", Variant::Stripped, &tc);
    for file in ["grpc_server.rhai", "grpc_client.rhai"] {
        let n = assert_signature_matches_dwarf(script(&all, file), &stripped, &with_dwarf);
        assert_eq!(
            n, 1,
            "{file}: not exactly one of its functions is in grpcsvc"
        );
    }
    // Neither program has the other's functions, so no bundled script hooks by accident.
    let http = GoBinary::open(must_build("httpsvc", Variant::Default, &tc)).unwrap();
    for file in ["grpc_server.rhai", "grpc_client.rhai"] {
        assert!(hooked(&http, script(&all, file)).is_empty(), "{file}");
    }
}

#[test]
fn the_http_client_signature_resolves_in_each_release_of_the_go_command() {
    let all = bundled();
    let b = script(&all, "http_client.rhai");
    let mut checked = 0;
    let go_env = |var: &str| {
        let out = std::process::Command::new("go")
            .args(["env", var])
            .output()
            .expect("go env");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    for tc in fixtures::toolchains() {
        let go = match &tc.0 {
            None => go_env("GOROOT"),
            Some(v) => {
                go_env("GOMODCACHE").join(format!("golang.org/toolchain@v0.0.1-{v}.linux-amd64"))
            }
        }
        .join("bin/go");
        if !go.is_file() {
            // The fixture builder fetches releases on first use; this test reads only what is there.
            assert!(
                std::env::var_os("CI").is_none(),
                "{} missing (CI fetches the matrix first)",
                go.display()
            );
            continue;
        }
        let bin = GoBinary::open(&go).unwrap();
        assert_eq!(hooked(&bin, b), b.hooks, "{}", go.display());
        let (names, frame) = signature_frame(&bin, &b.signature);
        assert_eq!(names, ["t", "req"], "{}", go.display());
        assert_eq!(frame.params.len(), 2);
        checked += 1;
    }
    assert!(checked > 0, "no go command found");
}

// ---- Live: the bundled scripts under `gohook run`, on real requests. ----

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(std::process::Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-bundled-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The spans of a `--format json` file (the summary line left out).
fn read_spans(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("summary").is_none())
        .collect()
}

fn attr<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    &span["attributes"][key]
}

/// Sends one HTTP/1.0 request and returns the status code.
fn http(addr: &str, method: &str, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("response {resp:?}"))
}

/// Runs httpsvc under `gohook run` (bundled scripts on, plus a default span for
/// main.parseUserID), sends `requests`, stops it with SIGTERM and returns the spans.
fn httpsvc_spans(
    variant: Variant,
    requests: &[(&str, &str, &str, u16)],
    extra: &[&str],
) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let exe = must_build("httpsvc", variant, &Toolchain::installed());
    let out = tmp(&format!("httpsvc-{}.json", variant.name()));
    let mut child = std::process::Command::new(GOHOOK)
        .args(["run", "--format", "json", "-o"])
        .arg(&out)
        .args(extra)
        .arg("--")
        .arg(&exe)
        .args(["-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gohook runs");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut child = Reaper(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err);
            panic!("first line is {line:?}; gohook said: {err}")
        })
        .trim()
        .to_owned();
    for (method, path, body, want) in requests {
        assert_eq!(http(&addr, method, path, body), *want, "{method} {path}");
    }
    // Scripts read the target's memory a little after each call (records are put in time
    // order first): a real server outlives its requests, so let this one too.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    // gohook forwards SIGTERM to the program, which shuts down cleanly.
    let pid = child.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "gohook run: {status}: {err}");
    assert!(!err.contains("hook-script error"), "{err}");
    read_spans(&out)
}

fn httpsvc_requests_make_server_spans_with_sql_children(variant: Variant) {
    let requests = [
        ("GET", "/hello", "", 200),
        (
            "POST",
            "/users",
            r#"{"name":"ada","email":"ada@example.com"}"#,
            201,
        ),
        ("GET", "/users/1", "", 200),
        ("GET", "/users/2", "", 404),
        ("GET", "/nowhere", "", 404),
    ];
    let spans = httpsvc_spans(variant, &requests, &["-f", "main.parseUserID"]);
    let servers: Vec<&serde_json::Value> = spans.iter().filter(|s| s["kind"] == "server").collect();
    assert_eq!(servers.len(), requests.len(), "{variant:?}: {spans:#?}");
    let children = |parent: &serde_json::Value| -> Vec<&serde_json::Value> {
        spans
            .iter()
            .filter(|s| s["parent_span_id"] == parent["span_id"])
            .collect()
    };
    // Requests were sequential: start order is request order.
    let mut servers = servers;
    servers.sort_by_key(|s| s["start_time_unix_nano"].as_u64());
    for (span, (method, path, _, status)) in servers.iter().zip(requests) {
        let what = format!("{variant:?} {method} {path}: {span}");
        assert_eq!(span["name"], method, "{what}");
        assert_eq!(attr(span, "http.request.method"), method, "{what}");
        assert_eq!(attr(span, "url.path"), path, "{what}");
        assert_eq!(attr(span, "http.response.status_code"), status, "{what}");
        assert_eq!(attr(span, "url.scheme"), "http", "{what}");
        assert_eq!(attr(span, "server.address"), "127.0.0.1", "{what}");
        assert_eq!(attr(span, "network.protocol.version"), "1.0", "{what}");
        assert_eq!(span["status"]["code"], "unset", "{what}");
        assert_eq!(span["function"], "net/http.serverHandler.ServeHTTP");
    }
    let sql = |i: usize| -> Vec<&serde_json::Value> {
        children(servers[i])
            .into_iter()
            .filter(|s| s["kind"] == "client")
            .collect()
    };
    assert!(sql(0).is_empty(), "GET /hello runs no SQL");
    let insert = sql(1);
    assert_eq!(insert.len(), 1, "{variant:?} POST /users: {insert:#?}");
    assert_eq!(insert[0]["name"], "INSERT users");
    assert_eq!(attr(insert[0], "db.system.name"), "sqlite");
    assert_eq!(attr(insert[0], "db.operation.name"), "INSERT");
    assert_eq!(attr(insert[0], "db.collection.name"), "users");
    assert_eq!(
        attr(insert[0], "db.query.text"),
        "INSERT INTO users (name, email) VALUES (?, ?)"
    );
    for i in [2, 3] {
        let select = sql(i);
        assert_eq!(select.len(), 1, "{variant:?} GET: {select:#?}");
        assert_eq!(select[0]["name"], "SELECT users");
        assert_eq!(attr(select[0], "db.system.name"), "sqlite");
        assert_eq!(
            attr(select[0], "db.query.text"),
            "SELECT name, email FROM users WHERE id = ?"
        );
        assert_eq!(select[0]["status"]["code"], "unset");
    }
    // The schema is created with db.Exec (no context) at start-up: one span, not one per layer.
    let create: Vec<_> = spans
        .iter()
        .filter(|s| {
            attr(s, "db.query.text")
                .as_str()
                .is_some_and(|q| q.starts_with("CREATE TABLE users"))
        })
        .collect();
    assert_eq!(create.len(), 1, "{variant:?}: {create:#?}");
    // No table parsed from DDL: the span is named after the system, as the conventions say.
    assert_eq!(create[0]["name"], "sqlite");
    assert_eq!(attr(create[0], "db.operation.name"), "CREATE");
    // The handler's own hooked function is a child of the request's span.
    let parse: Vec<_> = spans
        .iter()
        .filter(|s| s["function"] == "main.parseUserID")
        .collect();
    assert_eq!(parse.len(), 2, "{variant:?}: GET /users/1 and /users/2");
    assert_eq!(parse[0]["parent_span_id"], servers[2]["span_id"]);
}

#[test]
fn the_bundled_scripts_alone_choose_what_to_hook_on_a_stripped_binary() {
    // No -f and no -s: a user with no script at all gets the standard spans.
    let requests = [("GET", "/hello", "", 200), ("GET", "/users/9", "", 404)];
    let spans = httpsvc_spans(Variant::Stripped, &requests, &[]);
    let servers: Vec<_> = spans.iter().filter(|s| s["kind"] == "server").collect();
    assert_eq!(servers.len(), 2, "{spans:#?}");
    assert!(spans.iter().any(|s| attr(s, "db.query.text")
        .as_str()
        .is_some_and(|q| q.starts_with("SELECT"))));
    assert!(
        spans.iter().all(|s| s["function"] != "main.parseUserID"),
        "nothing but the bundled scripts' functions is hooked"
    );
}

#[test]
fn httpsvc_requests_make_server_spans_with_sql_children_with_dwarf() {
    httpsvc_requests_make_server_spans_with_sql_children(Variant::Default);
}

#[test]
fn httpsvc_requests_make_server_spans_with_sql_children_when_stripped() {
    httpsvc_requests_make_server_spans_with_sql_children(Variant::Stripped);
}

fn grpcsvc_calls_make_client_and_server_spans(variant: Variant) {
    let exe = must_build("grpcsvc", variant, &Toolchain::installed());
    let out = tmp(&format!("grpcsvc-{}.json", variant.name()));
    let run = std::process::Command::new(GOHOOK)
        .args(["run", "--format", "json", "-o"])
        .arg(&out)
        .args(["-f", "main.call", "--"])
        .arg(&exe)
        // Scripts read the target's memory a little after each call: -linger keeps it alive.
        .args([
            "-loopback",
            "-n",
            "4",
            "-service",
            "grpcsvc,nope",
            "-linger",
            "1s",
        ])
        .output()
        .expect("gohook runs");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{variant:?}: {err}");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "SERVING\nerror: NotFound\nSERVING\nerror: NotFound\n"
    );
    assert!(!err.contains("hook-script error"), "{err}");
    let spans = read_spans(&out);
    let of_kind = |k: &str| {
        let mut v: Vec<&serde_json::Value> = spans.iter().filter(|s| s["kind"] == k).collect();
        v.sort_by_key(|s| s["start_time_unix_nano"].as_u64());
        v
    };
    let (clients, servers) = (of_kind("client"), of_kind("server"));
    assert_eq!(clients.len(), 4, "{variant:?}: {spans:#?}");
    assert_eq!(servers.len(), 4, "{variant:?}: {spans:#?}");
    for (i, (c, s)) in clients.iter().zip(&servers).enumerate() {
        let code = if i % 2 == 0 { 0 } else { 5 }; // OK, NotFound
        for span in [c, s] {
            let what = format!("{variant:?} call {i}: {span}");
            assert_eq!(span["name"], "grpc.health.v1.Health/Check", "{what}");
            assert_eq!(attr(span, "rpc.system"), "grpc", "{what}");
            assert_eq!(attr(span, "rpc.service"), "grpc.health.v1.Health", "{what}");
            assert_eq!(attr(span, "rpc.method"), "Check", "{what}");
            assert_eq!(attr(span, "rpc.grpc.status_code"), code, "{what}");
        }
        assert_eq!(attr(c, "server.address"), "127.0.0.1", "{c}");
        assert!(
            attr(c, "server.port").as_u64().is_some_and(|p| p > 0),
            "{c}"
        );
        // A client counts every non-OK status as an error; a server does not count NotFound.
        let client_status = if code == 0 { "unset" } else { "error" };
        assert_eq!(c["status"]["code"], client_status, "{c}");
        assert_eq!(s["status"]["code"], "unset", "{s}");
        // The client span is the child of the program's call that made it.
        let parent = spans
            .iter()
            .find(|p| p["span_id"] == c["parent_span_id"])
            .unwrap_or_else(|| panic!("{variant:?}: client span without parent: {c}"));
        assert_eq!(parent["function"], "main.call");
        // The server ran while the client waited.
        assert!(s["start_time_unix_nano"].as_u64() > c["start_time_unix_nano"].as_u64());
        assert!(s["end_time_unix_nano"].as_u64() < c["end_time_unix_nano"].as_u64());
    }
}

#[test]
fn grpcsvc_calls_make_client_and_server_spans_with_dwarf() {
    grpcsvc_calls_make_client_and_server_spans(Variant::Default);
}

#[test]
fn grpcsvc_calls_make_client_and_server_spans_when_stripped() {
    grpcsvc_calls_make_client_and_server_spans(Variant::Stripped);
}

fn http_client_requests_make_client_spans(variant: Variant) {
    use std::io::BufRead;
    let server = must_build("httpsvc", Variant::Default, &Toolchain::installed());
    let mut server = Reaper(
        std::process::Command::new(server)
            .args(["-addr", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("httpsvc starts"),
    );
    let mut line = String::new();
    std::io::BufReader::new(server.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let port: u64 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let urls = format!("http://{addr}/hello,http://{addr}/nowhere");

    let exe = must_build("grpcsvc", variant, &Toolchain::installed());
    let out = tmp(&format!("http-client-{}.json", variant.name()));
    let run = std::process::Command::new(GOHOOK)
        .args(["run", "--format", "json", "-o"])
        .arg(&out)
        .args(["-f", "main.get", "--"])
        .arg(&exe)
        // Scripts read the target's memory a little after each call: -linger keeps it alive.
        .args(["-get", &urls, "-n", "2", "-linger", "1s"])
        .output()
        .expect("gohook runs");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{variant:?}: {err}");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "HTTP 200\nHTTP 404\n");
    assert!(!err.contains("hook-script error"), "{err}");
    let spans = read_spans(&out);
    let mut clients: Vec<&serde_json::Value> =
        spans.iter().filter(|s| s["kind"] == "client").collect();
    clients.sort_by_key(|s| s["start_time_unix_nano"].as_u64());
    assert_eq!(clients.len(), 2, "{variant:?}: {spans:#?}");
    for (span, (path, status)) in clients.iter().zip([("/hello", 200), ("/nowhere", 404)]) {
        let what = format!("{variant:?} GET {path}: {span}");
        assert_eq!(span["name"], "GET", "{what}");
        assert_eq!(attr(span, "http.request.method"), "GET", "{what}");
        assert_eq!(
            attr(span, "url.full").as_str(),
            Some(format!("http://{addr}{path}").as_str()),
            "{what}"
        );
        assert_eq!(attr(span, "url.path"), path, "{what}");
        assert_eq!(attr(span, "server.address"), "127.0.0.1", "{what}");
        assert_eq!(attr(span, "server.port"), port, "{what}");
        assert_eq!(attr(span, "http.response.status_code"), status, "{what}");
        let code = if status < 400 { "unset" } else { "error" };
        assert_eq!(span["status"]["code"], code, "{what}");
        let parent = spans
            .iter()
            .find(|p| p["span_id"] == span["parent_span_id"])
            .unwrap_or_else(|| panic!("{what}: no parent"));
        assert_eq!(parent["function"], "main.get", "{what}");
    }
}

#[test]
fn http_client_requests_make_client_spans_with_dwarf() {
    http_client_requests_make_client_spans(Variant::Default);
}

#[test]
fn http_client_requests_make_client_spans_when_stripped() {
    http_client_requests_make_client_spans(Variant::Stripped);
}
