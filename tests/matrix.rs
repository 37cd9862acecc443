//! The coverage matrix: Go releases × build modes, each cell checked end to end through the
//! `gohook` binary (see `cli_support/cells.rs` for what a cell checks):
//!
//! * torture under `gohook run` with its hot functions hooked: exit 0, the output it prints
//!   unhooked, one span per call of every hooked function;
//! * httpsvc (net/http + database/sql) under `gohook attach --duration` while client
//!   threads keep requesting: no failed request, a handler span for every request made inside
//!   the attached window, the text restored byte for byte after detach. httpsvc is built with
//!   `-tags memdb` ([`HTTPSVC_TAGS`]): the same handlers and database/sql call paths over the
//!   fixture's in-memory driver instead of modernc.org/sqlite, whose cold build costs 11–23
//!   minutes per (release, mode) on two cores and which Go 1.19 cannot build at all.
//!
//! Releases: the newest patch of every Go minor release from 1.21 on ([`FULL_MATRIX`]), each
//! through `GOTOOLCHAIN`, plus Debian's `golang-1.19-go` package (Go 1.19.8, see
//! [`debian_go_119`]). Modes: every [`Variant`].
//!
//! Which cells run, from `GOHOOK_MATRIX`:
//!
//! * unset or `slice` (the default run, CI): a diagonal that touches every release and every
//!   mode once, release i in mode i, plus the Go 1.19 cell;
//! * `full` (or `GOHOOK_FULL_MATRIX=1`): every release in every mode;
//! * a comma-separated list of `RELEASE:MODE` with `*` for either, e.g. `go1.24.13:race` or
//!   `*:pie,go1.19:*`, to reproduce one cell.
//!
//! The attach runs the bundled scripts (off with `GOHOOK_MATRIX_SCRIPTS=0`) against httpsvc
//! under `GOGC=5`: every server span must carry the path, method and status of a request the
//! clients made, with no script error, although request memory is reused within milliseconds
//! (what the scripts read is copied at the call: `CAPTURE`).
//!
//! `GOHOOK_MATRIX_CHECKS=torture` (or `attach`) runs only that half of each cell.
//!
//! The cells run one after the other and a table of all of them is printed (run with
//! `--nocapture` to see it on success; `GOHOOK_MATRIX_TABLE=FILE` also writes it to FILE); the
//! test fails if any cell failed.
//!
//! ```sh
//! GOHOOK_MATRIX=full cargo test --release -p gohook --test matrix -- --nocapture
//! ```

#[path = "cli_support/cells.rs"]
mod cells;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fixtures::{Toolchain, Variant, FULL_MATRIX};

/// Where Debian's `golang-1.19-go` puts its `go`.
const DEBIAN_GO_119: &str = "/usr/lib/go-1.19/bin/go";

/// How long each cell's `gohook attach` stays attached.
const ATTACH: Duration = Duration::from_secs(3);

/// Client threads of the load during the attach.
const CLIENTS: usize = 4;

/// httpsvc's build tags in the matrix: its in-memory database/sql driver (see the module doc).
const HTTPSVC_TAGS: &[&str] = &["memdb"];

/// A Go release of the matrix.
#[derive(Debug, Clone, PartialEq)]
enum Release {
    /// A release fetched through `GOTOOLCHAIN`.
    Go(&'static str),
    /// Debian's Go 1.19 package.
    Debian119,
}

impl Release {
    fn name(&self) -> &'static str {
        match self {
            Release::Go(v) => v,
            Release::Debian119 => "go1.19 (Debian)",
        }
    }

    fn matches(&self, pattern: &str) -> bool {
        pattern == "*"
            || match self {
                Release::Go(v) => *v == pattern || v.starts_with(&format!("{pattern}.")),
                Release::Debian119 => pattern == "go1.19" || pattern == "debian",
            }
    }
}

/// One cell: a release and a build mode.
#[derive(Debug, Clone)]
struct Cell {
    release: Release,
    variant: Variant,
}

