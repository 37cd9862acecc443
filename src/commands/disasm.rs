//! `gohook disasm`: one function's instructions with their source lines and gohook's patch plan
//! for it (which bytes the entry jump replaces, which returns get exit hooks), or the reason it
//! is refused. With `--pid`, the live bytes are compared with the file: a hooked function shows
//! the jump gohook wrote and the trampoline it leads to.
//!
//! Everything read — the binary, the process's memory — is treated as hostile: every length is
//! bounded, undecodable bytes are shown as `(bad)`, and a jump is only followed into an
//! executable mapping of the process.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Formatter, Instruction, IntelFormatter,
};
use serde::Serialize;

use super::hex;
use super::target::Target;
use crate::cli::DisasmArgs;
use crate::glob::Glob;
use crate::hookplan::{self, Verdict};

/// Largest function listed (Go's biggest generated functions are a few hundred KiB).
const MAX_FUNC_BYTES: u64 = 1 << 20;
/// Most bytes read at a trampoline.
const MAX_TRAMPOLINE_BYTES: usize = 4096;
/// Most instructions shown of one trampoline.
const MAX_TRAMPOLINE_INSNS: usize = 400;

/// What a listing line is part of, in the patch plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Mark {
    /// Replaced by the entry jump to the entry trampoline.
    EntryPatch,
    /// Replaced by a jump to an exit trampoline (an epilogue ending in a hooked RET).
    ExitPatch,
    /// A return (or tail jump) that gets no exit hook.
    ExitRefused,
    /// Not touched.
    None,
}

impl Mark {
    fn column(self) -> char {
        match self {
            Mark::EntryPatch => '*',
            Mark::ExitPatch => '>',
            Mark::ExitRefused => '!',
            Mark::None => ' ',
        }
    }
}

/// One decoded instruction.
#[derive(Debug, Serialize)]
struct Line {
    addr: String,
    bytes: String,
    text: String,
    /// Source position, on the first instruction of each new line only.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    mark: Mark,
    /// Why this line is marked (exit hooked / refused and why).
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(skip)]
    ip: u64,
    #[serde(skip)]
    len: usize,
    /// A direct branch or call's target.
    #[serde(skip)]
    target: Option<u64>,
}

/// The entry patch of a hookable function.
#[derive(Debug, Serialize)]
struct EntryPatch {
    start: String,
    len: usize,
    shape: String,
    resume: String,
}

