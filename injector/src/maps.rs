//! `/proc/<pid>/maps`: the target's mappings, and free gaps within ±2 GiB of its text where a
//! trampoline region can be placed so a 5-byte `JMP rel32` reaches it.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Largest distance a `rel32` displacement can cover, kept a page short of 2 GiB for safety.
pub const REL32_REACH: u64 = (1 << 31) - 4096;

/// One line of `/proc/<pid>/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Shared (`s`) rather than private (`p`).
    pub shared: bool,
    /// File offset.
    pub offset: u64,
    /// The path or pseudo-name (`[vdso]`, `[heap]`, ...); empty for anonymous memory.
    pub path: String,
}

impl Mapping {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    /// True for an empty range (never produced by the parser).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// True when `addr` lies inside.
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }
    /// `rwxp`-style permission string.
    pub fn perms(&self) -> String {
        let f = |b, c| if b { c } else { '-' };
        [
            f(self.read, 'r'),
            f(self.write, 'w'),
            f(self.exec, 'x'),
            if self.shared { 's' } else { 'p' },
        ]
        .iter()
        .collect()
    }
}

/// Parses the text of a maps file. Lines that do not parse are skipped: the file is produced by
/// the kernel, but we never let a surprise turn into a panic.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?.as_bytes();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start().to_string();
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if perms.len() < 4 || end <= start {
        return None;
    }
    Some(Mapping {
        start,
        end,
        read: perms[0] == b'r',
        write: perms[1] == b'w',
        exec: perms[2] == b'x',
        shared: perms[3] == b's',
        offset,
        path,
    })
}

/// Reads and parses `/proc/<pid>/maps`.
pub fn read_maps(pid: i32) -> Result<Vec<Mapping>> {
    let path = PathBuf::from(format!("/proc/{pid}/maps"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_maps(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoSuchProcess { pid }),
        Err(source) => Err(Error::Proc { path, source }),
    }
}

/// The executable mappings of the main program (the file `/proc/<pid>/exe` points to), as an
/// address range from the first to the last one.
pub fn main_text(pid: i32, maps: &[Mapping]) -> Option<(u64, u64)> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_string_lossy();
    // The kernel appends " (deleted)" when the file was replaced; compare the prefix.
    let text: Vec<&Mapping> = maps
        .iter()
        .filter(|m| m.exec && !m.path.is_empty() && m.path.starts_with(&*exe))
        .collect();
    let start = text.iter().map(|m| m.start).min()?;
    let end = text.iter().map(|m| m.end).max()?;
    Some((start, end))
}

/// Lowest address the kernel lets user space map (`/proc/sys/vm/mmap_min_addr`, 64 KiB if
/// unreadable).
pub fn mmap_min_addr() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/mmap_min_addr")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0x10000)
        .max(0x10000)
}

/// Picks a page-aligned address for a `len`-byte mapping inside a free gap of `maps` such that
/// every byte of the mapping is within [`REL32_REACH`] of every byte of `text`.
///
/// Preference: right below the text (nothing grows there in Go binaries), else as high as
/// reachable above it, which keeps clear of a brk heap that grows up from the end of the binary.
pub fn near_gap(maps: &[Mapping], text: (u64, u64), len: u64, min_addr: u64) -> Option<u64> {
    const PAGE: u64 = 4096;
    const GUARD: u64 = PAGE;
    let len = len.checked_add(PAGE - 1)? & !(PAGE - 1);
    let (text_start, text_end) = text;
    // The mapping [a, a+len) must satisfy: a+len - text_start <= REACH and text_end - a <= REACH.
    let lo = text_end.saturating_sub(REL32_REACH).max(min_addr);
    let hi = text_start.checked_add(REL32_REACH)?.min(0x7fff_ffff_f000);
    let mut sorted: Vec<(u64, u64)> = maps.iter().map(|m| (m.start, m.end)).collect();
    sorted.sort_unstable();
    let mut gaps = Vec::new();
    let mut prev_end = 0u64;
    for (s, e) in sorted {
        if s > prev_end {
            gaps.push((prev_end, s));
        }
        prev_end = prev_end.max(e);
    }
    gaps.push((prev_end, 0x7fff_ffff_f000));
    let mut below: Option<u64> = None;
    let mut above: Option<u64> = None;
    for (gs, ge) in gaps {
        // Keep a guard page on both sides of the new mapping.
        let start = gs.saturating_add(GUARD).max(lo);
        let end = ge.saturating_sub(GUARD).min(hi);
        if end <= start || end - start < len {
            continue;
        }
        let addr = (end - len) & !(PAGE - 1);
        if addr < start {
            continue;
        }
        if addr + len <= text_start {
            below = Some(below.map_or(addr, |b: u64| b.max(addr)));
        } else if addr >= text_end {
            above = Some(above.map_or(addr, |a: u64| a.max(addr)));
        }
    }
    below.or(above)
}

