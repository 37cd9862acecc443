//! Installs planned hooks into a stopped process, collects their records, and removes them.
//!
//! Order of work while every thread is stopped (go-runtime.md §0 rules 5 and 10): map the shared
//! ring (a memfd mapped by the target and by gohook) and a code region within ±2 GiB of the text,
//! generate one entry trampoline per hooked function and one exit trampoline per hookable
//! epilogue at their final addresses, enable the hooks, then write all trampolines and finally
//! all patches as one transaction (threads inside a patch range are stepped out first). The
//! target is detached right after, and runs untraced; gohook only reads the ring.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use gostrings::GoBinary;
use injector::patch::{Patch, PatchSet};
use injector::{RingReader, World};
use trampolines::record::{Record, RecordKind};
use trampolines::ring_layout::RingLayout;
use trampolines::stub::{self, GOffsets, StubContext};

use crate::collector::{Event, EventKind};
use crate::hookplan::HookPlan;

/// Most rings in the shared region: one per M with `m.id` below this; records from other Ms are
/// dropped and counted.
pub const MAX_RINGS: u32 = 64;
/// Fewest rings gohook accepts when large rings force fewer of them.
pub const MIN_RINGS: u32 = 8;
/// Default records per ring (8 MiB of virtual memory per ring with [`SLOT_SIZE`]).
pub const DEFAULT_RING_SLOTS: u32 = 8192;
/// Bytes per record slot: the fixed part, then up to 8 strings and path captures sharing what is
/// left (88 bytes each when all 8 are used, 712 for a single string).
pub const SLOT_SIZE: u32 = 1024;
/// Largest shared region gohook maps (virtual; only pages that are written cost memory).
const MAX_SHARED: u64 = 1 << 30;

/// The ring geometry for `slots` records per ring: as many rings as fit in [`MAX_SHARED`], at
/// most [`MAX_RINGS`], at least [`MIN_RINGS`].
pub fn ring_layout(slots: u32) -> Result<RingLayout> {
    if !slots.is_power_of_two() || slots < 64 {
        bail!("--ring-slots must be a power of two of at least 64, got {slots}");
    }
    let per_ring = u64::from(slots) * u64::from(SLOT_SIZE);
    let rings = (MAX_SHARED / per_ring).min(u64::from(MAX_RINGS)) as u32;
    if rings < MIN_RINGS {
        bail!(
            "--ring-slots {slots} is too large: at most {} fit",
            MAX_SHARED / u64::from(SLOT_SIZE) / u64::from(MIN_RINGS)
        );
    }
    RingLayout::new(rings, slots, SLOT_SIZE).map_err(|e| anyhow!("{e}"))
}
/// Code bytes reserved per trampoline (entry or exit); generation fails loudly if one is larger.
const TRAMPOLINE_BUDGET: u64 = 768;
/// Extra code bytes reserved per string or path capture of an entry trampoline (a path capture
/// with four pointers and a string copy assembles to about 100).
const CAPTURE_BUDGET: u64 = 160;

/// Code bytes reserved for an entry trampoline recording `c`.
fn entry_budget(c: &trampolines::stub::CaptureSpec) -> u64 {
    TRAMPOLINE_BUDGET + CAPTURE_BUDGET * (c.strings.len() + c.paths.len()) as u64
}

/// What was installed, and how to read and remove it.
pub struct Installed {
    /// The patches (for removal).
    pub patches: PatchSet,
    /// The ring consumer.
    pub ring: RingReader,
    /// Function name of each hook id.
    pub functions: Vec<String>,
    /// Per hook id: every return of the function is hooked, so a call that ends without an
    /// exit record really left without returning (panic, Goexit).
    pub exits_complete: Vec<bool>,
    /// Exit sites patched, and exit sites left alone with their reason.
    pub exits_patched: usize,
    /// Returns that are not hooked, with the function and the reason.
    pub exits_skipped: Vec<(String, String)>,
    /// Threads stepped out of a patch range while installing.
    pub threads_moved: usize,
}

/// The g/m offsets the trampolines read for this binary's Go release, from gostrings' table
/// (checked against each release's DWARF `runtime.g`/`runtime.m` by its tests). DWARF is not
/// read here: this runs while the target's threads are stopped.
pub fn g_offsets(bin: &GoBinary) -> Result<GOffsets> {
    let v = bin.go_version();
    let g = bin.g_offsets(None).ok_or_else(|| {
        anyhow!("no runtime.g layout known for {v} (hooks need an exact Go version from buildinfo)")
    })?;
    let int = |x: u64| i32::try_from(x).map_err(|_| anyhow!("g offset {x} out of range"));
    let m_id = g
        .m_id
        .ok_or_else(|| anyhow!("m.id offset unknown for {v}: cannot select a ring per thread"))?;
    Ok(GOffsets {
        goid: int(g.goid)?,
        parent_goid: g.parent_goid.map(int).transpose()?,
        stack_hi: int(g.stack_hi)?,
        m: int(g.m)?,
        m_id: int(m_id)?,
    })
}

