//! `--pid`: reading a running PIE process gives live addresses — the file's addresses shifted
//! by the load bias the kernel chose, inside the process's own executable mapping.

mod cli_support;

use std::ffi::OsStr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cli_support::*;
use fixtures::{Toolchain, Variant};

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(start, end, perms, path)` of every mapping of `pid`.
fn maps(pid: u32) -> Vec<(u64, u64, String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = f.first()?.split_once('-')?;
            Some((
                u64::from_str_radix(s, 16).ok()?,
                u64::from_str_radix(e, 16).ok()?,
                f.get(1)?.to_string(),
                f.get(5).unwrap_or(&"").to_string(),
            ))
        })
        .collect()
}

#[test]
fn pid_addresses_are_file_addresses_plus_the_load_bias() {
    let bin = fixtures::must_build("spin", Variant::Pie, &Toolchain::installed());
    let child = Running(Command::new(&bin).arg("-forever").spawn().unwrap());
    let pid = child.0.id();
    let exe = std::fs::canonicalize(&bin)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // Wait until the runtime has started (its executable is mapped).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !maps(pid).iter().any(|m| m.3 == exe) {
        assert!(
            Instant::now() < deadline,
            "spin never mapped its executable"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let live = json_lines(&ok_stdout(&gohook([
        "funcs",
        "--pid",
        &pid.to_string(),
        "--json",
        "main.*",
    ])));
    let file = json_lines(&ok_stdout(&gohook([
        OsStr::new("funcs"),
        bin.as_os_str(),
        "--json".as_ref(),
        "main.*".as_ref(),
    ])));
    assert_eq!(live.len(), file.len());
    assert!(!live.is_empty());
    let bias = hex(&live[0]["entry"]) - hex(&file[0]["entry"]);
    assert_ne!(
        bias, 0,
        "a PIE is never mapped at its link address 0x400000 by the kernel"
    );
    assert_eq!(bias % 4096, 0, "bias {bias:#x} is not page-aligned");
    let text_maps: Vec<_> = maps(pid)
        .into_iter()
        .filter(|m| m.3 == exe && m.2.contains('x'))
        .collect();
    for (l, f) in live.iter().zip(&file) {
        assert_eq!(l["name"], f["name"]);
        let entry = hex(&l["entry"]);
        assert_eq!(
            entry,
            hex(&f["entry"]) + bias,
            "{} not shifted by the same bias",
            l["name"]
        );
        assert!(
            text_maps.iter().any(|m| (m.0..m.1).contains(&entry)),
            "{} at {entry:#x} is not in an executable mapping of {exe}: {text_maps:?}",
            l["name"]
        );
    }

    let info = &json_lines(&ok_stdout(&gohook([
        "info",
        "--pid",
        &pid.to_string(),
        "--json",
    ])))[0];
    assert_eq!(info["pie"], true);
    assert_eq!(hex(&info["load_bias"]), bias);
    assert_eq!(info["pid"], pid);
    let text_start = hex(&info["text_start"]);
    assert!(
        text_maps.iter().any(|m| (m.0..m.1).contains(&text_start)),
        "text_start {text_start:#x}"
    );
}
