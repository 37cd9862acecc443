//! `gohook run` and `gohook attach`: turn the command line into hook options and trace.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{AttachArgs, HookArgs, RunArgs};
use crate::trace::{self, HookOptions};

fn options(h: &HookArgs) -> HookOptions {
    HookOptions {
        globs: h.funcs.clone(),
        format: h.format,
        output: h.output.clone(),
        ring_slots: h.ring_slots,
        exits: !h.no_exit,
        otlp: h.otlp.clone(),
        chrome_trace: h.chrome_trace.clone(),
    }
}

/// Runs the program under hooks; returns the exit status gohook should exit with.
pub fn run(args: &RunArgs) -> Result<i32> {
    let Some((program, rest)) = args.command.split_first() else {
        bail!("no program given after --");
    };
    trace::run(Path::new(program), rest, &options(&args.hook))
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
    trace::attach(args.pid, duration, &options(&args.hook))
}