/// Installs `plans` (made at this process's run-time addresses) into the stopped `world`.
/// `proven_clear(pcs)` must say whether no parked goroutine can resume at any of `pcs`; exit
/// sites whose interior boundaries are not proven clear are skipped with a reason.
pub fn install(
    world: &mut World,
    bin: &GoBinary,
    bias: u64,
    plans: &[HookPlan],
    captures: &[crate::capture::Captures],
    layout: RingLayout,
    with_exits: bool,
    proven_clear: impl FnMut(&mut World, &[u64]) -> Result<bool>,
) -> Result<Installed> {
    if plans.len() > trampolines::ring_layout::MAX_HOOKS {
        bail!(
            "{} functions selected; at most {} can be hooked at once",
            plans.len(),
            trampolines::ring_layout::MAX_HOOKS
        );
    }
    let remote = injector::Remote::new(world, None).context("preparing injected syscalls")?;
    let mut remote = lend_rt0_go(world, bin, bias, remote);
    let installed = install_with(
        world,
        bin,
        bias,
        plans,
        captures,
        layout,
        with_exits,
        &remote,
        proven_clear,
    );
    let released = remote.release(world).context("putting back runtime.rt0_go");
    let installed = installed?;
    released?;
    Ok(installed)
}

/// Lends `runtime.rt0_go` to the injector for its self-restoring syscall stub, so that gohook
/// killed at any instant of an injected syscall leaves the thread coherent. rt0_go runs once, on
/// the main thread, at process start, and never returns: once the runtime has started a second
/// thread (sysmon, started by `runtime.main`) and no thread is inside it, it never runs again.
/// Otherwise (a process caught in its first instants, or `gohook run`'s exec stop, where the
/// target is killed with gohook anyway) the bare gadget is used.
fn lend_rt0_go(
    world: &World,
    bin: &GoBinary,
    bias: u64,
    remote: injector::Remote,
) -> injector::Remote {
    if world.tids().len() < 2 {
        return remote;
    }
    let Some(f) = bin.pclntab.func_by_name("runtime.rt0_go") else {
        return remote;
    };
    let text = bin.text_range();
    let area = injector::syscall::Scratch {
        addr: f.entry.wrapping_add(bias),
        len: f.size(),
        no_red_zone: text.start.wrapping_add(bias)..text.end.wrapping_add(bias),
    };
    remote.clone().with_scratch(world, area).unwrap_or(remote)
}

