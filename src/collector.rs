//! Turns the stream of hook records into spans: reorders records by timestamp, pairs entries
//! with exits per goroutine, runs the hooks' scripts (if any) on the ordered records, assigns
//! trace and span IDs with parent links, and hands finished spans to a sink.
//!
//! A call produces a span unless its hook has scripts and none of them started one; spans nest
//! under the nearest enclosing call that has a span (on the same goroutine, or else, for a
//! goroutine's first span, on the goroutine that started it).

use crate::clock::TscClock;
use crate::ordering::Reorder;
use crate::pairing::{Ending, Pairer};
use crate::script::{self, Runtime};
use crate::spans::{AttrValue, Span, SpanId, SpanKind, Status, TraceId};

/// Whether a record marks a function's entry or its return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The function was entered (after its stack check passed).
    Entry,
    /// The function returned through a hooked `RET`.
    Exit,
}

/// One hook record, decoded from the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Index of the hook (into the collector's function table).
    pub hook: u32,
    /// Entry or exit.
    pub kind: EventKind,
    /// Raw `RDTSC` value.
    pub tsc: u64,
    /// Goroutine ID.
    pub goid: u64,
    /// The goroutine that started this one (0 when the Go release does not record it).
    pub parent_goid: u64,
    /// `stack.hi - SP` at the function's entry (equal at its exit).
    pub depth: u64,
    /// Integer registers RAX, RBX, RCX, RDI, RSI, R8–R11 (arguments at entry, results at exit).
    pub int_regs: [u64; 9],
    /// Low 64 bits of X0–X14 (float arguments at entry, results at exit); 0 where the hook does
    /// not record them.
    pub float_regs: [u64; 15],
    /// String arguments copied at entry: (length at the call, the first bytes).
    pub strings: Vec<(u32, Vec<u8>)>,
}

/// Counters reported at the end of a trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Spans emitted.
    pub spans: u64,
    /// Records the target dropped because a ring was full.
    pub dropped: u64,
    /// Exits whose entry was never seen (calls in progress when gohook attached).
    pub orphan_exits: u64,
    /// Records naming a hook gohook did not install (corrupt ring contents).
    pub bad_records: u64,
    /// Hook-script runtime errors (each distinct message was printed once).
    pub script_errors: u64,
}

/// Receives finished spans.
pub trait SpanSink {
    /// Called once per finished span, children before their parents.
    fn emit(&mut self, span: Span) -> std::io::Result<()>;
    /// Called once at the end with the final counters.
    fn finish(&mut self, stats: &Stats) -> std::io::Result<()>;
}

/// Sees every record a collector is given, as given, and how the collector advances (what
/// `gohook record` writes to its file).
pub trait EventTap {
    /// A record pushed.
    fn event(&mut self, ev: &Event);
    /// `n` records dropped between TSC `from_tsc` and `to_tsc`.
    fn dropped(&mut self, n: u64, from_tsc: u64, to_tsc: u64);
    /// `n` ring slots that did not parse.
    fn bad(&mut self, n: u64);
    /// The collector processed records up to `now_tsc`; `clock` is its calibration so far.
    fn advanced(&mut self, now_tsc: u64, clock: &TscClock);
    /// The end, with the final calibration; an error is reported by [`Collector::finish`].
    fn finish(&mut self, clock: &TscClock, stats: &Stats) -> std::io::Result<()>;
}

/// One open call: its span (none when its scripts started none) and its scripts' progress.
struct Open {
    span: Option<Span>,
    hook: u32,
    call: Option<script::Call>,
    /// What calls inside it asked of it (`ctx.set_enclosing`), applied after its own scripts.
    late: Vec<script::ctx::Enclosing>,
}

/// The record-to-span pipeline.
pub struct Collector<S: SpanSink> {
    functions: Vec<String>,
    string_params: Vec<Vec<String>>,
    exits_complete: Vec<bool>,
    clock: TscClock,
    reorder: Reorder<Event>,
    pairer: Pairer<Open>,
    scripts: Option<Runtime>,
    sink: S,
    stats: Stats,
    last_tsc: u64,
    /// Late-arrival allowance: records are released once older than the drain time minus this.
    slack_ticks: u64,
    /// Unix-ns windows in which a ring dropped records: an exit record may be missing there.
    lossy: Vec<(u64, u64)>,
    error: Option<std::io::Error>,
    tap: Option<Box<dyn EventTap>>,
}

