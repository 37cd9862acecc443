//! The two ways to trace: launch a program with hooks installed before its first instruction
//! (`gohook run`), or hook a running process for a while (`gohook attach`). Both install the
//! hooks with the world stopped, detach at once, and then only read the shared ring until the
//! end; `attach` re-attaches at the end to restore every original byte.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gostrings::dwarf::Dwarf;
use gostrings::goroutines::{GLayout, GoroutineScanner};
use gostrings::GoBinary;
use injector::{AttachOptions, World};
use trampolines::ring_layout::RingLayout;

use crate::capture::{self, Captures};
use crate::clock::{rdtsc, TscClock};
use crate::collector::{Collector, SpanSink, Stats};
use crate::commands::target::Target;
use crate::engine::{self, Installed};
use crate::export::{Outputs, Process};
use crate::glob::Glob;
use crate::hookplan::{self, SelectError, Selection};
use crate::lines::{LinesView, Predicate};
use crate::record::Recorder;
use crate::script::types::{self, TypeBook};
use crate::script::{self, Origin, PatternMatcher, Runtime, Script};
use crate::sink::{JsonSink, PrettySink};
use crate::status::{CountSpans, Erasing, LiveStatus, NullSink};

/// Output formats of `run` and `attach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An indented tree per trace, readable in a terminal.
    #[default]
    Pretty,
    /// One JSON object per span per line, then a summary line.
    Json,
    /// One line per call and per return, written as the records arrive, with Go arguments and
    /// results decoded (the `gohook trace` view).
    Lines,
}

/// What to hook and where the spans go.
#[derive(Debug, Clone, Default)]
pub struct HookOptions {
    /// Globs selecting functions (`-f`).
    pub globs: Vec<String>,
    /// Output format.
    pub format: Format,
    /// Output file; standard error when `None`.
    pub output: Option<PathBuf>,
    /// Records per thread ring (power of two).
    pub ring_slots: u32,
    /// Hook returns too (durations, results); `false` hooks entries only.
    pub exits: bool,
    /// Also export spans over OTLP/HTTP: `Some("")` takes the endpoint from the environment
    /// (see `export::otlp::resolve_endpoint`).
    pub otlp: Option<String>,
    /// Also write a Chrome trace JSON file.
    pub chrome_trace: Option<PathBuf>,
    /// Hook scripts (`-s`): files or directories of `.rhai` files, in order.
    pub scripts: Vec<PathBuf>,
    /// Load the bundled scripts too (`--no-default-scripts` turns them off).
    pub default_scripts: bool,
    /// `--signature`s: (function, Go signature), the types of functions DWARF does not describe.
    pub signatures: Vec<(String, String)>,
    /// What `--format lines` shows.
    pub view: crate::lines::ViewOptions,
    /// Sensitive data the user opted in to capture (`--capture-*`), as scripts see it.
    pub capture: script::redact::Capture,
    /// `gohook record`: write the hook records to this file; spans are not printed and scripts
    /// do not run live (they run at `gohook replay`).
    pub record: Option<PathBuf>,
    /// `--summary`, `--summary-json`.
    pub summary: crate::summary::SummaryOptions,
}

/// Where spans go: the `--format` output plus the exporters (`--otlp`, `--chrome-trace`).
type Sink = Outputs;

/// The `--format` output: the file of `-o`, or standard error (which the live status line
/// shares).
fn open_output(opts: &HookOptions) -> Result<Box<dyn Write>> {
    Ok(match &opts.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        // Buffered: a line-per-span write(2) to an unbuffered stderr would slow the consumer
        // enough to drop records. The sinks flush at the end.
        None => Box::new(BufWriter::new(Erasing(std::io::stderr()))),
    })
}

