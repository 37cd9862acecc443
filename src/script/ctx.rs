//! `ctx`, the argument of `on_enter(ctx)` and `on_leave(ctx)`: the recorded call (function,
//! goroutine, time, registers, arguments and results as Go values) and what the script makes of
//! it (a span, attributes, status, events, and `state` kept from `on_enter` to `on_leave`).
//!
//! What a script asks for is collected as [`Effects`] and applied only when the script function
//! returns without error, so a failing script leaves no half-made span behind.

use std::cell::RefCell;
use std::rc::Rc;

use gostrings::abi::Location;
use gostrings::value::{materialize, synthetic_addr, Decoder, Value};
use gostrings::MemoryReader;
use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, Map, Position, INT};

use super::govalue::{Env, EventMemory, GoValue};
use super::types::FuncTypes;
use crate::spans::{AttrValue, SpanEvent, SpanKind, Status};

/// Which script function is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `on_enter`, at the entry record.
    Enter,
    /// `on_leave`, at the exit record.
    Leave,
}

impl Phase {
    /// The script function's name.
    pub fn function_name(self) -> &'static str {
        match self {
            Phase::Enter => "on_enter",
            Phase::Leave => "on_leave",
        }
    }
}

/// What one script function asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// `span_start(name, kind)`: the last one wins.
    pub span: Option<(String, SpanKind)>,
    /// `set(key, value)` in call order.
    pub attrs: Vec<(String, AttrValue)>,
    /// `error(message)`: the last one wins.
    pub status: Option<Status>,
    /// `event(name, attrs)` in call order.
    pub events: Vec<SpanEvent>,
    /// `set_enclosing` / `error_enclosing`: for the innermost open span of a kind on the
    /// goroutine, in call order.
    pub enclosing: Vec<Enclosing>,
}

/// What a script asks of the innermost open span of `kind` on its goroutine (e.g. a
/// `WriteHeader` hook giving the status code to the server span it runs in). Applied after that
/// span's own scripts, so it wins over their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Enclosing {
    /// The kind of span it is for.
    pub kind: SpanKind,
    /// An attribute to set.
    pub attr: Option<(String, AttrValue)>,
    /// A status to set.
    pub status: Option<Status>,
}

/// What a hook's scripts know about its function, shared by all its calls.
#[derive(Debug)]
pub struct HookInfo {
    /// The Go function name.
    pub function: ImmutableString,
    /// Parameter and result types, or why there are none.
    pub types: Result<FuncTypes, String>,
    /// For each string copied at entry (capture order), the integer register holding its
    /// pointer (ABI order: RAX RBX RCX RDI RSI R8 R9 R10 R11).
    pub string_ptr_regs: Vec<usize>,
    /// The path captures, recorded after the strings (`ctx.captured`).
    pub paths: Vec<crate::capture::CapturedPath>,
}

/// The recorded call a `ctx` describes.
pub struct CallData {
    /// Enter or leave.
    pub phase: Phase,
    /// The hook.
    pub info: Rc<HookInfo>,
    /// Goroutine ID.
    pub goroutine: u64,
    /// The record's time, Unix ns.
    pub timestamp: u64,
    /// Integer registers as recorded.
    pub ints: [u64; 9],
    /// Low 64 bits of X0–X14 as recorded (0 where not recorded).
    pub floats: [u64; 15],
    /// Strings copied at entry: (length at the call, first bytes).
    pub strings: Vec<(u32, Vec<u8>)>,
    /// True when a span is already started for this call (in `on_leave`).
    pub span_open: bool,
}

pub(crate) struct CtxData {
    call: CallData,
    decoder: Rc<Decoder>,
    base: Rc<dyn MemoryReader>,
    env: Option<Rc<Env>>,
    materialized: Vec<bool>,
    pub(crate) effects: Effects,
    pub(crate) state: Map,
}

/// The script's handle on one call.
#[derive(Clone)]
pub struct Ctx(pub(crate) Rc<RefCell<CtxData>>);

type R<T> = Result<T, Box<EvalAltResult>>;