impl<S: SpanSink> Collector<S> {
    /// A collector for hooks whose function names are `functions[hook]`.
    pub fn new(functions: Vec<String>, clock: TscClock, sink: S) -> Self {
        let slack_ticks = clock.ns_to_ticks(2_000_000);
        Collector {
            functions,
            string_params: Vec::new(),
            exits_complete: Vec::new(),
            clock,
            reorder: Reorder::new(),
            pairer: Pairer::new(),
            scripts: None,
            sink,
            stats: Stats::default(),
            last_tsc: 0,
            slack_ticks,
            lossy: Vec::new(),
            error: None,
            tap: None,
        }
    }

    /// Shows every record and drain to `tap` too.
    pub fn with_tap(mut self, tap: Box<dyn EventTap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Names the string parameters each hook copies at entry (`[hook][i]`), so they become
    /// `arg.<name>` attributes.
    pub fn with_string_params(mut self, names: Vec<Vec<String>>) -> Self {
        self.string_params = names;
        self
    }

    /// Runs `scripts` on the calls of the hooks they are bound to.
    pub fn with_scripts(mut self, scripts: Runtime) -> Self {
        self.scripts = Some(scripts);
        self
    }

    /// Says, per hook, whether every return of the function is hooked. Where it is not, a call
    /// closed without an exit record may simply have returned through an unhooked `RET`: its
    /// span gets no error status and a `gohook.end` attribute saying its end was not observed.
    /// (Hooks not listed count as fully covered.)
    pub fn with_exit_coverage(mut self, complete: Vec<bool>) -> Self {
        self.exits_complete = complete;
        self
    }

    /// Accepts one record (in any order relative to records of other rings).
    pub fn push(&mut self, ev: Event) {
        if let Some(t) = &mut self.tap {
            t.event(&ev);
        }
        if ev.hook as usize >= self.functions.len() {
            self.stats.bad_records += 1;
            return;
        }
        self.reorder.push(ev.tsc, ev);
    }

    /// Adds ring slots that did not parse as records.
    pub fn add_bad(&mut self, n: u64) {
        if let Some(t) = &mut self.tap {
            t.bad(n);
        }
        self.stats.bad_records += n;
    }

    /// Adds records the target dropped.
    pub fn add_dropped(&mut self, n: u64) {
        self.stats.dropped += n;
    }

    /// Adds `n` records the target dropped somewhere between TSC `from` and `to` (two drains of
    /// the rings). A call whose end was not seen and that overlaps such a window may have lost
    /// its exit record: it is not reported as a panic or as unfinished.
    pub fn add_dropped_between(&mut self, n: u64, from_tsc: u64, to_tsc: u64) {
        if let Some(t) = &mut self.tap {
            t.dropped(n, from_tsc, to_tsc);
        }
        if n == 0 {
            return;
        }
        self.add_dropped(n);
        let from = self
            .clock
            .to_unix_ns(from_tsc.saturating_sub(self.slack_ticks));
        let to = self
            .clock
            .to_unix_ns(to_tsc.saturating_add(self.slack_ticks));
        match self.lossy.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => self.lossy.push((from, to)),
        }
    }

    /// True when `[start, end]` (Unix ns) overlaps a window in which records were dropped.
    fn near_drops(&self, start: u64, end: u64) -> bool {
        self.lossy.iter().any(|&(a, b)| start <= b && a <= end)
    }

    /// Processes every held record stamped before `now_tsc` minus the late-arrival allowance.
    /// Call after each drain of the rings with a TSC read *before* the drain began.
    pub fn advance(&mut self, now_tsc: u64) {
        self.clock.refine();
        if let Some(t) = &mut self.tap {
            t.advanced(now_tsc, &self.clock);
        }
        let watermark = now_tsc.saturating_sub(self.slack_ticks);
        let mut ready = Vec::new();
        self.reorder.pop_until(watermark, |e| ready.push(e));
        for e in ready {
            self.process(e);
        }
    }