/// The `--format` output, to a file or standard error, and the exporters asked for; spans are
/// counted in `spans`. For `--format lines` the output goes to the lines view instead (the
/// spans still go to the exporters): it is returned.
fn open_sink(opts: &HookOptions, spans: &Rc<Cell<u64>>) -> Result<(Sink, Option<Box<dyn Write>>)> {
    let out = open_output(opts)?;
    let (primary, rest): (Box<dyn SpanSink>, _) = match opts.format {
        Format::Json => (Box::new(JsonSink::new(out)), None),
        Format::Pretty => (Box::new(PrettySink::new(out)), None),
        Format::Lines => (Box::new(NullSink), Some(out)),
    };
    let primary: Box<dyn SpanSink> = if opts.record.is_some() {
        Box::new(NullSink)
    } else {
        primary
    };
    let primary: Box<dyn SpanSink> = if opts.summary.wanted() {
        Box::new(crate::summary::SummarySink::new(
            primary,
            opts.summary.clone(),
        ))
    } else {
        primary
    };
    let primary = Box::new(CountSpans::new(primary, spans.clone()));
    Ok((
        Outputs::open(primary, opts.otlp.as_deref(), opts.chrome_trace.as_deref())?
            .stderr_shared(opts.output.is_none()),
        rest,
    ))
}

/// The record file of `gohook record`, created before anything is started or attached.
fn open_recorder(opts: &HookOptions) -> Result<Option<Recorder>> {
    Ok(match &opts.record {
        Some(p) => Some(Recorder::create(p)?),
        None => None,
    })
}

/// The compiled `--where` of the lines view (before anything is started or attached).
fn where_predicate(opts: &HookOptions) -> Result<Option<Predicate>> {
    match (&opts.view.predicate, opts.format) {
        (Some(p), Format::Lines) => Ok(Some(Predicate::compile(p).map_err(anyhow::Error::msg)?)),
        _ => Ok(None),
    }
}

/// What is fed alongside the collector: the lines view (`--format lines`) and the live status
/// line (standard error on a terminal).
struct Views {
    lines: Option<LinesView<Box<dyn Write>>>,
    status: Option<LiveStatus>,
    /// Tells the lines view's memory the target has exited.
    gone: Option<Rc<Cell<bool>>>,
}

impl Views {
    /// The views of a trace of `pid` whose hooks are installed: the lines view writes to
    /// `out` (`Some` for `--format lines`).
    #[allow(clippy::too_many_arguments)]
    fn new(
        opts: &HookOptions,
        out: Option<Box<dyn Write>>,
        inst: &Installed,
        target: &Target,
        pid: i32,
        book: &TypeBook,
        captures: &[Captures],
        spans: Rc<Cell<u64>>,
        predicate: Option<Predicate>,
    ) -> Views {
        let status = LiveStatus::if_terminal(inst.functions.len(), spans);
        let (lines, gone) = match out {
            Some(out) => {
                let mem = script::memory::TargetMemory::new(
                    Some(pid),
                    target.binary.elf.clone(),
                    target.bias,
                );
                let gone = mem.gone_switch();
                let decoder = crate::lines::decoder_for(
                    &target.binary,
                    target.bias,
                    book,
                    crate::lines::limits_for(opts.view.verbosity),
                );
                let view = LinesView::new(
                    out,
                    opts.view.clone(),
                    predicate,
                    &inst.functions,
                    book,
                    captures,
                    decoder,
                    Rc::new(mem),
                    TscClock::calibrate(Duration::from_millis(20)),
                )
                .with_exit_coverage(inst.exits_complete.clone());
                (Some(view), Some(gone))
            }
            None => (None, None),
        };
        Views {
            lines,
            status,
            gone,
        }
    }

    /// Says the target has exited.
    fn target_gone(&self) {
        if let Some(g) = &self.gone {
            g.set(true);
        }
    }

    /// Ends the views: the status line is wiped, the lines view writes what it holds.
    fn finish(mut self) -> Result<()> {
        if let Some(s) = &mut self.status {
            s.clear();
        }
        if let Some(l) = self.lines.take() {
            l.finish().context("writing lines")?;
        }
        Ok(())
    }
}

