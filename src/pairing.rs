//! Pairs entry and exit records into calls, per goroutine, by the stack-depth key.
//!
//! The trampolines record `stack.hi - SP` at a function's entry and at its return; that
//! distance survives the runtime copying a goroutine's stack, so it identifies one activation on
//! one goroutine. A goroutine's open calls form a stack ordered by depth (deeper calls have a
//! larger key). Calls that leave without a `RET` — unwound by a panic, or by `runtime.Goexit` —
//! are closed when a record at the same or a shallower depth arrives for that goroutine
//! ([`Ending::Unwound`]), or when tracing ends with them still open ([`Ending::Unfinished`]).
//! No call is lost and none is closed twice.

use std::collections::HashMap;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The function returned through a hooked `RET`.
    Returned,
    /// A later record at the same or a shallower depth on the same goroutine proves the call
    /// was unwound without returning: a panic (possibly recovered), or `runtime.Goexit`.
    Unwound,
    /// Tracing ended (or the goroutine was never seen again) with the call still open.
    Unfinished,
}

struct Frame<T> {
    depth: u64,
    hook: u32,
    payload: T,
}

/// Per-goroutine stacks of open calls, each carrying a caller-chosen payload `T` (the span
/// under construction).
pub struct Pairer<T> {
    open: HashMap<u64, Vec<Frame<T>>>,
    /// Exits that matched no open call.
    orphan_exits: u64,
}

impl<T> Default for Pairer<T> {
    fn default() -> Self {
        Pairer {
            open: HashMap::new(),
            orphan_exits: 0,
        }
    }
}

impl<T> Pairer<T> {
    /// An empty pairer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a call entry on goroutine `goid` at stack depth `depth`.
    ///
    /// Open calls on that goroutine at the same or a greater depth cannot still be running (a
    /// new activation now occupies their stack slot), so they are ended as
    /// [`Ending::Unwound`] first. `make` builds the new call's payload given the payloads of the
    /// calls still open on this goroutine, innermost (the parent) first.
    pub fn enter(
        &mut self,
        goid: u64,
        depth: u64,
        hook: u32,
        make: impl FnOnce(&mut dyn Iterator<Item = &T>) -> T,
        mut ended: impl FnMut(T, Ending),
    ) {
        let stack = self.open.entry(goid).or_default();
        while stack.last().is_some_and(|f| f.depth >= depth) {
            if let Some(f) = stack.pop() {
                ended(f.payload, Ending::Unwound);
            }
        }
        let payload = make(&mut stack.iter().rev().map(|f| &f.payload));
        stack.push(Frame {
            depth,
            hook,
            payload,
        });
    }

    /// Records a return of hook `hook` on goroutine `goid` at depth `depth`.
    ///
    /// Deeper open calls were unwound (a panic recovered below this frame); the matching call
    /// ends as [`Ending::Returned`]. An exit with no matching entry (the call began before gohook
    /// attached) ends nothing and is counted in [`Pairer::orphan_exits`].
    pub fn exit(&mut self, goid: u64, depth: u64, hook: u32, mut ended: impl FnMut(T, Ending)) {
        let Some(stack) = self.open.get_mut(&goid) else {
            self.orphan_exits += 1;
            return;
        };
        while stack.last().is_some_and(|f| f.depth > depth) {
            if let Some(f) = stack.pop() {
                ended(f.payload, Ending::Unwound);
            }
        }
        if stack
            .last()
            .is_some_and(|f| f.depth == depth && f.hook == hook)
        {
            if let Some(f) = stack.pop() {
                ended(f.payload, Ending::Returned);
            }
        } else {
            self.orphan_exits += 1;
        }
        if stack.is_empty() {
            self.open.remove(&goid);
        }
    }

    /// The payload of the innermost open call on `goid`, if any.
    pub fn innermost(&self, goid: u64) -> Option<&T> {
        self.open_on(goid).next()
    }

    /// The payloads of the calls open on `goid`, innermost first.
    pub fn open_on(&self, goid: u64) -> impl Iterator<Item = &T> {
        self.open
            .get(&goid)
            .into_iter()
            .flat_map(|s| s.iter().rev().map(|f| &f.payload))
    }

    /// [`open_on`](Self::open_on), mutable.
    pub fn open_on_mut(&mut self, goid: u64) -> impl Iterator<Item = &mut T> {
        self.open
            .get_mut(&goid)
            .into_iter()
            .flat_map(|s| s.iter_mut().rev().map(|f| &mut f.payload))
    }

