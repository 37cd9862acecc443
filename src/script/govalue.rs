//! Go values as scripts see them: a Rhai type wrapping a decoded-on-demand
//! [`gostrings::value::Value`], the trace's shared [`Decoder`], and the memory of the event it
//! came from (call-time register images and string bytes over live memory).
//!
//! Every method decodes when called; a decoder error (unmapped or freed memory, a nil pointer,
//! a wrong kind) becomes a Rhai runtime error carrying the decoder's message, which a script
//! can catch with `try { … } catch (e) { … }`.

use std::cell::RefCell;
use std::rc::Rc;

use gostrings::value::{Decoder, MapKey, Value, ValueError};
use gostrings::{Kind, MemError, MemoryReader};
use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, ImmutableString, Position, INT};

/// The memory one event's values are read from: regions laid down for the event (register
/// arguments at synthetic addresses, string bytes copied at the call at their original address)
/// over the target's memory. A read lying wholly inside a region is served from it (the latest
/// added wins); any other read goes to the base. It owns its regions, so values can outlive the
/// borrow of any one reader (Rhai values must be `'static`).
pub struct EventMemory {
    base: Rc<dyn MemoryReader>,
    regions: RefCell<Vec<(u64, Vec<u8>)>>,
}

impl EventMemory {
    /// No regions yet: every read goes to `base`.
    pub fn new(base: Rc<dyn MemoryReader>) -> Self {
        EventMemory {
            base,
            regions: RefCell::new(Vec::new()),
        }
    }

    /// Serves reads inside `[addr, addr + bytes.len())` from `bytes`.
    pub fn add(&self, addr: u64, bytes: Vec<u8>) {
        self.regions.borrow_mut().push((addr, bytes));
    }
}

impl MemoryReader for EventMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if gostrings::memory::read_from_regions(&self.regions.borrow(), addr, buf) {
            return Ok(());
        }
        self.base.read(addr, buf)
    }
}

/// What values of one event share: the decoder and the event's memory.
pub struct Env {
    /// The trace's decoder (its type table grows as interfaces are resolved).
    pub decoder: Rc<Decoder>,
    /// The event's memory.
    pub mem: EventMemory,
}

/// A Go value in a script.
#[derive(Clone)]
pub struct GoValue {
    v: Value,
    env: Rc<Env>,
}

type R<T> = Result<T, Box<EvalAltResult>>;

fn fail(e: ValueError) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(e.to_string().into(), Position::NONE).into()
}

fn fail_msg(m: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(m.into(), Position::NONE).into()
}

impl GoValue {
    /// The value `v` read through `env`.
    pub fn new(v: Value, env: Rc<Env>) -> Self {
        GoValue { v, env }
    }

    fn with(&self, v: Value) -> GoValue {
        GoValue {
            v,
            env: self.env.clone(),
        }
    }

    fn d(&self) -> &Decoder {
        &self.env.decoder
    }

    fn m(&self) -> &dyn MemoryReader {
        &self.env.mem
    }

    fn kind(&self) -> Option<Kind> {
        self.d().types().get(self.v.ty).map(|t| t.kind)
    }

    /// A basic Go value as the matching Rhai value (keys of maps); other kinds stay Go values.
    fn to_plain(&self) -> R<Dynamic> {
        Ok(match self.kind() {
            Some(Kind::String) => self.str()?.into(),
            Some(Kind::Bool) => self.bool()?.into(),
            Some(k) if k.is_signed() => self.int()?.into(),
            Some(k) if k.is_integer() => self.uint()?,
            Some(Kind::Float32 | Kind::Float64) => self.float()?.into(),
            _ => Dynamic::from(self.clone()),
        })
    }