/// A hooked or refused exit.
#[derive(Debug, Serialize)]
struct ExitSite {
    ret: String,
    hooked: bool,
    /// First patched byte and patch length, when hooked.
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// A range of the function whose live bytes differ from the file.
#[derive(Debug, Serialize)]
struct LiveSite {
    addr: String,
    len: usize,
    /// The live instructions over the range.
    instructions: Vec<Line>,
    /// Where the live jump leads, decoded, when it leaves the function for executable memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    trampoline: Option<Trampoline>,
}

/// Code at the target of a live patch jump.
#[derive(Debug, Serialize)]
struct Trampoline {
    addr: String,
    /// The mapping it lies in (`/proc/PID/maps` path, empty for anonymous memory).
    mapping: String,
    instructions: Vec<Line>,
    /// True when the listing stopped at the length bound rather than at a return or jump back.
    truncated: bool,
}

/// The live state of the function in a process.
#[derive(Debug, Serialize)]
struct Live {
    same_as_file: bool,
    sites: Vec<LiveSite>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Report {
    name: String,
    target: String,
    entry: String,
    end: String,
    size: u64,
    file: Option<String>,
    line: Option<i32>,
    hookable: bool,
    refusal: Option<String>,
    entry_patch: Option<EntryPatch>,
    exits: Vec<ExitSite>,
    instructions: Vec<Line>,
    live: Option<Live>,
}

/// Runs `gohook disasm`.
pub fn run(args: &DisasmArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (binary, func) = match (args.pid, &args.args[..]) {
        (Some(_), [f]) => (None, f),
        (None, [b, f]) => (Some(Path::new(b)), f),
        (Some(_), _) => bail!("give one FUNC with --pid"),
        (None, _) => bail!("give a BINARY and a FUNC (or --pid PID FUNC)"),
    };
    let t = Target::open(binary, args.pid)?;
    let f = find_func(&t, func)?;
    let report = build(&t, &f)?;
    if args.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        print_text(&report, out)?;
    }
    Ok(())
}

/// The function named `name`, or the only one the glob `name` matches.
fn find_func(t: &Target, name: &str) -> anyhow::Result<gostrings::Func> {
    let funcs: Vec<gostrings::Func> = t
        .binary
        .pclntab
        .funcs()
        .collect::<Result<_, _>>()
        .with_context(|| t.label.clone())?;
    if let Some(f) = funcs.iter().find(|f| f.name == name) {
        return Ok(f.clone());
    }
    let glob = Glob::new(name);
    let matched: Vec<&gostrings::Func> = funcs.iter().filter(|f| glob.matches(&f.name)).collect();
    match matched[..] {
        [f] => Ok(f.clone()),
        [] => {
            let mut scored: Vec<(f64, &str)> = funcs
                .iter()
                .map(|f| (strsim::jaro_winkler(name, &f.name), f.name.as_str()))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.dedup_by(|a, b| a.1 == b.1);
            let close: Vec<&str> = scored.iter().take(5).map(|s| s.1).collect();
            bail!(
                "no function {name:?} in {}; closest names: {}",
                t.label,
                close.join(", ")
            )
        }
        _ => {
            let names: Vec<&str> = matched.iter().take(5).map(|f| f.name.as_str()).collect();
            bail!(
                "{name:?} matches {} functions ({}{}); name one",
                matched.len(),
                names.join(", "),
                if matched.len() > 5 { ", …" } else { "" }
            )
        }
    }
}

fn build(t: &Target, f: &gostrings::Func) -> anyhow::Result<Report> {
    let size = f.size();
    if size > MAX_FUNC_BYTES {
        bail!(
            "{} is {size} bytes; disasm lists at most {MAX_FUNC_BYTES}",
            f.name
        );
    }
    let code = t
        .binary
        .elf
        .bytes_at(f.entry, size as usize)
        .with_context(|| format!("the bytes of {} are not in {}", f.name, t.label))?;
    let entry = t.live(f.entry);
    let verdict = hookplan::assess(&t.binary, f, t.bias);

    let mut lines = decode_lines(code, entry, usize::MAX);
    annotate_sources(t, f, &mut lines);
    name_targets(t, &mut lines, entry..t.live(f.end));

    let (mut entry_patch, mut exits, mut refusal) = (None, Vec::new(), None);
    match &verdict {
        Verdict::Refused(why) => refusal = Some(why.clone()),
        Verdict::Hookable(plan) => {
            let e = &plan.entry;
            mark_range(&mut lines, e.entry, e.patch_len, Mark::EntryPatch, None);
            entry_patch = Some(EntryPatch {
                start: hex(e.entry),
                len: e.patch_len,
                shape: e.shape.to_string(),
                resume: hex(e.resume),
            });
            for site in &plan.exits {
                let p = &site.plan;
                let note = if site.needs_goroutine_proof {
                    "exit hooked (patched once no goroutine is parked inside the epilogue)"
                } else {
                    "exit hooked"
                };
                mark_range(&mut lines, p.start, p.len, Mark::ExitPatch, None);
                set_note(&mut lines, p.ret, Mark::ExitPatch, note.into());
                exits.push(ExitSite {
                    ret: hex(p.ret),
                    hooked: true,
                    start: Some(hex(p.start)),
                    len: Some(p.len),
                    reason: None,
                });
            }
            for (at, why) in &plan.exit_refusals {
                set_note(
                    &mut lines,
                    *at,
                    Mark::ExitRefused,
                    format!("exit not hooked: {why}"),
                );
                exits.push(ExitSite {
                    ret: hex(*at),
                    hooked: false,
                    start: None,
                    len: None,
                    reason: Some(why.clone()),
                });
            }
        }
    }

    let live = match t.pid {
        Some(pid) => Some(read_live(t, pid, code, entry, &lines)?),
        None => None,
    };
    Ok(Report {
        name: f.name.clone(),
        target: t.label.clone(),
        entry: hex(entry),
        end: hex(t.live(f.end)),
        size,
        file: f.file.clone(),
        line: f.line,
        hookable: refusal.is_none(),
        refusal,
        entry_patch,
        exits,
        instructions: lines,
        live,
    })
}

/// Decodes `code` placed at `base`, at most `max` instructions. Bytes that do not decode become
/// one `(bad)` line each, so a listing never stops at garbage.
fn decode_lines(code: &[u8], base: u64, max: usize) -> Vec<Line> {
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_first_operand_char_index(8);
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    fmt.options_mut().set_uppercase_hex(false);
    fmt.options_mut().set_branch_leading_zeros(false);
    fmt.options_mut().set_show_branch_size(false);
    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut lines = Vec::new();
    while decoder.can_decode() && lines.len() < max {
        decoder.decode_out(&mut insn);
        let off = insn.ip().wrapping_sub(base) as usize;
        let (text, len) = if insn.code() == Code::INVALID {
            // Resynchronise one byte further on.
            let next = off + 1;
            if next < code.len() {
                let _ = decoder.set_position(next);
                decoder.set_ip(base.wrapping_add(next as u64));
            }
            ("(bad)".to_owned(), 1)
        } else {
            let mut s = String::new();
            fmt.format(&insn, &mut s);
            (s, insn.len())
        };
        let bytes = code
            .get(off..off.saturating_add(len).min(code.len()))
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        lines.push(Line {
            addr: hex(insn.ip()),
            bytes,
            text,
            source: None,
            mark: Mark::None,
            note: None,
            ip: insn.ip(),
            len,
            target: match insn.flow_control() {
                FlowControl::Call
                | FlowControl::UnconditionalBranch
                | FlowControl::ConditionalBranch => Some(insn.near_branch_target()),
                _ => None,
            }
            .filter(|&t| t != 0),
        });
        if insn.code() == Code::INVALID && off + 1 >= code.len() {
            break;
        }
    }
    lines
}

/// Puts `file:line` on each instruction where the source position changes (file base name only;
/// the header has the full path).
fn annotate_sources(t: &Target, f: &gostrings::Func, lines: &mut [Line]) {
    let pcln = &t.binary.pclntab;
    let runs: Vec<gostrings::pclntab::PcValue> = pcln
        .pcln(f)
        .map(|it| it.take(1 << 20).collect())
        .unwrap_or_default();
    let mut last: Option<(Option<String>, i32)> = None;
    let mut file_cache: Option<(std::ops::Range<u64>, Option<String>)> = None;
    for l in lines.iter_mut() {
        let pc = l.ip.wrapping_sub(t.bias);
        let Some(run) = runs.iter().find(|r| r.pcs.contains(&pc)) else {
            continue;
        };
        let file = match &file_cache {
            Some((r, name)) if r.contains(&pc) => name.clone(),
            _ => {
                let name = pcln.file_at(pc);
                file_cache = Some((run.pcs.clone(), name.clone()));
                name
            }
        };
        let here = (file, run.value);
        if last.as_ref() != Some(&here) {
            let base = here
                .0
                .as_deref()
                .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
                .unwrap_or_else(|| "?".into());
            l.source = Some(format!("{base}:{}", here.1));
            last = Some(here);
        }
    }
}

/// Appends `<function+offset>` to branches and calls whose target is a Go function outside
/// `inside` (calls into other functions; a trampoline's jumps back into the hooked one).
fn name_targets(t: &Target, lines: &mut [Line], inside: std::ops::Range<u64>) {
    for l in lines.iter_mut() {
        let Some(to) = l.target.filter(|to| !inside.contains(to)) else {
            continue;
        };
        let Some(f) = t.binary.pclntab.func_at(to.wrapping_sub(t.bias)) else {
            continue;
        };
        let off = to.wrapping_sub(t.live(f.entry));
        l.text = if off == 0 {
            format!("{} <{}>", l.text, f.name)
        } else {
            format!("{} <{}+{off:#x}>", l.text, f.name)
        };
    }
}

/// Marks every instruction overlapping `[start, start + len)`.
fn mark_range(lines: &mut [Line], start: u64, len: usize, mark: Mark, note: Option<String>) {
    let end = start.saturating_add(len as u64);
    for l in lines.iter_mut() {
        if l.ip < end && l.ip.saturating_add(l.len as u64) > start {
            l.mark = mark;
            if note.is_some() {
                l.note = note.clone();
            }
        }
    }
}

fn set_note(lines: &mut [Line], at: u64, mark: Mark, note: String) {
    if let Some(l) = lines.iter_mut().find(|l| l.ip == at) {
        l.mark = mark;
        l.note = Some(note);
    }
}

/// Reads the function's live bytes in `pid` and lists every range that differs from the file,
/// following patch jumps into their trampolines.
fn read_live(
    t: &Target,
    pid: i32,
    code: &[u8],
    entry: u64,
    lines: &[Line],
) -> anyhow::Result<Live> {
    let mem = injector::mem::ProcessMemory::new(pid);
    let live = mem
        .read_vec(entry, code.len())
        .map_err(|e| read_error(pid, entry, e))?;
    // Differing bytes, widened to the file's instruction boundaries; ranges that touch are one
    // patch (a patch covers whole instructions, and some of its bytes may equal the file's).
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (i, _) in live
        .iter()
        .zip(code)
        .enumerate()
        .filter(|(_, (l, c))| l != c)
    {
        let at = entry + i as u64;
        let (s, e) = lines
            .iter()
            .find(|l| l.ip <= at && at < l.ip.saturating_add(l.len as u64))
            .map_or((at, at + 1), |l| (l.ip, l.ip.saturating_add(l.len as u64)));
        let (s, e) = ((s - entry) as usize, ((e - entry) as usize).min(code.len()));
        match ranges.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => ranges.push((s, e)),
        }
    }
    let mut sites = Vec::new();
    for (s, e) in ranges {
        let start = entry + s as u64;
        let mut insns = decode_lines(&live[s..e], start, 64);
        let mut trampoline = insns
            .first()
            .and_then(|l| jump_target(&live[s..e], l))
            .filter(|t| !(entry..entry + code.len() as u64).contains(t))
            .and_then(|target| read_trampoline(&mem, pid, target, entry, code.len()));
        name_targets(t, &mut insns, 0..0);
        if let Some(tr) = &mut trampoline {
            name_targets(t, &mut tr.instructions, 0..0);
        }
        sites.push(LiveSite {
            addr: hex(start),
            len: e - s,
            instructions: insns,
            trampoline,
        });
    }
    Ok(Live {
        same_as_file: sites.is_empty(),
        sites,
    })
}