/// What each selected hook records beyond integer registers, and the hooks' types (from DWARF,
/// or from the scripts' SIGNATUREs).
fn types_and_captures(
    bin: &GoBinary,
    sel: &Selection,
    scripts: &[Script],
    by_hook: &[Vec<usize>],
    layout: &RingLayout,
    signatures: &[(String, String)],
) -> Result<(TypeBook, Vec<Captures>)> {
    if let Some((f, _)) = signatures
        .iter()
        .find(|(f, _)| !sel.hooks.iter().any(|h| &h.func.name == f))
    {
        bail!("--signature for {f}: -f does not hook {f}");
    }
    let dwarf = if bin.has_dwarf() {
        Dwarf::load(&bin.elf).ok()
    } else {
        None
    };
    // Per hook, the first of its scripts that gives a SIGNATURE.
    // Every hook gets a request (without scripts `by_hook` is empty: types still come from
    // DWARF or a --signature).
    let sig_script: Vec<Option<&Script>> = (0..sel.hooks.len())
        .map(|h| {
            by_hook.get(h).and_then(|list| {
                list.iter()
                    .map(|&i| &scripts[i])
                    .find(|s| s.signature.is_some())
            })
        })
        .collect();
    let requests: Vec<types::Request<'_>> = sel
        .hooks
        .iter()
        .zip(&sig_script)
        .map(|(h, s)| types::Request {
            function: &h.func.name,
            signature: s
                .and_then(|s| Some((s.name.as_str(), s.signature.as_deref()?)))
                .or_else(|| {
                    signatures
                        .iter()
                        .find(|(f, _)| *f == h.func.name)
                        .map(|(_, sig)| ("--signature", sig.as_str()))
                }),
        })
        .collect();
    let book = types::resolve(bin, dwarf.as_ref(), &requests, |i| {
        // A user's script or a --signature: its problems stop gohook.
        sig_script[i].is_none_or(|s| s.origin != Origin::Bundled)
    })?;
    let mut captures = Vec::with_capacity(book.funcs.len());
    for (h, f) in book.funcs.iter().enumerate() {
        let list: Vec<&Script> = by_hook
            .get(h)
            .map(|l| l.iter().map(|&i| &scripts[i]).collect())
            .unwrap_or_default();
        let paths: Vec<capture::PathRequest> = list
            .iter()
            .flat_map(|s| s.capture.iter().cloned())
            .collect();
        let c = capture::for_types(&book.table, f.as_ref().ok(), layout.slot_size(), &paths)
            .map_err(|e| {
                let names: Vec<&str> = list
                    .iter()
                    .filter(|s| !s.capture.is_empty())
                    .map(|s| s.name.as_str())
                    .collect();
                crate::script::LoadError::Invalid {
                    file: names.join(", "),
                    message: format!("CAPTURE for {}: {e}", sel.hooks[h].func.name),
                }
            })?;
        captures.push(c);
    }
    Ok((book, captures))
}

/// Selects the functions matching `globs` (`-f`) and the scripts' HOOK patterns, and says which
/// scripts run on each selected function. A `-f` glob or a user script's pattern matching
/// nothing hookable is an error naming the closest functions; a bundled script's is skipped.
fn select(
    bin: &GoBinary,
    bias: u64,
    globs: &[String],
    scripts: &[Script],
) -> Result<(Selection, Vec<Vec<usize>>)> {
    let compiled: Vec<(String, Glob)> = globs.iter().map(|g| (g.clone(), Glob::new(g))).collect();
    let mut sel = if globs.is_empty() {
        Selection::default()
    } else {
        hookplan::select(bin, bias, globs, |glob, name| {
            compiled.iter().any(|(g, c)| g == glob && c.matches(name))
        })?
    };
    if scripts.is_empty() {
        return Ok((sel, Vec::new()));
    }
    let names: Vec<String> = bin
        .pclntab
        .funcs()
        .filter_map(|f| f.ok().map(|f| f.name))
        .collect();
    let name_set: HashSet<&str> = names.iter().map(String::as_str).collect();
    let matcher = PatternMatcher::new(
        scripts
            .iter()
            .flat_map(|s| s.hooks.iter().map(String::as_str)),
        &name_set,
    );
    for s in scripts {
        for pat in &s.hooks {
            match hookplan::select(bin, bias, std::slice::from_ref(pat), |p, n| {
                matcher.matches(p, n)
            }) {
                Ok(more) => merge(&mut sel, more),
                Err(SelectError::NoHookableMatch { .. }) if s.origin == Origin::Bundled => {}
                Err(SelectError::NoHookableMatch {
                    glob,
                    closest,
                    refused,
                }) => bail!(hookplan::describe_no_match(
                    &format!("{}: HOOK {glob:?}", s.name),
                    &closest,
                    &refused
                )),
                Err(e) => return Err(e.into()),
            }
        }
    }
    if sel.hooks.is_empty() {
        bail!(
            "nothing to hook: no bundled script's function is in this program; give -f GLOB or -s SCRIPT"
        );
    }
    let functions: Vec<String> = sel.hooks.iter().map(|h| h.func.name.clone()).collect();
    let by_hook = script::bind(scripts, &functions, &matcher);
    Ok((sel, by_hook))
}

