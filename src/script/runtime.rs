//! Running the scripts of a trace on its calls: `on_enter` at the entry record, `on_leave` at the
//! exit record, each script of a hook in the order given, each with its own `ctx.state` for the
//! call. Runtime errors are printed once per distinct message and counted; the failing script's
//! output for that call is dropped (an error in `on_enter` drops everything that script would
//! have contributed to the call, including its span; one in `on_leave` drops that function's
//! attributes, status and events). The target is never affected.

use std::collections::HashSet;
use std::rc::Rc;

use gostrings::value::Decoder;
use gostrings::MemoryReader;
use rhai::{CallFnOptions, Dynamic, EvalAltResult, Map};

use super::ctx::{CallData, Ctx, Effects, HookInfo, Phase};
use super::loader::Script;
use super::sandbox::MAX_OPERATIONS;
use crate::collector::Event;
use crate::spans::{Span, SpanKind};

/// A runtime error reduced to what the user needs: the script line and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// 1-based line in the script, when known.
    pub line: Option<usize>,
    /// The message (a decoder's message as is).
    pub message: String,
}

/// The innermost cause of a Rhai error (errors inside nested script functions are wrapped), its
/// line, and its message without Rhai's position suffix.
pub fn describe(e: &EvalAltResult) -> Described {
    let mut e = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = e {
        e = inner;
    }
    let line = e.position().line();
    let message = match e {
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        EvalAltResult::ErrorTooManyOperations(_) => {
            format!("too many operations: a call may perform at most {MAX_OPERATIONS}")
        }
        other => {
            // Rhai's text ends with ` (line L, position C)` when it has a position.
            let text = other.to_string();
            let suffix = format!(" ({})", other.position());
            match text.strip_suffix(&suffix) {
                Some(t) if !other.position().is_none() => t.to_owned(),
                _ => text,
            }
        }
    };
    Described { line, message }
}

/// Distinct runtime-error lines already printed, and how many errors there were.
#[derive(Debug, Default)]
struct ErrorLog {
    printed: HashSet<String>,
    count: u64,
}

impl ErrorLog {
    fn report(&mut self, script: &str, phase: Phase, function: &str, e: &EvalAltResult) {
        self.count += 1;
        let d = describe(e);
        let line = match d.line {
            Some(l) => format!(
                "{script}:{l}: {} (in {} of {function})",
                d.message,
                phase.function_name()
            ),
            None => format!(
                "{script}: {} (in {} of {function})",
                d.message,
                phase.function_name()
            ),
        };
        // Addresses differ from call to call: the same failure is printed once, not per address.
        if self.printed.len() < 1000 && self.printed.insert(mask_hex(&line)) {
            eprintln!("gohook: {line}");
        }
    }
}

/// `text` with every `0x…` number replaced by `0x_`.
fn mask_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        let n = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        if n > 0 {
            out.push('_');
        }
        rest = &rest[n..];
    }
    out.push_str(rest);
    out
}

/// One script's part in one call.
struct Part {
    script: usize,
    state: Map,
    enter: Effects,
    leave: Effects,
    failed: bool,
}

/// What the scripts of a hook made of one call so far.
pub struct Call {
    parts: Vec<Part>,
    span: Option<(String, SpanKind)>,
}

impl Call {
    /// Takes what the scripts' `on_enter` asked of enclosing spans (see [`Enclosing`]).
    ///
    /// [`Enclosing`]: super::ctx::Enclosing
    pub fn take_enclosing(&mut self) -> Vec<super::ctx::Enclosing> {
        self.parts
            .iter_mut()
            .filter(|p| !p.failed)
            .flat_map(|p| std::mem::take(&mut p.enter.enclosing))
            .collect()
    }

    /// The span the scripts started in `on_enter` (name, kind), if any: a call whose scripts
    /// start none produces no span, and calls inside it attach to the nearest enclosing span.
    pub fn span(&self) -> Option<&(String, SpanKind)> {
        self.span.as_ref()
    }

    /// Writes the attributes, status, events (and an `on_leave` rename) into `span`, script by
    /// script in order, `on_enter`'s before `on_leave`'s.
    pub fn apply(self, span: &mut Span) {
        for p in self.parts.into_iter().filter(|p| !p.failed) {
            for fx in [p.enter, p.leave] {
                if let Some((name, kind)) = fx.span {
                    span.name = name;
                    span.kind = kind;
                }
                for (k, v) in fx.attrs {
                    span.set_attr(&k, v);
                }
                if let Some(s) = fx.status {
                    span.status = s;
                }
                span.events.extend(fx.events);
            }
        }
    }
}