/// One line: `gohook: reading …: …`, with the ptrace hint when the kernel said no.
fn read_error(pid: i32, addr: u64, e: injector::error::Error) -> anyhow::Error {
    use nix::errno::Errno;
    match &e {
        injector::error::Error::ReadMemory {
            errno: Errno::EPERM | Errno::EACCES,
            ..
        } => anyhow::anyhow!(
            "permission denied reading the memory of pid {pid}: {}",
            injector::error::PERMISSION_HINT
        ),
        _ => anyhow::Error::new(e).context(format!("reading pid {pid} at {addr:#x}")),
    }
}

/// The target of a direct `JMP`/`CALL` decoded as `line` from `bytes`.
fn jump_target(bytes: &[u8], line: &Line) -> Option<u64> {
    let mut d = Decoder::with_ip(64, bytes, line.ip, DecoderOptions::NONE);
    let i = d.decode();
    (i.flow_control() == FlowControl::UnconditionalBranch && i.is_jmp_near())
        .then(|| i.near_branch_target())
}

/// Decodes the code at `target` until it returns or jumps back into the function at
/// `[func, func + len)`, reading only inside one executable mapping and at most
/// [`MAX_TRAMPOLINE_BYTES`].
fn read_trampoline(
    mem: &injector::mem::ProcessMemory,
    pid: i32,
    target: u64,
    func: u64,
    len: usize,
) -> Option<Trampoline> {
    let maps = injector::maps::read_maps(pid).ok()?;
    let m = maps.iter().find(|m| m.contains(target) && m.exec)?;
    let n = (m.end - target).min(MAX_TRAMPOLINE_BYTES as u64) as usize;
    let bytes = mem.read_vec(target, n).ok()?;
    let all = decode_lines(&bytes, target, MAX_TRAMPOLINE_INSNS);
    let back = func..func.saturating_add(len as u64);
    let mut shown = Vec::new();
    let mut ended = false;
    for l in all {
        let off = (l.ip - target) as usize;
        let raw = &bytes[off..(off + l.len).min(bytes.len())];
        let mut d = Decoder::with_ip(64, raw, l.ip, DecoderOptions::NONE);
        let i = d.decode();
        let leaves = match i.flow_control() {
            FlowControl::Return => true,
            FlowControl::UnconditionalBranch => back.contains(&i.near_branch_target()),
            _ => false,
        };
        shown.push(l);
        if leaves {
            ended = true;
            break;
        }
    }
    Some(Trampoline {
        addr: hex(target),
        mapping: if m.path.is_empty() {
            "anonymous".into()
        } else {
            m.path.clone()
        },
        instructions: shown,
        truncated: !ended,
    })
}

