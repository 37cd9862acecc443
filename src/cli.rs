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
    /// Print one line per call and per return of the functions -f selects, with their Go
    /// arguments and results decoded: `run` (with `-- PROGRAM`) or `attach` (with `--pid`) in
    /// the lines format.
    #[command(
        override_usage = "gohook trace -f GLOB [VIEW OPTIONS] [HOOK OPTIONS] -- PROGRAM [ARGS]...\n       gohook trace -f GLOB [VIEW OPTIONS] [HOOK OPTIONS] --pid PID [--duration SECONDS]"
    )]
    Trace(TraceArgs),
    /// Write a starting hook script for each function GLOB selects, pre-filled with its
    /// parameters and results (from DWARF), or with a SIGNATURE to complete (stripped binaries).
    Init(InitArgs),
    /// Build a small HTTP + SQL example Go service, run it under gohook with its handlers and
    /// the bundled scripts hooked, send it a few requests and show the spans (needs Go).
    Demo(DemoArgs),
    /// Disassemble one function with its source lines and gohook's patch plan (the bytes the
    /// entry jump replaces, the returns that get exit hooks) or the reason it is refused; with
    /// --pid, also the live bytes and the trampoline a hooked function jumps to.
    #[command(
        override_usage = "gohook disasm [OPTIONS] <BINARY> <FUNC>\n       gohook disasm [OPTIONS] --pid <PID> <FUNC>"
    )]
    Disasm(DisasmArgs),
    /// Print a shell completion script, e.g. `gohook completions bash > /etc/bash_completion.d/gohook`.
    Completions(CompletionsArgs),
    /// Print the gohook(1) man page (roff), or write one page per command to a directory.
    Man(ManArgs),
    /// Hook like `run` or `attach`, but keep the calls (registers, copied string bytes, the
    /// binary's identity) in a compact record file, to study later elsewhere with `report` and
    /// `replay`.
    #[command(
        override_usage = "gohook record -o FILE [HOOK OPTIONS] -- PROGRAM [ARGS]...\n       gohook record -o FILE [HOOK OPTIONS] --pid PID [--duration SECONDS]"
    )]
    Record(RecordArgs),
    /// Print what a record file holds (binary, time, counts) and its per-function summary.
    Report(ReportArgs),
    /// Turn a record file into spans again, to any output (pretty, JSON, OTLP, Chrome trace).
    Replay(ReplayArgs),
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
    /// Output format [default: pretty; lines for `gohook trace`].
    #[arg(long, value_enum)]
    pub format: Option<crate::trace::Format>,
    /// The Go signature of FUNC, for stripped binaries (no DWARF): the function's full name
    /// followed by its parameters and results in Go syntax with package paths, e.g.
    /// 'main.greet(name string, n int) string' (repeatable). Ignored where DWARF describes
    /// the function.
    #[arg(long, value_name = "FUNC(PARAMS) RESULTS")]
    pub signature: Vec<String>,
    /// What the lines view shows (--format lines, `gohook trace`).
    #[command(
        flatten,
        next_help_heading = "Lines view (--format lines, gohook trace)"
    )]
    pub view: ViewArgs,
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
    /// Per-function call statistics at the end.
    #[command(flatten)]
    pub summary: SummaryArgs,
    /// Keep the literals of SQL statements in `db.query.text` (bundled SQL scripts). By default
    /// each string and number literal is replaced by `?`.
    #[arg(long)]
    pub capture_sql_literals: bool,
    /// Record the query string of HTTP requests (`url.query`, and in the client's `url.full`).
    /// By default it is left out.
    #[arg(long)]
    pub capture_url_query: bool,
    /// Record HTTP request header values as `http.request.header.<name>` attributes. By
    /// default no header is recorded.
    #[arg(long)]
    pub capture_headers: bool,
}

/// What the lines view (`--format lines`, `gohook trace`) shows.
#[derive(Debug, Args, Default)]
pub struct ViewArgs {
    /// Start each line with the record's time of day (UTC, microseconds).
    #[arg(long)]
    pub timestamp: bool,
    /// Show more of each value: -v longer strings, more elements and deeper structs; -vv the
    /// most. Values cut short end with `…(+N more)`.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only calls on goroutine N (repeatable).
    #[arg(long = "goroutine", value_name = "N")]
    pub goroutines: Vec<u64>,
    /// Only calls lasting at least DUR (`500us`, `1ms`, `2s`). Their lines are written when
    /// they return, entry and return together, so nested calls come before their callers.
    #[arg(long, value_name = "DUR")]
    pub min_duration: Option<String>,
    /// Only calls nested at most N hooked calls deep on their goroutine (0: the outermost).
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,
    /// Only calls whose arguments make EXPR true: one Rhai expression over the parameters by
    /// name, `goroutine` and `function`, e.g. 'n > 2 && name == "user"' (structs and pointers
    /// have the scripts' methods: 'u.field("Name").str() == "bob"'). Needs argument types.
    #[arg(long = "where", value_name = "EXPR")]
    pub predicate: Option<String>,
}