/// The scripts of a trace, bound to its hooks, with the decoder and the target's memory.
pub struct Runtime {
    scripts: Vec<Script>,
    by_hook: Vec<Vec<usize>>,
    hooks: Vec<Rc<HookInfo>>,
    decoder: Rc<Decoder>,
    memory: Rc<dyn MemoryReader>,
    errors: ErrorLog,
    /// Reloads changed `-s` files (`script::reload`), when enabled.
    reload: Option<super::reload::Reloader>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("scripts", &self.scripts)
            .field("by_hook", &self.by_hook)
            .finish()
    }
}

impl Runtime {
    /// Scripts `scripts`; hook `h` runs `scripts[i]` for each `i` in `by_hook[h]`, in order, and
    /// its function is described by `hooks[h]`. Values are decoded by `decoder` over `memory`.
    pub fn new(
        scripts: Vec<Script>,
        by_hook: Vec<Vec<usize>>,
        hooks: Vec<HookInfo>,
        decoder: Decoder,
        memory: Rc<dyn MemoryReader>,
    ) -> Self {
        Runtime {
            scripts,
            by_hook,
            hooks: hooks.into_iter().map(Rc::new).collect(),
            decoder: Rc::new(decoder),
            memory,
            errors: ErrorLog::default(),
            reload: None,
        }
    }

    /// Reloads the user's script files when they change while gohook runs (see
    /// `script::reload`); reloaded scripts are configured with `capture`.
    pub fn with_reload(mut self, capture: super::redact::Capture) -> Self {
        self.reload = Some(super::reload::Reloader::new(&self.scripts, capture));
        self
    }

    /// True when hook `hook` has at least one script.
    pub fn is_scripted(&self, hook: u32) -> bool {
        self.by_hook
            .get(hook as usize)
            .is_some_and(|s| !s.is_empty())
    }

    /// Runtime errors so far (each distinct message was printed once).
    pub fn error_count(&self) -> u64 {
        self.errors.count
    }

    fn data(&self, ev: &Event, phase: Phase, ts: u64, span_open: bool) -> Option<CallData> {
        Some(CallData {
            phase,
            info: self.hooks.get(ev.hook as usize)?.clone(),
            goroutine: ev.goid,
            timestamp: ts,
            ints: ev.int_regs,
            floats: ev.float_regs,
            strings: if phase == Phase::Enter {
                ev.strings.clone()
            } else {
                Vec::new()
            },
            span_open,
        })
    }

    /// Runs `on_enter` of every script of the entry record `ev`'s hook (time `ts`, Unix ns).
    pub fn enter(&mut self, ev: &Event, ts: u64) -> Call {
        if let Some(r) = &mut self.reload {
            r.poll(&mut self.scripts);
        }
        let mut call = Call {
            parts: Vec::new(),
            span: None,
        };
        let list = self
            .by_hook
            .get(ev.hook as usize)
            .cloned()
            .unwrap_or_default();
        for i in list {
            let mut part = Part {
                script: i,
                state: Map::new(),
                enter: Effects::default(),
                leave: Effects::default(),
                failed: false,
            };
            if self.scripts[i].has_enter {
                if let Some(data) = self.data(ev, Phase::Enter, ts, false) {
                    match self.run(i, Phase::Enter, data, Map::new()) {
                        Ok((fx, state)) => {
                            part.enter = fx;
                            part.state = state;
                        }
                        Err(()) => part.failed = true,
                    }
                }
            }
            call.parts.push(part);
        }
        call.span = call
            .parts
            .iter()
            .filter(|p| !p.failed)
            .filter_map(|p| p.enter.span.clone())
            .next_back();
        call
    }

    /// Runs `on_leave` of the scripts of `call` at its exit record `ev` (time `ts`, Unix ns).
    pub fn leave(&mut self, call: &mut Call, ev: &Event, ts: u64) {
        let span_open = call.span.is_some();
        for p in call.parts.iter_mut().filter(|p| !p.failed) {
            if !self.scripts[p.script].has_leave {
                continue;
            }
            let Some(data) = self.data(ev, Phase::Leave, ts, span_open) else {
                continue;
            };
            let state = std::mem::take(&mut p.state);
            if let Ok((fx, state)) = self.run(p.script, Phase::Leave, data, state) {
                p.leave = fx;
                p.state = state;
            }
        }
    }

