//! Small readers of `/proc/<pid>/…` files other than `maps`: the thread list and the `status`
//! fields the injector needs (tracer, blocked signals).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The thread ids listed in `/proc/<pid>/task`, sorted.
pub fn tasks(pid: i32) -> Result<Vec<i32>> {
    let path = PathBuf::from(format!("/proc/{pid}/task"));
    let dir = match std::fs::read_dir(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoSuchProcess { pid })
        }
        Err(source) => return Err(Error::Proc { path, source }),
    };
    let mut tids: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The `Key:\tvalue` lines of a status file, as read.
#[derive(Debug, Clone, Default)]
pub struct Status {
    text: String,
}

impl Status {
    /// Reads `/proc/<pid>/status`, or `/proc/<pid>/task/<tid>/status` when `tid` is given.
    pub fn read(pid: i32, tid: Option<i32>) -> Result<Status> {
        let path = match tid {
            Some(t) => PathBuf::from(format!("/proc/{pid}/task/{t}/status")),
            None => PathBuf::from(format!("/proc/{pid}/status")),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Status { text }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoSuchProcess { pid }),
            Err(source) => Err(Error::Proc { path, source }),
        }
    }

    /// Parses status text given directly (tests).
    pub fn from_text(text: &str) -> Status {
        Status {
            text: text.to_string(),
        }
    }

    /// The value of field `key`, trimmed.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.trim())
        })
    }

    /// `TracerPid`: 0 when nobody traces the task.
    pub fn tracer_pid(&self) -> i32 {
        self.field("TracerPid")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// `Name`: the command name.
    pub fn name(&self) -> String {
        self.field("Name").unwrap_or("?").to_string()
    }

    /// `SigBlk`: the blocked signal mask (bit `n-1` for signal `n`).
    pub fn blocked(&self) -> u64 {
        self.field("SigBlk")
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or(0)
    }

    /// `State`'s letter (`R`, `S`, `t`, `Z`, ...).
    pub fn state(&self) -> char {
        self.field("State")
            .and_then(|v| v.chars().next())
            .unwrap_or('?')
    }
}

/// True when `tid` is a thread of the calling process. `TracerPid` names the tracing *thread*,
/// which need not be the main one.
pub fn is_own_thread(tid: i32) -> bool {
    tid > 0 && std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// The command name of `pid`, or `"?"`.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_parsed() {
        let s = Status::from_text(
            "Name:\tspin\nState:\tS (sleeping)\nTracerPid:\t42\nSigBlk:\tfffffffe7ffbfeff\n",
        );
        assert_eq!(s.name(), "spin");
        assert_eq!(s.tracer_pid(), 42);
        assert_eq!(s.blocked(), 0xfffffffe7ffbfeff);
        assert_eq!(s.state(), 'S');
        assert_eq!(Status::from_text("").tracer_pid(), 0);
    }

    #[test]
    fn our_own_threads_are_listed() {
        let me = std::process::id() as i32;
        let t = tasks(me).unwrap();
        assert!(t.contains(&me));
        assert!(matches!(tasks(i32::MAX), Err(Error::NoSuchProcess { .. })));
    }
}
