//! The message of an `error` value, read from memory for the error types programs return most,
//! without running their `Error()` methods.
//!
//! Known concrete types (the texts their `Error` methods build, Go 1.21–1.27):
//!
//! | type | text |
//! |---|---|
//! | `*errors.errorString` (`errors.New`, `context.Canceled`) | `s` |
//! | `*fmt.wrapError`, `*fmt.wrapErrors` (`fmt.Errorf`) | `msg` |
//! | `*errors.joinError` (`errors.Join`) | each of `errs`, joined by `\n` |
//! | `*io/fs.PathError` (= `os.PathError`) | `Op + " " + Path + ": " + Err` |
//! | `*os.SyscallError` | `Syscall + ": " + Err` |
//! | `*os.LinkError` | `Op + " " + Old + " " + New + ": " + Err` |
//! | `*net/url.Error` | `Op + " \"" + URL + "\": " + Err` |
//! | `*net.OpError` | `Op [+ " " + Net] [+ " " + Source] [+ "->" or " " + Addr] + ": " + Err`, with `*net.TCPAddr`/`*net.UDPAddr` (`host:port`), `*net.IPAddr` and `*net.UnixAddr` addresses |
//! | `*strconv.NumError` | `"strconv." + Func + ": parsing " + quoted Num + ": " + Err` |
//! | `syscall.Errno` | the C library's message for common Linux errnos (as Go's table), else `errno N` |
//! | `context.deadlineExceededError` | `context deadline exceeded` |
//!
//! Anything else (the fallback): through pointers, the first `string` field named `msg`, `s`,
//! `message`, `Msg`, `Message` or `text` of the concrete struct (in that order of preference);
//! otherwise `<T value>` with T the concrete type's name. A nil error is `<nil>`. Nested `Err`
//! fields are followed at most 8 deep (deeper: `…`).

use super::{Decoder, Value, ValueError, R};
use crate::gotype::{Kind, Shape};
use crate::memory::MemoryReader;

/// Nesting of wrapped errors followed.
const MAX_WRAP: usize = 8;
/// Field names the fallback takes the message from, most preferred first.
const MESSAGE_FIELDS: [&str; 6] = ["msg", "s", "message", "Msg", "Message", "text"];

impl Decoder {
    /// The message of an error interface (or of a concrete error value): see the module
    /// documentation for the types understood and the fallback.
    pub fn error_text(&self, mem: &dyn MemoryReader, v: Value) -> R<String> {
        self.error_text_at(mem, v, 0)
    }

    fn error_text_at(&self, mem: &dyn MemoryReader, v: Value, depth: usize) -> R<String> {
        if depth > MAX_WRAP {
            return Ok("…".to_owned());
        }
        let t = self.ty(v.ty)?;
        let v = if let Shape::Interface { .. } = t.shape {
            if Self::read_u64(mem, v.addr)? == 0 {
                return Ok("<nil>".to_owned());
            }
            self.elem(mem, v)?
        } else {
            v
        };
        let name = self.name_of(v.ty);
        let s = |f: &str| -> R<String> { self.str(mem, self.field(mem, v, f)?) };
        let sub =
            |f: &str| -> R<String> { self.error_text_at(mem, self.field(mem, v, f)?, depth + 1) };
        Ok(match name.as_str() {
            "*errors.errorString" => s("s")?,
            "*fmt.wrapError" | "*fmt.wrapErrors" => s("msg")?,
            "*errors.joinError" => {
                let errs = self.field(mem, v, "errs")?;
                let n = self.len(mem, errs)?;
                let mut parts = Vec::new();
                for i in 0..n.min(self.limits.max_items as u64) {
                    let e = self.index(mem, errs, i as i64)?;
                    parts.push(self.error_text_at(mem, e, depth + 1)?);
                }
                if n > self.limits.max_items as u64 {
                    parts.push("…".into());
                }
                parts.join("\n")
            }
            "*io/fs.PathError" | "*os.PathError" => {
                format!("{} {}: {}", s("Op")?, s("Path")?, sub("Err")?)
            }
            "*os.SyscallError" => format!("{}: {}", s("Syscall")?, sub("Err")?),
            "*os.LinkError" => {
                format!("{} {} {}: {}", s("Op")?, s("Old")?, s("New")?, sub("Err")?)
            }
            "*net/url.Error" => format!("{} \"{}\": {}", s("Op")?, s("URL")?, sub("Err")?),
            "*strconv.NumError" => format!(
                "strconv.{}: parsing {:?}: {}",
                s("Func")?,
                s("Num")?,
                sub("Err")?
            ),
            "*net.OpError" => self.net_op_error(mem, v, depth)?,
            "syscall.Errno" => errno_text(self.uint(mem, v)?),
            "context.deadlineExceededError" => "context deadline exceeded".to_owned(),
            _ => self.fallback_text(mem, v, &name)?,
        })
    }