/// Arguments of `gohook trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Hook the running process PID instead of starting a program.
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<i32>,
    /// With --pid: stop after SECONDS, restore the code and detach.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// What to hook and how the lines look.
    #[command(flatten)]
    pub hook: HookArgs,
    /// The program and its arguments (after `--`), unless --pid is given.
    #[arg(
        last = true,
        value_name = "PROGRAM [ARGS]",
        required_unless_present = "pid"
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// `--summary` and `--summary-json` (run, attach, record, replay).
#[derive(Debug, Args, Default, Clone)]
pub struct SummaryArgs {
    /// At the end, print a table to standard error: per hooked function, calls, total and self
    /// time (minus hooked callees on the same goroutine), min, p50, p99 and max duration,
    /// errors and panics.
    #[arg(long)]
    pub summary: bool,
    /// At the end, write the summary as one JSON object to FILE (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

/// Arguments of `gohook record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The record file to write (replaced if it exists).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Hook every hookable function matching GLOB (repeatable; same patterns as `funcs`).
    #[arg(short = 'f', long = "func", value_name = "GLOB")]
    pub funcs: Vec<String>,
    /// Hook the functions the script PATH's HOOK names (and copy what its SIGNATURE says);
    /// the script itself runs at `replay`. Repeatable.
    #[arg(short = 's', long = "script", value_name = "PATH")]
    pub scripts: Vec<PathBuf>,
    /// Do not hook the bundled scripts' functions.
    #[arg(long)]
    pub no_default_scripts: bool,
    /// Hook function entries only.
    #[arg(long)]
    pub no_exit: bool,
    /// Records per thread ring (power of two).
    #[arg(long, value_name = "N", default_value_t = crate::engine::DEFAULT_RING_SLOTS)]
    pub ring_slots: u32,
    /// Per-function call statistics at the end.
    #[command(flatten)]
    pub summary: SummaryArgs,
    /// Hook the running process PID instead of starting a program.
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<i32>,
    /// With --pid: stop after SECONDS, restore the code and detach.
    #[arg(long, value_name = "SECONDS", requires = "pid")]
    pub duration: Option<f64>,
    /// The program and its arguments (after `--`), unless --pid is given.
    #[arg(
        last = true,
        value_name = "PROGRAM [ARGS]",
        required_unless_present = "pid"
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// Arguments of `gohook report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The record file.
    pub file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Output formats of `gohook replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    /// An indented tree per trace.
    Pretty,
    /// One JSON object per span per line, then a summary line.
    Json,
}

/// Arguments of `gohook replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The record file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "pretty")]
    pub format: ReplayFormat,
    /// Write spans to FILE instead of standard error.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also send the spans over OTLP/HTTP (as `run --otlp`).
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,
    /// Also write the spans as Chrome trace event JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub chrome_trace: Option<PathBuf>,
    /// Run the hook script PATH on the recorded calls (repeatable).
    #[arg(short = 's', long = "script", value_name = "PATH")]
    pub scripts: Vec<PathBuf>,
    /// Do not run gohook's bundled scripts.
    #[arg(long)]
    pub no_default_scripts: bool,
    /// The traced binary, for scripts (default: the recorded path, if the file there is the
    /// same binary). Without it the calls become default spans.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Per-function call statistics at the end.
    #[command(flatten)]
    pub summary: SummaryArgs,
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

/// Arguments of `gohook demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write and build the example (default: a per-user directory under the
    /// temporary directory, reused by later runs).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
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

/// Arguments of `gohook completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `gohook man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write gohook.1 and gohook-COMMAND.1 into DIR instead of printing gohook.1.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Arguments of `gohook disasm`.
#[derive(Debug, Args)]
pub struct DisasmArgs {
    /// The binary (unless --pid is given), then the function: its exact name, or a pattern
    /// matching exactly one function.
    #[arg(value_name = "BINARY | FUNC", required = true, num_args = 1..=2)]
    pub args: Vec<String>,
    /// Read the executable and the live code of running process PID.
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// Print one JSON object instead of text.
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
    fn trace_takes_a_program_or_a_pid_and_leaves_the_format_to_the_command() {
        let cli =
            Cli::try_parse_from(["gohook", "trace", "-f", "main.*", "-vv", "--", "./p"]).unwrap();
        let Command::Trace(a) = cli.command else {
            panic!("not trace")
        };
        assert_eq!(a.command, vec![std::ffi::OsString::from("./p")]);
        assert_eq!(a.hook.view.verbose, 2);
        assert_eq!(a.hook.format, None);
        let cli = Cli::try_parse_from([
            "gohook",
            "trace",
            "-f",
            "x",
            "--pid",
            "7",
            "--duration",
            "1",
        ])
        .unwrap();
        let Command::Trace(a) = cli.command else {
            panic!("not trace")
        };
        assert_eq!((a.pid, a.duration), (Some(7), Some(1.0)));
        assert!(Cli::try_parse_from(["gohook", "trace", "-f", "x"]).is_err());
        assert!(
            Cli::try_parse_from(["gohook", "trace", "-f", "x", "--pid", "7", "--", "./p"]).is_err()
        );
    }

    #[test]
    fn info_refuses_both_a_binary_and_a_pid() {
        assert!(Cli::try_parse_from(["gohook", "info", "/bin/x", "--pid", "7"]).is_err());
        assert!(Cli::try_parse_from(["gohook", "info"]).is_err());
    }
}
