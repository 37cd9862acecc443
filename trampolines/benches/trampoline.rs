//! Cost of the generated trampolines, executed in-process on a Go-shaped fake function:
//! plain call vs entry hook (disabled and recording) vs entry + exit hooks, ns per call.
//!
//! Run: `cargo bench -p trampolines --bench trampoline`. The ring is reset between batches so the
//! recording path (not the drop path) is measured. Cases are measured in interleaved rounds and
//! the best round is kept, so background load on a shared machine hits every case alike.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;
use support::{Env, Hooks};
use trampolines::ring_layout::RingLayout;
use trampolines::stub::CaptureSpec;

const BATCH: u64 = 10_000;
const BATCHES: u64 = 50;
const ROUNDS: usize = 15;

fn one_round(env: &mut Env) -> f64 {
    let start = Instant::now();
    for _ in 0..BATCHES {
        let r = env.call_loop(BATCH);
        assert_eq!(r, BATCH, "the hooked function still computes its result");
        env.reset_ring(0);
    }
    start.elapsed().as_nanos() as f64 / (BATCH * BATCHES) as f64
}

fn main() {
    let layout = RingLayout::new(1, 1 << 15, 512).unwrap();
    let env = |hooks, flags, enabled| {
        let mut e = Env::with_flags(hooks, layout, CaptureSpec::ints(), 0, flags);
        e.set_enabled(0, enabled);
        e
    };
    let mut cases: Vec<(&str, Env)> = vec![
        ("plain call", env(Hooks::None, true, true)),
        ("entry, disabled", env(Hooks::Entry, true, false)),
        ("entry, recording", env(Hooks::Entry, true, true)),
        ("entry+exit, recording", env(Hooks::EntryExit, true, true)),
        (
            "entry, disabled, no RFLAGS",
            env(Hooks::Entry, false, false),
        ),
        (
            "entry, recording, no RFLAGS",
            env(Hooks::Entry, false, true),
        ),
        ("entry+exit, no RFLAGS", env(Hooks::EntryExit, false, true)),
    ];
    let mut best = vec![f64::MAX; cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, e)) in cases.iter_mut().enumerate() {
            best[i] = best[i].min(one_round(e));
        }
    }
    // The recording cases really recorded: a final batch leaves records in the ring.
    let (_, e) = &mut cases[2];
    e.call_loop(3);
    assert_eq!(e.records(0).len(), 3);

    println!(
        "{:<30} {:>10} {:>8}",
        "case (9 int regs captured)", "ns/call", "ratio"
    );
    for ((name, _), ns) in cases.iter().zip(&best) {
        println!("{name:<30} {ns:>10.2} {:>7.1}x", ns / best[0]);
    }
}