    fn fallback_text(&self, mem: &dyn MemoryReader, v: Value, name: &str) -> R<String> {
        let (sv, t) = match self.auto_deref(mem, v, "read the error") {
            Ok(x) => x,
            Err(ValueError::Nil { .. }) => return Ok(format!("<{name} nil>")),
            Err(e) => return Err(e),
        };
        if let Shape::Struct { fields } = &t.shape {
            for want in MESSAGE_FIELDS {
                if let Some(f) = fields.iter().find(|f| f.name == want) {
                    if self.ty(f.ty)?.kind == Kind::String {
                        return self.str(
                            mem,
                            Value {
                                ty: f.ty,
                                addr: sv.addr.wrapping_add(f.offset),
                            },
                        );
                    }
                }
            }
        }
        Ok(format!("<{name} value>"))
    }

    /// `net.OpError.Error` (`net/net.go`).
    fn net_op_error(&self, mem: &dyn MemoryReader, v: Value, depth: usize) -> R<String> {
        let mut s = self.str(mem, self.field(mem, v, "Op")?)?;
        let net = self.str(mem, self.field(mem, v, "Net")?)?;
        if !net.is_empty() {
            s.push(' ');
            s.push_str(&net);
        }
        let source = self.field(mem, v, "Source")?;
        let has_source = !self.is_nil(mem, source)?;
        if has_source {
            s.push(' ');
            s.push_str(&self.net_addr(mem, source)?);
        }
        let addr = self.field(mem, v, "Addr")?;
        if !self.is_nil(mem, addr)? {
            s.push_str(if has_source { "->" } else { " " });
            s.push_str(&self.net_addr(mem, addr)?);
        }
        s.push_str(": ");
        s.push_str(&self.error_text_at(mem, self.field(mem, v, "Err")?, depth + 1)?);
        Ok(s)
    }