/// True when every byte of `[addr, addr+len)` can reach every byte of `text` with a rel32.
pub fn within_reach(addr: u64, len: u64, text: (u64, u64)) -> bool {
    let end = addr.saturating_add(len);
    end.saturating_sub(text.0) <= REL32_REACH && text.1.saturating_sub(addr) <= REL32_REACH
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
00400000-00481000 r-xp 00000000 fd:01 1234                               /tmp/spin
00481000-004c9000 r--p 00081000 fd:01 1234                               /tmp/spin
004c9000-004e4000 rw-p 000c9000 fd:01 1234                               /tmp/spin
004e4000-0051a000 rw-p 00000000 00:00 0
c000000000-c004000000 rw-p 00000000 00:00 0
7f5a3d345000-7f5a3d347000 r-xp 00000000 00:00 0                          [vdso]
garbage line
";

    #[test]
    fn parses_ranges_permissions_and_names() {
        let maps = parse_maps(SAMPLE);
        assert_eq!(maps.len(), 6, "the garbage line is skipped");
        assert_eq!(maps[0].start, 0x400000);
        assert_eq!(maps[0].perms(), "r-xp");
        assert_eq!(maps[0].path, "/tmp/spin");
        assert_eq!(maps[3].path, "");
        assert_eq!(maps[5].path, "[vdso]");
        assert!(maps[5].exec && !maps[5].write);
    }

    #[test]
    fn near_gap_prefers_below_text_and_stays_in_reach() {
        let maps = parse_maps(SAMPLE);
        let text = (0x400000, 0x481000);
        let addr = near_gap(&maps, text, 0x10000, 0x10000).unwrap();
        assert!(
            addr + 0x10000 <= 0x400000 - 4096,
            "below the text with a guard page"
        );
        assert!(within_reach(addr, 0x10000, text));
        assert_eq!(addr % 4096, 0);
    }

    #[test]
    fn near_gap_goes_above_when_below_is_full() {
        let maps = parse_maps(SAMPLE);
        let text = (0x400000, 0x481000);
        // 8 MiB does not fit below 0x400000.
        let addr = near_gap(&maps, text, 8 << 20, 0x10000).unwrap();
        assert!(addr >= 0x51a000 + 4096);
        assert!(within_reach(addr, 8 << 20, text));
        assert!(
            maps.iter()
                .all(|m| addr + (8 << 20) <= m.start || addr >= m.end),
            "inside a gap"
        );
    }

    #[test]
    fn near_gap_reports_none_when_nothing_is_reachable() {
        // Text surrounded by mappings for 4 GiB on both sides.
        let maps = vec![
            Mapping {
                start: 0x1000_0000,
                end: 0x2_0000_0000,
                read: true,
                write: false,
                exec: false,
                shared: false,
                offset: 0,
                path: String::new(),
            },
            Mapping {
                start: 0x2_0000_0000,
                end: 0x2_0010_0000,
                read: true,
                write: false,
                exec: true,
                shared: false,
                offset: 0,
                path: "x".into(),
            },
            Mapping {
                start: 0x2_0010_0000,
                end: 0x4_0000_0000,
                read: true,
                write: false,
                exec: false,
                shared: false,
                offset: 0,
                path: String::new(),
            },
        ];
        assert_eq!(
            near_gap(&maps, (0x2_0000_0000, 0x2_0010_0000), 4096, 0x10000),
            None
        );
    }
}