    /// Processes everything held, ends the calls still open as unfinished, and reports the
    /// counters to the sink. Returns the counters, or the first output error.
    pub fn finish(mut self) -> std::io::Result<Stats> {
        let mut ready = Vec::new();
        self.reorder.drain(|e| ready.push(e));
        for e in ready {
            self.process(e);
        }
        let end = self.clock.to_unix_ns(self.last_tsc);
        let mut ended = Vec::new();
        self.pairer.finish(|o, how| ended.push((o, how)));
        for (o, how) in ended {
            self.end_span(o, how, end);
        }
        self.stats.orphan_exits = self.pairer.orphan_exits();
        self.stats.script_errors = self.scripts.as_ref().map_or(0, Runtime::error_count);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(t) = &mut self.tap {
            t.finish(&self.clock, &self.stats)?;
        }
        self.sink.finish(&self.stats)?;
        Ok(self.stats)
    }

    /// Counters so far.
    #[cfg(test)]
    pub fn stats(&self) -> Stats {
        Stats {
            orphan_exits: self.pairer.orphan_exits(),
            ..self.stats
        }
    }

    fn process(&mut self, ev: Event) {
        self.last_tsc = self.last_tsc.max(ev.tsc);
        let now = self.clock.to_unix_ns(ev.tsc);
        let mut ended = Vec::new();
        match ev.kind {
            EventKind::Entry => {
                let function = self.functions[ev.hook as usize].clone();
                let (call, plan) = match self.scripts.as_mut() {
                    Some(rt) if rt.is_scripted(ev.hook) => {
                        let mut call = rt.enter(&ev, now);
                        for e in call.take_enclosing() {
                            if let Some(o) = self
                                .pairer
                                .open_on_mut(ev.goid)
                                .find(|o| o.span.as_ref().is_some_and(|s| s.kind == e.kind))
                            {
                                o.late.push(e);
                            }
                        }
                        let plan = call.span().map(|(n, k)| (n.clone(), *k, Vec::new()));
                        (Some(call), plan)
                    }
                    _ => (
                        None,
                        Some((function.clone(), SpanKind::Internal, self.string_args(&ev))),
                    ),
                };
                // A goroutine's first span is a child of whatever span its creator has open.
                let creator = if ev.parent_goid != 0
                    && !self.pairer.open_on(ev.goid).any(|o| o.span.is_some())
                {
                    self.pairer
                        .open_on(ev.parent_goid)
                        .find_map(|o| o.span.as_ref())
                        .map(|s| (s.trace_id, s.span_id, s.depth))
                } else {
                    None
                };
                self.pairer.enter(
                    ev.goid,
                    ev.depth,
                    ev.hook,
                    |open| {
                        let mut parent = None;
                        for o in open {
                            if let Some(s) = &o.span {
                                parent = Some((s.trace_id, s.span_id, s.depth));
                                break;
                            }
                        }
                        let span = plan.map(|(name, kind, attributes)| {
                            let (trace_id, parent_span_id, depth) = match (parent, creator) {
                                (Some((t, s, d)), _) | (None, Some((t, s, d))) => {
                                    (t, Some(s), d + 1)
                                }
                                (None, None) => (TraceId::random(), None, 0),
                            };
                            Span {
                                trace_id,
                                span_id: SpanId::random(),
                                parent_span_id,
                                name,
                                kind,
                                start_unix_nano: now,
                                end_unix_nano: now,
                                status: Status::Unset,
                                attributes,
                                goroutine: ev.goid,
                                function,
                                depth,
                                events: Vec::new(),
                            }
                        });
                        Open {
                            hook: ev.hook,
                            span,
                            call,
                            late: Vec::new(),
                        }
                    },
                    |o, how| ended.push((o, how)),
                );
            }
            EventKind::Exit => {
                self.pairer
                    .exit(ev.goid, ev.depth, ev.hook, |o, how| ended.push((o, how)));
            }
        }
        for (mut o, how) in ended {
            if let (Ending::Returned, EventKind::Exit, Some(call), Some(rt)) =
                (how, ev.kind, o.call.as_mut(), self.scripts.as_mut())
            {
                rt.leave(call, &ev, now);
            }
            self.end_span(o, how, now);
        }
    }

    /// The default span's attributes: each string argument copied at the call, `arg.<name>`.
    fn string_args(&self, ev: &Event) -> Vec<(String, AttrValue)> {
        let names = self.string_params.get(ev.hook as usize);
        ev.strings
            .iter()
            .enumerate()
            .filter_map(|(i, (len, bytes))| {
                let name = names?.get(i)?;
                let mut v = String::from_utf8_lossy(bytes).into_owned();
                if (bytes.len() as u64) < u64::from(*len) {
                    v.push('…');
                }
                Some((format!("arg.{name}"), AttrValue::Str(v)))
            })
            .collect()
    }