    /// `net.Addr.String()` of the common address types.
    fn net_addr(&self, mem: &dyn MemoryReader, a: Value) -> R<String> {
        let c = self.elem(mem, a)?;
        let name = self.name_of(c.ty);
        let ip = |v: Value| -> R<String> {
            let b = self.bytes(mem, self.field(mem, v, "IP")?, 16)?;
            let zone = self.str(mem, self.field(mem, v, "Zone")?)?;
            let mut s = ip_string(&b);
            if !zone.is_empty() {
                s.push('%');
                s.push_str(&zone);
            }
            Ok(s)
        };
        Ok(match name.as_str() {
            "*net.TCPAddr" | "*net.UDPAddr" => {
                let host = ip(c)?;
                let port = self.int(mem, self.field(mem, c, "Port")?)?;
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
            "*net.IPAddr" => ip(c)?,
            "*net.UnixAddr" => self.str(mem, self.field(mem, c, "Name")?)?,
            _ => format!("<{name}>"),
        })
    }
}

/// `net.IP.String()` for 4- and 16-byte addresses (IPv4-mapped IPv6 printed as IPv4; the
/// longest run of two or more zero groups compressed to `::`).
fn ip_string(b: &[u8]) -> String {
    let v4 = |b: &[u8]| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
    match b.len() {
        0 => String::new(),
        4 => v4(b),
        16 if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff => v4(&b[12..]),
        16 => {
            let groups: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            let (mut best, mut best_len, mut i) = (usize::MAX, 1usize, 0usize);
            while i < 8 {
                let start = i;
                while i < 8 && groups[i] == 0 {
                    i += 1;
                }
                if i - start > best_len {
                    best = start;
                    best_len = i - start;
                }
                i += 1;
            }
            let hex = |g: &[u16]| {
                g.iter()
                    .map(|x| format!("{x:x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            };
            if best == usize::MAX {
                hex(&groups)
            } else {
                format!(
                    "{}::{}",
                    hex(&groups[..best]),
                    hex(&groups[best + best_len..])
                )
            }
        }
        _ => format!(
            "?{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// `syscall.Errno.Error()` on linux/amd64 for the errnos programs meet most (texts from Go's
/// `syscall/zerrors_linux_amd64.go`); others print as `errno N`, as Go does for numbers outside
/// its table.
pub(crate) fn errno_text(n: u64) -> String {
    let s = match n {
        1 => "operation not permitted",
        2 => "no such file or directory",
        3 => "no such process",
        4 => "interrupted system call",
        5 => "input/output error",
        6 => "no such device or address",
        7 => "argument list too long",
        8 => "exec format error",
        9 => "bad file descriptor",
        10 => "no child processes",
        11 => "resource temporarily unavailable",
        12 => "cannot allocate memory",
        13 => "permission denied",
        14 => "bad address",
        16 => "device or resource busy",
        17 => "file exists",
        18 => "invalid cross-device link",
        19 => "no such device",
        20 => "not a directory",
        21 => "is a directory",
        22 => "invalid argument",
        23 => "too many open files in system",
        24 => "too many open files",
        25 => "inappropriate ioctl for device",
        26 => "text file busy",
        27 => "file too large",
        28 => "no space left on device",
        29 => "illegal seek",
        30 => "read-only file system",
        31 => "too many links",
        32 => "broken pipe",
        33 => "numerical argument out of domain",
        34 => "numerical result out of range",
        35 => "resource deadlock avoided",
        36 => "file name too long",
        38 => "function not implemented",
        39 => "directory not empty",
        40 => "too many levels of symbolic links",
        61 => "no data available",
        62 => "timer expired",
        71 => "protocol error",
        75 => "value too large for defined data type",
        88 => "socket operation on non-socket",
        90 => "message too long",
        92 => "protocol not available",
        93 => "protocol not supported",
        95 => "operation not supported",
        97 => "address family not supported by protocol",
        98 => "address already in use",
        99 => "cannot assign requested address",
        100 => "network is down",
        101 => "network is unreachable",
        103 => "software caused connection abort",
        104 => "connection reset by peer",
        105 => "no buffer space available",
        106 => "transport endpoint is already connected",
        107 => "transport endpoint is not connected",
        110 => "connection timed out",
        111 => "connection refused",
        112 => "host is down",
        113 => "no route to host",
        114 => "operation already in progress",
        115 => "operation now in progress",
        125 => "operation canceled",
        _ => return format!("errno {n}"),
    };
    s.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_print_as_net_ip_does() {
        assert_eq!(ip_string(&[127, 0, 0, 1]), "127.0.0.1");
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(ip_string(&mapped), "10.1.2.3");
        let mut lo = [0u8; 16];
        lo[15] = 1;
        assert_eq!(ip_string(&lo), "::1");
        let mut doc = [0u8; 16];
        doc[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        doc[15] = 0x42;
        assert_eq!(ip_string(&doc), "2001:db8::42");
    }

    #[test]
    fn errnos_read_as_go_prints_them() {
        assert_eq!(errno_text(2), "no such file or directory");
        assert_eq!(errno_text(111), "connection refused");
        assert_eq!(errno_text(4242), "errno 4242");
    }
}
