//! One module per subcommand, plus `target` (opening a binary or a running process's binary).

pub mod completions;
pub mod demo;
pub mod disasm;
pub mod funcs;
pub mod hook;
pub mod info;
pub mod init;
pub mod record;
pub mod replay;
pub mod report;
pub mod target;
pub mod trace;

use crate::cli::Command;

/// Runs one subcommand, writing its output to stdout.
pub fn run(command: Command) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match command {
        Command::Info(args) => info::run(&args, &mut out),
        Command::Funcs(args) => funcs::run(&args, &mut out),
        Command::Init(args) => init::run(&args, &mut out),
        Command::Demo(args) => {
            drop(out);
            let code = demo::run(&args)?;
            std::process::exit(code);
        }
        Command::Disasm(args) => disasm::run(&args, &mut out),
        Command::Completions(args) => completions::completions(&args, &mut out),
        Command::Man(args) => completions::man(&args, &mut out),
        Command::Run(args) => {
            drop(out);
            let code = hook::run(&args)?;
            std::process::exit(code);
        }
        Command::Attach(args) => {
            drop(out);
            return hook::attach(&args);
        }
        Command::Record(args) => {
            drop(out);
            let code = record::run(&args)?;
            std::process::exit(code);
        }
        Command::Report(args) => report::run(&args, &mut out),
        Command::Replay(args) => {
            drop(out);
            return replay::run(&args);
        }
        Command::Trace(args) => {
            drop(out);
            let code = trace::run(args)?;
            std::process::exit(code);
        }
    }?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// An address as `0x…` (JSON output keeps addresses as hex strings: they exceed 2^53).
pub fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}
