//! `gohook completions SHELL` and `gohook man`: shell completion scripts and man pages generated
//! from the command-line definition itself (`cli.rs`), so they always match the binary.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// Runs `gohook completions`: the completion script for the shell, on `out`.
pub fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "gohook", out);
    Ok(())
}

/// Runs `gohook man`: gohook(1) on `out`, or with `-o DIR` one page per command in DIR
/// (`gohook.1`, `gohook-run.1`, …).
pub fn man(args: &ManArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let cmd = Cli::command();
    let Some(dir) = &args.output else {
        clap_mangen::Man::new(cmd).render(out)?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    write_page(dir, "gohook", cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("gohook-{}", sub.get_name());
        // The page's title and synopsis name the full command.
        let sub = sub
            .clone()
            .display_name(name.clone())
            .bin_name(name.clone())
            .version(env!("CARGO_PKG_VERSION"));
        write_page(dir, &name, sub)?;
    }
    writeln!(out, "wrote the man pages to {}", dir.display())?;
    Ok(())
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf)?;
    std::fs::write(&path, buf).with_context(|| path.display().to_string())?;
    Ok(())
}