/// Adds the functions of `more` not yet in `sel`.
fn merge(sel: &mut Selection, more: Selection) {
    for h in more.hooks {
        if !sel.hooks.iter().any(|x| x.func.entry == h.func.entry) {
            sel.hooks.push(h);
        }
    }
    for r in more.refused {
        if !sel.refused.contains(&r) {
            sel.refused.push(r);
        }
    }
}

/// The span pipeline of a hooked process: a collector over `sink` for the installed hooks, with
/// the scripts bound to them, and the switch that tells the scripts the target is gone.
#[allow(clippy::too_many_arguments)]
fn pipeline(
    inst: &Installed,
    captures: &[Captures],
    sink: Sink,
    target: &Target,
    pid: i32,
    scripts: Vec<Script>,
    by_hook: Vec<Vec<usize>>,
    book: TypeBook,
    rec: Option<Recorder>,
    capture: script::redact::Capture,
) -> (Collector<Sink>, Option<Rc<Cell<bool>>>) {
    let clock = TscClock::calibrate(Duration::from_millis(20));
    let rec = rec.map(|mut r| {
        r.start(&crate::record::meta_for(
            target,
            pid,
            &inst.functions,
            &inst.exits_complete,
            captures,
            &clock,
        ));
        r
    });
    let col = Collector::new(inst.functions.clone(), clock, sink)
        .with_string_params(captures.iter().map(|c| c.string_params.clone()).collect())
        .with_exit_coverage(inst.exits_complete.clone());
    if let Some(r) = rec {
        // Recording: the scripts run at replay, on the records.
        return (col.with_tap(Box::new(r)), None);
    }
    match script_runtime(
        target,
        pid,
        scripts,
        by_hook,
        book,
        captures,
        &inst.functions,
    ) {
        Some((rt, gone)) => (col.with_scripts(rt.with_reload(capture)), Some(gone)),
        None => (col, None),
    }
}

/// The scripts' runtime for the hooked process `pid`, when any hook has a script; and the
/// switch that tells its memory the process has exited.
fn script_runtime(
    target: &Target,
    pid: i32,
    scripts: Vec<Script>,
    by_hook: Vec<Vec<usize>>,
    book: TypeBook,
    captures: &[Captures],
    functions: &[String],
) -> Option<(Runtime, Rc<Cell<bool>>)> {
    if by_hook.iter().all(Vec::is_empty) {
        return None;
    }
    let mem = script::memory::TargetMemory::new(Some(pid), target.binary.elf.clone(), target.bias);
    let gone = mem.gone_switch();
    let rt = script::runtime_for(
        &target.binary,
        target.bias,
        scripts,
        by_hook,
        book,
        captures,
        functions,
        Rc::new(mem),
    );
    Some((rt, gone))
}

fn report_script_errors(stats: &Stats) {
    if stats.script_errors > 0 {
        eprintln!(
            "gohook: {} hook-script error{} (each distinct message printed once)",
            stats.script_errors,
            if stats.script_errors == 1 { "" } else { "s" }
        );
    }
}