fn err<T>(m: impl Into<String>) -> R<T> {
    Err(EvalAltResult::ErrorRuntime(m.into().into(), Position::NONE).into())
}

impl Ctx {
    /// A `ctx` for `call`, reading values with `decoder` over `base`, with `state` from earlier.
    pub fn new(
        call: CallData,
        decoder: Rc<Decoder>,
        base: Rc<dyn MemoryReader>,
        state: Map,
    ) -> Self {
        Ctx(Rc::new(RefCell::new(CtxData {
            call,
            decoder,
            base,
            env: None,
            materialized: Vec::new(),
            effects: Effects::default(),
            state,
        })))
    }

    /// Takes what the script asked for and its state.
    pub fn take(&self) -> (Effects, Map) {
        let mut d = self.0.borrow_mut();
        (std::mem::take(&mut d.effects), std::mem::take(&mut d.state))
    }
}

impl CtxData {
    /// The event's memory, built on first use: string bytes copied at the call go at their
    /// original address, so `.str()` sees the call-time bytes.
    fn env(&mut self) -> Rc<Env> {
        if let Some(e) = &self.env {
            return e.clone();
        }
        let mem = EventMemory::new(self.base.clone());
        if self.call.phase == Phase::Enter {
            for (i, (_, bytes)) in self.call.strings.iter().enumerate() {
                let Some(ptr) = self
                    .call
                    .info
                    .string_ptr_regs
                    .get(i)
                    .and_then(|r| self.call.ints.get(*r))
                else {
                    continue;
                };
                if *ptr != 0 && !bytes.is_empty() {
                    mem.add(*ptr, bytes.clone());
                }
            }
        }
        let env = Rc::new(Env {
            decoder: self.decoder.clone(),
            mem,
        });
        self.env = Some(env.clone());
        env
    }

    /// Slot `i` of the params (or results) as a Go value in this event's memory.
    fn value(&mut self, results: bool, i: usize) -> R<GoValue> {
        let info = self.call.info.clone();
        let types = match &info.types {
            Ok(t) => t,
            Err(why) => return err(why.clone()),
        };
        let (list, what) = if results {
            (&types.results, "result")
        } else {
            (&types.params, "parameter")
        };
        let Some(slot) = list.get(i) else {
            return err(format!(
                "{} has {} {what}{}; there is no {what} {i}",
                info.function,
                list.len(),
                if list.len() == 1 { "" } else { "s" }
            ));
        };
        if let Location::Stack { .. } = slot.loc {
            return err(format!(
                "{what} {} of {} is passed on the stack, which gohook does not record",
                slot.name, info.function
            ));
        }
        // Results and parameters have their own events, so slot numbers cannot collide.
        let addr = synthetic_addr(i);
        let env = self.env();
        if self.materialized.len() <= i {
            self.materialized.resize(i + 1, false);
        }
        if !self.materialized[i] {
            let bytes = materialize(
                &self.decoder.types(),
                slot.ty,
                &slot.loc,
                &self.call.ints,
                &self.call.floats,
            );
            let Some(bytes) = bytes else {
                return err(format!(
                    "{what} {} of {} could not be laid out from its registers",
                    slot.name, info.function
                ));
            };
            env.mem.add(addr, bytes);
            self.materialized[i] = true;
        }
        Ok(GoValue::new(Value { ty: slot.ty, addr }, env))
    }

    fn find(&self, results: bool, name: &str) -> R<usize> {
        let info = &self.call.info;
        let types = match &info.types {
            Ok(t) => t,
            Err(why) => return err(why.clone()),
        };
        let list = if results {
            &types.results
        } else {
            &types.params
        };
        match list.iter().position(|s| s.name == name) {
            Some(i) => Ok(i),
            None => {
                let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
                err(format!(
                    "{} has no {} named {name} (it has: {})",
                    info.function,
                    if results { "result" } else { "parameter" },
                    names.join(", ")
                ))
            }
        }
    }

    fn arg(&mut self, i: usize) -> R<GoValue> {
        if self.call.phase != Phase::Enter {
            return err(
                "ctx.arg is only available in on_enter (keep what on_leave needs in ctx.state)",
            );
        }
        self.value(false, i)
    }

