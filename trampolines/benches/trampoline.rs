//! Cost of the generated trampolines, executed in-process on a Go-shaped fake function:
//! plain call vs entry hook (disabled and recording) vs entry + exit hooks, ns per call.
//!
//! Run: `cargo bench -p trampolines --bench trampoline`. The ring is reset between batches so the
//! recording path (not the drop path) is measured.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;
use support::{Env, Hooks};
use trampolines::ring_layout::RingLayout;
use trampolines::stub::CaptureSpec;

const BATCH: u64 = 10_000;
const BATCHES: u64 = 200;

fn ns_per_call(env: &mut Env) -> f64 {
    // Warm up, then take the best of 5 runs to damp noise on a shared machine.
    env.call_loop(BATCH);
    env.reset_ring(0);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..BATCHES {
            let r = env.call_loop(BATCH);
            assert_eq!(r, BATCH, "the hooked function still computes its result");
            env.reset_ring(0);
        }
        let ns = start.elapsed().as_nanos() as f64 / (BATCH * BATCHES) as f64;
        best = best.min(ns);
    }
    best
}

fn main() {
    let layout = RingLayout::new(1, 1 << 15, 512).unwrap();
    let mut rows = Vec::new();
    let mut plain = Env::new(Hooks::None, layout, CaptureSpec::ints(), 0);
    rows.push(("plain call", ns_per_call(&mut plain)));
    let mut off = Env::new(Hooks::Entry, layout, CaptureSpec::ints(), 0);
    off.set_enabled(0, false);
    rows.push(("entry hook, disabled", ns_per_call(&mut off)));
    let mut entry = Env::new(Hooks::Entry, layout, CaptureSpec::ints(), 0);
    rows.push(("entry hook, recording", ns_per_call(&mut entry)));
    let mut both = Env::new(Hooks::EntryExit, layout, CaptureSpec::ints(), 0);
    rows.push(("entry+exit hooks, recording", ns_per_call(&mut both)));
    let mut off = Env::with_flags(Hooks::Entry, layout, CaptureSpec::ints(), 0, false);
    off.set_enabled(0, false);
    rows.push(("entry, disabled, no RFLAGS", ns_per_call(&mut off)));
    let mut entry = Env::with_flags(Hooks::Entry, layout, CaptureSpec::ints(), 0, false);
    rows.push(("entry, recording, no RFLAGS", ns_per_call(&mut entry)));
    let mut both = Env::with_flags(Hooks::EntryExit, layout, CaptureSpec::ints(), 0, false);
    rows.push(("entry+exit, no RFLAGS", ns_per_call(&mut both)));

    let base = rows[0].1;
    println!("{:<30} {:>10} {:>8}", "case", "ns/call", "ratio");
    for (name, ns) in rows {
        println!("{name:<30} {ns:>10.2} {:>7.1}x", ns / base);
    }
}
