//! The two checks of one coverage-matrix cell (`tests/matrix.rs`), for one built program each:
//!
//! * [`torture_under_run`]: torture under `gohook run` with its hot functions hooked must exit 0,
//!   print exactly what it prints unhooked, and yield one span per call of every hooked
//!   function (torture counts its own calls).
//! * [`httpsvc_attach_under_load`]: `gohook attach --duration` to a running httpsvc while client
//!   threads keep requesting over keep-alive connections: no request may fail, every request
//!   made inside the attached window must have its handler span, and the text must come back
//!   byte for byte after detach.
//!
//! Both return an error message instead of panicking, so the matrix can run every cell and print
//! a table before it fails.

#![allow(dead_code)] // not every test file uses every helper

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `gohook` binary under test.
pub const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// The functions of `torture` that its header lists as meant to be hooked.
pub const TORTURE_HOOKS: [&str; 12] = [
    "main.work",
    "main.recurse",
    "main.mayPanic",
    "main.middle",
    "main.catcher",
    "main.spin",
    "main.exiter",
    "main.spawner",
    "main.child",
    "main.viaC",
    "main.callback",
    "main.parked",
];

/// httpsvc's handlers the attach check hooks and counts.
pub const HTTPSVC_HANDLERS: [&str; 2] = ["main.(*service).hello", "main.(*service).users"];

/// Kills the child when dropped, so a failing cell never leaves a process behind.
pub struct Reaper(pub Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Parses a `--format json` file: (spans, summary).
pub fn read_spans(path: &Path) -> Result<(Vec<Value>, Value), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut spans = Vec::new();
    let mut summary = Value::Null;
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("bad JSON line {line:?}: {e}"))?;
        if v.get("summary").is_some() {
            summary = v["summary"].clone();
        } else {
            spans.push(v);
        }
    }
    Ok((spans, summary))
}