    fn ret(&mut self, i: usize) -> R<GoValue> {
        if self.call.phase != Phase::Leave {
            return err("ctx.ret is only available in on_leave");
        }
        self.value(true, i)
    }
}

fn index(i: INT) -> R<usize> {
    usize::try_from(i).or_else(|_| err(format!("index {i} is negative")))
}

/// An attribute value from a script value: strings, ints, floats and bools.
fn attr_value(key: &str, v: Dynamic) -> R<AttrValue> {
    if v.is_string() || v.is_char() {
        return Ok(AttrValue::Str(v.to_string()));
    }
    if let Some(i) = v.clone().try_cast::<INT>() {
        return Ok(AttrValue::Int(i));
    }
    if let Some(f) = v.clone().try_cast::<f64>() {
        return Ok(AttrValue::Float(f));
    }
    if let Some(b) = v.clone().try_cast::<bool>() {
        return Ok(AttrValue::Bool(b));
    }
    err(format!(
        "attribute {key}: a value must be a string, int, float or bool, not {} (call .str(), .int(), … on Go values)",
        v.type_name()
    ))
}

/// The register names `ctx.reg` accepts, in ABI order.
pub const INT_REG_NAMES: [&str; 9] = ["rax", "rbx", "rcx", "rdi", "rsi", "r8", "r9", "r10", "r11"];

/// Registers the `Ctx` type and its methods on `e`.
pub fn register(e: &mut Engine) {
    e.register_type_with_name::<Ctx>("Ctx")
        .register_get("function", |c: &mut Ctx| {
            c.0.borrow().call.info.function.clone()
        })
        .register_get("goroutine", |c: &mut Ctx| {
            c.0.borrow().call.goroutine as INT
        })
        .register_get("timestamp", |c: &mut Ctx| {
            c.0.borrow().call.timestamp as INT
        })
        .register_get_set(
            "state",
            |c: &mut Ctx| c.0.borrow().state.clone(),
            |c: &mut Ctx, m: Map| c.0.borrow_mut().state = m,
        )
        .register_fn("arg", |c: &mut Ctx, i: INT| {
            let i = index(i)?;
            c.0.borrow_mut().arg(i)
        })
        .register_fn("arg", |c: &mut Ctx, name: &str| {
            let mut d = c.0.borrow_mut();
            let i = d.find(false, name)?;
            d.arg(i)
        })
        .register_fn("ret", |c: &mut Ctx, i: INT| {
            let i = index(i)?;
            c.0.borrow_mut().ret(i)
        })
        .register_fn("ret", |c: &mut Ctx, name: &str| {
            let mut d = c.0.borrow_mut();
            let i = d.find(true, name)?;
            d.ret(i)
        })
        .register_fn("reg", |c: &mut Ctx, name: &str| -> R<INT> {
            let lower = name.to_ascii_lowercase();
            match INT_REG_NAMES.iter().position(|r| *r == lower) {
                Some(i) => Ok(c.0.borrow().call.ints[i] as INT),
                None => err(format!(
                    "unknown register {name}: recorded are {}",
                    INT_REG_NAMES.join(" ")
                )),
            }
        })
        .register_fn("span_start", |c: &mut Ctx, name: &str| {
            span_start(c, name, "internal")
        })
        .register_fn("span_start", |c: &mut Ctx, name: &str, kind: &str| {
            span_start(c, name, kind)
        })
        .register_fn("set", |c: &mut Ctx, key: &str, v: Dynamic| -> R<()> {
            let v = attr_value(key, v)?;
            c.0.borrow_mut().effects.attrs.push((key.to_owned(), v));
            Ok(())
        })
        .register_fn("error", |c: &mut Ctx, message: &str| {
            c.0.borrow_mut().effects.status = Some(Status::Error(message.to_owned()));
        })
        .register_fn("event", |c: &mut Ctx, name: &str| {
            event(c, name, Map::new())
        })
        .register_fn("captured", |c: &mut Ctx, path: &str| captured(c, path))
        .register_fn(
            "set_enclosing",
            |c: &mut Ctx, kind: &str, key: &str, v: Dynamic| -> R<()> {
                let kind = span_kind(kind)?;
                let v = attr_value(key, v)?;
                c.0.borrow_mut().effects.enclosing.push(Enclosing {
                    kind,
                    attr: Some((key.to_owned(), v)),
                    status: None,
                });
                Ok(())
            },
        )
        .register_fn(
            "error_enclosing",
            |c: &mut Ctx, kind: &str, message: &str| -> R<()> {
                let kind = span_kind(kind)?;
                c.0.borrow_mut().effects.enclosing.push(Enclosing {
                    kind,
                    attr: None,
                    status: Some(Status::Error(message.to_owned())),
                });
                Ok(())
            },
        )
        .register_fn("event", |c: &mut Ctx, name: &str, attrs: Map| {
            event(c, name, attrs)
        });
}

