//! Many `gohook attach`/detach cycles against a live HTTP service under continuous load: no
//! request may fail, the text must equal the ELF's bytes exactly after every detach, and what
//! each attach leaves behind in the target is counted and bounded.
//!
//! What an attach leaves by design (see `injector::patch`): its trampoline region and its ring
//! stay mapped after detach, because a thread may still be running a trampoline (which writes
//! the ring) when the patches are removed; unmapping either could crash the target. So the
//! budget is one ring and one trampoline region per attach: the test fails on more.
//!
//! `GOHOOK_ATTACH_CYCLES=N` sets the number of cycles (default 10: under a minute on a busy two-core machine);
//! RELIABILITY.md records a run of 1,000.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fixtures::{must_build, Toolchain, Variant};

const GOHOOK: &str = env!("CARGO_BIN_EXE_gohook");

/// Client threads, each on its own keep-alive connection.
const CLIENTS: usize = 4;

/// Kills the child when dropped, so a failing test never leaves a process behind.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-cycles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn cycles() -> usize {
    std::env::var("GOHOOK_ATTACH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// The link-time text of `exe` and where it lies: (vaddr, bytes). The Default build is not PIE.
fn elf_text(exe: &Path) -> (u64, Vec<u8>) {
    let elf = gostrings::ElfFile::open(exe).unwrap();
    let text = elf.section(".text").unwrap().clone();
    (text.addr, elf.section_data(&text).unwrap().to_vec())
}

fn live_bytes(pid: u32, addr: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, addr).unwrap();
    buf
}

/// What the target's address space holds, from /proc/PID/maps and /proc/PID/status.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    /// Lines of /proc/PID/maps.
    maps: usize,
    /// Mappings of a gohook ring (`memfd:gohook-ring`).
    rings: usize,
    /// Executable anonymous mappings (trampoline regions; adjacent ones merge into one line).
    exec_anon: usize,
    /// VmRSS and RssShmem in KiB.
    rss_kib: u64,
    shmem_kib: u64,
    /// Open file descriptors.
    fds: usize,
}

fn footprint(pid: u32) -> Footprint {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let exec_anon = maps
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 5 && f[1].contains('x')
        })
        .count();
    Footprint {
        maps: maps.lines().count(),
        rings: maps.lines().filter(|l| l.contains("gohook-ring")).count(),
        exec_anon,
        rss_kib: kib("VmRSS:"),
        shmem_kib: kib("RssShmem:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count(),
    }
}

