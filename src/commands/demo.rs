//! `gohook demo`: the five-second tour. Builds the bundled HTTP example (net/http + database/sql
//! over pure-Go SQLite, embedded in gohook's binary), runs it under `gohook run` with its
//! handlers and the bundled scripts hooked, sends it a few requests and shows the spans.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::DemoArgs;

/// The example's sources, embedded so an installed gohook can build it anywhere Go is.
const SOURCES: [(&str, &str); 4] = [
    ("main.go", include_str!("../../fixtures/go/httpsvc/main.go")),
    (
        "sqlite.go",
        include_str!("../../fixtures/go/httpsvc/sqlite.go"),
    ),
    ("go.mod", include_str!("../../fixtures/go/httpsvc/go.mod")),
    ("go.sum", include_str!("../../fixtures/go/httpsvc/go.sum")),
];

/// The requests the demo sends: method, path, body.
const REQUESTS: [(&str, &str, &str); 5] = [
    ("GET", "/hello", ""),
    (
        "POST",
        "/users",
        r#"{"name":"ada","email":"ada@example.com"}"#,
    ),
    ("GET", "/users/1", ""),
    ("GET", "/users/42", ""),
    ("GET", "/stats", ""),
];

/// Runs the demo; returns gohook's exit status for the example (0 when all went well).
pub fn run(args: &DemoArgs) -> Result<i32> {
    let exe = build_example(args.dir.as_deref())?;
    let gohook = std::env::current_exe().context("finding gohook's own executable")?;
    eprintln!("gohook demo: running the example under `gohook run -f 'main.(*service).*'` with the bundled scripts");
    let mut child = Command::new(&gohook)
        .args([
            "run",
            "-f",
            "main.(*service).*",
            "--",
            &exe.to_string_lossy(),
        ])
        .args(["-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", gohook.display()))?;
    let mut out = BufReader::new(child.stdout.take().context("no stdout pipe")?);
    let addr = match listening_address(&mut out) {
        Ok(a) => a,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    println!(
        "gohook demo: the example listens on {addr}; sending {} requests",
        REQUESTS.len()
    );
    for (method, path, body) in REQUESTS {
        match request(&addr, method, path, body) {
            Ok(status) => println!("  {method} {path} -> {status}"),
            Err(e) => println!("  {method} {path} -> failed: {e}"),
        }
    }
    // Hook scripts read request memory from the live process a few milliseconds after each
    // call: give them that time before the example exits.
    std::thread::sleep(Duration::from_millis(300));
    // gohook forwards SIGTERM to the example, which shuts down gracefully; gohook then prints
    // the last spans and exits with the example's status.
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
    });
    let status = child.wait().context("waiting for gohook")?;
    println!(
        "gohook demo: done (the spans above came from the unmodified example binary {})",
        exe.display()
    );
    Ok(status.code().unwrap_or(1))
}

/// Writes the embedded sources to DIR (default: a per-user directory under the temporary
/// directory) and builds them with `go build`, unless a build of the same sources is there.
fn build_example(dir: Option<&Path>) -> Result<PathBuf> {
    let hash = SOURCES.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, (_, s)| {
        s.bytes()
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    });
    let dir = match dir {
        Some(d) => d.to_owned(),
        // SAFETY: getuid(2) cannot fail and touches no memory.
        None => std::env::temp_dir().join(format!("gohook-demo-{}-{hash:016x}", unsafe {
            libc::getuid()
        })),
    };
    let exe = dir.join("httpsvc");
    if exe.is_file() {
        return Ok(exe);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in SOURCES {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("writing {}", dir.join(name).display()))?;
    }
    eprintln!(
        "gohook demo: building the HTTP example in {} (the first build compiles SQLite: a few minutes)",
        dir.display()
    );
    let built = Command::new("go")
        .args(["build", "-o", "httpsvc", "."])
        .current_dir(&dir)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-buildvcs=false -mod=mod")
        .status();
    match built {
        Ok(s) if s.success() => Ok(exe),
        Ok(s) => bail!(
            "building the example with `go build` in {} failed ({s})",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("the demo builds a Go program: install Go 1.21 or newer and put `go` on PATH")
        }
        Err(e) => Err(e).context("running `go build`"),
    }
}

/// Reads the example's standard output until it says "listening on HOST:PORT".
fn listening_address(out: &mut impl BufRead) -> Result<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if out
            .read_line(&mut line)
            .context("reading the example's output")?
            == 0
        {
            bail!("the example exited before it listened (see the lines above)");
        }
        if let Some(a) = line.trim().strip_prefix("listening on ") {
            return Ok(a.to_owned());
        }
    }
}

/// One HTTP/1.1 request on its own connection; returns the status line's code and reason.
fn request(addr: &str, method: &str, path: &str, body: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let status = reply.lines().next().unwrap_or_default();
    Ok(status.splitn(2, ' ').nth(1).unwrap_or(status).to_owned())
}