#[allow(
    clippy::too_many_arguments,
    reason = "install's own arguments plus the remote"
)]
fn install_with(
    world: &mut World,
    bin: &GoBinary,
    bias: u64,
    plans: &[HookPlan],
    captures: &[crate::capture::Captures],
    layout: RingLayout,
    with_exits: bool,
    remote: &injector::Remote,
    mut proven_clear: impl FnMut(&mut World, &[u64]) -> Result<bool>,
) -> Result<Installed> {
    let pid = world.pid();
    let g = g_offsets(bin)?;
    let text = injector::region::main_text(pid).context("finding the program's text")?;
    let shared = injector::shm::map_shared(
        world,
        remote,
        "gohook-ring",
        layout.region_size(),
        Some(text),
    )
    .context("mapping the shared ring")?;
    let ring_addr = shared.target_addr;
    let ring = RingReader::create(shared.local, layout).context("initialising the ring")?;

    // Decide which exits are patched before sizing the code region.
    let mut exits_skipped = Vec::new();
    let mut chosen: Vec<Vec<&crate::hookplan::ExitSite>> = Vec::new();
    let mut exits_complete = Vec::new();
    for p in plans {
        let mut mine = Vec::new();
        for site in p.exits.iter().filter(|_| with_exits) {
            if site.needs_goroutine_proof {
                let pcs = &site.plan.async_safe_boundaries;
                if !proven_clear(world, pcs)? {
                    exits_skipped.push((
                        p.func.name.clone(),
                        format!(
                            "return at {:#x}: a goroutine may be parked inside its epilogue",
                            site.plan.ret
                        ),
                    ));
                    continue;
                }
            }
            mine.push(site);
        }
        for (at, why) in p.exit_refusals.iter().filter(|_| with_exits) {
            exits_skipped.push((p.func.name.clone(), format!("exit at {at:#x}: {why}")));
        }
        exits_complete
            .push(with_exits && p.exit_refusals.is_empty() && mine.len() == p.exits.len());
        chosen.push(mine);
    }
    let code_len: u64 = chosen
        .iter()
        .enumerate()
        .map(|(id, exits)| {
            let entry = captures
                .get(id)
                .map_or(TRAMPOLINE_BUDGET, |c| entry_budget(&c.entry));
            entry + exits.len() as u64 * TRAMPOLINE_BUDGET
        })
        .sum();
    let region_len = code_len.div_ceil(4096) * 4096;
    let region = injector::region::map_code_near(world, remote, Some(text), region_len)
        .context("mapping trampoline memory near the text")?;

    let mut patches = PatchSet::new(pid);
    let mut code = Vec::new();
    let mut cur = region.addr;
    let mut exits_patched = 0;
    for (id, (p, exits)) in plans.iter().zip(&chosen).enumerate() {
        let cap = captures
            .get(id)
            .cloned()
            .unwrap_or_else(crate::capture::Captures::ints_only);
        let ctx = StubContext {
            hook_id: id as u32,
            region: ring_addr,
            layout,
            g,
            capture: cap.entry.clone(),
            // Flags are dead after the stack check's JBE and at a RET in ABIInternal code.
            preserve_flags: false,
        };
        let t = stub::entry_trampoline(&p.entry, cur, &ctx)
            .with_context(|| format!("generating the entry trampoline of {}", p.func.name))?;
        let site = p.entry.entry;
        let original = original_bytes(bin, site.wrapping_sub(bias), p.entry.patch_len)?;
        patches.add_patch(Patch {
            addr: site,
            new: stub::patch_bytes(site, p.entry.patch_len, cur)?,
            original,
        })?;
        cur = place(
            &mut code,
            cur,
            region.addr,
            t.code,
            &p.func.name,
            entry_budget(&ctx.capture),
        )?;
        for site in exits {
            let ctx = StubContext {
                capture: cap.exit.clone(),
                ..ctx.clone()
            };
            let t = stub::exit_trampoline(&site.plan, cur, &ctx)
                .with_context(|| format!("generating an exit trampoline of {}", p.func.name))?;
            let original = original_bytes(bin, site.plan.start.wrapping_sub(bias), site.plan.len)?;
            patches.add_patch(Patch {
                addr: site.plan.start,
                new: stub::patch_bytes(site.plan.start, site.plan.len, cur)?,
                original,
            })?;
            cur = place(
                &mut code,
                cur,
                region.addr,
                t.code,
                &p.func.name,
                TRAMPOLINE_BUDGET,
            )?;
            exits_patched += 1;
        }
    }
    if cur > region.end() {
        bail!(
            "trampolines need {} bytes, more than the {} mapped",
            cur - region.addr,
            region.len
        );
    }
    patches.add_code(region.addr, code)?;
    for id in 0..plans.len() {
        ring.set_enabled(id as u32, true)?;
    }
    let report = patches.apply(world, Some(remote)).context("patching")?;
    Ok(Installed {
        patches,
        ring,
        functions: plans.iter().map(|p| p.func.name.clone()).collect(),
        exits_complete,
        exits_patched,
        exits_skipped,
        threads_moved: report.stepped.len(),
    })
}

/// Appends `bytes` to `code` (which starts at `base`) at address `cur`, padding with INT3 to a
/// 16-byte boundary, and returns the next free address.
fn place(
    code: &mut Vec<u8>,
    cur: u64,
    base: u64,
    bytes: Vec<u8>,
    name: &str,
    budget: u64,
) -> Result<u64> {
    if bytes.len() as u64 > budget {
        bail!(
            "the trampoline for {name} is {} bytes, over the {budget}-byte budget",
            bytes.len()
        );
    }
    debug_assert_eq!(base + code.len() as u64, cur);
    code.extend_from_slice(&bytes);
    while code.len() % 16 != 0 {
        code.push(0xCC);
    }
    Ok(base + code.len() as u64)
}

/// The bytes the ELF file has at link-time address `addr`: what the patch must find in memory.
fn original_bytes(bin: &GoBinary, addr: u64, len: usize) -> Result<Vec<u8>> {
    bin.elf
        .bytes_at(addr, len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| anyhow!("bytes at {addr:#x} are not in the file"))
}