/// The cells `GOHOOK_MATRIX` asks for (see the module docs).
fn selected_cells() -> Vec<Cell> {
    let full = std::env::var("GOHOOK_FULL_MATRIX").is_ok_and(|v| v == "1");
    let spec = std::env::var("GOHOOK_MATRIX").unwrap_or_default();
    let spec = match spec.trim() {
        "" if full => "full",
        "" => "slice",
        s => s,
    }
    .to_owned();
    let go = FULL_MATRIX.iter().map(|v| Release::Go(v));
    let mut all: Vec<Cell> = go
        .clone()
        .flat_map(|release| {
            Variant::ALL.into_iter().map(move |variant| Cell {
                release: release.clone(),
                variant,
            })
        })
        .collect();
    all.push(Cell {
        release: Release::Debian119,
        variant: Variant::Default,
    });
    match spec.as_str() {
        "full" => all,
        "slice" => {
            // Release i in mode i (mod the number of modes), then the modes no release got.
            let mut cells: Vec<Cell> = go
                .enumerate()
                .map(|(i, release)| Cell {
                    release,
                    variant: Variant::ALL[i % Variant::ALL.len()],
                })
                .collect();
            for (i, variant) in Variant::ALL.into_iter().enumerate() {
                if !cells.iter().any(|c| c.variant == variant) {
                    cells.push(Cell {
                        release: Release::Go(FULL_MATRIX[i % FULL_MATRIX.len()]),
                        variant,
                    });
                }
            }
            cells.push(Cell {
                release: Release::Debian119,
                variant: Variant::Default,
            });
            cells
        }
        list => {
            let wanted: Vec<(&str, &str)> = list
                .split(',')
                .map(|p| p.trim())
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once(':').unwrap_or((p, "*")))
                .collect();
            let cells: Vec<Cell> = all
                .into_iter()
                .filter(|c| {
                    wanted
                        .iter()
                        .any(|(r, m)| c.release.matches(r) && (*m == "*" || *m == c.variant.name()))
                })
                .collect();
            assert!(
                !cells.is_empty(),
                "GOHOOK_MATRIX={list:?} selects no cell (use full, slice, or RELEASE:MODE with \
                 releases {FULL_MATRIX:?} or go1.19, and modes {:?})",
                Variant::ALL.map(|v| v.name())
            );
            cells
        }
    }
}

/// What one cell measured, or why it did not pass.
struct Row {
    cell: Cell,
    build_secs: f64,
    torture: Result<Option<cells::TortureFigures>, String>,
    attach: Result<Option<cells::AttachFigures>, String>,
    note: &'static str,
}

