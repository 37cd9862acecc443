//! `gohook record -o FILE`: hooks like `run` (with `-- PROGRAM`) or `attach` (with `--pid`),
//! and keeps the hook records in a record file instead of printing spans. Scripts choose what is
//! hooked and what is copied, but run only at `gohook replay`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::RecordArgs;
use crate::summary::SummaryOptions;
use crate::trace::{self, HookOptions};

fn options(a: &RecordArgs) -> Result<HookOptions> {
    if a.funcs.is_empty() && a.scripts.is_empty() && a.no_default_scripts {
        bail!("nothing to hook: give -f GLOB or -s SCRIPT");
    }
    Ok(HookOptions {
        globs: a.funcs.clone(),
        ring_slots: a.ring_slots,
        exits: !a.no_exit,
        scripts: a.scripts.clone(),
        default_scripts: !a.no_default_scripts,
        record: Some(a.output.clone()),
        summary: SummaryOptions {
            table: a.summary.summary,
            json: a.summary.summary_json.clone(),
        },
        ..HookOptions::default()
    })
}

/// Records; returns the exit status gohook should exit with (the program's, or 0 for `--pid`).
pub fn run(args: &RecordArgs) -> Result<i32> {
    let opts = options(args)?;
    if let Some(pid) = args.pid {
        let duration = match args.duration {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                bail!("--duration must be a positive number of seconds, got {s}")
            }
            Some(s) => Some(Duration::from_secs_f64(s)),
            None => None,
        };
        trace::attach(pid, duration, &opts)?;
        return Ok(0);
    }
    let Some((program, rest)) = args.command.split_first() else {
        bail!("give --pid PID or -- PROGRAM [ARGS]");
    };
    trace::run(Path::new(program), rest, &opts)
}
