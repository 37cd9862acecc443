//! Reloading `-s` scripts while gohook runs: when a script file's modification time or size
//! changes (checked at most every [`POLL`]), it is compiled again. If it loads, it replaces the
//! old one for calls that start from then on (`gohook: reloaded PATH`); a call already open
//! finishes with the new script's `on_leave`, given the `ctx.state` its `on_enter` left. If it
//! does not load, the old script stays and the error is printed as one line. Which functions are
//! hooked is decided at start: a reload whose `HOOK` differs is refused, saying a restart is
//! needed. Bundled scripts never reload.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::loader::{self, Origin, Script};
use super::redact::Capture;

/// How often the files are checked.
pub const POLL: Duration = Duration::from_millis(500);

/// What a file looked like when last loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// Watches the user's script files of a runtime.
#[derive(Debug)]
pub struct Reloader {
    capture: Capture,
    /// Per script index: its file and how it looked when loaded (`None` for bundled ones).
    files: Vec<Option<(PathBuf, Option<Stamp>)>>,
    last: Instant,
}

/// What one poll did to one script (also printed on standard error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file loaded and replaced script `index`.
    Reloaded { index: usize, path: PathBuf },
    /// The file changed but the old script stays, for this reason.
    Kept { index: usize, message: String },
}

impl Reloader {
    /// A watcher of `scripts` (as loaded, in runtime order); reloaded scripts are configured
    /// with `capture` like the originals.
    pub fn new(scripts: &[Script], capture: Capture) -> Self {
        let files = scripts
            .iter()
            .map(|s| match &s.origin {
                Origin::User(p) => Some((p.clone(), stamp(p))),
                Origin::Bundled => None,
            })
            .collect();
        Reloader {
            capture,
            files,
            last: Instant::now(),
        }
    }

    /// Checks the files if [`POLL`] has passed since the last check and reloads the changed
    /// ones into `scripts`, printing one line per outcome.
    pub fn poll(&mut self, scripts: &mut [Script]) -> Vec<Outcome> {
        if self.last.elapsed() < POLL {
            return Vec::new();
        }
        self.last = Instant::now();
        let outcomes = self.check(scripts);
        for o in &outcomes {
            match o {
                Outcome::Reloaded { path, .. } => {
                    eprintln!("gohook: reloaded {}", path.display())
                }
                Outcome::Kept { message, .. } => eprintln!("gohook: {message}"),
            }
        }
        outcomes
    }

    /// Reloads every changed file now.
    pub fn check(&mut self, scripts: &mut [Script]) -> Vec<Outcome> {
        let mut out = Vec::new();
        for (index, entry) in self.files.iter_mut().enumerate() {
            let Some((path, old)) = entry else { continue };
            let now = stamp(path);
            if now.is_none() || now == *old {
                // A file being replaced may be missing for a moment: try again next poll.
                continue;
            }
            *old = now;
            let Some(current) = scripts.get_mut(index) else {
                continue;
            };
            let kept = |message: String| Outcome::Kept {
                index,
                message: format!("{message}; still running the previous version"),
            };
            let source = match std::fs::read_to_string(&*path) {
                Ok(s) => s,
                Err(e) => {
                    out.push(kept(format!("{}: {e}", path.display())));
                    continue;
                }
            };
            let mut new =
                match loader::load_source(&current.name, &source, Origin::User(path.clone())) {
                    Ok(s) => s,
                    Err(e) => {
                        out.push(kept(e.to_string()));
                        continue;
                    }
                };
            if new.hooks != current.hooks {
                out.push(kept(format!(
                    "{}: HOOK changed ({:?} -> {:?}): hooking other functions needs a restart",
                    path.display(),
                    current.hooks,
                    new.hooks
                )));
                continue;
            }
            if new.signature != current.signature {
                out.push(kept(format!(
                    "{}: SIGNATURE changed: argument types are read at start; it needs a restart",
                    path.display()
                )));
                continue;
            }
            self.capture.register(&mut new.engine);
            *current = new;
            out.push(Outcome::Reloaded {
                index,
                path: path.clone(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &PathBuf, text: &str) {
        std::fs::write(path, text).unwrap();
        // A distinct mtime even on coarse clocks: the size differs too in these tests.
    }

    #[test]
    fn a_changed_file_reloads_and_a_broken_or_rehooked_one_is_kept() {
        let dir = std::env::temp_dir().join(format!("gohook-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.rhai");
        write(&path, "const HOOK = \"main.f\";\nfn on_enter(ctx) { }\n");
        let mut scripts = loader::load_paths(std::slice::from_ref(&path)).unwrap();
        let mut r = Reloader::new(&scripts, Capture::default());
        assert!(r.check(&mut scripts).is_empty(), "unchanged");

        write(
            &path,
            "const HOOK = \"main.f\";\nfn on_enter(ctx) { }\nfn on_leave(ctx) { }\n",
        );
        assert_eq!(
            r.check(&mut scripts),
            [Outcome::Reloaded {
                index: 0,
                path: path.clone()
            }]
        );
        assert!(scripts[0].has_leave, "the new version runs");

        write(
            &path,
            "const HOOK = \"main.f\";\nfn on_enter(ctx) { let x = ; }\n",
        );
        let o = r.check(&mut scripts);
        let [Outcome::Kept { message, .. }] = &o[..] else {
            panic!("{o:?}")
        };
        assert!(
            message.contains(":2:") && message.contains("previous version"),
            "{message}"
        );
        assert!(scripts[0].has_leave, "the old version stays");

        write(&path, "const HOOK = \"main.g\";\nfn on_enter(ctx) { }\n");
        let o = r.check(&mut scripts);
        let [Outcome::Kept { message, .. }] = &o[..] else {
            panic!("{o:?}")
        };
        assert!(message.contains("needs a restart"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
