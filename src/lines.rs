//! The quick trace view (`gohook trace`, `--format lines`): one line per call and one per
//! return, Delve-like, with the Go arguments and results decoded where their types are known
//! (DWARF, or a `--signature`/script `SIGNATURE` on stripped binaries):
//!
//! ```text
//! > goroutine(17) main.greet("user", 3)
//!   > goroutine(17) main.pad("user")
//!   >> goroutine(17) main.pad => ("user ") 310ns
//! >> goroutine(17) main.greet => ("user-3") 1.2µs
//! ```
//!
//! Lines are indented by the call's nesting among the hooked calls open on its goroutine. Entry
//! lines are written when the entry record is seen (after the 2 ms reordering window), not when
//! the call ends; only `--min-duration` defers a call's two lines to its return.
//!
//! Values are cut at limits chosen by the verbosity (`-v`, `-vv`): string bytes, elements or
//! fields per level, and nesting depth. A cut value ends with `…(+N more)` (or `T{…}` below the
//! depth limit), and one hint line at the end says which flag shows more.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use gostrings::abi::Location;
use gostrings::value::{
    materialize, synthetic_addr, Decoder, Limits, MapLayout, RuntimeResolver, TypeResolver, Value,
    ValueError,
};
use gostrings::{GoBinary, GoType, Kind, MemoryReader, Shape};

use crate::capture::Captures;
use crate::clock::TscClock;
use crate::collector::{Event, EventKind};
use crate::ordering::Reorder;
use crate::pairing::{Ending, Pairer};
use crate::script::govalue::{Env, EventMemory, GoValue};
use crate::script::types::{FuncTypes, Slot, TypeBook};
use crate::spans::human_duration;

/// Most bytes one rendered value may take, whatever the limits.
const MAX_VALUE_TEXT: usize = 64 << 10;

/// What the view shows and which calls it keeps.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    /// Prefix each line with the record's time of day (UTC, microseconds).
    pub timestamp: bool,
    /// 0 (default), 1 (`-v`) or 2 and more (`-vv`): how much of each value is shown.
    pub verbosity: u8,
    /// Only calls on these goroutines (all when empty).
    pub goroutines: Vec<u64>,
    /// Only calls that last at least this long (their lines are written at their return).
    pub min_duration: Option<Duration>,
    /// Only calls nested at most this many hooked calls deep on their goroutine (0: only the
    /// outermost hooked calls).
    pub max_depth: Option<usize>,
    /// Only calls whose arguments make this one-line Rhai expression true.
    pub predicate: Option<String>,
}

/// The decoding limits of a verbosity level.
pub fn limits_for(verbosity: u8) -> Limits {
    let (max_string, max_items, max_depth) = match verbosity {
        0 => (64, 8, 2),
        1 => (256, 32, 4),
        _ => (4096, 256, 8),
    };
    Limits {
        max_string,
        max_items,
        max_depth,
        ..Limits::default()
    }
}

/// A compiled `--where` expression.
pub struct Predicate {
    engine: rhai::Engine,
    ast: rhai::AST,
    text: String,
}

impl std::fmt::Debug for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Predicate").field(&self.text).finish()
    }
}

impl Predicate {
    /// Compiles `text`, a single Rhai expression over the call's arguments (by parameter name),
    /// `goroutine` and `function`. A syntax error is returned as one line.
    pub fn compile(text: &str) -> Result<Predicate, String> {
        let engine = crate::script::sandbox::engine("--where");
        let ast = engine
            .compile_expression(text)
            .map_err(|e| format!("--where {text:?}: {e}"))?;
        Ok(Predicate {
            engine,
            ast,
            text: text.to_owned(),
        })
    }

    /// Evaluates the expression with `vars` in scope; anything but a bool is an error.
    fn eval(&self, vars: Vec<(String, rhai::Dynamic)>) -> Result<bool, String> {
        let mut scope = rhai::Scope::new();
        for (k, v) in vars {
            scope.push_dynamic(k, v);
        }
        let r = self
            .engine
            .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &self.ast)
            .map_err(|e| crate::script::runtime::describe(&e).message)?;
        r.as_bool()
            .map_err(|t| format!("the expression gave a {t}, not a bool"))
    }
}