/// Reads one HTTP/1.1 response: (status, body).
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, String)> {
    let mut status_line = String::new();
    if r.read_line(&mut status_line)? == 0 {
        return Err(std::io::Error::other("connection closed"));
    }
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One client: a keep-alive connection sending GET /hello, every tenth round a GET of its
/// user (the database path), and every thousandth a POST /users making a new one, until
/// `stop`; every response is checked. Counts go to `ok` and `failed` (the first failures to
/// `why`).
fn client(
    addr: String,
    n: usize,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    why: Arc<Mutex<Vec<String>>>,
) {
    let connect = || -> std::io::Result<(TcpStream, BufReader<TcpStream>)> {
        let s = TcpStream::connect(&addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let r = BufReader::new(s.try_clone()?);
        Ok((s, r))
    };
    let mut conn = connect().ok();
    let mut round = 0u64;
    let mut user: Option<(u64, String)> = None;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let mut answered = 0u64;
        let result = (|| -> Result<(), String> {
            let (w, r) = conn.as_mut().ok_or("not connected")?;
            let mut ask = |req: String, want: u16| -> Result<String, String> {
                w.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
                let (status, body) = read_response(r).map_err(|e| e.to_string())?;
                answered += 1;
                if status != want {
                    return Err(format!("{req:?}: status {status}, body {body:?}"));
                }
                Ok(body)
            };
            let body = ask(format!("GET /hello HTTP/1.1\r\nHost: {addr}\r\n\r\n"), 200)?;
            if body.trim() != "hello" {
                return Err(format!("GET /hello: body {body:?}"));
            }
            // A new row only now and then: the in-memory database must not grow with the
            // load, or the target's memory would grow for reasons of its own.
            if user.is_none() || round % 1000 == 0 {
                let name = format!("c{n}r{round}");
                let json = format!(r#"{{"name":"{name}","email":"c{n}@example.com"}}"#);
                let made = ask(
                    format!(
                        "POST /users HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                        json.len()
                    ),
                    201,
                )?;
                let id = serde_json::from_str::<serde_json::Value>(&made)
                    .ok()
                    .and_then(|v| v["id"].as_u64())
                    .ok_or_else(|| format!("POST /users: body {made:?}"))?;
                user = Some((id, name));
            }
            if round % 10 == 0 {
                let (id, name) = user.clone().ok_or("no user")?;
                let got = ask(
                    format!("GET /users/{id} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
                    200,
                )?;
                if !got.contains(&name) {
                    return Err(format!("GET /users/{id}: body {got:?}"));
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                ok.fetch_add(answered, Ordering::Relaxed);
            }
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                let mut w = why.lock().unwrap();
                if w.len() < 10 {
                    w.push(e);
                }
                conn = connect().ok();
            }
        }
    }
}

#[test]
fn attach_detach_cycles_under_http_load_fail_no_request_and_restore_the_text_exactly() {
    let n_cycles = cycles();
    let exe = must_build("httpsvc", Variant::Default, &Toolchain::installed());
    let mut server = Reaper(
        Command::new(&exe)
            .args(["-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = server.0.id();
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("httpsvc said {line:?}"))
        .trim()
        .to_owned();
    let (text_addr, text) = elf_text(&exe);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let why = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (addr, stop, ok, failed, why) = (
                addr.clone(),
                stop.clone(),
                ok.clone(),
                failed.clone(),
                why.clone(),
            );
            std::thread::spawn(move || client(addr, n, stop, ok, failed, why))
        })
        .collect();
    // Let the load and the server's threads and heap settle before the first footprint.
    std::thread::sleep(Duration::from_millis(500));
    let before = footprint(pid);
    let before_ok = ok.load(Ordering::Relaxed);
    let out = tmp("cycle.json");
    let started = Instant::now();
    let mut spans = 0usize;
    let mut worst_cycle = Duration::ZERO;
    let mut after = before;
    for cycle in 0..n_cycles {
        let t = Instant::now();
        let r = Command::new(GOHOOK)
            .args(["attach", "--pid", &pid.to_string(), "--duration", "0.1"])
            .args(["-f", "main.parseUserID", "--format", "json", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        worst_cycle = worst_cycle.max(t.elapsed());
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success(), "cycle {cycle}: attach failed: {err}");
        spans += std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("{\"summary\""))
            .count();
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "cycle {cycle}: the server died"
        );
        assert!(
            live_bytes(pid, text_addr, text.len()) == text,
            "cycle {cycle}: text differs from the ELF file after detach"
        );
        after = footprint(pid);
        let done = cycle + 1;
        assert!(
            after.rings <= before.rings + done,
            "cycle {cycle}: more than one ring mapping left per attach: {before:?} -> {after:?}"
        );
        assert!(
            after.exec_anon <= before.exec_anon + done,
            "cycle {cycle}: more than one trampoline region left per attach: {before:?} -> {after:?}"
        );
        assert!(
            after.fds <= before.fds + 8,
            "cycle {cycle}: file descriptors leak in the target: {before:?} -> {after:?}"
        );
        assert_eq!(
            failed.load(Ordering::Relaxed),
            0,
            "cycle {cycle}: requests failed: {:?}",
            why.lock().unwrap()
        );
        if done % 25 == 0 {
            // Progress for long runs: the figures so far.
            eprintln!(
                "after {done} cycles ({:.0} s): {} requests, 0 failed, {spans} spans, maps {} -> {}, rings {}, executable anonymous {}, RSS {} KiB (shmem {} KiB)",
                started.elapsed().as_secs_f64(),
                ok.load(Ordering::Relaxed) - before_ok,
                before.maps,
                after.maps,
                after.rings,
                after.exec_anon,
                after.rss_kib,
                after.shmem_kib
            );
        }
    }
    let elapsed = started.elapsed();
    // Load goes on a little after the last detach: a request in flight at the end must succeed
    // too.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let requests = ok.load(Ordering::Relaxed) - before_ok;
    let failures = failed.load(Ordering::Relaxed);
    assert_eq!(failures, 0, "failed requests: {:?}", why.lock().unwrap());
    assert!(
        requests > n_cycles as u64,
        "the load was too light to mean anything: {requests} requests"
    );
    assert!(spans > 0, "the attaches hooked nothing");
    // Memory. The target's own memory (RSS without shared memory) must stay flat. A detach
    // gives its ring's pages back (they were about 6 MiB per attach at this load before it
    // did, RELIABILITY.md), so the shared memory left behind stays under 256 KiB per attach.
    let own = |f: &Footprint| f.rss_kib.saturating_sub(f.shmem_kib);
    assert!(
        own(&after) <= own(&before) + 64 * 1024,
        "the target's own RSS grew by {} KiB over {n_cycles} cycles: {before:?} -> {after:?}",
        own(&after) - own(&before)
    );
    let shmem_growth = after.shmem_kib.saturating_sub(before.shmem_kib);
    assert!(
        shmem_growth <= 256 * n_cycles as u64,
        "leaked rings hold {shmem_growth} KiB after {n_cycles} cycles: {before:?} -> {after:?}"
    );
    eprintln!(
        "{n_cycles} attach/detach cycles in {:.1} s (slowest {:.2} s), {requests} requests from \
         {CLIENTS} keep-alive clients, {failures} failed, {spans} spans; text equal to the ELF \
         after every detach; maps {} -> {} lines ({:+.2}/cycle), rings {} -> {}, executable \
         anonymous {} -> {}, fds {} -> {}, RSS {} -> {} KiB (shmem {} -> {} KiB, {:.1} KiB/cycle)",
        elapsed.as_secs_f64(),
        worst_cycle.as_secs_f64(),
        before.maps,
        after.maps,
        (after.maps as f64 - before.maps as f64) / n_cycles as f64,
        before.rings,
        after.rings,
        before.exec_anon,
        after.exec_anon,
        before.fds,
        after.fds,
        before.rss_kib,
        after.rss_kib,
        before.shmem_kib,
        after.shmem_kib,
        (after.rss_kib as f64 - before.rss_kib as f64) / n_cycles as f64,
    );
}
