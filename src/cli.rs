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
    /// Start a Go program with hooks installed before its first instruction; its output passes
    /// through and gohook exits with its exit status.
    #[command(override_usage = "gohook run [HOOK OPTIONS] -- PROGRAM [ARGS]...")]
    Run(RunArgs),
    /// Hook a running Go process until it exits, SIGINT/SIGTERM, or --duration; then restore
    /// every original byte and detach.
    Attach(AttachArgs),
    /// Write a starting hook script for each function GLOB selects, pre-filled with its
    /// parameters and results (from DWARF), or with a SIGNATURE to complete (stripped binaries).
    Init(InitArgs),
}

/// What to hook and where the spans go (`run` and `attach`).
#[derive(Debug, Args)]
pub struct HookArgs {
    /// Hook every hookable function matching GLOB (repeatable; same patterns as `funcs`).
    /// Optional when a script is given.
    #[arg(short = 'f', long = "func", value_name = "GLOB")]
    pub funcs: Vec<String>,
    /// Run the hook script PATH (a `.rhai` file, or a directory of them; repeatable): it also
    /// hooks the functions its HOOK names and makes their spans.
    #[arg(short = 's', long = "script", value_name = "PATH")]
    pub scripts: Vec<PathBuf>,
    /// Do not load gohook's bundled scripts (which make spans of well-known functions, such as
    /// net/http's, when they are hooked).
    #[arg(long)]
    pub no_default_scripts: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "pretty")]
    pub format: crate::trace::Format,
    /// Write spans to FILE instead of standard error.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also send the spans to an OpenTelemetry collector over OTLP/HTTP (protobuf); the
    /// --format output still goes to -o or standard error. URL is the collector's base address
    /// (`/v1/traces` is appended unless the URL ends with it), e.g. http://localhost:4318.
    /// Without URL:
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT, else
    /// http://localhost:4318. OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT,
    /// OTEL_SERVICE_NAME (default: the program's file name) and OTEL_RESOURCE_ATTRIBUTES apply.
    /// Export runs in the background; spans it cannot keep up with are dropped and counted.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,
    /// Also write the spans as Chrome trace event JSON to FILE, to open in Perfetto
    /// (ui.perfetto.dev) or chrome://tracing: one track per goroutine.
    #[arg(long, value_name = "FILE")]
    pub chrome_trace: Option<PathBuf>,
    /// Hook function entries only: cheaper, but spans then have no duration.
    #[arg(long)]
    pub no_exit: bool,
    /// Records per thread ring (power of two). Bursts larger than a ring are dropped and
    /// counted; raise this when the summary reports drops.
    #[arg(long, value_name = "N", default_value_t = crate::engine::DEFAULT_RING_SLOTS)]
    pub ring_slots: u32,
}

/// Arguments of `gohook run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to hook and where the spans go.
    #[command(flatten)]
    pub hook: HookArgs,
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
    pub command: Vec<std::ffi::OsString>,
}

/// Arguments of `gohook attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The process to hook.
    #[arg(long, value_name = "PID")]
    pub pid: i32,
    /// Stop after SECONDS (fractions allowed), restore the code and detach.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// What to hook and where the spans go.
    #[command(flatten)]
    pub hook: HookArgs,
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

/// Arguments of `gohook init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The Go executable whose functions the scripts hook.
    pub binary: PathBuf,
    /// Write a script for every hookable function matching GLOB (repeatable; same patterns as
    /// `funcs` and `run -f`).
    #[arg(short = 'f', long = "func", value_name = "GLOB", required = true)]
    pub funcs: Vec<String>,
    /// The directory to write the scripts to (created if missing).
    #[arg(short = 'o', long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Replace scripts that already exist.
    #[arg(long)]
    pub force: bool,
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