/// What one hook's calls need for decoding.
struct HookTypes {
    function: String,
    types: Result<FuncTypes, String>,
    /// Per string copied at entry, the integer register holding its pointer.
    string_ptr_regs: Vec<usize>,
}

/// One call open on a goroutine.
struct Open {
    hook: u32,
    /// `stack.hi - SP` at entry.
    sp_depth: u64,
    /// Nesting among hooked calls open on the goroutine (0: outermost).
    level: usize,
    goid: u64,
    start_tsc: u64,
    /// Whether the filters keep this call.
    shown: bool,
    /// The entry line, when it waits for the return (`--min-duration`).
    deferred: Option<String>,
}

/// The view: reorders records, pairs calls per goroutine, decodes and writes lines.
pub struct LinesView<W: Write> {
    out: W,
    opts: ViewOptions,
    predicate: Option<Predicate>,
    hooks: Vec<HookTypes>,
    decoder: Rc<Decoder>,
    memory: Rc<dyn MemoryReader>,
    clock: TscClock,
    reorder: Reorder<Event>,
    pairer: Pairer<Open>,
    slack_ticks: u64,
    last_tsc: u64,
    /// A value was cut at the limits.
    cut: bool,
    /// Functions shown without types.
    untyped: BTreeSet<String>,
    where_errors: u64,
    where_first_error: Option<String>,
    /// Per hook: every return is hooked (else an unseen return is no sign of a panic).
    exits_complete: Vec<bool>,
    error: Option<std::io::Error>,
}

/// The decoder of a process running `bin` at `bias`, over the types of `book`, at `limits`
/// (interfaces resolved from the runtime type metadata, maps in the release's layout).
pub fn decoder_for(bin: &GoBinary, bias: u64, book: &TypeBook, limits: Limits) -> Decoder {
    let version = bin.go_version();
    let experiment = bin
        .buildinfo
        .as_ref()
        .and_then(|b| b.setting("GOEXPERIMENT"));
    let layout = MapLayout::for_build(&version, experiment);
    let resolver = crate::script::types::runtime_types(bin)
        .map(|rt| Box::new(RuntimeResolver::new(rt, bias)) as Box<dyn TypeResolver>);
    Decoder::new(book.table.clone(), resolver, layout, limits)
}

