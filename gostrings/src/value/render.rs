//! Go-syntax rendering of any value, bounded by [`super::Limits`]: for span attributes and
//! script debugging (`%#v`-like, not identical).
//!
//! * Strings are quoted, cut at `max_string` bytes with `…` before the closing quote.
//! * Byte slices and arrays print as quoted bytes (`[]uint8("GET\x00")`), cut at `max_string`.
//! * Slices, arrays, maps and structs show at most `max_items` elements/entries/fields, then
//!   `…`; nil slices and maps print as `[]T(nil)` / `map[K]V(nil)`.
//! * Pointers print `&` and their target, interfaces their dynamic value (`nil` when nil),
//!   `error` interfaces their message as `error("…")` when [`Decoder::error_text`] knows it;
//!   below `max_depth` levels a pointer prints as `(*T)(0xaddr)` and a composite as `T{…}`, so
//!   cyclic structures end.
//! * `time.Time` prints as `time.Time(2006-01-02T15:04:05.999999999Z)` (UTC).
//! * Channels, funcs and `unsafe.Pointer` print their address: `(chan int)(0xc000…)`.
//! * Anything unreadable prints inline as `<error: …>`; the whole output is at most 64 KiB, and
//!   all maps of one rendering share one budget of `max_entries_scanned` slots.

use std::fmt::Write;

use super::maps::Next;
use super::{time_unix, Decoder, Value, ValueError};
use crate::gotype::{Kind, Shape};
use crate::memory::MemoryReader;

/// Most bytes [`Decoder::render`] produces.
const MAX_OUTPUT: usize = 64 << 10;

impl Decoder {
    /// Renders `v` in Go syntax within the decoder's limits; errors appear inline as
    /// `<error: …>`, so this never fails.
    pub fn render(&self, mem: &dyn MemoryReader, v: Value) -> String {
        let mut out = String::new();
        let outer = self.shared_scan_budget.get();
        if outer.is_none() {
            self.shared_scan_budget
                .set(Some(self.limits.max_entries_scanned));
        }
        self.render_into(mem, v, 0, &mut out);
        self.shared_scan_budget.set(outer);
        if out.len() > MAX_OUTPUT {
            let mut cut = MAX_OUTPUT;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
        }
        out
    }

    fn render_into(&self, mem: &dyn MemoryReader, v: Value, depth: usize, out: &mut String) {
        if out.len() > MAX_OUTPUT {
            return;
        }
        if let Err(e) = self.render_value(mem, v, depth, out) {
            let _ = write!(out, "<error: {e}>");
        }
    }

