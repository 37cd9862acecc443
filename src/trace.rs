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
use crate::script::types::{self, TypeBook};
use crate::script::{self, Origin, PatternMatcher, Runtime, Script};
use crate::sink::{JsonSink, PrettySink};

/// Output formats of `run` and `attach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An indented tree per trace, readable in a terminal.
    Pretty,
    /// One JSON object per span per line, then a summary line.
    Json,
}

/// What to hook and where the spans go.
#[derive(Debug, Clone)]
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
}

/// Where spans go: the `--format` output plus the exporters (`--otlp`, `--chrome-trace`).
type Sink = Outputs;

/// The `--format` output, to a file or standard error, and the exporters asked for.
fn open_sink(opts: &HookOptions) -> Result<Sink> {
    let out: Box<dyn Write> = match &opts.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        // Buffered: a line-per-span write(2) to an unbuffered stderr would slow the consumer
        // enough to drop records. The sinks flush at the end.
        None => Box::new(BufWriter::new(std::io::stderr())),
    };
    let primary: Box<dyn SpanSink> = match opts.format {
        Format::Json => Box::new(JsonSink::new(out)),
        Format::Pretty => Box::new(PrettySink::new(out)),
    };
    Ok(
        Outputs::open(primary, opts.otlp.as_deref(), opts.chrome_trace.as_deref())?
            .stderr_shared(opts.output.is_none()),
    )
}

/// What each selected hook records beyond integer registers, and the hooks' types (from DWARF,
/// or from the scripts' SIGNATUREs).
fn types_and_captures(
    bin: &GoBinary,
    sel: &Selection,
    scripts: &[Script],
    by_hook: &[Vec<usize>],
    layout: &RingLayout,
) -> Result<(TypeBook, Vec<Captures>)> {
    let dwarf = if bin.has_dwarf() {
        Dwarf::load(&bin.elf).ok()
    } else {
        None
    };
    // Per hook, the first of its scripts that gives a SIGNATURE.
    let sig_script: Vec<Option<&Script>> = by_hook
        .iter()
        .map(|list| {
            list.iter()
                .map(|&i| &scripts[i])
                .find(|s| s.signature.is_some())
        })
        .collect();
    let requests: Vec<types::Request<'_>> = sel
        .hooks
        .iter()
        .zip(&sig_script)
        .map(|(h, s)| types::Request {
            function: &h.func.name,
            signature: s.and_then(|s| Some((s.name.as_str(), s.signature.as_deref()?))),
        })
        .collect();
    let book = types::resolve(bin, dwarf.as_ref(), &requests, |i| {
        sig_script[i].is_some_and(|s| s.origin != Origin::Bundled)
    })?;
    let captures = book
        .funcs
        .iter()
        .map(|f| capture::for_types(&book.table, f.as_ref().ok(), layout.slot_size()))
        .collect();
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
) -> (Collector<Sink>, Option<Rc<Cell<bool>>>) {
    let clock = TscClock::calibrate(Duration::from_millis(20));
    let col = Collector::new(inst.functions.clone(), clock, sink)
        .with_string_params(captures.iter().map(|c| c.string_params.clone()).collect())
        .with_exit_coverage(inst.exits_complete.clone());
    match script_runtime(
        target,
        pid,
        scripts,
        by_hook,
        book,
        captures,
        &inst.functions,
    ) {
        Some((rt, gone)) => (col.with_scripts(rt), Some(gone)),
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
fn consume(inst: &mut Installed, col: &mut Collector<Sink>, mut done: impl FnMut() -> bool) {
    let mut last_drops = 0;
    let mut prev_now = rdtsc();
    let (mut iters, mut total, mut t_drain, mut t_adv) =
        (0u64, 0u64, Duration::ZERO, Duration::ZERO);
    let dbg = std::env::var_os("GOHOOK_DEBUG_CONSUMER").is_some();
    loop {
        let finished = done();
        let now = rdtsc();
        let t0 = Instant::now();
        let (n, bad) = engine::drain(&mut inst.ring, |e| col.push(e));
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
    let scripts = script::load(&opts.scripts, opts.default_scripts)?;
    let layout = engine::ring_layout(opts.ring_slots)?;
    let (file_sel, file_bind) = select(&file, 0, &opts.globs, &scripts)?;
    // Types (and SIGNATURE errors) from the file; the process runs the same file, so they are
    // reused unless the selection there differs.
    let mut planned = Some((
        names_of(&file_sel),
        types_and_captures(&file, &file_sel, &scripts, &file_bind, &layout)?,
    ));
    let mut sink = Some(open_sink(opts)?);

    let launched = injector::launch(program, args, Duration::from_secs(5))
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = launched.pid;
    let mut world = launched.world;
    let result = (|| -> Result<Prepared> {
        let target = Target::open(None, Some(pid))?;
        let (sel, by_hook) = select(&target.binary, target.bias, &opts.globs, &scripts)?;
        let (book, captures) = match planned.take() {
            Some((names, tc)) if names == names_of(&sel) => tc,
            _ => types_and_captures(&target.binary, &sel, &scripts, &by_hook, &layout)?,
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
    let (mut col, gone_switch) =
        pipeline(&inst, &captures, sink, &target, pid, scripts, by_hook, book);
    let mut status = None;
    consume(&mut inst, &mut col, || {
        if status.is_none() {
            status = injector::launch::try_wait_exit(pid).ok().flatten();
        }
        // From now on scripts read only the file: the pid is free for reuse.
        if let (Some(_), Some(g)) = (&status, &gone_switch) {
            g.set(true);
        }
        status.is_some()
    });
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

/// `gohook attach`: hooks the running process `pid` until it exits, SIGINT/SIGTERM, or
/// `duration`; then removes every patch (the original bytes come back exactly) and detaches.
pub fn attach(pid: i32, duration: Option<Duration>, opts: &HookOptions) -> Result<()> {
    let scripts = script::load(&opts.scripts, opts.default_scripts)?;
    let target = Target::open(None, Some(pid))?;
    let layout = engine::ring_layout(opts.ring_slots)?;
    let (sel, by_hook) = select(&target.binary, target.bias, &opts.globs, &scripts)?;
    let (book, captures) = types_and_captures(&target.binary, &sel, &scripts, &by_hook, &layout)?;
    let sink = open_sink(opts)?;
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
    let (mut col, gone_switch) =
        pipeline(&inst, &captures, sink, &target, pid, scripts, by_hook, book);
    let begun = Instant::now();
    let mut gone = false;
    consume(&mut inst, &mut col, || {
        gone = !alive(pid);
        gone || STOP.load(Ordering::SeqCst) || duration.is_some_and(|d| begun.elapsed() >= d)
    });
    if gone {
        eprintln!("gohook: pid {pid} exited");
        if let Some(g) = &gone_switch {
            g.set(true);
        }
    } else {
        for id in 0..inst.functions.len() {
            let _ = inst.ring.set_enabled(id as u32, false);
        }
        inst.patches
            .revert_in(AttachOptions::default())
            .context("removing the hooks")?;
        // Records written between the last drain and the disable.
        consume(&mut inst, &mut col, || true);
    }
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
