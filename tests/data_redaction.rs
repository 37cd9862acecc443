//! Sensitive data stays out of spans unless asked for: the bundled scripts replace SQL literals
//! by `?`, leave URL query strings and header values out, and keep each with its `--capture-*`
//! flag. Checked on httpsvc's real requests, with DWARF and stripped.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use fixtures::{must_build, Toolchain, Variant};

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Values only the request carries: none may reach the spans unless captured.
const QUERY: &str = "token=s3cretQ&page=2";
const API_KEY: &str = "k3yValue";
/// httpsvc's GET /stats query, as the program wrote it.
const STATS_SQL: &str = "SELECT count(*) FROM users WHERE email LIKE '%@example.com' AND id > 0";

struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-redaction-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Sends `GET target` with an `X-Api-Key` header; returns the status code.
fn get(addr: &str, target: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.0\r\nHost: {addr}\r\nX-Api-Key: {API_KEY}\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("response {resp:?}"))
}

/// Runs httpsvc under `gohook run` with the bundled scripts and `flags`, requests
/// `GET /stats?QUERY` with the header, and returns the raw JSON output and its spans.
fn stats_spans(variant: Variant, flags: &[&str]) -> (String, Vec<serde_json::Value>) {
    let exe = must_build("httpsvc", variant, &Toolchain::installed());
    let out = tmp(&format!("{}-{}.json", variant.name(), flags.len()));
    let mut child = Command::new(GOHOOK)
        .args(["run", "--format", "json", "-o"])
        .arg(&out)
        .args(flags)
        .arg("--")
        .arg(&exe)
        .args(["-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gohook runs");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut child = Reaper(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let Some(addr) = line.strip_prefix("listening on ") else {
        let mut err = String::new();
        let _ = child.0.stderr.as_mut().unwrap().read_to_string(&mut err);
        panic!("first line is {line:?}; gohook said: {err}");
    };
    let addr = addr.trim().to_owned();
    assert_eq!(get(&addr, &format!("/stats?{QUERY}")), 200);
    // Scripts read the target's memory a little after each call: let the server live on.
    std::thread::sleep(Duration::from_millis(1000));
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .as_mut()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "gohook run: {status}: {err}");
    assert!(!err.contains("hook-script error"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let spans = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("summary").is_none())
        .collect();
    (text, spans)
}

fn one<'a>(
    spans: &'a [serde_json::Value],
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> &'a serde_json::Value {
    let found: Vec<_> = spans.iter().filter(|s| f(s)).collect();
    assert_eq!(found.len(), 1, "{what}: {spans:#?}");
    found[0]
}

fn server(spans: &[serde_json::Value]) -> &serde_json::Value {
    one(spans, "GET /stats server span", |s| {
        s["kind"] == "server" && s["attributes"]["url.path"] == "/stats"
    })
}

fn stats_query(spans: &[serde_json::Value]) -> &serde_json::Value {
    one(spans, "the /stats SELECT", |s| {
        s["kind"] == "client"
            && s["attributes"]["db.query.text"]
                .as_str()
                .is_some_and(|q| q.contains("count(*)"))
    })
}

fn by_default_literals_query_and_headers_stay_out(variant: Variant) {
    let (text, spans) = stats_spans(variant, &[]);
    let srv = server(&spans);
    let attrs = srv["attributes"].as_object().unwrap();
    assert!(!attrs.contains_key("url.query"), "{variant:?}: {srv}");
    assert!(
        !attrs.keys().any(|k| k.starts_with("http.request.header.")),
        "{variant:?}: {srv}"
    );
    let sql = stats_query(&spans);
    assert_eq!(
        sql["attributes"]["db.query.text"],
        "SELECT count(*) FROM users WHERE email LIKE ? AND id > ?",
        "{variant:?}"
    );
    assert_eq!(sql["name"], "SELECT users");
    assert_eq!(sql["parent_span_id"], srv["span_id"]);
    // Nowhere in the output at all, not just not in the attributes looked at.
    for secret in ["s3cretQ", API_KEY, "example.com'"] {
        assert!(
            !text.contains(secret),
            "{variant:?}: {secret} leaked: {text}"
        );
    }
}

fn each_flag_brings_its_data_back(variant: Variant) {
    let (_, spans) = stats_spans(
        variant,
        &[
            "--capture-sql-literals",
            "--capture-url-query",
            "--capture-headers",
        ],
    );
    let srv = server(&spans);
    assert_eq!(srv["attributes"]["url.query"], QUERY, "{variant:?}: {srv}");
    assert_eq!(
        srv["attributes"]["http.request.header.x-api-key"], API_KEY,
        "{variant:?}: {srv}"
    );
    let sql = stats_query(&spans);
    assert_eq!(sql["attributes"]["db.query.text"], STATS_SQL, "{variant:?}");
}

#[test]
fn by_default_literals_query_and_headers_stay_out_with_dwarf() {
    by_default_literals_query_and_headers_stay_out(Variant::Default);
}

#[test]
fn by_default_literals_query_and_headers_stay_out_when_stripped() {
    by_default_literals_query_and_headers_stay_out(Variant::Stripped);
}

#[test]
fn each_flag_brings_its_data_back_with_dwarf() {
    each_flag_brings_its_data_back(Variant::Default);
}

#[test]
fn each_flag_brings_its_data_back_when_stripped() {
    each_flag_brings_its_data_back(Variant::Stripped);
}

#[test]
fn one_flag_opts_in_to_one_kind_of_data_only() {
    let (text, spans) = stats_spans(Variant::Default, &["--capture-url-query"]);
    let srv = server(&spans);
    assert_eq!(srv["attributes"]["url.query"], QUERY);
    assert!(!text.contains(API_KEY), "{text}");
    assert_eq!(
        stats_query(&spans)["attributes"]["db.query.text"],
        "SELECT count(*) FROM users WHERE email LIKE ? AND id > ?"
    );
}