/// Spans per `function`.
fn spans_per_function(spans: &[Value]) -> BTreeMap<String, u64> {
    let mut seen = BTreeMap::new();
    for s in spans {
        *seen
            .entry(s["function"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    seen
}

/// `calls main.X N` lines printed by torture.
pub fn torture_counts(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("calls "))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(f, n)| Some((f.to_owned(), n.parse().ok()?)))
        .collect()
}

/// The functions matching `glob` that `gohook funcs` says can be hooked.
pub fn hookable_functions(exe: &Path, glob: &str) -> Result<Vec<String>, String> {
    let out = Command::new(GOHOOK)
        .arg("funcs")
        .arg(exe)
        .args([glob, "--json"])
        .output()
        .map_err(|e| format!("running gohook funcs: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gohook funcs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut names = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(l).map_err(|e| format!("funcs --json {l:?}: {e}"))?;
        if v["hookable"] == true {
            names.push(v["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    Ok(names)
}

/// What the torture check measured.
#[derive(Debug, Clone, Default)]
pub struct TortureFigures {
    /// Functions hooked.
    pub functions: usize,
    /// Spans of the hooked functions (each equal to torture's own count).
    pub spans: u64,
    /// Wall time of the hooked run.
    pub secs: f64,
}

/// Runs torture plain and under `gohook run` with its hot functions hooked; checks the exit
/// status, the output, no dropped record, and one span per call of every hooked function.
pub fn torture_under_run(exe: &Path, json_out: &Path) -> Result<TortureFigures, String> {
    let plain = Command::new(exe)
        .output()
        .map_err(|e| format!("running torture: {e}"))?;
    if !plain.status.success() {
        return Err(format!("torture failed unhooked: {}", plain.status));
    }
    let plain_stdout = String::from_utf8_lossy(&plain.stdout).into_owned();
    let expected = torture_counts(&plain_stdout);
    let hookable = hookable_functions(exe, "main.*")?;
    let hooks: Vec<&str> = TORTURE_HOOKS
        .iter()
        .copied()
        .filter(|f| expected.contains_key(*f) && hookable.iter().any(|h| h == f))
        .collect();
    if hooks.len() < 8 {
        return Err(format!(
            "too few hookable torture functions: {hooks:?} of {expected:?}"
        ));
    }
    let started = Instant::now();
    let hooked = Command::new(GOHOOK)
        .arg("run")
        .args(hooks.iter().flat_map(|f| ["-f", f]))
        .args(["--format", "json", "--ring-slots", "65536", "-o"])
        .arg(json_out)
        .arg("--")
        .arg(exe)
        .output()
        .map_err(|e| format!("running gohook run: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !hooked.status.success() {
        return Err(format!(
            "hooked torture failed: {}: {}",
            hooked.status,
            last_line(&hooked.stderr)
        ));
    }
    if hooked.stdout != plain.stdout {
        return Err(format!(
            "output differs under hooks: {:?} vs {:?}",
            String::from_utf8_lossy(&hooked.stdout),
            plain_stdout
        ));
    }
    let (spans, summary) = read_spans(json_out)?;
    if summary["dropped_records"] != 0 {
        return Err(format!("records were dropped: {summary}"));
    }
    let seen = spans_per_function(&spans);
    let mut total = 0;
    for f in &hooks {
        let got = seen.get(*f).copied().unwrap_or(0);
        if got != expected[*f] {
            return Err(format!(
                "{f}: {got} spans, torture counted {} calls",
                expected[*f]
            ));
        }
        total += got;
    }
    Ok(TortureFigures {
        functions: hooks.len(),
        spans: total,
        secs,
    })
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned()
}

// ---- httpsvc under load ----

/// The requests each load client cycles through: (path, handler it reaches, text the body
/// must contain).
const REQUESTS: [(&str, &str, &str); 2] = [
    ("/hello", "main.(*service).hello", "hello"),
    ("/users/1", "main.(*service).users", "\"id\":1"),
];

/// One completed request.
#[derive(Debug, Clone, Copy)]
struct Done {
    /// Index into [`REQUESTS`].
    kind: usize,
    start: Instant,
    end: Instant,
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s),
        })
    }

    /// Sends one request and reads the whole response: (status, body, server keeps the
    /// connection open).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String, bool), String> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: matrix\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader
            .get_mut()
            .write_all(req.as_bytes())
            .map_err(|e| format!("{method} {path}: write: {e}"))?;
        let mut line = String::new();
        let read_line = |r: &mut BufReader<TcpStream>, line: &mut String| -> Result<(), String> {
            line.clear();
            match r.read_line(line) {
                Ok(0) => Err(format!("{method} {path}: connection closed mid-response")),
                Ok(_) => Ok(()),
                Err(e) => Err(format!("{method} {path}: read: {e}")),
            }
        };
        read_line(&mut self.reader, &mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{method} {path}: bad status line {line:?}"))?;
        let (mut length, mut chunked, mut keep) = (None, false, true);
        loop {
            read_line(&mut self.reader, &mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "content-length" => length = v.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "connection" => keep = !v.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                read_line(&mut self.reader, &mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| format!("{method} {path}: bad chunk size {line:?}"))?;
                let mut chunk = vec![0; n + 2];
                self.reader
                    .read_exact(&mut chunk)
                    .map_err(|e| format!("{method} {path}: chunk: {e}"))?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.reader
                .read_exact(&mut body)
                .map_err(|e| format!("{method} {path}: body: {e}"))?;
        } else {
            return Err(format!("{method} {path}: response without a length"));
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned(), keep))
    }
}

/// Client threads requesting continuously until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<(Vec<Done>, Vec<String>)>>,
}

/// What the load saw: completed requests and failures (with their messages).
struct LoadResult {
    done: Vec<Done>,
    failures: Vec<String>,
}

impl Load {
    /// Starts `clients` threads, each on its own keep-alive connection, alternating between
    /// the [`REQUESTS`] with `pause` between requests. A failed request is recorded and the
    /// client reconnects.
    fn start(addr: &str, clients: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|c| {
                let stop = stop.clone();
                let addr = addr.to_owned();
                std::thread::spawn(move || {
                    let (mut done, mut failures) = (Vec::new(), Vec::new());
                    let mut conn: Option<Conn> = None;
                    let mut i = c;
                    while !stop.load(Ordering::Relaxed) {
                        let kind = i % REQUESTS.len();
                        i += 1;
                        let (path, _, want) = REQUESTS[kind];
                        let start = Instant::now();
                        let c = match conn.take() {
                            Some(c) => Ok(c),
                            None => Conn::open(&addr).map_err(|e| format!("connect: {e}")),
                        };
                        let result = c.and_then(|mut c| {
                            let r = c.request("GET", path, "")?;
                            Ok((c, r))
                        });
                        match result {
                            Ok((c, (200, body, keep))) if body.contains(want) => {
                                done.push(Done {
                                    kind,
                                    start,
                                    end: Instant::now(),
                                });
                                if keep {
                                    conn = Some(c);
                                }
                            }
                            Ok((_, (status, body, _))) => {
                                failures.push(format!("GET {path}: {status} {body:?}"))
                            }
                            Err(e) => failures.push(e),
                        }
                        std::thread::sleep(pause);
                    }
                    (done, failures)
                })
            })
            .collect();
        Load { stop, clients }
    }

    fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let mut r = LoadResult {
            done: Vec::new(),
            failures: Vec::new(),
        };
        for c in self.clients {
            match c.join() {
                Ok((d, f)) => {
                    r.done.extend(d);
                    r.failures.extend(f);
                }
                Err(_) => r.failures.push("a client thread panicked".into()),
            }
        }
        r
    }
}