/// What `run` prepared and installed while the new process was stopped.
struct Prepared {
    sel: Selection,
    inst: Installed,
    pause: Duration,
    captures: Vec<Captures>,
    book: TypeBook,
    by_hook: Vec<Vec<usize>>,
    target: Target,
}

fn names_of(sel: &Selection) -> Vec<String> {
    sel.hooks.iter().map(|h| h.func.name.clone()).collect()
}

/// One line on standard error saying what was hooked (and what was not, and why).
fn announce(pid: i32, sel: &Selection, inst: &Installed, pause: Duration) {
    let mut msg = format!(
        "gohook: pid {pid}: hooked {} function{} ({} return site{}) in {:.1} ms stopped",
        sel.hooks.len(),
        if sel.hooks.len() == 1 { "" } else { "s" },
        inst.exits_patched,
        if inst.exits_patched == 1 { "" } else { "s" },
        pause.as_secs_f64() * 1e3,
    );
    if inst.threads_moved > 0 {
        msg.push_str(&format!(
            "; {} thread(s) stepped out of patch sites",
            inst.threads_moved
        ));
    }
    if !sel.refused.is_empty() {
        msg.push_str(&format!(
            "; {} matched function(s) refused",
            sel.refused.len()
        ));
    }
    eprintln!("{msg}");
    for (name, why) in sel.refused.iter().take(10) {
        eprintln!("gohook:   not hooked: {name}: {why}");
    }
    for (name, why) in inst.exits_skipped.iter().take(10) {
        eprintln!("gohook:   return not hooked: {name}: {why}");
    }
}

/// Reads the rings until `done()` says stop, feeding the collector.
fn consume(
    inst: &mut Installed,
    col: &mut Collector<Sink>,
    views: &mut Views,
    mut done: impl FnMut() -> bool,
) {
    let mut last_drops = 0;
    let mut prev_now = rdtsc();
    let (mut iters, mut total, mut t_drain, mut t_adv) =
        (0u64, 0u64, Duration::ZERO, Duration::ZERO);
    let dbg = std::env::var_os("GOHOOK_DEBUG_CONSUMER").is_some();
    loop {
        let finished = done();
        let now = rdtsc();
        let t0 = Instant::now();
        let (n, bad) = engine::drain(&mut inst.ring, |e| {
            if let Some(l) = &mut views.lines {
                l.push(e.clone());
            }
            col.push(e)
        });
        t_drain += t0.elapsed();
        iters += 1;
        total += n;
        let drops = inst.ring.drops();
        col.add_dropped_between(drops.saturating_sub(last_drops), prev_now, now);
        prev_now = now;
        col.add_bad(bad);
        last_drops = drops;
        let t1 = Instant::now();
        col.advance(now);
        if let Some(l) = &mut views.lines {
            l.advance(now);
        }
        if let Some(s) = &mut views.status {
            s.tick(n, drops);
        }
        t_adv += t1.elapsed();
        if finished {
            if dbg {
                eprintln!("gohook: consumer: {iters} drains, {total} records, {t_drain:?} draining, {t_adv:?} processing");
            }
            return;
        }
        // Drain in batches: while the rings fill slowly, let records pile up for a poll period
        // rather than reading each slot just after the target wrote it (every such read pulls
        // the line away from the writing core and the next write must take it back).
        if n < inst.ring.layout().slots_per_ring() as u64 / 4 {
            std::thread::sleep(engine::IDLE_POLL);
        }
    }
}

