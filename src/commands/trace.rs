//! `gohook trace`: `run` (with `-- PROGRAM`) or `attach` (with `--pid`) with the lines view
//! preselected; and the parsing of the view's options and `--signature`s that `run` and
//! `attach` share.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{AttachArgs, RunArgs, TraceArgs, ViewArgs};
use crate::lines::{Predicate, ViewOptions};
use crate::trace::Format;

/// Runs `gohook trace`; returns the exit status gohook should exit with (the program's, when
/// one was started).
pub fn run(args: TraceArgs) -> Result<i32> {
    if args.pid.is_some() && !args.command.is_empty() {
        bail!("give either --pid PID or -- PROGRAM, not both");
    }
    if args.pid.is_none() && args.duration.is_some() {
        bail!("--duration applies to --pid (a started program is traced until it exits)");
    }
    let mut hook = args.hook;
    hook.format.get_or_insert(Format::Lines);
    match args.pid {
        Some(pid) => {
            super::hook::attach(&AttachArgs {
                pid,
                duration: args.duration,
                hook,
            })?;
            Ok(0)
        }
        None => super::hook::run(&RunArgs {
            hook,
            command: args.command,
        }),
    }
}

/// The lines view's options from the command line. They shape `--format lines` only: given
/// with another format they are an error rather than silently ignored.
pub fn view_options(v: &ViewArgs, format: Format) -> Result<ViewOptions> {
    let opts = ViewOptions {
        timestamp: v.timestamp,
        verbosity: v.verbose,
        goroutines: v.goroutines.clone(),
        min_duration: v.min_duration.as_deref().map(parse_duration).transpose()?,
        max_depth: v.max_depth,
        predicate: v.predicate.clone(),
    };
    let used = opts.timestamp
        || opts.verbosity > 0
        || !opts.goroutines.is_empty()
        || opts.min_duration.is_some()
        || opts.max_depth.is_some()
        || opts.predicate.is_some();
    if used && format != Format::Lines {
        bail!("--timestamp, -v, --goroutine, --min-duration, --max-depth and --where shape the lines view: add --format lines (or use gohook trace)");
    }
    if let Some(p) = &opts.predicate {
        Predicate::compile(p).map_err(anyhow::Error::msg)?;
    }
    Ok(opts)
}

/// `500ns`, `250us` (or `µs`), `1ms`, `1.5s`, `2m`: a non-negative number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => bail!(
            "--min-duration {text:?}: give a number and a unit: ns, us, ms, s or m (e.g. 1ms)"
        ),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--min-duration {text:?}: {num:?} is not a number"))?;
    Duration::try_from_secs_f64(n * scale)
        .map_err(|_| anyhow::anyhow!("--min-duration {text:?} is out of range"))
}

/// Each `--signature 'FUNC(params) results'` as (FUNC, `func(params) results`).
pub fn signatures(flags: &[String]) -> Result<Vec<(String, String)>> {
    flags.iter().map(|s| split_signature(s)).collect()
}

/// Splits `main.greet(name string) string` (or `main.(*T).M(...)`) at the parenthesis that
/// opens the parameters: a `(` that begins a method's `(*T).` is part of the name.
fn split_signature(text: &str) -> Result<(String, String)> {
    let t = text.trim();
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'(' {
            let receiver = b.get(i + 1) == Some(&b'*')
                && t[i..]
                    .find(')')
                    .is_some_and(|close| t[i + close + 1..].starts_with('.'));
            if receiver {
                i += t[i..].find(')').map_or(1, |c| c + 1);
                continue;
            }
            let name = t[..i].trim();
            let name = name.strip_prefix("func ").unwrap_or(name).trim();
            if name.is_empty() {
                break;
            }
            return Ok((name.to_owned(), format!("func{}", &t[i..])));
        }
        i += 1;
    }
    bail!("--signature {text:?}: write the function's name and then its Go signature, e.g. 'main.greet(name string, n int) string'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("1ms").unwrap(), Duration::from_millis(1));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("250µs").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("20ns").unwrap(), Duration::from_nanos(20));
        assert!(parse_duration("5")
            .unwrap_err()
            .to_string()
            .contains("unit"));
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1ms").is_err());
    }

    #[test]
    fn a_signature_flag_is_split_at_the_parameters() {
        assert_eq!(
            split_signature("main.greet(name string, n int) string").unwrap(),
            (
                "main.greet".into(),
                "func(name string, n int) string".into()
            )
        );
        assert_eq!(
            split_signature("main.(*User).Birthday(u *main.User) int").unwrap(),
            (
                "main.(*User).Birthday".into(),
                "func(u *main.User) int".into()
            )
        );
        assert_eq!(
            split_signature("main.f(*main.T)").unwrap(),
            ("main.f".into(), "func(*main.T)".into())
        );
        assert_eq!(
            split_signature("func main.g()").unwrap(),
            ("main.g".into(), "func()".into())
        );
        assert!(split_signature("(a int)").is_err());
        assert!(split_signature("main.f").is_err());
    }

    #[test]
    fn view_flags_without_the_lines_format_are_refused() {
        let v = ViewArgs {
            max_depth: Some(1),
            ..Default::default()
        };
        assert!(view_options(&v, Format::Pretty).is_err());
        assert_eq!(view_options(&v, Format::Lines).unwrap().max_depth, Some(1));
        let bad = ViewArgs {
            predicate: Some("n >".into()),
            ..Default::default()
        };
        assert!(view_options(&bad, Format::Lines)
            .unwrap_err()
            .to_string()
            .starts_with("--where"));
    }
}
