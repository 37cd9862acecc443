//! The command-line grammar (clap derive). Each subcommand's arguments live here; what it does
//! lives in `commands/<name>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Hook functions inside running Go programs (Linux x86-64), no rebuild needed.
#[derive(Debug, Parser)]
#[command(
    name = "gohook",
    version,
    about,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a Go binary is: Go version, main module, build settings, PIE, stripped, DWARF,
    /// function count, text range.
    Info(InfoArgs),
    /// List the Go functions of a binary or process: entry, size, name, source file:line.
    #[command(
        override_usage = "gohook funcs [OPTIONS] <BINARY> [GLOB]...\n       gohook funcs [OPTIONS] --pid <PID> [GLOB]..."
    )]
    Funcs(FuncsArgs),
}

/// Arguments of `gohook info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The Go executable to read.
    #[arg(required_unless_present = "pid", conflicts_with = "pid")]
    pub binary: Option<PathBuf>,
    /// Read the executable of running process PID (addresses include its load bias).
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gohook funcs`.
#[derive(Debug, Args)]
pub struct FuncsArgs {
    /// The binary (unless --pid is given), then patterns selecting functions by name: `*`
    /// matches anything including `/`, `.`, `(` and `*`; `?` one character. No pattern lists
    /// every function.
    #[arg(value_name = "BINARY | GLOB", required_unless_present = "pid")]
    pub args: Vec<String>,
    /// Read the executable of running process PID (addresses include its load bias).
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn funcs_with_pid_takes_every_positional_as_a_glob() {
        let cli = Cli::try_parse_from(["gohook", "funcs", "--pid", "7", "main.*"]).unwrap();
        let Command::Funcs(a) = cli.command else {
            panic!("not funcs")
        };
        assert_eq!(a.pid, Some(7));
        assert_eq!(a.args, vec!["main.*"]);
    }

    #[test]
    fn info_refuses_both_a_binary_and_a_pid() {
        assert!(Cli::try_parse_from(["gohook", "info", "/bin/x", "--pid", "7"]).is_err());
        assert!(Cli::try_parse_from(["gohook", "info"]).is_err());
    }
}