/// `gohook run`: starts `program` stopped at exec, hooks it before any of its code runs, lets
/// it run with its standard streams, and returns its exit status as a shell would.
pub fn run(program: &Path, args: &[OsString], opts: &HookOptions) -> Result<i32> {
    // Plan against the file first, so a bad glob fails before anything is started.
    let path = resolve_program(program)?;
    let file = GoBinary::open(&path).with_context(|| path.display().to_string())?;
    let mut scripts = script::load(&opts.scripts, opts.default_scripts)?;
    script::configure(&mut scripts, &opts.capture);
    let layout = engine::ring_layout(opts.ring_slots)?;
    let (file_sel, file_bind) = select(&file, 0, &opts.globs, &scripts)?;
    // Types (and SIGNATURE errors) from the file; the process runs the same file, so they are
    // reused unless the selection there differs.
    let mut planned = Some((
        names_of(&file_sel),
        types_and_captures(
            &file,
            &file_sel,
            &scripts,
            &file_bind,
            &layout,
            &opts.signatures,
        )?,
    ));
    let predicate = where_predicate(opts)?;
    let spans = Rc::new(Cell::new(0));
    let (sink, lines_out) = open_sink(opts, &spans)?;
    let rec = open_recorder(opts)?;
    let (mut sink, mut lines_out) = (Some(sink), Some(lines_out));

    let launched = injector::launch(program, args, Duration::from_secs(5))
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = launched.pid;
    let mut world = launched.world;
    let result = (|| -> Result<Prepared> {
        let target = Target::open(None, Some(pid))?;
        let (sel, by_hook) = select(&target.binary, target.bias, &opts.globs, &scripts)?;
        let (book, captures) = match planned.take() {
            Some((names, tc)) if names == names_of(&sel) => tc,
            _ => types_and_captures(
                &target.binary,
                &sel,
                &scripts,
                &by_hook,
                &layout,
                &opts.signatures,
            )?,
        };
        let started = Instant::now();
        let inst = engine::install(
            &mut world,
            &target.binary,
            target.bias,
            &sel.hooks,
            &captures,
            layout,
            opts.exits,
            // At the exec stop the Go runtime has not started: no goroutine exists yet, so none
            // can be parked inside an epilogue and every exit site is safe to patch.
            |_, _| Ok(true),
        )?;
        Ok(Prepared {
            pause: started.elapsed(),
            sel,
            inst,
            captures,
            book,
            by_hook,
            target,
        })
    })();
    let Prepared {
        sel,
        mut inst,
        pause,
        captures,
        book,
        by_hook,
        target,
    } = match result {
        Ok(x) => x,
        Err(e) => {
            // Never leave a half-hooked child behind: it was started by us and has run nothing.
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            drop(world);
            let _ = injector::wait_exit(pid);
            return Err(e);
        }
    };
    world.detach().context("detaching")?;
    announce(pid, &sel, &inst, pause);
    injector::launch::forward_signals(pid)?;

    let sink = sink.take().expect("sink").started(&Process::of(pid, &file));
    let lines_out = lines_out.take().flatten();
    let mut views = Views::new(
        opts, lines_out, &inst, &target, pid, &book, &captures, spans, predicate,
    );
    let (mut col, gone_switch) = pipeline(
        &inst,
        &captures,
        sink,
        &target,
        pid,
        scripts,
        by_hook,
        book,
        rec,
        opts.capture,
    );
    let mut status = None;
    let lines_gone = views.gone.clone();
    let mut watch = ImageWatch::new(pid, &inst.patches);
    let mut replaced = false;
    consume(&mut inst, &mut col, &mut views, || {
        if status.is_none() {
            status = injector::launch::try_wait_exit(pid).ok().flatten();
        }
        if status.is_none() && !replaced && watch.replaced() {
            // The program exec'd: what runs now is not hooked, and scripts must not read it.
            replaced = true;
            eprintln!(
                "gohook: pid {pid} replaced its program (exec): the new program is not hooked"
            );
            for g in [&gone_switch, &lines_gone].into_iter().flatten() {
                g.set(true);
            }
        }
        // From now on scripts read only the file: the pid is free for reuse.
        if let (Some(_), Some(g)) = (&status, &gone_switch) {
            g.set(true);
        }
        if let (Some(_), Some(g)) = (&status, &lines_gone) {
            g.set(true);
        }
        status.is_some()
    });
    views.finish()?;
    let stats = col.finish().context("writing spans")?;
    report_drops(&stats);
    report_script_errors(&stats);
    let status = status.expect("loop ends only on exit");
    if let injector::ExitStatus::Signaled { signal, .. } = status {
        eprintln!("gohook: pid {pid} was killed by signal {signal}");
    }
    Ok(status.code())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t);
        }
    }
}

