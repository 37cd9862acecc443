//! `gohook replay FILE`: turns a record file back into spans, through the same collector a live
//! trace uses, to any output (`--format`, `-o`, `--otlp`, `--chrome-trace`, `--summary`).
//!
//! Hook scripts run again when the traced binary is at hand (`--binary`, or the recorded path
//! if the file there is the same binary): they see the recorded registers and copied string
//! bytes, and the executable's read-only data; reads through pointers into the heap or stacks
//! fail with an error saying live memory is not in a record. Without the binary the calls become
//! the default spans (one per call, named after the function, string arguments as attributes).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use gostrings::dwarf::Dwarf;
use gostrings::elf::ElfFile;
use gostrings::{GoBinary, MemError, MemoryReader};

use crate::cli::{ReplayArgs, ReplayFormat};
use crate::clock::TscClock;
use crate::collector::{Collector, SpanSink};
use crate::export::{Outputs, Process};
use crate::record::{self, Item, Meta, RecordReader, Tail};
use crate::script::{self, PatternMatcher, Runtime};
use crate::sink::{JsonSink, PrettySink};
use crate::summary::{SummaryOptions, SummarySink};

/// A collector for the hooks of `meta`, with the calibration `clock`, emitting to `sink`.
pub fn collector_for<S: SpanSink>(meta: &Meta, clock: (u64, u64, f64), sink: S) -> Collector<S> {
    Collector::new(
        meta.hooks.iter().map(|h| h.function.clone()).collect(),
        TscClock::from_parts(clock.0, clock.1, clock.2),
        sink,
    )
    .with_string_params(meta.hooks.iter().map(|h| h.string_params.clone()).collect())
    .with_exit_coverage(meta.hooks.iter().map(|h| h.exits_complete).collect())
}

/// Feeds every item of the record at `path` to `col`, as the live consumer did, and says how
/// the file ended.
pub fn feed<S: SpanSink>(path: &Path, col: &mut Collector<S>) -> Result<Tail> {
    let reader = RecordReader::open(path)?;
    Ok(reader.for_each(|item| match item {
        Item::Event(e) => col.push(e),
        Item::Dropped {
            n,
            from_tsc,
            to_tsc,
        } => col.add_dropped_between(n, from_tsc, to_tsc),
        Item::Bad(n) => col.add_bad(n),
        Item::Advance(tsc) => col.advance(tsc),
        Item::Clock(..) => {}
    }))
}

/// One line on standard error when the record was cut short or damaged.
pub fn warn_if_cut(path: &Path, tail: &Tail) {
    if let Tail::Cut { offset, reason } = tail {
        eprintln!(
            "gohook: {}: {reason}; read the first {offset} bytes",
            path.display()
        );
    }
}

/// Memory of a process that is not there: the executable's read-only data from the file, and
/// an error for everything else.
struct OfflineMemory {
    file: ElfFile,
    bias: u64,
    readonly: Vec<(u64, u64)>,
}

impl OfflineMemory {
    fn new(file: ElfFile, bias: u64) -> Self {
        const PF_W: u32 = 2;
        let readonly = file
            .segments
            .iter()
            .filter(|s| s.flags & PF_W == 0)
            .map(|s| (s.vaddr, s.vaddr.saturating_add(s.filesz.min(s.memsz))))
            .collect();
        OfflineMemory {
            file,
            bias,
            readonly,
        }
    }
}

impl MemoryReader for OfflineMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let link = addr.wrapping_sub(self.bias);
        let inside = link
            .checked_add(buf.len() as u64)
            .is_some_and(|end| self.readonly.iter().any(|&(a, b)| link >= a && end <= b));
        if inside {
            return self.file.read(link, buf);
        }
        Err(MemError::Process(
            "live memory is not in a record (a replay has the registers and copied string bytes only)"
                .into(),
        ))
    }
}

/// The traced binary for scripts: `explicit` (which must match the record), else the recorded
/// path when the file there is still the same binary. `Err` says why there is none.
fn find_binary(
    meta: &Meta,
    explicit: Option<&Path>,
) -> Result<std::result::Result<GoBinary, String>> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => PathBuf::from(&meta.binary.path),
    };
    let bin = match GoBinary::open(&path) {
        Ok(b) => b,
        Err(e) if explicit.is_some() => bail!("{}: {e}", path.display()),
        Err(_) => {
            return Ok(Err(format!(
                "the recorded binary {} is not here (give --binary PATH)",
                path.display()
            )))
        }
    };
    let found = record::BinaryIdentity::of(&bin, &path.display().to_string(), meta.binary.bias);
    if let Some(why) = meta.binary.mismatch(&found) {
        let msg = format!("{} is not the recorded binary ({why})", path.display());
        if explicit.is_some() {
            bail!(msg);
        }
        return Ok(Err(format!("{msg}; give --binary PATH")));
    }
    Ok(Ok(bin))
}

