//! One module per subcommand, plus `target` (opening a binary or a running process's binary).

pub mod funcs;
pub mod hook;
pub mod info;
pub mod init;
pub mod target;

use crate::cli::Command;

/// Runs one subcommand, writing its output to stdout.
pub fn run(command: Command) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match command {
        Command::Info(args) => info::run(&args, &mut out),
        Command::Funcs(args) => funcs::run(&args, &mut out),
        Command::Init(args) => init::run(&args, &mut out),
        Command::Run(args) => {
            drop(out);
            let code = hook::run(&args)?;
            std::process::exit(code);
        }
        Command::Attach(args) => {
            drop(out);
            return hook::attach(&args);
        }
    }?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// An address as `0x…` (JSON output keeps addresses as hex strings: they exceed 2^53).
pub fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}