    fn end_span(&mut self, open: Open, how: Ending, end_ns: u64) {
        let hook = open.hook;
        let Some(mut span) = open.span else {
            return;
        };
        if let Some(call) = open.call {
            call.apply(&mut span);
        }
        for e in open.late {
            if let Some((k, v)) = e.attr {
                span.set_attr(&k, v);
            }
            if let Some(s) = e.status {
                span.status = s;
            }
        }
        span.end_unix_nano = end_ns.max(span.start_unix_nano);
        let covered = self
            .exits_complete
            .get(hook as usize)
            .copied()
            .unwrap_or(true);
        match how {
            Ending::Returned => {}
            Ending::Unwound | Ending::Unfinished
                if self.near_drops(span.start_unix_nano, span.end_unix_nano) =>
            {
                // Its exit record may be among the dropped ones: say so, claim no failure and
                // no duration.
                span.end_unix_nano = span.start_unix_nano;
                span.set_attr("gohook.end", "not observed (records dropped)");
            }
            Ending::Unwound | Ending::Unfinished if !covered => {
                // It may have returned through a RET gohook could not hook: no claim of failure,
                // and no made-up duration.
                span.end_unix_nano = span.start_unix_nano;
                span.set_attr("gohook.end", "not observed (return not hooked)");
            }
            Ending::Unwound => span.status = Status::Error("panic".into()),
            Ending::Unfinished => span.status = Status::Error("unfinished".into()),
        }
        self.stats.spans += 1;
        if self.error.is_none() {
            if let Err(e) = self.sink.emit(span) {
                self.error = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<Span>, Option<Stats>);
    impl SpanSink for &mut Collect {
        fn emit(&mut self, span: Span) -> std::io::Result<()> {
            self.0.push(span);
            Ok(())
        }
        fn finish(&mut self, stats: &Stats) -> std::io::Result<()> {
            self.1 = Some(*stats);
            Ok(())
        }
    }

    fn ev(hook: u32, kind: EventKind, tsc: u64, goid: u64, depth: u64) -> Event {
        Event {
            hook,
            kind,
            tsc,
            goid,
            parent_goid: 0,
            depth,
            int_regs: [0; 9],
            float_regs: [0; 15],
            strings: vec![],
        }
    }

    fn clock() -> TscClock {
        TscClock::fixed(0, 1_000_000_000, 1.0)
    }

    #[test]
    fn an_exit_drained_before_its_entry_still_pairs() {
        let mut out = Collect::default();
        let mut c = Collector::new(vec!["main.a".into()], clock(), &mut out);
        c.push(ev(0, EventKind::Exit, 300, 1, 50));
        c.push(ev(0, EventKind::Entry, 100, 1, 50));
        let stats = c.finish().unwrap();
        assert_eq!(stats.spans, 1);
        assert_eq!(out.0[0].start_unix_nano, 1_000_000_100);
        assert_eq!(out.0[0].end_unix_nano, 1_000_000_300);
        assert_eq!(out.0[0].status, Status::Unset);
        assert_eq!(stats.orphan_exits, 0);
    }

    #[test]
    fn a_nested_call_is_a_child_in_the_same_trace() {
        let mut out = Collect::default();
        let mut c = Collector::new(
            vec!["main.outer".into(), "main.inner".into()],
            clock(),
            &mut out,
        );
        c.push(ev(0, EventKind::Entry, 1, 9, 10));
        c.push(ev(1, EventKind::Entry, 2, 9, 90));
        c.push(ev(1, EventKind::Exit, 3, 9, 90));
        c.push(ev(0, EventKind::Exit, 4, 9, 10));
        c.finish().unwrap();
        let (inner, outer) = (&out.0[0], &out.0[1]);
        assert_eq!(inner.function, "main.inner");
        assert_eq!(inner.parent_span_id, Some(outer.span_id));
        assert_eq!(inner.trace_id, outer.trace_id);
        assert_eq!(outer.parent_span_id, None);
        assert_eq!(inner.goroutine, 9);
        assert_eq!(inner.depth, 1);
    }

    #[test]
    fn a_goroutines_first_span_is_a_child_of_its_creators_open_span() {
        let mut out = Collect::default();
        let mut c = Collector::new(
            vec!["main.serve".into(), "main.work".into()],
            clock(),
            &mut out,
        );
        c.push(ev(0, EventKind::Entry, 1, 1, 10));
        c.push(Event {
            parent_goid: 1,
            ..ev(1, EventKind::Entry, 2, 7, 10)
        });
        c.push(ev(1, EventKind::Exit, 3, 7, 10));
        c.push(ev(0, EventKind::Exit, 4, 1, 10));
        c.finish().unwrap();
        assert_eq!(out.0[0].parent_span_id, Some(out.0[1].span_id));
        assert_eq!(out.0[0].trace_id, out.0[1].trace_id);
    }

    #[test]
    fn unwound_and_unfinished_calls_are_errors_named_panic_and_unfinished() {
        let mut out = Collect::default();
        let mut c = Collector::new(vec!["main.f".into(), "main.g".into()], clock(), &mut out);
        c.push(ev(0, EventKind::Entry, 1, 1, 10));
        c.push(ev(1, EventKind::Entry, 2, 1, 50)); // g panics …
        c.push(ev(0, EventKind::Exit, 3, 1, 10)); // … f recovers and returns
        c.push(ev(1, EventKind::Entry, 4, 2, 10)); // still running at the end
        let stats = c.finish().unwrap();
        assert_eq!(stats.spans, 3);
        assert_eq!(out.0[0].status, Status::Error("panic".into()));
        assert_eq!(out.0[0].end_unix_nano, 1_000_000_003);
        assert_eq!(out.0[1].status, Status::Unset);
        assert_eq!(out.0[2].status, Status::Error("unfinished".into()));
    }

    #[test]
    fn a_call_of_a_function_with_unhooked_returns_is_not_called_a_panic() {
        let mut out = Collect::default();
        let mut c = Collector::new(vec!["main.f".into()], clock(), &mut out)
            .with_exit_coverage(vec![false]);
        c.push(ev(0, EventKind::Entry, 1, 1, 10));
        c.push(ev(0, EventKind::Entry, 5, 1, 10)); // the first call returned unseen
        c.finish().unwrap();
        assert_eq!(out.0[0].status, Status::Unset);
        assert_eq!(out.0[0].end_unix_nano, out.0[0].start_unix_nano);
        assert!(out.0[0].attributes.iter().any(|(k, _)| k == "gohook.end"));
    }

    #[test]
    fn a_call_whose_exit_may_have_been_dropped_is_not_called_a_panic() {
        let mut out = Collect::default();
        let mut c = Collector::new(vec!["main.f".into()], clock(), &mut out);
        c.push(ev(0, EventKind::Entry, 10_000_000, 1, 10));
        // The ring overflowed while the call ran: its exit record may be among the lost.
        c.add_dropped_between(3, 10_000_100, 10_000_200);
        c.push(ev(0, EventKind::Entry, 10_000_300, 1, 10));
        let stats = c.finish().unwrap();
        assert_eq!(stats.dropped, 3);
        assert_eq!(out.0[0].status, Status::Unset);
        assert_eq!(out.0[0].end_unix_nano, out.0[0].start_unix_nano);
        assert!(out.0[0].attributes.iter().any(|(k, v)| k == "gohook.end"
            && *v == AttrValue::Str("not observed (records dropped)".into())));
    }

    #[test]
    fn drops_long_after_a_call_do_not_excuse_its_panic() {
        let mut out = Collect::default();
        let mut c = Collector::new(vec!["main.f".into()], clock(), &mut out);
        c.push(ev(0, EventKind::Entry, 10_000_000, 1, 10));
        c.push(ev(0, EventKind::Entry, 10_000_300, 1, 10));
        c.add_dropped_between(3, 50_000_000, 50_000_100);
        let stats = c.finish().unwrap();
        assert_eq!(stats.dropped, 3);
        assert_eq!(out.0[0].status, Status::Error("panic".into()));
    }

    #[test]
    fn records_for_unknown_hooks_are_counted_not_trusted() {
        let mut out = Collect::default();
        let mut c = Collector::new(vec!["main.f".into()], clock(), &mut out);
        c.push(ev(7, EventKind::Entry, 1, 1, 10));
        let stats = c.finish().unwrap();
        assert_eq!(stats.bad_records, 1);
        assert_eq!(stats.spans, 0);
    }

    #[test]
    fn advance_holds_back_records_newer_than_the_watermark() {
        let mut out = Collect::default();
        let mut c = Collector::new(vec!["main.f".into()], clock(), &mut out);
        c.push(ev(0, EventKind::Entry, 1, 1, 10));
        c.push(ev(0, EventKind::Exit, 5_000_000, 1, 10));
        c.advance(4_000_000); // watermark 2 ms earlier: only the entry is released
        assert_eq!(c.stats().spans, 0);
        c.advance(8_000_000);
        assert_eq!(c.stats().spans, 1);
        c.finish().unwrap();
        assert_eq!(out.0.len(), 1);
    }

    /// A runtime running `sources` (name, text); hook `h` is `functions[h]` and runs every
    /// script whose HOOK names it. No types, no memory: these scripts use ctx fields only.
    fn runtime(sources: &[(&str, &str)], functions: &[&str]) -> Runtime {
        use crate::script::{ctx::HookInfo, loader, Origin};
        use gostrings::value::{Decoder, Limits, MapLayout};
        let scripts: Vec<_> = sources
            .iter()
            .map(|(n, t)| loader::load_source(n, t, Origin::Bundled).unwrap())
            .collect();
        let by_hook = functions
            .iter()
            .map(|f| {
                (0..scripts.len())
                    .filter(|&i| scripts[i].hooks.iter().any(|h| h == f))
                    .collect()
            })
            .collect();
        let hooks = functions
            .iter()
            .map(|f| HookInfo {
                function: (*f).into(),
                types: Err("no types in this test".into()),
                string_ptr_regs: vec![],
                paths: vec![],
            })
            .collect();
        let decoder = Decoder::new(
            gostrings::TypeTable::new(),
            None,
            MapLayout::Swiss,
            Limits::default(),
        );
        let mem: std::rc::Rc<dyn gostrings::MemoryReader> =
            std::rc::Rc::new(gostrings::SliceMemory::default());
        Runtime::new(scripts, by_hook, hooks, decoder, mem)
    }

    const NAMED_BY_RAX: &str = r#"
        const HOOK = ["main.outer", "main.inner"];
        fn on_enter(ctx) {
            ctx.span_start("call " + ctx.reg("rax"), "server");
            ctx.state.g = ctx.goroutine;
            ctx.set("n", ctx.reg("rax"));
        }
        fn on_leave(ctx) {
            ctx.set("same_goroutine", ctx.state.g == ctx.goroutine);
            ctx.event("done", #{ result: ctx.reg("rax") });
        }
    "#;

    #[test]
    fn scripted_spans_are_named_by_the_script_and_nest_like_calls() {
        let mut out = Collect::default();
        let rt = runtime(&[("t.rhai", NAMED_BY_RAX)], &["main.outer", "main.inner"]);
        let mut c = Collector::new(
            vec!["main.outer".into(), "main.inner".into()],
            clock(),
            &mut out,
        )
        .with_scripts(rt);
        let with_rax = |mut e: Event, rax| {
            e.int_regs[0] = rax;
            e
        };
        c.push(with_rax(ev(0, EventKind::Entry, 1, 9, 10), 1));
        c.push(with_rax(ev(1, EventKind::Entry, 2, 9, 90), 2));
        c.push(with_rax(ev(1, EventKind::Exit, 3, 9, 90), 20));
        c.push(with_rax(ev(0, EventKind::Exit, 4, 9, 10), 10));
        let stats = c.finish().unwrap();
        assert_eq!(stats.script_errors, 0);
        let (inner, outer) = (&out.0[0], &out.0[1]);
        assert_eq!(outer.name, "call 1");
        assert_eq!(inner.name, "call 2");
        assert_eq!(inner.kind, SpanKind::Server);
        assert_eq!(inner.parent_span_id, Some(outer.span_id));
        assert_eq!(inner.trace_id, outer.trace_id);
        assert_eq!(inner.function, "main.inner");
        assert!(inner.attributes.contains(&("n".into(), AttrValue::Int(2))));
        assert!(inner
            .attributes
            .contains(&("same_goroutine".into(), AttrValue::Bool(true))));
        assert_eq!(inner.events.len(), 1);
        assert_eq!(inner.events[0].name, "done");
        assert_eq!(inner.events[0].time_unix_nano, 1_000_000_003);
        assert_eq!(
            inner.events[0].attributes,
            vec![("result".into(), AttrValue::Int(20))]
        );
    }

    #[test]
    fn a_scripted_call_without_span_start_has_no_span_and_its_callees_attach_above_it() {
        let quiet = r#"const HOOK = "main.middle"; fn on_enter(ctx) { ctx.set("x", 1); }"#;
        let mut out = Collect::default();
        let rt = runtime(
            &[("q.rhai", quiet)],
            &["main.outer", "main.middle", "main.inner"],
        );
        let mut c = Collector::new(
            vec![
                "main.outer".into(),
                "main.middle".into(),
                "main.inner".into(),
            ],
            clock(),
            &mut out,
        )
        .with_scripts(rt);
        c.push(ev(0, EventKind::Entry, 1, 9, 10));
        c.push(ev(1, EventKind::Entry, 2, 9, 50));
        c.push(ev(2, EventKind::Entry, 3, 9, 90));
        c.push(ev(2, EventKind::Exit, 4, 9, 90));
        c.push(ev(1, EventKind::Exit, 5, 9, 50));
        c.push(ev(0, EventKind::Exit, 6, 9, 10));
        let stats = c.finish().unwrap();
        assert_eq!(stats.spans, 2, "middle makes no span");
        let (inner, outer) = (&out.0[0], &out.0[1]);
        assert_eq!(inner.function, "main.inner");
        assert_eq!(outer.function, "main.outer");
        assert_eq!(inner.parent_span_id, Some(outer.span_id));
        assert_eq!(inner.depth, 1);
    }

    #[test]
    fn a_goroutines_first_scripted_span_is_a_child_of_its_creators_scripted_span() {
        let mut out = Collect::default();
        let rt = runtime(&[("t.rhai", NAMED_BY_RAX)], &["main.outer", "main.inner"]);
        let mut c = Collector::new(
            vec!["main.outer".into(), "main.inner".into()],
            clock(),
            &mut out,
        )
        .with_scripts(rt);
        c.push(ev(0, EventKind::Entry, 1, 1, 10));
        c.push(Event {
            parent_goid: 1,
            ..ev(1, EventKind::Entry, 2, 7, 10)
        });
        c.push(ev(1, EventKind::Exit, 3, 7, 10));
        c.push(ev(0, EventKind::Exit, 4, 1, 10));
        c.finish().unwrap();
        assert_eq!(out.0[0].goroutine, 7);
        assert_eq!(out.0[0].parent_span_id, Some(out.0[1].span_id));
        assert_eq!(out.0[0].trace_id, out.0[1].trace_id);
    }

    #[test]
    fn a_runtime_error_drops_that_calls_script_output_and_is_counted() {
        let failing = r#"
            const HOOK = "main.f";
            fn on_enter(ctx) {
                ctx.span_start("f");
                if ctx.reg("rax") == 13 { throw "unlucky"; }
            }
        "#;
        let mut out = Collect::default();
        let rt = runtime(&[("f.rhai", failing)], &["main.f"]);
        let mut c = Collector::new(vec!["main.f".into()], clock(), &mut out).with_scripts(rt);
        for (i, rax) in [1u64, 13, 2, 13].into_iter().enumerate() {
            let t = 10 * i as u64;
            let mut e = ev(0, EventKind::Entry, t + 1, 1, 10);
            e.int_regs[0] = rax;
            c.push(e);
            c.push(ev(0, EventKind::Exit, t + 2, 1, 10));
        }
        let stats = c.finish().unwrap();
        assert_eq!(stats.script_errors, 2);
        assert_eq!(stats.spans, 2, "the two failing calls make no span");
        assert!(out.0.iter().all(|s| s.name == "f"));
    }

    #[test]
    fn hooks_without_a_script_keep_one_span_per_call_named_after_the_function() {
        let mut out = Collect::default();
        let rt = runtime(&[("t.rhai", NAMED_BY_RAX)], &["main.outer", "main.plain"]);
        let mut c = Collector::new(
            vec!["main.outer".into(), "main.plain".into()],
            clock(),
            &mut out,
        )
        .with_scripts(rt);
        c.push(ev(1, EventKind::Entry, 1, 1, 10));
        c.push(ev(1, EventKind::Exit, 2, 1, 10));
        c.finish().unwrap();
        assert_eq!(out.0.len(), 1);
        assert_eq!(out.0[0].name, "main.plain");
    }
}