impl<W: Write> LinesView<W> {
    /// A view writing to `out`: hook `h` is `functions[h]` with the types `book.funcs[h]` and
    /// the captures `captures[h]`; values are read with `decoder` over `memory`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        out: W,
        opts: ViewOptions,
        predicate: Option<Predicate>,
        functions: &[String],
        book: &TypeBook,
        captures: &[Captures],
        decoder: Decoder,
        memory: Rc<dyn MemoryReader>,
        clock: TscClock,
    ) -> Self {
        let hooks = functions
            .iter()
            .enumerate()
            .map(|(h, f)| HookTypes {
                function: f.clone(),
                types: book
                    .funcs
                    .get(h)
                    .cloned()
                    .unwrap_or_else(|| Err("no types".into())),
                string_ptr_regs: captures
                    .get(h)
                    .map(|c| c.entry.strings.iter().map(|s| s.ptr as usize).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let slack_ticks = clock.ns_to_ticks(2_000_000);
        LinesView {
            out,
            opts,
            predicate,
            hooks,
            decoder: Rc::new(decoder),
            memory,
            clock,
            reorder: Reorder::new(),
            pairer: Pairer::new(),
            slack_ticks,
            last_tsc: 0,
            cut: false,
            untyped: BTreeSet::new(),
            where_errors: 0,
            where_first_error: None,
            exits_complete: Vec::new(),
            error: None,
        }
    }

    /// Says, per hook, whether every return of the function is hooked. A call of a function
    /// with unhooked returns that ends unseen gets no return line (it may simply have returned
    /// through an unhooked `RET`), rather than one claiming a panic.
    pub fn with_exit_coverage(mut self, complete: Vec<bool>) -> Self {
        self.exits_complete = complete;
        self
    }

    /// Accepts one record (in any order relative to other rings' records).
    pub fn push(&mut self, ev: Event) {
        if (ev.hook as usize) < self.hooks.len() {
            self.reorder.push(ev.tsc, ev);
        }
    }

    /// Writes the lines of every record stamped before `now_tsc` minus the reordering window.
    pub fn advance(&mut self, now_tsc: u64) {
        self.clock.refine();
        let watermark = now_tsc.saturating_sub(self.slack_ticks);
        let mut ready = Vec::new();
        self.reorder.pop_until(watermark, |e| ready.push(e));
        let any = !ready.is_empty();
        for e in ready {
            self.process(e);
        }
        if any {
            self.flush();
        }
    }

    /// Writes everything held, the calls still open, and the hints; returns the first write
    /// error.
    pub fn finish(mut self) -> std::io::Result<()> {
        let mut ready = Vec::new();
        self.reorder.drain(|e| ready.push(e));
        for e in ready {
            self.process(e);
        }
        let mut ended = Vec::new();
        self.pairer.finish(|o, how| ended.push((o, how)));
        let end = self.last_tsc;
        for (o, how) in ended {
            self.end_call(o, how, end, None);
        }
        let mut hints = Vec::new();
        if self.cut {
            hints.push(match self.opts.verbosity {
                0 => "gohook: values marked … were cut short; -v shows more, -vv the most".into(),
                1 => "gohook: values marked … were cut short; -vv shows more".into(),
                _ => "gohook: values marked … were cut short at the -vv limits".to_string(),
            });
        }
        if !self.untyped.is_empty() {
            let names: Vec<&str> = self.untyped.iter().map(String::as_str).take(5).collect();
            hints.push(format!(
                "gohook: no argument types for {}{} (no DWARF): give --signature 'FUNC(name type, ...) results'",
                names.join(", "),
                if self.untyped.len() > 5 { ", …" } else { "" }
            ));
        }
        if self.where_errors > 0 {
            hints.push(format!(
                "gohook: --where could not be evaluated on {} call{} (not shown): {}",
                self.where_errors,
                if self.where_errors == 1 { "" } else { "s" },
                self.where_first_error.as_deref().unwrap_or("")
            ));
        }
        for h in hints {
            self.line(h);
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
    }

    fn line(&mut self, text: String) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = writeln!(self.out, "{text}") {
            self.error = Some(e);
        }
    }

    fn prefix(&self, tsc: u64, level: usize) -> String {
        let mut p = String::new();
        if self.opts.timestamp {
            p.push_str(&time_of_day(self.clock.to_unix_ns(tsc)));
            p.push(' ');
        }
        for _ in 0..level {
            p.push_str("  ");
        }
        p
    }

    fn process(&mut self, ev: Event) {
        self.last_tsc = self.last_tsc.max(ev.tsc);
        match ev.kind {
            EventKind::Entry => {
                let level = self
                    .pairer
                    .open_on(ev.goid)
                    .filter(|o| o.sp_depth < ev.depth)
                    .count();
                let mut shown = (self.opts.goroutines.is_empty()
                    || self.opts.goroutines.contains(&ev.goid))
                    && self.opts.max_depth.is_none_or(|m| level <= m);
                let mut entry_line = None;
                if shown {
                    let hook = &self.hooks[ev.hook as usize];
                    let types = hook.types.as_ref().ok().cloned();
                    let env = self.env(&ev, true);
                    if let Some(p) = &self.predicate {
                        match self.where_vars(&ev, types.as_ref(), &env) {
                            Ok(vars) => match p.eval(vars) {
                                Ok(keep) => shown = keep,
                                Err(e) => {
                                    shown = false;
                                    self.where_errors += 1;
                                    self.where_first_error.get_or_insert_with(|| {
                                        format!(
                                            "{e} (in {})",
                                            self.hooks[ev.hook as usize].function
                                        )
                                    });
                                }
                            },
                            Err(e) => {
                                shown = false;
                                self.where_errors += 1;
                                self.where_first_error.get_or_insert(e);
                            }
                        }
                    }
                    if shown {
                        let args = self.values(&ev, types.as_ref().map(|t| &t.params), &env);
                        entry_line = Some(format!(
                            "{}> goroutine({}) {}({args})",
                            self.prefix(ev.tsc, level),
                            ev.goid,
                            self.hooks[ev.hook as usize].function
                        ));
                    }
                }
                let defer = self.opts.min_duration.is_some();
                let open = Open {
                    hook: ev.hook,
                    sp_depth: ev.depth,
                    level,
                    goid: ev.goid,
                    start_tsc: ev.tsc,
                    shown,
                    deferred: if defer { entry_line.clone() } else { None },
                };
                let mut ended = Vec::new();
                self.pairer.enter(
                    ev.goid,
                    ev.depth,
                    ev.hook,
                    |_| open,
                    |o, how| ended.push((o, how)),
                );
                for (o, how) in ended {
                    self.end_call(o, how, ev.tsc, None);
                }
                if let (false, Some(l)) = (defer, entry_line) {
                    self.line(l);
                }
            }
            EventKind::Exit => {
                let mut ended = Vec::new();
                self.pairer
                    .exit(ev.goid, ev.depth, ev.hook, |o, how| ended.push((o, how)));
                for (o, how) in ended {
                    let this = how == Ending::Returned;
                    self.end_call(o, how, ev.tsc, this.then_some(&ev));
                }
            }
        }
    }

    /// Writes the return line of `o` (and its deferred entry line), ended at `tsc`; `exit` is
    /// its exit record when it returned.
    fn end_call(&mut self, o: Open, how: Ending, tsc: u64, exit: Option<&Event>) {
        let covered = self
            .exits_complete
            .get(o.hook as usize)
            .copied()
            .unwrap_or(true);
        if !o.shown || (how != Ending::Returned && !covered) {
            return;
        }
        let ns = self
            .clock
            .to_unix_ns(tsc)
            .saturating_sub(self.clock.to_unix_ns(o.start_tsc));
        if let Some(min) = self.opts.min_duration {
            if how != Ending::Returned || u128::from(ns) < min.as_nanos() {
                return;
            }
        }
        let function = self.hooks[o.hook as usize].function.clone();
        let prefix = self.prefix(tsc, o.level);
        let text = match (how, exit) {
            (Ending::Returned, Some(ev)) => {
                let types = self.hooks[o.hook as usize].types.as_ref().ok().cloned();
                let env = self.env(ev, false);
                let results = self.values(ev, types.as_ref().map(|t| &t.results), &env);
                format!(
                    "{prefix}>> goroutine({}) {function} => ({results}) {}",
                    o.goid,
                    human_duration(ns)
                )
            }
            (Ending::Unwound, _) => format!(
                "{prefix}>> goroutine({}) {function} unwound (panic or runtime.Goexit) after {}",
                o.goid,
                human_duration(ns)
            ),
            _ => format!(
                "{prefix}>> goroutine({}) {function} still running when tracing ended",
                o.goid
            ),
        };
        if let Some(l) = o.deferred {
            self.line(l);
        }
        self.line(text);
    }

    /// The memory values of `ev` are read from: the string bytes copied at entry at their
    /// original address, over the target's memory.
    fn env(&self, ev: &Event, entry: bool) -> Rc<Env> {
        let mem = EventMemory::new(self.memory.clone());
        if entry {
            let regs = &self.hooks[ev.hook as usize].string_ptr_regs;
            for (i, (_, bytes)) in ev.strings.iter().enumerate() {
                if let Some(&ptr) = regs.get(i).and_then(|r| ev.int_regs.get(*r)) {
                    if ptr != 0 && !bytes.is_empty() {
                        mem.add(ptr, bytes.clone());
                    }
                }
            }
        }
        Rc::new(Env {
            decoder: self.decoder.clone(),
            mem,
        })
    }

    /// Slot `i` of `slots` laid out in `env`'s memory, or why it cannot be read.
    fn slot_value(
        &self,
        ev: &Event,
        slots: &[Slot],
        i: usize,
        env: &Env,
    ) -> Result<Value, &'static str> {
        let slot = &slots[i];
        if let Location::Stack { .. } = slot.loc {
            return Err("<stack>");
        }
        let addr = synthetic_addr(i);
        let bytes = materialize(
            &self.decoder.types(),
            slot.ty,
            &slot.loc,
            &ev.int_regs,
            &ev.float_regs,
        )
        .ok_or("<unreadable>")?;
        env.mem.add(addr, bytes);
        Ok(Value { ty: slot.ty, addr })
    }

    /// The values of `slots` (parameters or results) as `a, b, c`; `?` when the types are
    /// unknown.
    fn values(&mut self, ev: &Event, slots: Option<&Vec<Slot>>, env: &Env) -> String {
        let Some(slots) = slots else {
            self.untyped
                .insert(self.hooks[ev.hook as usize].function.clone());
            return "?".into();
        };
        let mut out = String::new();
        let limits = self.decoder.limits();
        for i in 0..slots.len() {
            if i > 0 {
                out.push_str(", ");
            }
            match self.slot_value(ev, slots, i, env) {
                Ok(v) => {
                    let mut r = Renderer {
                        d: &self.decoder,
                        mem: &env.mem,
                        limits,
                        cut: false,
                    };
                    r.render(v, 0, &mut out);
                    self.cut |= r.cut;
                }
                Err(why) => out.push_str(why),
            }
        }
        out
    }

    /// The `--where` variables of an entry: each parameter by name (basic kinds as Rhai values,
    /// others as Go values), `goroutine` and `function`.
    fn where_vars(
        &self,
        ev: &Event,
        types: Option<&FuncTypes>,
        env: &Rc<Env>,
    ) -> Result<Vec<(String, rhai::Dynamic)>, String> {
        let function = &self.hooks[ev.hook as usize].function;
        let mut vars = vec![
            ("goroutine".to_owned(), rhai::Dynamic::from(ev.goid as i64)),
            ("function".to_owned(), rhai::Dynamic::from(function.clone())),
        ];
        let Some(types) = types else {
            return Err(format!("no argument types for {function}"));
        };
        for (i, slot) in types.params.iter().enumerate() {
            if !is_identifier(&slot.name) {
                continue;
            }
            let Ok(v) = self.slot_value(ev, &types.params, i, env) else {
                continue;
            };
            vars.push((slot.name.clone(), plain(&self.decoder, env, v)));
        }
        Ok(vars)
    }
}

/// A basic Go value as the matching Rhai value; anything else (or an unreadable value) as a Go
/// value with the scripts' methods.
fn plain(d: &Decoder, env: &Rc<Env>, v: Value) -> rhai::Dynamic {
    let kind = d.types().get(v.ty).map(|t| t.kind);
    let m = &env.mem;
    let got = match kind {
        Some(Kind::String) => d.str(m, v).map(rhai::Dynamic::from),
        Some(Kind::Bool) => d.bool(m, v).map(rhai::Dynamic::from),
        Some(k) if k.is_signed() => d.int(m, v).map(rhai::Dynamic::from),
        Some(k) if k.is_integer() => d.uint(m, v).map(|u| match i64::try_from(u) {
            Ok(i) => rhai::Dynamic::from(i),
            Err(_) => rhai::Dynamic::from(u as f64),
        }),
        Some(Kind::Float32 | Kind::Float64) => d.float(m, v).map(rhai::Dynamic::from),
        _ => return rhai::Dynamic::from(GoValue::new(v, env.clone())),
    };
    got.unwrap_or_else(|_| rhai::Dynamic::from(GoValue::new(v, env.clone())))
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
        && !matches!(s, "goroutine" | "function")
}

/// `HH:MM:SS.uuuuuu` (UTC) of a Unix time in ns.
pub fn time_of_day(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let us = unix_ns % 1_000_000_000 / 1000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{us:06}",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// Renders values within limits, noting whether anything was cut.
struct Renderer<'a> {
    d: &'a Decoder,
    mem: &'a dyn MemoryReader,
    limits: Limits,
    cut: bool,
}

impl Renderer<'_> {
    fn render(&mut self, v: Value, depth: usize, out: &mut String) {
        if out.len() > MAX_VALUE_TEXT {
            self.cut = true;
            return;
        }
        if let Err(e) = self.value(v, depth, out) {
            let _ = write!(out, "<error: {e}>");
        }
    }

    fn ty(&self, v: Value) -> Result<GoType, ValueError> {
        self.d
            .types()
            .get(v.ty)
            .cloned()
            .ok_or(ValueError::UnknownType(v.ty.0))
    }

    fn more(&mut self, n: u64, what: &str, out: &mut String) {
        self.cut = true;
        let _ = write!(out, "…(+{n} {what})");
    }

    fn value(&mut self, v: Value, depth: usize, out: &mut String) -> Result<(), ValueError> {
        let t = self.ty(v)?;
        let (d, m) = (self.d, self.mem);
        let deep = depth >= self.limits.max_depth;
        let items = self.limits.max_items as u64;
        match (&t.shape, t.kind) {
            (_, Kind::String) => {
                let len = d.len(m, v)?;
                let s = d.str(m, v)?;
                quote(s.as_bytes(), out);
                if len > s.len() as u64 {
                    self.more(len - s.len() as u64, "bytes", out);
                }
            }
            (_, Kind::Bool) => out.push_str(if d.bool(m, v)? { "true" } else { "false" }),
            (_, k) if k.is_signed() => {
                let _ = write!(out, "{}", d.int(m, v)?);
            }
            (_, k) if k.is_integer() => {
                let _ = write!(out, "{}", d.uint(m, v)?);
            }
            (_, Kind::Float32 | Kind::Float64) => {
                let _ = write!(out, "{}", d.float(m, v)?);
            }
            (Shape::Pointer { .. }, _) if t.kind != Kind::UnsafePointer => {
                if d.is_nil(m, v)? {
                    out.push_str("nil");
                } else if deep {
                    let w = d.bytes(m, v, 8)?;
                    let p = w
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_le_bytes);
                    let _ = write!(out, "({})({p:#x})", t.name);
                    self.cut = true;
                } else {
                    out.push('&');
                    let target = d.deref(m, v)?;
                    self.render(target, depth + 1, out);
                }
            }
            (Shape::Interface { .. }, _) => {
                if d.is_nil(m, v)? {
                    out.push_str("nil");
                } else if t.name == "error" {
                    match d.error_text(m, v) {
                        Ok(text) if !text.starts_with('<') => {
                            out.push_str("error(");
                            quote(text.as_bytes(), out);
                            out.push(')');
                        }
                        _ => {
                            let c = d.elem(m, v)?;
                            self.render(c, depth, out);
                        }
                    }
                } else {
                    let c = d.elem(m, v)?;
                    self.render(c, depth, out);
                }
            }
            (Shape::Struct { fields }, _) if t.name != "time.Time" => {
                if deep {
                    let _ = write!(out, "{}{{…}}", t.name);
                    self.cut = true;
                    return Ok(());
                }
                out.push_str(&t.name);
                out.push('{');
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if i as u64 >= items {
                        self.more((fields.len() - i) as u64, "more", out);
                        break;
                    }
                    let _ = write!(out, "{}: ", f.name);
                    let fv = Value {
                        ty: f.ty,
                        addr: v.addr.wrapping_add(f.offset),
                    };
                    self.render(fv, depth + 1, out);
                }
                out.push('}');
            }
            (Shape::Slice { elem } | Shape::Array { elem, .. }, _) => {
                if t.kind == Kind::Slice && d.is_nil(m, v)? {
                    let _ = write!(out, "{}(nil)", t.name);
                    return Ok(());
                }
                let n = d.len(m, v)?;
                let is_byte = d
                    .types()
                    .get(*elem)
                    .is_some_and(|e| matches!(e.kind, Kind::Uint8) && e.size == 1);
                if is_byte {
                    let b = d.bytes(m, v, self.limits.max_string)?;
                    let _ = write!(out, "{}(", t.name);
                    quote(&b, out);
                    out.push(')');
                    if n > b.len() as u64 {
                        self.more(n - b.len() as u64, "bytes", out);
                    }
                    return Ok(());
                }
                out.push_str(&t.name);
                if deep && n > 0 {
                    out.push_str("{…}");
                    self.cut = true;
                    return Ok(());
                }
                out.push('{');
                for i in 0..n {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if i >= items {
                        self.more(n - i, "more", out);
                        break;
                    }
                    let e = d.index(m, v, i as i64)?;
                    self.render(e, depth + 1, out);
                }
                out.push('}');
            }
            (Shape::Map { .. }, _) => {
                if d.is_nil(m, v)? {
                    let _ = write!(out, "{}(nil)", t.name);
                    return Ok(());
                }
                let n = d.len(m, v)?;
                out.push_str(&t.name);
                if deep && n > 0 {
                    out.push_str("{…}");
                    self.cut = true;
                    return Ok(());
                }
                out.push('{');
                let entries = d.map_items(m, v)?;
                for (i, (k, e)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if i as u64 >= items {
                        self.more(n.saturating_sub(i as u64), "more", out);
                        break;
                    }
                    self.render(*k, depth + 1, out);
                    out.push_str(": ");
                    self.render(*e, depth + 1, out);
                }
                out.push('}');
            }
            // time.Time, complex numbers, channels, funcs, unsafe.Pointer, opaque types: the
            // decoder's own rendering (bounded, never cut by these limits).
            _ => out.push_str(&d.render(m, v)),
        }
        Ok(())
    }
}

