//! `gohook report FILE`: what a record file holds (the binary, when and how long, counts) and
//! the per-function summary of its calls, as text or one JSON object.
//!
//! Every recorded call counts (hook scripts are not run: the summary is per Go function), so the
//! counts equal those of a live `--summary` without scripts.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::ReportArgs;
use crate::collector::{SpanSink, Stats};
use crate::record::{self, Tail};
use crate::spans::{human_duration, Span};
use crate::summary::Summary;

use super::replay::{collector_for, feed};

/// Counts spans into a summary it borrows.
struct Into<'a>(&'a mut Summary);

impl SpanSink for Into<'_> {
    fn emit(&mut self, span: Span) -> std::io::Result<()> {
        self.0.add(&span);
        Ok(())
    }
    fn finish(&mut self, stats: &Stats) -> std::io::Result<()> {
        self.0.set_stats(stats);
        Ok(())
    }
}

fn unix_utc(ns: u64) -> String {
    // Days to civil date (Howard Hinnant's algorithm), no time-zone database needed.
    let secs = ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Runs `gohook report`, writing to `out`.
pub fn run(args: &ReportArgs, out: &mut dyn Write) -> Result<()> {
    let (meta, ov) = record::overview(&args.file)?;
    let mut summary = Summary::new();
    let mut col = collector_for(&meta, ov.clock, Into(&mut summary));
    let tail = feed(&args.file, &mut col)?;
    let stats = col.finish().context("summarizing")?;
    let clock = crate::clock::TscClock::from_parts(ov.clock.0, ov.clock.1, ov.clock.2);
    let span_ns = ov.tsc_range.map_or(0, |(a, b)| {
        clock.to_unix_ns(b).saturating_sub(clock.to_unix_ns(a))
    });
    let entries: u64 = ov.entries.iter().sum();
    let exits: u64 = ov.exits.iter().sum();
    let (complete, cut) = match &tail {
        Tail::Complete(_) => (true, None),
        Tail::Cut { offset, reason } => (false, Some((*offset, reason.clone()))),
    };
    let b = &meta.binary;
    if args.json {
        let v = json!({
            "file": args.file.display().to_string(),
            "gohook_version": meta.gohook_version,
            "recorded_unix_ns": meta.started_unix_ns,
            "pid": meta.pid,
            "binary": {
                "path": b.path,
                "size": b.size,
                "crc32": format!("{:08x}", b.crc32),
                "go_build_id": b.go_build_id,
                "gnu_build_id": b.gnu_build_id,
                "go_version": b.go_version,
                "main_module": b.main_module,
                "load_bias": super::hex(b.bias),
            },
            "hooks": meta.hooks.len(),
            "duration_ns": span_ns,
            "entries": entries,
            "exits": exits,
            "dropped_records": ov.dropped,
            "bad_records": ov.bad + ov.unknown_hook,
            "orphan_exits": stats.orphan_exits,
            "complete": complete,
            "cut": cut.as_ref().map(|(o, r)| json!({"offset": o, "reason": r})),
            "summary": summary.to_json(),
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "record:       {}", args.file.display())?;
    writeln!(
        out,
        "recorded:     {} by gohook {}, pid {}",
        unix_utc(meta.started_unix_ns),
        meta.gohook_version,
        meta.pid
    )?;
    writeln!(out, "binary:       {}", b.path)?;
    writeln!(
        out,
        "              {} bytes, CRC-32 {:08x}, {}{}",
        b.size,
        b.crc32,
        b.go_version,
        if b.main_module.is_empty() {
            String::new()
        } else {
            format!(", {}", b.main_module)
        }
    )?;
    if !b.go_build_id.is_empty() {
        writeln!(out, "go build id:  {}", b.go_build_id)?;
    }
    if !b.gnu_build_id.is_empty() {
        writeln!(out, "gnu build id: {}", b.gnu_build_id)?;
    }
    writeln!(out, "hooks:        {}", meta.hooks.len())?;
    writeln!(out, "duration:     {}", human_duration(span_ns))?;
    writeln!(
        out,
        "records:      {entries} entries, {exits} exits, {} dropped, {} bad",
        ov.dropped,
        ov.bad + ov.unknown_hook
    )?;
    match &cut {
        None => writeln!(out, "complete:     yes")?,
        Some((offset, reason)) => writeln!(
            out,
            "complete:     no: {reason} (the first {offset} bytes were read)"
        )?,
    }
    writeln!(out)?;
    summary.write_table(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(super::unix_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::unix_utc(1_700_000_000_000_000_000),
            "2023-11-14 22:13:20 UTC"
        );
    }
}
