//! Helpers shared by the moduledata and rtype tests.

#![allow(dead_code)]

/// Builds the values fixture with Go 1.19 (see [`build_with_old_go`]).
pub fn build_with_go119() -> Option<std::path::PathBuf> {
    build_with_old_go("go1.19.13", "1.19")
}

/// Builds the values fixture with an old release (its go.mod says 1.21, so a copy saying
/// `go_mod_version` is built), cached under target/fixtures by the source's hash. `None`, with
/// a note, when the release cannot be fetched on this machine.
pub fn build_with_old_go(release: &str, go_mod_version: &str) -> Option<std::path::PathBuf> {
    use std::hash::{Hash, Hasher};
    let src = std::fs::read(fixtures::source_dir("values").join("main.go")).unwrap();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    src.hash(&mut h);
    let dir = fixtures::workspace_root()
        .join("target/fixtures")
        .join(format!("values-{release}-{:016x}", h.finish()));
    if dir.join("values").is_file() && dir.join("values-stripped").is_file() {
        return Some(dir);
    }
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("main.go"), &src).unwrap();
    std::fs::write(
        tmp.join("go.mod"),
        format!("module values\n\ngo {go_mod_version}\n"),
    )
    .unwrap();
    for (out, flags) in [
        ("values", vec![]),
        ("values-stripped", vec!["-ldflags=-s -w"]),
    ] {
        // Go 1.19's `go build .` fails here ("import of unknown directory"); naming the file works.
        let run = std::process::Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(out)
            .args(flags)
            .arg("main.go")
            .current_dir(&tmp)
            .env("GOTOOLCHAIN", release)
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-buildvcs=false")
            .output()
            .unwrap();
        if !run.status.success() {
            let err = String::from_utf8_lossy(&run.stderr);
            let _ = std::fs::remove_dir_all(&tmp);
            if err.contains("toolchain") || err.contains("download") {
                eprintln!("skipping {release}: {err}");
                return None;
            }
            panic!("{release} build failed: {err}");
        }
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // a concurrent test won the race
    }
    Some(dir)
}
