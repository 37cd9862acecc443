//! `gohook run` and `gohook attach`: turn the command line into hook options and trace.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{AttachArgs, HookArgs, RunArgs};
use crate::trace::{self, HookOptions};

fn options(h: &HookArgs) -> Result<HookOptions> {
    // With neither, the bundled scripts alone choose what to hook (`select` says so if none of
    // their functions is in the program).
    if h.funcs.is_empty() && h.scripts.is_empty() && h.no_default_scripts {
        bail!("nothing to hook: give -f GLOB or -s SCRIPT");
    }
    let format = h.format.unwrap_or(trace::Format::Pretty);
    Ok(HookOptions {
        globs: h.funcs.clone(),
        format,
        signatures: super::trace::signatures(&h.signature)?,
        view: super::trace::view_options(&h.view, format)?,
        output: h.output.clone(),
        ring_slots: h.ring_slots,
        exits: !h.no_exit,
        otlp: h.otlp.clone(),
        chrome_trace: h.chrome_trace.clone(),
        scripts: h.scripts.clone(),
        default_scripts: !h.no_default_scripts,
        capture: crate::script::redact::Capture {
            sql_literals: h.capture_sql_literals,
            url_query: h.capture_url_query,
            headers: h.capture_headers,
        },
        record: None,
        summary: crate::summary::SummaryOptions {
            table: h.summary.summary,
            json: h.summary.summary_json.clone(),
        },
    })
}

/// A script that does not load is a usage error: one line, exit status 2 (as clap's errors),
/// before anything was started or attached.
fn usage_exit<T>(r: Result<T>) -> Result<T> {
    if let Err(e) = &r {
        let usage = e
            .downcast_ref::<crate::script::LoadError>()
            .is_some_and(|l| l.is_usage())
            || e.downcast_ref::<crate::script::types::SignatureProblem>()
                .is_some();
        if usage {
            eprintln!("gohook: {e}");
            std::process::exit(2);
        }
    }
    r
}

/// Runs the program under hooks; returns the exit status gohook should exit with.
pub fn run(args: &RunArgs) -> Result<i32> {
    let Some((program, rest)) = args.command.split_first() else {
        bail!("no program given after --");
    };
    usage_exit(trace::run(Path::new(program), rest, &options(&args.hook)?))
}

/// Hooks a running process for a while.
pub fn attach(args: &AttachArgs) -> Result<()> {
    let duration = match args.duration {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            bail!("--duration must be a positive number of seconds, got {s}")
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    usage_exit(trace::attach(args.pid, duration, &options(&args.hook)?))
}