fn alive(pid: i32) -> bool {
    // A zombie still has /proc/N; its state letter is Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// How process `pid` ended, from its zombie's `/proc/PID/stat` (`exit_code`, field 52) while
/// its parent has not reaped it: "exited with status N" or "was killed by signal N"; just
/// "exited" once it is reaped.
fn exit_words(pid: i32) -> String {
    let code = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
            // Fields from 3 (state) on; exit_code is field 52.
            if rest.first() != Some(&"Z") {
                return None;
            }
            rest.get(52 - 3)?.parse::<i32>().ok()
        });
    match code {
        Some(c) if c & 0x7f == 0 => format!("exited with status {}", (c >> 8) & 0xff),
        Some(c) => format!("was killed by signal {}", c & 0x7f),
        None => "exited".to_owned(),
    }
}

/// Notices that a hooked process replaced its program (execve): the first patch site no longer
/// holds gohook's jump (the new image has the file's bytes there, or nothing mapped). Then the
/// hooks, trampolines and ring went with the old image and nothing may be written into the new
/// one. Looks at most every [`ImageWatch::EVERY`].
struct ImageWatch {
    pid: i32,
    probe: Option<injector::Patch>,
    last: Instant,
}

impl ImageWatch {
    const EVERY: Duration = Duration::from_millis(100);

    fn new(pid: i32, patches: &injector::PatchSet) -> ImageWatch {
        ImageWatch {
            pid,
            probe: patches.patches().first().cloned(),
            last: Instant::now(),
        }
    }

    /// [`ImageWatch::replaced_now`], at most every [`ImageWatch::EVERY`].
    fn replaced(&mut self) -> bool {
        if self.last.elapsed() < Self::EVERY {
            return false;
        }
        self.last = Instant::now();
        self.replaced_now()
    }

    /// True when the live process no longer has gohook's bytes at the first patch site.
    fn replaced_now(&self) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(p) = &self.probe else { return false };
        let mut buf = vec![0u8; p.new.len()];
        match File::open(format!("/proc/{}/mem", self.pid))
            .and_then(|f| f.read_exact_at(&mut buf, p.addr))
        {
            Ok(()) => buf != p.new,
            // Unreadable while it lives: the address is no longer mapped.
            Err(_) => alive(self.pid),
        }
    }
}

