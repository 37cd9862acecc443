//! Embeds the bundled hook scripts (`scripts/*.rhai`) into gohook: writes
//! `$OUT_DIR/bundled_scripts.rs`, an array of `(file name, include_str!(path))` sorted by name,
//! which `src/script/bundled.rs` includes.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = root.join("scripts");
    println!("cargo:rerun-if-changed=scripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "rhai") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = String::from("&[\n");
    for f in &files {
        let name = f.file_name().expect("a file").to_string_lossy();
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            f.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push_str("]\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(dest.join("bundled_scripts.rs"), out).expect("writing bundled_scripts.rs");
}