    fn render_value(
        &self,
        mem: &dyn MemoryReader,
        v: Value,
        depth: usize,
        out: &mut String,
    ) -> Result<(), ValueError> {
        let t = self.ty(v.ty)?;
        let deep = depth >= self.limits.max_depth;
        let items = self.limits.max_items;
        match (&t.shape, t.kind) {
            (_, Kind::String) => {
                let (_, len) = self.string_header(mem, v, &t)?;
                let s = self.str(mem, v)?;
                quote_into(&s, len > s.len() as u64, out);
            }
            (_, Kind::Bool) => out.push_str(if self.bool(mem, v)? { "true" } else { "false" }),
            (_, k) if k.is_integer() => {
                if k.is_signed() {
                    let _ = write!(out, "{}", self.int(mem, v)?);
                } else {
                    let _ = write!(out, "{}", self.uint(mem, v)?);
                }
            }
            (_, Kind::Float32 | Kind::Float64) => {
                let f = self.float(mem, v)?;
                let _ = write!(out, "{f:?}");
            }
            (_, Kind::Complex64 | Kind::Complex128) => {
                let (re, im) = self.complex(mem, v)?;
                let _ = write!(out, "({re:?}{im:+?}i)");
            }
            (_, Kind::UnsafePointer) => {
                let _ = write!(out, "unsafe.Pointer({:#x})", Self::read_u64(mem, v.addr)?);
            }
            (Shape::Func, _) | (Shape::Chan { .. }, _) => {
                let p = Self::read_u64(mem, v.addr)?;
                if p == 0 {
                    let _ = write!(out, "({})(nil)", t.name);
                } else {
                    let _ = write!(out, "({})({p:#x})", t.name);
                }
            }
            (Shape::Pointer { .. }, _) => {
                let p = Self::read_u64(mem, v.addr)?;
                if p == 0 {
                    out.push_str("nil");
                } else if deep {
                    let _ = write!(out, "({})({p:#x})", t.name);
                } else {
                    out.push('&');
                    // Composites count their own level; a pointer to a scalar or pointer
                    // counts one, so pointer-only cycles end too.
                    let target = self.deref(mem, v)?;
                    let composite = matches!(
                        self.ty(target.ty)?.shape,
                        Shape::Struct { .. }
                            | Shape::Array { .. }
                            | Shape::Slice { .. }
                            | Shape::Map { .. }
                    );
                    let d = if composite { depth } else { depth + 1 };
                    self.render_into(mem, target, d, out);
                }
            }
            (Shape::Interface { .. }, _) => {
                if Self::read_u64(mem, v.addr)? == 0 {
                    out.push_str("nil");
                } else if t.name == "error" {
                    // Errors show their message (error_text), the struct behind it otherwise.
                    match self.error_text(mem, v) {
                        Ok(text) if !text.starts_with('<') => {
                            out.push_str("error(");
                            quote_into(&text, false, out);
                            out.push(')');
                        }
                        _ => {
                            let c = self.elem(mem, v)?;
                            self.render_into(mem, c, depth, out);
                        }
                    }
                } else {
                    let c = self.elem(mem, v)?;
                    self.render_into(mem, c, depth, out);
                }
            }
            (Shape::Struct { fields }, _) => {
                if t.name == "time.Time" && t.size >= 16 {
                    let wall = Self::read_u64(mem, v.addr)?;
                    let ext = Self::read_u64(mem, v.addr.wrapping_add(8))? as i64;
                    let (sec, nsec) = time_unix(wall, ext);
                    let _ = write!(out, "time.Time({})", rfc3339(sec, nsec));
                    return Ok(());
                }
                if deep {
                    let _ = write!(out, "{}{{…}}", t.name);
                    return Ok(());
                }
                // One read of the whole struct, so an unreadable struct is one error, not one
                // per field.
                Self::read_exact(mem, v.addr, t.size.min(4096), 4096)?;
                out.push_str(&t.name);
                out.push('{');
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if i >= items {
                        out.push('…');
                        break;
                    }
                    let _ = write!(out, "{}: ", f.name);
                    let fv = Value {
                        ty: f.ty,
                        addr: v.addr.wrapping_add(f.offset),
                    };
                    self.render_into(mem, fv, depth + 1, out);
                }
                out.push('}');
            }
            (Shape::Slice { .. }, _) | (Shape::Array { .. }, _) => {
                let n = self.len(mem, v)?;
                if t.kind == Kind::Slice && self.is_nil(mem, v)? {
                    let _ = write!(out, "{}(nil)", t.name);
                    return Ok(());
                }
                if let Shape::Slice { elem } | Shape::Array { elem, .. } = t.shape {
                    if self.is_byte(elem) {
                        // Bytes read best as a string literal: []uint8("GET /\x00").
                        let b = self.byte_content(mem, v, self.limits.max_string, "render")?;
                        let _ = write!(out, "{}(", t.name);
                        quote_bytes_into(&b, n > b.len() as u64, out);
                        out.push(')');
                        return Ok(());
                    }
                }
                out.push_str(&t.name);
                if deep && n > 0 {
                    out.push_str("{…}");
                    return Ok(());
                }
                out.push('{');
                for i in 0..n {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if i >= items as u64 || out.len() > MAX_OUTPUT {
                        let _ = write!(out, "…({n} total)");
                        break;
                    }
                    let e = self.index(mem, v, i as i64)?;
                    self.render_into(mem, e, depth + 1, out);
                }
                out.push('}');
            }
            (Shape::Map { .. }, _) => {
                if self.is_nil(mem, v)? {
                    let _ = write!(out, "{}(nil)", t.name);
                    return Ok(());
                }
                let n = self.len(mem, v)?;
                out.push_str(&t.name);
                if deep && n > 0 {
                    out.push_str("{…}");
                    return Ok(());
                }
                out.push('{');
                let mut shown = 0usize;
                let r = self.map_entries("render", mem, v, &mut |m, k, e| {
                    if shown > 0 {
                        out.push_str(", ");
                    }
                    if shown >= items || out.len() > MAX_OUTPUT {
                        let _ = write!(out, "…({n} total)");
                        return Ok(Next::Stop);
                    }
                    shown += 1;
                    // Keys and elements are read through the bucket image `m` when they lie
                    // inside it, and from the target otherwise.
                    self.render_into(m, k, depth + 1, out);
                    out.push_str(": ");
                    self.render_into(m, e, depth + 1, out);
                    Ok(Next::Continue)
                });
                if let Err(e) = r {
                    let _ = write!(out, "<error: {e}>");
                }
                out.push('}');
            }
            (Shape::Opaque, _) => {
                let _ = write!(out, "<{}: layout unknown>", t.name);
            }
            _ => {
                let _ = write!(out, "<{}>", t.name);
            }
        }
        Ok(())
    }
}

/// Appends `s` as a Go double-quoted string literal (`%q`-like), with `…` before the closing
/// quote when `cut`.
fn quote_into(s: &str, cut: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
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
    if cut {
        out.push('…');
    }
    out.push('"');
}

/// Appends bytes as a Go string literal: printable ASCII as is, everything else as `\xNN`
/// (`…` before the closing quote when `cut`).
fn quote_bytes_into(b: &[u8], cut: bool, out: &mut String) {
    out.push('"');
    for &c in b {
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(c)),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    if cut {
        out.push('…');
    }
    out.push('"');
}

/// `sec`/`nsec` since the Unix epoch as RFC 3339 UTC with nanoseconds (proleptic Gregorian;
/// Howard Hinnant's days-to-civil algorithm).
pub(crate) fn rfc3339(sec: i64, nsec: i64) -> String {
    let days = sec.div_euclid(86400);
    let rem = sec.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nsec != 0 {
        let frac = format!("{nsec:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_700_000_000, 123_000_000),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn strings_quote_like_go() {
        let mut s = String::new();
        quote_into("a\"b\n\u{1}", true, &mut s);
        assert_eq!(s, "\"a\\\"b\\n\\x01…\"");
    }
}