fn print_text(r: &Report, out: &mut dyn Write) -> anyhow::Result<()> {
    let pos = match (&r.file, r.line) {
        (Some(f), Some(l)) => format!("{f}:{l}"),
        (Some(f), None) => f.clone(),
        _ => "?".into(),
    };
    writeln!(out, "{}  ({})", r.name, r.target)?;
    writeln!(
        out,
        "entry {}  end {}  size {}  {pos}",
        r.entry, r.end, r.size
    )?;
    match (&r.refusal, &r.entry_patch) {
        (Some(why), _) => writeln!(out, "not hookable: {why}")?,
        (None, Some(e)) => {
            let hooked = r.exits.iter().filter(|e| e.hooked).count();
            writeln!(
                out,
                "hookable: entry patch {} bytes at {} ({} stack check), {hooked} of {} exits hooked",
                e.len,
                e.start,
                e.shape,
                r.exits.len()
            )?;
        }
        (None, None) => {}
    }
    writeln!(out)?;
    print_lines(&r.instructions, true, out)?;
    writeln!(out)?;
    if let Some(e) = &r.entry_patch {
        writeln!(
            out,
            "*  patched: jmp to the entry trampoline, {} bytes over the {} stack check; the \
             trampoline replays the check, records the call and resumes at {}",
            e.len, e.shape, e.resume
        )?;
        if r.exits.iter().any(|e| e.hooked) {
            writeln!(
                out,
                ">  patched: jmp to an exit trampoline over the epilogue; it re-runs the \
                 epilogue, records the return and returns to the caller"
            )?;
        }
        if r.exits.iter().any(|e| !e.hooked) {
            writeln!(
                out,
                "!  exit not hooked: calls leaving here end as unfinished spans"
            )?;
        }
    } else {
        writeln!(out, "no bytes would be patched")?;
    }
    if let Some(live) = &r.live {
        writeln!(out)?;
        if live.same_as_file {
            writeln!(
                out,
                "live: the bytes in the process are the file's (not hooked)"
            )?;
        }
        for s in &live.sites {
            writeln!(
                out,
                "live: {} bytes at {} differ from the file:",
                s.len, s.addr
            )?;
            print_lines(&s.instructions, false, out)?;
            if let Some(t) = &s.trampoline {
                writeln!(out, "  trampoline at {} ({}):", t.addr, t.mapping)?;
                print_lines(&t.instructions, false, out)?;
                if t.truncated {
                    writeln!(
                        out,
                        "  … (stopped after {} instructions)",
                        t.instructions.len()
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn print_lines(lines: &[Line], marks: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let w = lines.iter().map(|l| l.addr.len()).max().unwrap_or(0);
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        i += 1;
        // Go pads functions to 32 bytes with INT3: one line for the run.
        let run = lines[i - 1..]
            .iter()
            .take_while(|p| p.bytes == "cc" && p.mark == Mark::None && p.note.is_none())
            .count();
        if run >= 3 {
            writeln!(
                out,
                "  {:<w$}  {:<22} int3 × {run} (padding)",
                l.addr, "cc…"
            )?;
            i += run - 1;
            continue;
        }
        let mut comment = Vec::new();
        if let Some(s) = &l.source {
            comment.push(s.clone());
        }
        if let Some(n) = &l.note {
            comment.push(n.clone());
        }
        let comment = if comment.is_empty() {
            String::new()
        } else {
            format!("  ; {}", comment.join("  "))
        };
        let mark = if marks { l.mark.column() } else { ' ' };
        let text = format!("{:<40}", l.text);
        writeln!(
            out,
            "{mark} {:<w$}  {:<22} {}{comment}",
            l.addr,
            l.bytes,
            if comment.is_empty() {
                text.trim_end()
            } else {
                &text
            }
        )?;
    }
    Ok(())
}