/// Appends `b` as a Go double-quoted string literal (`%q`-like; invalid UTF-8 as `\xNN`).
fn quote(b: &[u8], out: &mut String) {
    out.push('"');
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for x in chunk.invalid() {
            let _ = write!(out, "\\x{x:02x}");
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use gostrings::TypeTable;

    #[test]
    fn strings_quote_like_go_and_invalid_utf8_is_escaped() {
        let mut s = String::new();
        quote(b"a\"b\n\x01\xff\xc3\xa9", &mut s);
        assert_eq!(s, "\"a\\\"b\\n\\x01\\xffé\"");
    }

    #[test]
    fn time_of_day_is_utc_with_microseconds() {
        assert_eq!(
            time_of_day(86_400_000_000_000 + 3_723_000_456_789),
            "01:02:03.000456"
        );
    }

    #[test]
    fn verbosity_raises_every_limit() {
        let (a, b, c) = (limits_for(0), limits_for(1), limits_for(2));
        assert!(a.max_string < b.max_string && b.max_string < c.max_string);
        assert!(a.max_items < b.max_items && b.max_items < c.max_items);
        assert!(a.max_depth < b.max_depth && b.max_depth < c.max_depth);
        assert_eq!(limits_for(9), c);
    }

    #[test]
    fn a_bad_where_expression_is_one_line_naming_it() {
        let e = Predicate::compile("n >").unwrap_err();
        assert!(e.starts_with("--where \"n >\": "), "{e}");
        assert_eq!(e.lines().count(), 1);
        let e = Predicate::compile("let x = 1; x").unwrap_err();
        assert!(e.starts_with("--where"), "{e}");
    }

    #[test]
    fn a_where_expression_sees_arguments_and_must_give_a_bool() {
        let p = Predicate::compile(r#"n > 2 && name == "user""#).unwrap();
        let vars = |n: i64| {
            vec![
                ("n".to_owned(), rhai::Dynamic::from(n)),
                ("name".to_owned(), rhai::Dynamic::from("user".to_owned())),
            ]
        };
        assert_eq!(p.eval(vars(3)), Ok(true));
        assert_eq!(p.eval(vars(2)), Ok(false));
        let p = Predicate::compile("n + 1").unwrap();
        assert!(p.eval(vars(1)).unwrap_err().contains("not a bool"));
        let p = Predicate::compile("missing == 1").unwrap();
        assert!(p.eval(vars(1)).unwrap_err().contains("missing"));
    }

    fn view(opts: ViewOptions) -> LinesView<Vec<u8>> {
        let book = TypeBook {
            table: TypeTable::new(),
            funcs: vec![Err("none".into()), Err("none".into())],
        };
        let decoder = Decoder::new(TypeTable::new(), None, MapLayout::Swiss, limits_for(0));
        LinesView::new(
            Vec::new(),
            opts,
            None,
            &["main.outer".into(), "main.inner".into()],
            &book,
            &[],
            decoder,
            Rc::new(gostrings::SliceMemory::default()),
            TscClock::fixed(0, 1_000_000_000, 1.0),
        )
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

    fn run(opts: ViewOptions, evs: &[Event]) -> Vec<String> {
        let mut v = view(opts);
        for e in evs {
            v.push(e.clone());
        }
        // Everything released, the calls still open left open.
        v.advance(u64::MAX);
        String::from_utf8(v.out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn nested() -> Vec<Event> {
        vec![
            ev(0, EventKind::Entry, 1000, 7, 10),
            ev(1, EventKind::Entry, 2000, 7, 90),
            ev(1, EventKind::Exit, 3500, 7, 90),
            ev(0, EventKind::Exit, 9000, 7, 10),
            ev(1, EventKind::Entry, 9500, 8, 10),
        ]
    }

    #[test]
    fn entries_print_at_once_and_nested_calls_are_indented() {
        let lines = run(ViewOptions::default(), &nested());
        assert_eq!(
            lines,
            [
                "> goroutine(7) main.outer(?)",
                "  > goroutine(7) main.inner(?)",
                "  >> goroutine(7) main.inner => (?) 1.5µs",
                ">> goroutine(7) main.outer => (?) 8.0µs",
                "> goroutine(8) main.inner(?)",
            ]
        );
    }

    #[test]
    fn filters_hide_calls_by_goroutine_depth_and_duration() {
        let g8 = run(
            ViewOptions {
                goroutines: vec![8],
                ..Default::default()
            },
            &nested(),
        );
        assert_eq!(g8, ["> goroutine(8) main.inner(?)"]);
        let top = run(
            ViewOptions {
                max_depth: Some(0),
                ..Default::default()
            },
            &nested(),
        );
        assert_eq!(top.len(), 3, "{top:?}");
        assert!(top
            .iter()
            .all(|l| !l.contains("main.inner") || l.contains("goroutine(8)")));
        let slow = run(
            ViewOptions {
                min_duration: Some(Duration::from_micros(5)),
                ..Default::default()
            },
            &nested(),
        );
        assert_eq!(
            slow,
            [
                "> goroutine(7) main.outer(?)",
                ">> goroutine(7) main.outer => (?) 8.0µs",
            ]
        );
    }

    #[test]
    fn a_call_left_by_a_panic_says_so() {
        let lines = run(
            ViewOptions::default(),
            &[
                ev(0, EventKind::Entry, 1000, 7, 10),
                ev(1, EventKind::Entry, 2000, 7, 90),
                ev(0, EventKind::Exit, 3000, 7, 10),
            ],
        );
        assert_eq!(
            lines[2],
            "  >> goroutine(7) main.inner unwound (panic or runtime.Goexit) after 1.0µs"
        );
        assert!(lines[3].starts_with(">> goroutine(7) main.outer => (?)"));
    }
}