/// Converts a ring record into the collector's event.
pub fn event_from(r: &Record) -> Event {
    let mut int_regs = [0u64; 9];
    for (dst, src) in int_regs.iter_mut().zip(r.ints.iter()) {
        *dst = src.unwrap_or(0);
    }
    let mut float_regs = [0u64; 15];
    for (dst, src) in float_regs.iter_mut().zip(r.floats.iter()) {
        *dst = src.unwrap_or(0);
    }
    Event {
        hook: r.hook_id,
        kind: match r.kind {
            RecordKind::Entry => EventKind::Entry,
            RecordKind::Exit => EventKind::Exit,
        },
        tsc: r.tsc,
        goid: r.goid,
        parent_goid: r.parent_goid.unwrap_or(0),
        depth: r.depth,
        int_regs,
        float_regs,
        strings: r.strings.iter().map(|s| (s.len, s.bytes.clone())).collect(),
    }
}

/// Drains every ring once into `sink`; returns (records, malformed records).
///
/// A record stamped later than the time it is read cannot have been written by a trampoline
/// (they stamp with `RDTSC` before publishing): it is counted as malformed rather than handed
/// on, so a hostile target cannot make the collector hold records "from the future" without
/// bound while it waits for their turn.
pub fn drain(ring: &mut RingReader, mut sink: impl FnMut(Event)) -> (u64, u64) {
    let mut bad = 0;
    let mut now = crate::clock::rdtsc();
    let stats = ring.drain(u64::MAX, |_, rec| match rec {
        Ok(r) if from_the_future(r.tsc, &mut now) => bad += 1,
        Ok(r) => sink(event_from(&r)),
        Err(_) => bad += 1,
    });
    (stats.records - bad.min(stats.records), bad)
}

/// Whether `tsc` is later than the present, re-reading the TSC (into `now`) only for a stamp
/// past the last reading. A small allowance covers cross-core TSC skew.
fn from_the_future(tsc: u64, now: &mut u64) -> bool {
    const SKEW_TICKS: u64 = 1 << 20; // well under a millisecond at any TSC rate
    if tsc <= now.saturating_add(SKEW_TICKS) {
        return false;
    }
    *now = crate::clock::rdtsc();
    tsc > now.saturating_add(SKEW_TICKS)
}

/// How long the consumer sleeps between drains when the rings were empty.
pub const IDLE_POLL: Duration = Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;
    use trampolines::record::{OFF_HOOK_ID, OFF_KIND, OFF_TSC};
    use trampolines::ring_layout::RING_HEAD;

    /// Writes one entry record stamped `tsc` into ring 0 of a fresh region and drains it.
    fn drain_one(tsc: u64) -> (u64, u64, usize) {
        let layout = RingLayout::new(1, 16, 512).unwrap();
        // The same file mapped twice: the reader's view and the "target's".
        let path =
            std::env::temp_dir().join(format!("gohook-engine-test-{}-{tsc}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        file.set_len(layout.region_size()).unwrap();
        // SAFETY: a private temporary file nobody else maps or resizes.
        let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
        // SAFETY: as above; this second view plays the target's side.
        let mut target = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
        let mut ring = RingReader::create(map, layout).unwrap();
        let slot = layout.slot_offset(0, 0).unwrap() as usize;
        let head = layout.ring_offset(0).unwrap() as usize + RING_HEAD;
        let mut rec = [0u8; 512];
        rec[OFF_HOOK_ID..OFF_HOOK_ID + 4].copy_from_slice(&0u32.to_le_bytes());
        rec[OFF_KIND] = 1;
        rec[OFF_TSC..OFF_TSC + 8].copy_from_slice(&tsc.to_le_bytes());
        target[slot..slot + 512].copy_from_slice(&rec);
        target[head..head + 8].copy_from_slice(&1u64.to_le_bytes());
        let mut got = Vec::new();
        let (n, bad) = drain(&mut ring, |e| got.push(e));
        (n, bad, got.len())
    }

    #[test]
    fn a_record_stamped_in_the_past_is_handed_on() {
        assert_eq!(drain_one(crate::clock::rdtsc() - 1000), (1, 0, 1));
    }

    #[test]
    fn a_record_stamped_in_the_future_is_counted_as_malformed_not_held() {
        assert_eq!(drain_one(u64::MAX), (0, 1, 0));
        assert_eq!(drain_one(crate::clock::rdtsc() + (1 << 40)), (0, 1, 0));
    }
}