    fn str(&self) -> R<ImmutableString> {
        self.d().str(self.m(), self.v).map(Into::into).map_err(fail)
    }
    fn int(&self) -> R<INT> {
        self.d().int(self.m(), self.v).map_err(fail)
    }
    /// Unsigned integers above `i64::MAX` do not fit Rhai's integer: they come back as floats.
    fn uint(&self) -> R<Dynamic> {
        let u = self.d().uint(self.m(), self.v).map_err(fail)?;
        Ok(match INT::try_from(u) {
            Ok(i) => i.into(),
            Err(_) => (u as f64).into(),
        })
    }
    fn float(&self) -> R<f64> {
        self.d().float(self.m(), self.v).map_err(fail)
    }
    fn bool(&self) -> R<bool> {
        self.d().bool(self.m(), self.v).map_err(fail)
    }
    fn is_nil(&self) -> R<bool> {
        self.d().is_nil(self.m(), self.v).map_err(fail)
    }
    fn deref(&self) -> R<GoValue> {
        self.d()
            .deref(self.m(), self.v)
            .map(|v| self.with(v))
            .map_err(fail)
    }
    fn field(&self, name: &str) -> R<GoValue> {
        self.d()
            .field(self.m(), self.v, name)
            .map(|v| self.with(v))
            .map_err(fail)
    }
    fn index(&self, i: INT) -> R<GoValue> {
        self.d()
            .index(self.m(), self.v, i)
            .map(|v| self.with(v))
            .map_err(fail)
    }
    fn len(&self) -> R<INT> {
        let n = self.d().len(self.m(), self.v).map_err(fail)?;
        INT::try_from(n).map_err(|_| fail_msg(format!("length {n} is out of range")))
    }
    fn cap(&self) -> R<INT> {
        let n = self.d().cap(self.m(), self.v).map_err(fail)?;
        INT::try_from(n).map_err(|_| fail_msg(format!("capacity {n} is out of range")))
    }
    fn bytes(&self, max: INT) -> R<Blob> {
        let max = usize::try_from(max.max(0))
            .unwrap_or(0)
            .min(super::sandbox::MAX_ARRAY);
        self.d().bytes(self.m(), self.v, max).map_err(fail)
    }
    fn type_name(&self) -> ImmutableString {
        self.d().type_name(self.v).into()
    }
    fn elem(&self) -> R<GoValue> {
        self.d()
            .elem(self.m(), self.v)
            .map(|v| self.with(v))
            .map_err(fail)
    }
    fn error_text(&self) -> R<Dynamic> {
        if self.is_nil()? {
            return Ok(Dynamic::UNIT);
        }
        self.d()
            .error_text(self.m(), self.v)
            .map(Into::into)
            .map_err(fail)
    }
    fn get(&self, key: MapKey) -> R<Dynamic> {
        Ok(
            match self.d().map_get(self.m(), self.v, &key).map_err(fail)? {
                Some(v) => Dynamic::from(self.with(v)),
                None => Dynamic::UNIT,
            },
        )
    }
    fn keys(&self) -> R<Array> {
        let keys = self.d().map_keys(self.m(), self.v).map_err(fail)?;
        keys.into_iter().map(|k| self.with(k).to_plain()).collect()
    }
    fn unix_nano(&self) -> R<INT> {
        self.d().unix_nano(self.m(), self.v).map_err(fail)
    }
    fn render(&self) -> String {
        self.d().render(self.m(), self.v)
    }
}

/// Registers the `GoValue` type and its methods on `e`.
pub fn register(e: &mut Engine) {
    e.register_type_with_name::<GoValue>("GoValue")
        .register_fn("str", |v: &mut GoValue| v.str())
        .register_fn("int", |v: &mut GoValue| v.int())
        .register_fn("uint", |v: &mut GoValue| v.uint())
        .register_fn("float", |v: &mut GoValue| v.float())
        .register_fn("bool", |v: &mut GoValue| v.bool())
        .register_fn("is_nil", |v: &mut GoValue| v.is_nil())
        .register_fn("deref", |v: &mut GoValue| v.deref())
        .register_fn("field", |v: &mut GoValue, name: &str| v.field(name))
        .register_fn("index", |v: &mut GoValue, i: INT| v.index(i))
        .register_fn("len", |v: &mut GoValue| v.len())
        .register_fn("cap", |v: &mut GoValue| v.cap())
        .register_fn("bytes", |v: &mut GoValue, max: INT| v.bytes(max))
        .register_fn("type_name", |v: &mut GoValue| v.type_name())
        .register_fn("elem", |v: &mut GoValue| v.elem())
        .register_fn("error_text", |v: &mut GoValue| v.error_text())
        .register_fn("get", |v: &mut GoValue, k: ImmutableString| {
            v.get(MapKey::Str(k.to_string()))
        })
        .register_fn("get", |v: &mut GoValue, k: INT| v.get(MapKey::Int(k)))
        .register_fn("get", |v: &mut GoValue, k: bool| v.get(MapKey::Bool(k)))
        .register_fn("get", |v: &mut GoValue, k: f64| v.get(MapKey::Float(k)))
        .register_fn("keys", |v: &mut GoValue| v.keys())
        .register_fn("unix_nano", |v: &mut GoValue| v.unix_nano())
        .register_fn("to_string", |v: &mut GoValue| v.render())
        .register_fn("to_debug", |v: &mut GoValue| {
            format!("{}: {}", v.type_name(), v.render())
        });
}
