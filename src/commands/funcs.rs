//! `gohook funcs`: list Go functions, optionally selected by glob, with their entry, size and
//! source position — the names `gohook` hooks by.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use super::hex;
use super::target::Target;
use crate::cli::FuncsArgs;
use crate::glob::{any_match, Glob};
use crate::hookplan;

/// One `--json` line. `entry`/`end` are hex strings (live addresses with --pid).
#[derive(Debug, Serialize)]
struct FuncLine<'a> {
    name: &'a str,
    entry: String,
    end: String,
    size: u64,
    file: Option<&'a str>,
    line: Option<i32>,
    /// `abi.FuncFlag` bits: 1 top frame, 2 writes SP, 4 assembly.
    flag: u8,
    /// `abi.FuncID`: non-zero for special runtime functions.
    func_id: u8,
    /// Whether `gohook run`/`attach` can hook the function's entry.
    hookable: bool,
    /// Why not, when it cannot.
    refusal: Option<String>,
}

/// Runs `gohook funcs`.
pub fn run(args: &FuncsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (binary, patterns) = match args.pid {
        Some(_) => (None, &args.args[..]),
        None => match args.args.split_first() {
            Some((b, rest)) => (Some(Path::new(b)), rest),
            None => bail!("give a binary or --pid"),
        },
    };
    let t = Target::open(binary, args.pid)?;
    let globs: Vec<Glob> = patterns.iter().map(|p| Glob::new(p)).collect();
    let mut shown = 0usize;
    for f in t.binary.pclntab.funcs() {
        let f = f.with_context(|| t.label.clone())?;
        if !any_match(&globs, &f.name) {
            continue;
        }
        shown += 1;
        let (entry, end) = (t.live(f.entry), t.live(f.end));
        let verdict = hookplan::assess(&t.binary, &f, t.bias);
        if args.json {
            let line = FuncLine {
                name: &f.name,
                entry: hex(entry),
                end: hex(end),
                size: f.size(),
                file: f.file.as_deref(),
                line: f.line,
                flag: f.flag,
                func_id: f.func_id,
                hookable: verdict.refusal().is_none(),
                refusal: verdict.refusal().map(str::to_owned),
            };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)?;
        } else {
            let pos = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!("{file}:{line}"),
                (Some(file), None) => file.clone(),
                _ => "?".to_owned(),
            };
            let hook = match verdict.refusal() {
                None => "hookable".to_owned(),
                Some(why) => format!("not hookable: {why}"),
            };
            writeln!(
                out,
                "{entry:#014x} {:>7} {} {pos} [{hook}]",
                f.size(),
                f.name
            )?;
        }
    }
    if shown == 0 && !globs.is_empty() {
        bail!("no function in {} matches {}", t.label, patterns.join(" "));
    }
    Ok(())
}