/// What the attach check measured.
#[derive(Debug, Clone, Default)]
pub struct AttachFigures {
    /// Server spans made by the bundled scripts (0 when they were off).
    pub server_spans: usize,
    /// Requests completed over the whole load (before, during and after the attach).
    pub requests: usize,
    /// Requests that failed (always 0 in a passing cell).
    pub failed: usize,
    /// Requests strictly inside the attached window (see [`httpsvc_attach_under_load`]).
    pub inside: usize,
    /// Handler spans gohook emitted.
    pub spans: u64,
    /// Requests whose time overlapped gohook's life (an upper bound for the spans).
    pub overlapping: usize,
    /// Length of the attached window, in seconds.
    pub window: f64,
    /// Wall time of the whole check.
    pub secs: f64,
}

/// Starts httpsvc, keeps `clients` threads requesting over keep-alive connections, attaches
/// `gohook attach --duration duration` hooking the two handlers (with the bundled scripts too if
/// `bundled_scripts`), and checks, after gohook ended on its own:
///
/// * gohook exited 0, reported no dropped record and no script error;
/// * no request failed from before the attach until after the detach;
/// * the handler spans, per handler, are at least the requests strictly inside the attached
///   window and at most the requests that overlapped gohook's life. The window opens when
///   gohook's "hooked" line is read (every hook is in by then) and closes at the moment gohook
///   was started plus `duration`: gohook starts its `--duration` clock only after that line,
///   so the hooks are still enabled then. A request inside started after the first and ended
///   before the second, so its handler ran entirely hooked; requests in flight at either edge
///   may or may not have spans and are counted only in the upper bound;
/// * the target's text equals the ELF file's again after the detach;
/// * httpsvc then stops cleanly on SIGTERM.
pub fn httpsvc_attach_under_load(
    exe: &Path,
    json_out: &Path,
    duration: Duration,
    clients: usize,
    bundled_scripts: bool,
) -> Result<AttachFigures, String> {
    let started = Instant::now();
    let mut svc = Command::new(exe)
        .args(["-addr", "127.0.0.1:0"])
        // A GC cycle every few requests: request memory is reused soon after each response, so
        // a script that read it late would see other requests' bytes (see the span checks).
        .env("GOGC", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting httpsvc: {e}"))?;
    let mut stdout = BufReader::new(svc.stdout.take().expect("piped"));
    let mut svc = Reaper(svc);
    let pid = svc.0.id();
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let addr = line
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("httpsvc's first line is {line:?}"))?
        .trim()
        .to_owned();
    let mut setup = Conn::open(&addr).map_err(|e| format!("connect: {e}"))?;
    match setup.request(
        "POST",
        "/users",
        r#"{"name":"ada","email":"ada@example.com"}"#,
    )? {
        (201, _, _) => {}
        (status, body, _) => return Err(format!("POST /users: {status} {body:?}")),
    }
    drop(setup);

    let load = Load::start(&addr, clients, Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(300));

    let spawned = Instant::now();
    let mut gohook = Command::new(GOHOOK)
        .args(["attach", "--pid", &pid.to_string()])
        .arg("--duration")
        .arg(format!("{}", duration.as_secs_f64()))
        .args(HTTPSVC_HANDLERS.iter().flat_map(|f| ["-f", f]))
        .args((!bundled_scripts).then_some("--no-default-scripts"))
        .args(["--ring-slots", "65536", "--format", "json", "-o"])
        .arg(json_out)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting gohook attach: {e}"))?;
    let stderr = gohook.stderr.take().expect("piped");
    let hooked_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let said = {
        let hooked_at = hooked_at.clone();
        std::thread::spawn(move || {
            let mut said = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(": hooked ") {
                    *hooked_at.lock().unwrap() = Some(Instant::now());
                }
                said.push_str(&line);
                said.push('\n');
            }
            said
        })
    };
    let mut gohook = Reaper(gohook);
    let status = gohook
        .0
        .wait()
        .map_err(|e| format!("waiting for gohook: {e}"));
    let exited = Instant::now();
    let said = said.join().unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    let load = load.finish();
    let status = status?;

    let restored = live_text_matches_file(pid, exe);
    let alive = svc.0.try_wait().ok().flatten().is_none();
    let mut figures = AttachFigures {
        server_spans: 0,
        requests: load.done.len(),
        failed: load.failures.len(),
        window: 0.0,
        secs: 0.0,
        ..Default::default()
    };
    if !status.success() {
        return Err(format!("gohook attach: {status}: {}", said.trim()));
    }
    if !alive {
        return Err("httpsvc died during the attach".into());
    }
    if let Some(f) = load.failures.first() {
        return Err(format!(
            "{} of {} requests failed, first: {f}",
            load.failures.len(),
            load.failures.len() + load.done.len()
        ));
    }
    restored?;
    if said.contains("hook-script error") || said.contains("records dropped") {
        let bad: Vec<&str> = said
            .lines()
            .filter(|l| !l.contains(": hooked ") && !l.contains("not hooked: "))
            .collect();
        return Err(format!("gohook reported: {}", bad.join(" / ")));
    }
    let hooked = (*hooked_at.lock().unwrap())
        .ok_or_else(|| format!("gohook never said it hooked: {}", said.trim()))?;
    let closes = spawned + duration;
    figures.window = closes.saturating_duration_since(hooked).as_secs_f64();

    let (spans, summary) = read_spans(json_out)?;
    if summary["dropped_records"] != 0 {
        return Err(format!("records were dropped: {summary}"));
    }
    let seen = spans_per_function(&spans);
    for (kind, (path, handler, _)) in REQUESTS.iter().enumerate() {
        let of_kind = || load.done.iter().filter(move |d| d.kind == kind);
        let inside = of_kind()
            .filter(|d| d.start >= hooked && d.end <= closes)
            .count();
        let overlapping = of_kind()
            .filter(|d| d.end >= spawned && d.start <= exited)
            .count();
        let got = seen.get(*handler).copied().unwrap_or(0);
        if (got as usize) < inside || got as usize > overlapping {
            return Err(format!(
                "{handler}: {got} spans for {inside} GET {path} inside the window ({:.2} s) and \
                 {overlapping} overlapping the attach",
                figures.window
            ));
        }
        figures.inside += inside;
        figures.overlapping += overlapping;
        figures.spans += got;
    }
    if figures.inside < 10 {
        return Err(format!(
            "only {} requests inside the attached window of {:.2} s: too few to judge",
            figures.inside, figures.window
        ));
    }
    if bundled_scripts {
        // One server span per request, carrying what that request had: the paths and methods
        // the clients sent, the status they got. A script reading reused request memory would
        // report other paths, garbage or errors (checked above).
        let servers: Vec<&Value> = spans
            .iter()
            .filter(|s| s["function"] == "net/http.serverHandler.ServeHTTP")
            .collect();
        let attr = |s: &Value, k: &str| s["attributes"][k].clone();
        if servers.len() < figures.inside || servers.len() > figures.overlapping {
            return Err(format!(
                "{} server spans for {} requests inside the window and {} overlapping it",
                servers.len(),
                figures.inside,
                figures.overlapping
            ));
        }
        for s in &servers {
            let path = attr(s, "url.path");
            // A request still in its handler when gohook detached has no status code: its span
            // ends as unfinished.
            let unfinished = s["status"]["message"] == "unfinished";
            let ok = REQUESTS.iter().any(|(p, _, _)| path == *p)
                && attr(s, "http.request.method") == "GET"
                && (attr(s, "http.response.status_code") == 200 || unfinished)
                && s["name"] == "GET";
            if !ok {
                return Err(format!("a server span that matches no request made: {s}"));
            }
        }
        figures.server_spans = servers.len();
    }

    // The pid is our own child, still alive (checked above), so it cannot have been reused.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGTERM,
    )
    .map_err(|e| format!("SIGTERM to httpsvc: {e}"))?;
    let end = svc
        .0
        .wait()
        .map_err(|e| format!("waiting for httpsvc: {e}"))?;
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    if !end.success() || !rest.contains("stopped") {
        let mut err = String::new();
        if let Some(e) = svc.0.stderr.as_mut() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!(
            "httpsvc did not stop cleanly after the detach: {end}, {rest:?} {err:?}"
        ));
    }
    figures.secs = started.elapsed().as_secs_f64();
    Ok(figures)
}