/// The scripts' runtime for replaying `meta`, when some script hooks a recorded function and
/// the binary is at hand.
fn replay_scripts(meta: &Meta, args: &ReplayArgs) -> Result<Option<Runtime>> {
    let mut scripts = script::load(&args.scripts, !args.no_default_scripts)?;
    script::configure(&mut scripts, &Default::default());
    let functions: Vec<String> = meta.hooks.iter().map(|h| h.function.clone()).collect();
    let names: HashSet<&str> = functions.iter().map(String::as_str).collect();
    let matcher = PatternMatcher::new(
        scripts
            .iter()
            .flat_map(|s| s.hooks.iter().map(String::as_str)),
        &names,
    );
    let by_hook = script::bind(&scripts, &functions, &matcher);
    if by_hook.iter().all(Vec::is_empty) {
        return Ok(None);
    }
    let bin = match find_binary(meta, args.binary.as_deref())? {
        Ok(b) => b,
        Err(why) => {
            eprintln!("gohook: hook scripts not run: {why}");
            return Ok(None);
        }
    };
    let dwarf = if bin.has_dwarf() {
        Dwarf::load(&bin.elf).ok()
    } else {
        None
    };
    let sig_script: Vec<Option<&script::Script>> = by_hook
        .iter()
        .map(|list| {
            list.iter()
                .map(|&i| &scripts[i])
                .find(|s| s.signature.is_some())
        })
        .collect();
    let requests: Vec<script::types::Request<'_>> = functions
        .iter()
        .zip(&sig_script)
        .map(|(f, s)| script::types::Request {
            function: f,
            signature: s.and_then(|s| Some((s.name.as_str(), s.signature.as_deref()?))),
        })
        .collect();
    let book = script::types::resolve(&bin, dwarf.as_ref(), &requests, |_| false)?;
    // What each hook copied at entry, as recorded (types and ring size are those of the record).
    let captures: Vec<crate::capture::Captures> = meta
        .hooks
        .iter()
        .map(|h| {
            let mut c = crate::capture::Captures::ints_only();
            c.string_params = h.string_params.clone();
            c.entry.strings = h
                .string_ptr_regs
                .iter()
                .filter_map(|&r| int_reg(r))
                .map(|ptr| trampolines::stub::StringCapture {
                    ptr,
                    // Only the pointer register matters to scripts.
                    len: ptr,
                })
                .collect();
            c
        })
        .collect();
    let memory = Rc::new(OfflineMemory::new(bin.elf.clone(), meta.binary.bias));
    Ok(Some(script::runtime_for(
        &bin,
        meta.binary.bias,
        scripts,
        by_hook,
        book,
        &captures,
        &functions,
        memory,
    )))
}

fn int_reg(i: u8) -> Option<trampolines::stub::IntReg> {
    use trampolines::stub::IntReg::*;
    [Rax, Rbx, Rcx, Rdi, Rsi, R8, R9, R10, R11]
        .get(i as usize)
        .copied()
}

/// The spans' outputs: the `--format` sink (to `-o` or standard error), the exporters, and the
/// summary.
fn outputs(args: &ReplayArgs, meta: &Meta) -> Result<Outputs> {
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stderr())),
    };
    let mut primary: Box<dyn SpanSink> = match args.format {
        ReplayFormat::Json => Box::new(JsonSink::new(out)),
        ReplayFormat::Pretty => Box::new(PrettySink::new(out)),
    };
    let summary = SummaryOptions {
        table: args.summary.summary,
        json: args.summary.summary_json.clone(),
    };
    if summary.wanted() {
        primary = Box::new(SummarySink::new(primary, summary));
    }
    Ok(
        Outputs::open(primary, args.otlp.as_deref(), args.chrome_trace.as_deref())?
            .stderr_shared(args.output.is_none())
            .started(&Process {
                pid: meta.pid,
                executable: PathBuf::from(&meta.binary.path),
                go_version: meta.binary.go_version.clone(),
            }),
    )
}

/// Runs `gohook replay`.
pub fn run(args: &ReplayArgs) -> Result<()> {
    let (meta, overview) = record::overview(&args.file)?;
    let scripts = replay_scripts(&meta, args)?;
    let sink = outputs(args, &meta)?;
    let mut col = collector_for(&meta, overview.clock, sink);
    if let Some(rt) = scripts {
        col = col.with_scripts(rt);
    }
    let tail = feed(&args.file, &mut col)?;
    let stats = col.finish().context("writing spans")?;
    warn_if_cut(&args.file, &tail);
    if stats.script_errors > 0 {
        eprintln!(
            "gohook: {} hook-script error{} (each distinct message printed once)",
            stats.script_errors,
            if stats.script_errors == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
