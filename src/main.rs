//! gohook: hook functions inside running Go programs on Linux x86-64.
//!
//! This file only parses the command line, dispatches, and turns any error into one line on
//! stderr (`gohook: <message>`) and a non-zero exit status.

use gohook::{cli, commands};

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // `gohook funcs … | head` closes the pipe early: that is success, not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gohook: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes as one line, `context: cause: cause`, leaving out a part that
/// repeats its neighbour (library errors often include their source's text or the path the
/// context already names).
fn one_line(e: &anyhow::Error) -> String {
    let parts: Vec<String> = e
        .chain()
        .map(|c| c.to_string().replace('\n', " "))
        .collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let next_repeats_it = parts.get(i + 1).is_some_and(|n| n.contains(part.as_str()));
        let repeats_earlier = kept.iter().any(|k| k.contains(part.as_str()));
        if !next_repeats_it && !repeats_earlier {
            kept.push(part);
        }
    }
    kept.join(": ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