    fn run(
        &mut self,
        i: usize,
        phase: Phase,
        data: CallData,
        state: Map,
    ) -> Result<(Effects, Map), ()> {
        let function = data.info.function.clone();
        let ctx = Ctx::new(data, self.decoder.clone(), self.memory.clone(), state);
        let s = &mut self.scripts[i];
        let opts = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        let r = s.engine.call_fn_with_options::<Dynamic>(
            opts,
            &mut s.scope,
            &s.ast,
            phase.function_name(),
            (ctx.clone(),),
        );
        let r = r.and_then(|_| {
            // Rhai does not bound a map grown key by key (`m[k] = v`): a state kept from
            // on_enter to on_leave of many open calls could hold gohook's memory. Bound it here.
            let d = ctx.0.borrow();
            check_state_size(&d.state)
                .map_err(|m| Box::new(EvalAltResult::ErrorDataTooLarge(m, rhai::Position::NONE)))
        });
        match r {
            Ok(_) => Ok(ctx.take()),
            Err(e) => {
                let name = s.name.clone();
                self.errors.report(&name, phase, &function, &e);
                Err(())
            }
        }
    }
}

/// Largest `ctx.state` a call may keep: entries of maps and arrays, at any depth.
pub const MAX_STATE_ITEMS: usize = super::sandbox::MAX_MAP;
/// Largest `ctx.state` a call may keep: bytes of strings and blobs, at any depth.
pub const MAX_STATE_BYTES: usize = super::sandbox::MAX_STRING;

/// Checks that `state` stays within [`MAX_STATE_ITEMS`] and [`MAX_STATE_BYTES`], stopping as
/// soon as one is passed.
fn check_state_size(state: &Map) -> Result<(), String> {
    let mut used = (state.len(), 0usize);
    for (k, v) in state {
        used.1 += k.len();
        if !within(v, &mut used, 0) {
            return Err(format!(
                "ctx.state: more than {MAX_STATE_ITEMS} entries or {MAX_STATE_BYTES} bytes kept \
                 for on_leave"
            ));
        }
    }
    Ok(())
}

/// Adds `v`'s entries and bytes to `used` (items, bytes); false once over a budget or nested
/// deeper than the call-depth limit.
fn within(v: &Dynamic, used: &mut (usize, usize), depth: usize) -> bool {
    if depth > super::sandbox::MAX_CALL_LEVELS {
        return false;
    }
    if let Some(m) = v.read_lock::<Map>() {
        used.0 += m.len();
        for (k, x) in m.iter() {
            used.1 += k.len();
            if used.0 > MAX_STATE_ITEMS || used.1 > MAX_STATE_BYTES || !within(x, used, depth + 1) {
                return false;
            }
        }
    } else if let Some(a) = v.read_lock::<rhai::Array>() {
        used.0 += a.len();
        for x in a.iter() {
            if used.0 > MAX_STATE_ITEMS || used.1 > MAX_STATE_BYTES || !within(x, used, depth + 1) {
                return false;
            }
        }
    } else if let Some(t) = v.read_lock::<rhai::ImmutableString>() {
        used.1 += t.len();
    } else if let Some(b) = v.read_lock::<rhai::Blob>() {
        used.1 += b.len();
    }
    used.0 <= MAX_STATE_ITEMS && used.1 <= MAX_STATE_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_grown_past_its_budget_is_refused_wherever_it_grows() {
        let small: Map = [("k".into(), Dynamic::from(1_i64))].into_iter().collect();
        assert!(check_state_size(&small).is_ok());
        let wide: Map = (0..MAX_STATE_ITEMS + 1)
            .map(|i| (format!("k{i}").into(), Dynamic::from(i as i64)))
            .collect();
        assert!(check_state_size(&wide).is_err(), "too many keys");
        let inner: Map = (0..MAX_STATE_ITEMS)
            .map(|i| (format!("k{i}").into(), Dynamic::UNIT))
            .collect();
        let nested: Map = [
            ("a".into(), Dynamic::from(inner.clone())),
            ("b".into(), Dynamic::from(inner)),
        ]
        .into_iter()
        .collect();
        assert!(
            check_state_size(&nested).is_err(),
            "entries counted at any depth"
        );
        let text = "x".repeat(MAX_STATE_BYTES / 2 + 1);
        let arr: rhai::Array = vec![Dynamic::from(text.clone()), Dynamic::from(text)];
        let big: Map = [("s".into(), Dynamic::from(arr))].into_iter().collect();
        assert!(check_state_size(&big).is_err(), "string bytes counted");
    }

    #[test]
    fn the_same_failure_at_different_addresses_is_one_message() {
        assert_eq!(
            mask_hex("cannot read 8 bytes at 0x7f00ab: gone (0x1)"),
            "cannot read 8 bytes at 0x_: gone (0x_)"
        );
        assert_eq!(mask_hex("no numbers 0x"), "no numbers 0x");
    }
}
