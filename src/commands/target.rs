//! What a command reads: a Go binary on disk, or the executable of a running process together
//! with its load bias (where the kernel placed a PIE), so printed addresses are the live ones.

use std::path::Path;

use anyhow::{bail, Context};
use gostrings::GoBinary;

/// An opened Go binary and, for a process, how to turn link-time addresses into live ones.
pub struct Target {
    /// The parsed binary.
    pub binary: GoBinary,
    /// The process it was read from, if any.
    pub pid: Option<i32>,
    /// Added to every link-time address (0 for files and non-PIE processes).
    pub bias: u64,
    /// What to call the target in messages and output (a path, or `pid N (path)`).
    pub label: String,
}

impl Target {
    /// Opens `binary`, or the executable of `pid`.
    pub fn open(binary: Option<&Path>, pid: Option<i32>) -> anyhow::Result<Self> {
        match (binary, pid) {
            (_, Some(pid)) => Self::process(pid),
            (Some(path), None) => {
                let binary = GoBinary::open(path).with_context(|| path.display().to_string())?;
                Ok(Target {
                    binary,
                    pid: None,
                    bias: 0,
                    label: path.display().to_string(),
                })
            }
            (None, None) => bail!("give a binary or --pid"),
        }
    }

    fn process(pid: i32) -> anyhow::Result<Self> {
        if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
            bail!("no process with pid {pid}");
        }
        let exe_link = format!("/proc/{pid}/exe");
        let exe_path = match std::fs::read_link(&exe_link) {
            Ok(p) => p,
            // The kernel guards /proc/N/exe with the same check as ptrace: say what to change.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
                "permission denied reading {exe_link}: {}",
                injector::error::PERMISSION_HINT
            ),
            Err(_) if gone(pid) => bail!("pid {pid} exited"),
            Err(e) => return Err(e).with_context(|| format!("cannot read {exe_link}")),
        };
        let label = format!("pid {pid} ({})", exe_path.display());
        // /proc/N/exe opens the very file the process runs, even if it was deleted or replaced.
        let binary = match GoBinary::open(&exe_link) {
            Ok(b) => b,
            Err(_) if gone(pid) => bail!("pid {pid} exited"),
            Err(e) => return Err(e).with_context(|| label.clone()),
        };
        let bias = if binary.is_pie() {
            match load_bias(pid, &binary, &exe_path.to_string_lossy()) {
                Ok(b) => b,
                Err(_) if gone(pid) => bail!("pid {pid} exited"),
                Err(e) => return Err(e),
            }
        } else {
            0
        };
        Ok(Target {
            binary,
            pid: Some(pid),
            bias,
            label,
        })
    }

    /// A link-time address as it is in the target.
    pub fn live(&self, addr: u64) -> u64 {
        addr.wrapping_add(self.bias)
    }
}

/// Whether `pid` has exited: gone from /proc, or a zombie (which has no `exe` and no mappings).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ") ".
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => true,
    }
}

/// Where a PIE's file offset 0 is mapped, minus where the ELF says it would be at link time.
fn load_bias(pid: i32, binary: &GoBinary, exe: &str) -> anyhow::Result<u64> {
    let maps = injector::maps::read_maps(pid)
        .with_context(|| format!("reading the mappings of pid {pid}"))?;
    // The kernel appends " (deleted)" when the file was removed or replaced.
    let is_exe = |p: &str| p == exe || p.strip_suffix(" (deleted)") == Some(exe);
    let first = binary
        .elf
        .segments
        .iter()
        .filter(|s| s.offset < 4096)
        .min_by_key(|s| s.vaddr)
        .context("the executable has no PT_LOAD segment at file offset 0")?;
    let mapped = maps
        .iter()
        .filter(|m| m.offset == 0 && is_exe(&m.path))
        .map(|m| m.start)
        .min()
        .with_context(|| format!("pid {pid} has no mapping of {exe} at offset 0"))?;
    Ok(mapped.wrapping_sub(first.vaddr & !0xfff))
}