impl Row {
    fn passed(&self) -> bool {
        self.torture.is_ok() && self.attach.is_ok()
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gohook-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Builds `program` (with `tags`) with Debian's Go 1.19, cached like the fixture builder does;
/// `Ok(None)` when the package is not installed.
///
/// Go 1.19 builds the fixtures as they are (their `go 1.21` line is advisory before Go 1.21);
/// httpsvc only with `-tags memdb`: modernc.org/sqlite v1.33.1 uses `runtime.Pinner` (Go 1.21).
fn debian_go_119(program: &str, tags: &[&str]) -> Result<Option<PathBuf>, String> {
    if !Path::new(DEBIAN_GO_119).is_file() {
        return Ok(None);
    }
    use std::hash::{Hash, Hasher};
    let src = fixtures::source_dir(program);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in &files {
        f.file_name().hash(&mut h);
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    tags.hash(&mut h);
    let dir = fixtures::cache_dir().join(format!("{program}-debian-go1.19-{:016x}", h.finish()));
    let exe = dir.join(program);
    if exe.is_file() {
        return Ok(Some(exe));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{program}.{}.tmp", std::process::id()));
    let out = Command::new(DEBIAN_GO_119)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg(format!("-tags={}", tags.join(",")))
        .arg(".")
        .current_dir(&src)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-buildvcs=false -mod=mod")
        .output()
        .map_err(|e| format!("running {DEBIAN_GO_119}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "Go 1.19 build of {program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::rename(&tmp, &exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    Ok(Some(exe))
}

/// Which halves of a cell run, from `GOHOOK_MATRIX_CHECKS`: (torture, attach).
fn checks() -> (bool, bool) {
    match std::env::var("GOHOOK_MATRIX_CHECKS").as_deref() {
        Ok("torture") => (true, false),
        Ok("attach") => (false, true),
        Ok("") | Ok("all") | Err(_) => (true, true),
        Ok(other) => panic!("GOHOOK_MATRIX_CHECKS={other:?}: use torture, attach or all"),
    }
}

fn run_cell(cell: &Cell) -> Row {
    let (do_torture, do_attach) = checks();
    let tag = format!(
        "{}-{}",
        cell.release.name().replace([' ', '(', ')'], ""),
        cell.variant.name()
    );
    let started = Instant::now();
    let mut row = Row {
        cell: cell.clone(),
        build_secs: 0.0,
        torture: Ok(None),
        attach: Ok(None),
        note: "not run (GOHOOK_MATRIX_CHECKS)",
    };
    match &cell.release {
        Release::Debian119 => {
            let torture = do_torture.then(|| debian_go_119("torture", &[]));
            let httpsvc = do_attach.then(|| debian_go_119("httpsvc", HTTPSVC_TAGS));
            row.build_secs = started.elapsed().as_secs_f64();
            match (torture, httpsvc) {
                (Some(Ok(None)), _) | (_, Some(Ok(None))) => {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "{DEBIAN_GO_119} missing: .ci/run installs golang-1.19-go"
                    );
                    row.note = "not run: apt-get install golang-1.19-go";
                }
                (torture, httpsvc) => {
                    if let Some(exe) = torture {
                        row.torture = exe.and_then(|exe| match exe {
                            Some(exe) => torture_cell(&exe, &tag),
                            None => Ok(None),
                        });
                    }
                    if let Some(exe) = httpsvc {
                        row.attach = exe.and_then(|exe| match exe {
                            Some(exe) => attach_cell(&exe, &tag),
                            None => Ok(None),
                        });
                    }
                }
            }
        }
        Release::Go(v) => {
            let tc = Toolchain::release(v);
            let torture = do_torture.then(|| fixtures::build("torture", cell.variant, &tc));
            let httpsvc = do_attach
                .then(|| fixtures::build_tagged("httpsvc", HTTPSVC_TAGS, cell.variant, &tc));
            row.build_secs = started.elapsed().as_secs_f64();
            if let Some(exe) = torture {
                row.torture = exe.and_then(|exe| torture_cell(&exe, &tag));
            }
            if let Some(exe) = httpsvc {
                row.attach = exe.and_then(|exe| attach_cell(&exe, &tag));
            }
        }
    }
    row
}

fn torture_cell(exe: &Path, tag: &str) -> Result<Option<cells::TortureFigures>, String> {
    cells::torture_under_run(exe, &scratch(&format!("torture-{tag}.json"))).map(Some)
}

fn attach_cell(exe: &Path, tag: &str) -> Result<Option<cells::AttachFigures>, String> {
    cells::httpsvc_attach_under_load(
        exe,
        &scratch(&format!("httpsvc-{tag}.json")),
        ATTACH,
        CLIENTS,
        std::env::var("GOHOOK_MATRIX_SCRIPTS").map_or(true, |v| v != "0"),
    )
    .map(Some)
}

fn one_line(e: &str) -> String {
    let l = e.lines().next().unwrap_or("");
    if l.chars().count() > 160 {
        format!("{}…", l.chars().take(160).collect::<String>())
    } else {
        l.to_owned()
    }
}

/// One Markdown table row for `row`.
fn table_line(row: &Row) -> String {
    let torture = match &row.torture {
        Ok(Some(t)) => format!("{} fns, {} spans, {:.1} s", t.functions, t.spans, t.secs),
        Ok(None) => "— (not run)".to_owned(),
        Err(e) => format!("FAIL: {}", one_line(e)),
    };
    let attach = match &row.attach {
        Ok(Some(a)) => format!(
            "{} req, 0 failed; {} inside {:.1} s window → {} handler spans, {} server spans \
             (≤ {}); {:.1} s",
            a.requests, a.inside, a.window, a.spans, a.server_spans, a.overlapping, a.secs
        ),
        Ok(None) => format!("— ({})", row.note),
        Err(e) => format!("FAIL: {}", one_line(e)),
    };
    format!(
        "| {} | {} | {} | {} | {} | {:.0} s |",
        row.cell.release.name(),
        row.cell.variant.name(),
        if row.passed() { "pass" } else { "FAIL" },
        torture,
        attach,
        row.build_secs
    )
}

#[test]
fn every_cell_of_the_matrix_hooks_torture_and_attaches_to_httpsvc_under_load() {
    let cells = selected_cells();
    let started = Instant::now();
    eprintln!("matrix: {} cells", cells.len());
    let mut rows = Vec::new();
    for cell in &cells {
        let row = run_cell(cell);
        for e in [row.torture.as_ref().err(), row.attach.as_ref().err()]
            .into_iter()
            .flatten()
        {
            eprintln!(
                "matrix: {}:{}: {e}",
                cell.release.name(),
                cell.variant.name()
            );
        }
        eprintln!("matrix: {}", table_line(&row));
        rows.push(row);
    }
    let passed = rows.iter().filter(|r| r.passed()).count();
    let mut table = String::from(
        "| release | mode | result | torture under `gohook run` | httpsvc under `gohook attach` with load | build |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in &rows {
        table.push_str(&table_line(row));
        table.push('\n');
    }
    let versions: Vec<String> = FULL_MATRIX.iter().map(|v| v.to_string()).collect();
    eprintln!(
        "\n{table}\n{passed} of {} cells passed in {:.0} s ({}; releases {})",
        rows.len(),
        started.elapsed().as_secs_f64(),
        std::env::var("GOHOOK_MATRIX").unwrap_or_else(|_| "slice".into()),
        versions.join(" ")
    );
    if let Ok(path) = std::env::var("GOHOOK_MATRIX_TABLE") {
        std::fs::write(&path, &table).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{}:{}", r.cell.release.name(), r.cell.variant.name()))
        .collect();
    assert!(failed.is_empty(), "cells failed: {}", failed.join(", "));
}

#[test]
fn the_default_slice_touches_every_release_and_every_mode() {
    if std::env::var_os("GOHOOK_MATRIX").is_some() {
        return;
    }
    let cells = selected_cells();
    if std::env::var("GOHOOK_FULL_MATRIX").is_ok_and(|v| v == "1") {
        assert_eq!(cells.len(), FULL_MATRIX.len() * Variant::ALL.len() + 1);
        return;
    }
    for v in FULL_MATRIX {
        assert!(
            cells.iter().any(|c| c.release == Release::Go(v)),
            "{v} missing"
        );
    }
    for m in Variant::ALL {
        assert!(cells.iter().any(|c| c.variant == m), "{m:?} missing");
    }
    assert!(cells.iter().any(|c| c.release == Release::Debian119));
    assert!(
        cells.len() <= FULL_MATRIX.len().max(Variant::ALL.len()) + 1,
        "the slice stays small: {} cells",
        cells.len()
    );
}