    /// Ends every call still open, innermost first, as [`Ending::Unfinished`].
    pub fn finish(&mut self, mut ended: impl FnMut(T, Ending)) {
        let mut goids: Vec<u64> = self.open.keys().copied().collect();
        goids.sort_unstable();
        for g in goids {
            if let Some(mut stack) = self.open.remove(&g) {
                while let Some(f) = stack.pop() {
                    ended(f.payload, Ending::Unfinished);
                }
            }
        }
    }

    /// Number of calls currently open on all goroutines.
    pub fn open_calls(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }

    /// Exits that matched no open call (calls that began before gohook attached).
    pub fn orphan_exits(&self) -> u64 {
        self.orphan_exits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a script of (goid, depth, hook, is_entry) records; returns (name, parent, ending).
    fn run(script: &[(u64, u64, u32, bool)]) -> Vec<(String, Option<String>, Ending)> {
        let mut p: Pairer<(String, Option<String>)> = Pairer::new();
        let mut out = Vec::new();
        for (i, &(g, d, h, entry)) in script.iter().enumerate() {
            if entry {
                let name = format!("c{i}");
                p.enter(
                    g,
                    d,
                    h,
                    |open| (name, open.next().map(|x| x.0.clone())),
                    |t, e| out.push((t.0, t.1, e)),
                );
            } else {
                p.exit(g, d, h, |t, e| out.push((t.0, t.1, e)));
            }
        }
        p.finish(|t, e| out.push((t.0, t.1, e)));
        out
    }

    #[test]
    fn nested_calls_pair_and_the_inner_one_is_a_child() {
        let out = run(&[
            (1, 100, 1, true),
            (1, 200, 2, true),
            (1, 200, 2, false),
            (1, 100, 1, false),
        ]);
        assert_eq!(
            out,
            vec![
                ("c1".into(), Some("c0".into()), Ending::Returned),
                ("c0".into(), None, Ending::Returned),
            ]
        );
    }

    #[test]
    fn goroutines_do_not_mix() {
        let out = run(&[
            (1, 100, 1, true),
            (2, 100, 1, true),
            (1, 100, 1, false),
            (2, 100, 1, false),
        ]);
        assert_eq!(out[0], ("c0".into(), None, Ending::Returned));
        assert_eq!(out[1], ("c1".into(), None, Ending::Returned));
    }

    #[test]
    fn recursion_at_increasing_depth_unwinds_in_order() {
        let out = run(&[
            (1, 100, 1, true),
            (1, 180, 1, true),
            (1, 260, 1, true),
            (1, 260, 1, false),
            (1, 180, 1, false),
            (1, 100, 1, false),
        ]);
        let names: Vec<_> = out.iter().map(|o| o.0.as_str()).collect();
        assert_eq!(names, ["c2", "c1", "c0"]);
        assert!(out.iter().all(|o| o.2 == Ending::Returned));
        assert_eq!(out[0].1.as_deref(), Some("c1"));
    }

    #[test]
    fn a_panic_recovered_above_ends_the_deeper_calls_as_unwound() {
        // c0 calls c1 which calls c2; c2 panics, c0's deferred recover catches it, c0 returns.
        let out = run(&[
            (1, 100, 1, true),
            (1, 200, 2, true),
            (1, 300, 3, true),
            (1, 100, 1, false),
        ]);
        assert_eq!(out[0], ("c2".into(), Some("c1".into()), Ending::Unwound));
        assert_eq!(out[1], ("c1".into(), Some("c0".into()), Ending::Unwound));
        assert_eq!(out[2], ("c0".into(), None, Ending::Returned));
    }

    #[test]
    fn a_new_call_at_the_depth_of_an_open_one_proves_it_was_unwound() {
        // c0 panicked and was recovered by a non-hooked caller, which then called again.
        let out = run(&[(1, 100, 1, true), (1, 100, 1, true), (1, 100, 1, false)]);
        assert_eq!(out[0], ("c0".into(), None, Ending::Unwound));
        assert_eq!(out[1], ("c1".into(), None, Ending::Returned));
    }

    #[test]
    fn calls_still_open_at_the_end_are_unfinished_and_none_is_lost() {
        let out = run(&[(7, 100, 1, true), (7, 150, 2, true)]);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| o.2 == Ending::Unfinished));
    }

    #[test]
    fn an_exit_without_entry_is_an_orphan_not_a_span() {
        let mut p: Pairer<u32> = Pairer::new();
        let mut n = 0;
        p.exit(1, 100, 1, |_, _| n += 1);
        p.enter(1, 100, 1, |_| 5, |_, _| n += 1);
        p.exit(1, 100, 2, |_, _| n += 1); // wrong hook: no match
        assert_eq!(n, 0);
        assert_eq!(p.orphan_exits(), 2);
        assert_eq!(p.open_calls(), 1);
    }
}