/// `gohook attach`: hooks the running process `pid` until it exits, SIGINT/SIGTERM, or
/// `duration`; then removes every patch (the original bytes come back exactly) and detaches.
pub fn attach(pid: i32, duration: Option<Duration>, opts: &HookOptions) -> Result<()> {
    let mut scripts = script::load(&opts.scripts, opts.default_scripts)?;
    script::configure(&mut scripts, &opts.capture);
    let target = Target::open(None, Some(pid))?;
    let layout = engine::ring_layout(opts.ring_slots)?;
    let (sel, by_hook) = select(&target.binary, target.bias, &opts.globs, &scripts)?;
    let (book, captures) = types_and_captures(
        &target.binary,
        &sel,
        &scripts,
        &by_hook,
        &layout,
        &opts.signatures,
    )?;
    let predicate = where_predicate(opts)?;
    let spans = Rc::new(Cell::new(0));
    let (sink, lines_out) = open_sink(opts, &spans)?;
    let rec = open_recorder(opts)?;
    catch_stop_signals();
    // Everything that reads only the file (the g layout may come from DWARF) is done before the
    // world is stopped, to keep the pause short.
    let g_layout = GLayout::for_binary(&target.binary).map_err(|e| e.to_string());
    let started = Instant::now();
    let mut world = World::stop(pid, AttachOptions::default())?;
    // Exit sites whose epilogue interior is an async safe point are patched only when no parked
    // goroutine can resume there: every goroutine's resume PCs are read once, world stopped.
    let mut parked: Option<std::result::Result<Vec<u64>, String>> = None;
    let installed = engine::install(
        &mut world,
        &target.binary,
        target.bias,
        &sel.hooks,
        &captures,
        layout,
        opts.exits,
        |world: &mut World, pcs: &[u64]| {
            let scan = parked.get_or_insert_with(|| {
                let mem = world.memory();
                let layout = g_layout.clone()?;
                let scanner =
                    GoroutineScanner::with_layout(&mem, &target.binary, target.bias, layout)
                        .map_err(|e| e.to_string())?;
                let mut pcs: Vec<u64> = scanner
                    .goroutines(&mem)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .flat_map(|g| g.resume_pcs)
                    .collect();
                // A thread returning through asyncPreempt resumes at the interrupted PC too.
                for tid in world.tids() {
                    let regs = world.regs(tid).map_err(|e| e.to_string())?;
                    pcs.extend(
                        scanner
                            .thread_resume_pcs(&mem, regs.rip, regs.rsp)
                            .map_err(|e| e.to_string())?,
                    );
                }
                Ok(pcs)
            });
            Ok(match scan {
                Ok(all) => !pcs.iter().any(|pc| all.contains(pc)),
                Err(_) => false,
            })
        },
    );
    if let Some(Err(e)) = &parked {
        eprintln!("gohook: cannot list the goroutines ({e}); returns are not hooked");
    }
    let pause = started.elapsed();
    let detached = world.detach();
    let mut inst = installed?;
    detached.context("detaching")?;
    announce(pid, &sel, &inst, pause);

    let sink = sink.started(&Process::of(pid, &target.binary));
    let mut views = Views::new(
        opts, lines_out, &inst, &target, pid, &book, &captures, spans, predicate,
    );
    let (mut col, gone_switch) = pipeline(
        &inst,
        &captures,
        sink,
        &target,
        pid,
        scripts,
        by_hook,
        book,
        rec,
        opts.capture,
    );
    let begun = Instant::now();
    let mut gone = false;
    let mut replaced = false;
    let mut watch = ImageWatch::new(pid, &inst.patches);
    consume(&mut inst, &mut col, &mut views, || {
        gone = !alive(pid);
        replaced = !gone && watch.replaced();
        gone || replaced
            || STOP.load(Ordering::SeqCst)
            || duration.is_some_and(|d| begun.elapsed() >= d)
    });
    if !gone && !replaced {
        for id in 0..inst.functions.len() {
            let _ = inst.ring.set_enabled(id as u32, false);
        }
        let reverted = inst.patches.revert_in(AttachOptions::default());
        if let Err(e) = reverted {
            // The target may have exited or exec'd between the last look and the stop: then
            // there is nothing to restore, and that is what gohook says.
            gone = !alive(pid);
            replaced = !gone && watch.replaced_now();
            if !gone && !replaced {
                return Err(anyhow::Error::new(e).context("removing the hooks"));
            }
        }
        // Records written between the last drain and the disable.
        consume(&mut inst, &mut col, &mut views, || true);
        // No trampoline can run any more: the ring's pages go back, so the mapping left in the
        // target holds no memory (it would otherwise keep every page the hooks wrote).
        if !gone && !replaced {
            if let Err(e) = inst.ring.release_pages() {
                eprintln!("gohook: {e}");
            }
        }
    }
    if gone || replaced {
        if gone {
            eprintln!("gohook: pid {pid} {}", exit_words(pid));
        } else {
            eprintln!(
                "gohook: pid {pid} replaced its program (exec): the hooks went with the old image, nothing to restore"
            );
        }
        if let Some(g) = &gone_switch {
            g.set(true);
        }
        views.target_gone();
    }
    views.finish()?;
    let stats = col.finish().context("writing spans")?;
    report_drops(&stats);
    report_script_errors(&stats);
    Ok(())
}

fn report_drops(stats: &Stats) {
    if stats.dropped > 0 {
        eprintln!(
            "gohook: {} records dropped (rings full: gohook could not keep up)",
            stats.dropped
        );
    }
}

/// `program` as the kernel will run it: a path with a slash as given, otherwise the first
/// executable of that name in `PATH`.
fn resolve_program(program: &Path) -> Result<PathBuf> {
    if program.as_os_str().to_string_lossy().contains('/') {
        return Ok(program.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{} not found in PATH", program.display()))
}
