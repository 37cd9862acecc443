//! The default scripts shipped inside gohook: every `scripts/*.rhai` of the source tree,
//! embedded at build time (`build.rs` lists them). They load when the functions they hook exist
//! in the target and are skipped quietly otherwise; `--no-default-scripts` turns them off.

/// `(file name, source)` of each bundled script, sorted by file name.
pub const SCRIPTS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/bundled_scripts.rs"));