fn span_kind(kind: &str) -> R<SpanKind> {
    SpanKind::parse(kind).ok_or_else(|| {
        format!("unknown span kind {kind:?}: use internal, server, client, producer or consumer")
            .into()
    })
}

/// `ctx.captured(path)`: the value of a `CAPTURE` path as it was at the call: a string (ending in
/// `…` when cut at the record's budget), an integer or a bool; `()` when a pointer on the way was
/// nil (a string then reads as ""). Only in `on_enter`.
fn captured(c: &mut Ctx, path: &str) -> R<Dynamic> {
    use crate::capture::PathKind;
    let d = c.0.borrow();
    let info = &d.call.info;
    let Some(j) = info.paths.iter().position(|p| p.text == path) else {
        return err(format!(
            "{path} is not captured for {}: add it to the script's CAPTURE",
            info.function
        ));
    };
    if d.call.phase != Phase::Enter {
        return err("ctx.captured reads the entry record: call it in on_enter (keep what on_leave needs in ctx.state)");
    }
    let Some((len, bytes)) = d.call.strings.get(info.string_ptr_regs.len() + j) else {
        return Ok(Dynamic::UNIT);
    };
    let word = |signed: bool, size: u8| -> Option<INT> {
        let size = size as usize;
        if bytes.len() < size || size == 0 || size > 8 {
            return None;
        }
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(&bytes[..size]);
        let v = u64::from_le_bytes(b);
        let shift = 64 - 8 * size as u32;
        Some(if signed {
            ((v << shift) as i64) >> shift
        } else {
            v as i64
        })
    };
    Ok(match info.paths[j].value {
        PathKind::String => {
            let mut s = String::from_utf8_lossy(bytes).into_owned();
            if (bytes.len() as u64) < u64::from(*len) {
                s.push('…');
            }
            s.into()
        }
        PathKind::Int(n) => word(true, n).map_or(Dynamic::UNIT, Dynamic::from),
        PathKind::Uint(n) => word(false, n).map_or(Dynamic::UNIT, Dynamic::from),
        PathKind::Bool => word(false, 1).map_or(Dynamic::UNIT, |v| Dynamic::from(v != 0)),
    })
}

fn span_start(c: &mut Ctx, name: &str, kind: &str) -> R<()> {
    let kind = span_kind(kind)?;
    let mut d = c.0.borrow_mut();
    if d.call.phase == Phase::Leave && !d.call.span_open {
        return err("span_start in on_leave: start the span in on_enter (calls made meanwhile were already placed)");
    }
    d.effects.span = Some((name.to_owned(), kind));
    Ok(())
}

fn event(c: &mut Ctx, name: &str, attrs: Map) -> R<()> {
    let attributes = attrs
        .into_iter()
        .map(|(k, v)| Ok((k.to_string(), attr_value(&k, v)?)))
        .collect::<R<Vec<_>>>()?;
    let mut d = c.0.borrow_mut();
    let time_unix_nano = d.call.timestamp;
    d.effects.events.push(SpanEvent {
        name: name.to_owned(),
        time_unix_nano,
        attributes,
    });
    Ok(())
}