/// Compares the target's `.text` in memory with the ELF file's bytes; the load address comes
/// from the mapping of the executable that holds `.text`'s file offset (PIE or not).
pub fn live_text_matches_file(pid: u32, exe: &Path) -> Result<(), String> {
    let elf = gostrings::ElfFile::open(exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    let text = elf.section(".text").ok_or("no .text section")?.clone();
    let want = elf.section_data(&text).ok_or(".text has no data")?;
    let exe_path: PathBuf = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|e| format!("/proc/{pid}/exe: {e}"))?;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("/proc/{pid}/maps: {e}"))?;
    let addr = maps
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || Path::new(f[5]) != exe_path {
                return None;
            }
            let (lo, hi) = f[0].split_once('-')?;
            let lo = u64::from_str_radix(lo, 16).ok()?;
            let hi = u64::from_str_radix(hi, 16).ok()?;
            let off = u64::from_str_radix(f[2], 16).ok()?;
            (off <= text.offset && text.offset < off + (hi - lo)).then(|| lo + text.offset - off)
        })
        .next()
        .ok_or_else(|| format!("no mapping of {} holds .text", exe_path.display()))?;
    use std::io::{Seek, SeekFrom};
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .map_err(|e| format!("/proc/{pid}/mem: {e}"))?;
    mem.seek(SeekFrom::Start(addr))
        .map_err(|e| format!("seek: {e}"))?;
    let mut live = vec![0; want.len()];
    mem.read_exact(&mut live)
        .map_err(|e| format!("reading the live text: {e}"))?;
    match live.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!(
            "text not restored: {} bytes differ from the file, first at {:#x}",
            live.iter().zip(want).filter(|(a, b)| a != b).count(),
            text.addr + i as u64
        )),
    }
}
