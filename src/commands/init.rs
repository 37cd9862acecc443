//! `gohook init`: write a starting hook script for each function a glob selects, pre-filled with
//! what the binary says about its parameters and results.
//!
//! With DWARF the script names every parameter and result with its Go type, reads the scalar
//! ones into span attributes, and carries a `SIGNATURE` built from those types when the binary's
//! runtime type metadata can resolve it (so the same script also works on a stripped build).
//! Without DWARF the parameters are unknown: the script carries a `SIGNATURE` to complete, with
//! the function's source position and how to write one. Functions are selected exactly as
//! `run -f` selects them, so a function `init` writes a script for is one `run` can hook.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;

use anyhow::{bail, Context};
use gostrings::abi::{self, Location};
use gostrings::dwarf::Dwarf;
use gostrings::signature;
use gostrings::{GoBinary, Kind, Shape, TypeId, TypeTable};

use crate::cli::InitArgs;
use crate::glob::Glob;
use crate::hookplan::{self, HookPlan};

/// Runs `gohook init`: one line per script written, then one per matched function that was
/// refused.
pub fn run(args: &InitArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let path = &args.binary;
    let bin = GoBinary::open(path).with_context(|| path.display().to_string())?;
    let compiled: Vec<(String, Glob)> = args
        .funcs
        .iter()
        .map(|g| (g.clone(), Glob::new(g)))
        .collect();
    let sel = hookplan::select(&bin, 0, &args.funcs, |glob, name| {
        compiled.iter().any(|(g, c)| g == glob && c.matches(name))
    })?;
    let dwarf = if bin.has_dwarf() {
        Some(
            Dwarf::load(&bin.elf)
                .with_context(|| format!("reading the DWARF of {}", path.display()))?,
        )
    } else {
        None
    };
    let runtime_types = bin.runtime_types().ok();
    let mut resolve = |sig: &str| -> Result<(), String> {
        let mut table = TypeTable::new();
        match &runtime_types {
            Some(rt) => signature::parse(sig, &mut rt.named_types(), &mut table),
            None => signature::parse(sig, &mut signature::NoNamedTypes, &mut table),
        }
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let program = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());

    let mut scripts = Vec::new();
    let mut names = HashSet::new();
    for hook in &sel.hooks {
        let described = describe(dwarf.as_ref(), hook);
        let text = render(&program, hook, &described, &mut resolve);
        let file = unique_file_name(&hook.func.name, &mut names);
        scripts.push((args.output.join(file), text, described));
    }

    let existing: Vec<String> = scripts
        .iter()
        .filter(|(p, _, _)| p.exists())
        .map(|(p, _, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() && !args.force {
        bail!(
            "not overwriting {} (use --force to replace)",
            existing.join(", ")
        );
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    for (file, text, described) in &scripts {
        std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
        let how = match described {
            Described::Dwarf(f) => format!(
                "{} parameter(s), {} result(s) from DWARF",
                f.params.len(),
                f.results.len()
            ),
            Described::Unknown(_) => "no DWARF: complete its SIGNATURE".to_owned(),
        };
        writeln!(out, "wrote {} ({how})", file.display())?;
    }
    for (name, why) in &sel.refused {
        writeln!(out, "skipped {name}: not hookable: {why}")?;
    }
    Ok(())
}

/// One parameter or result as the script shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    /// The Go name (`~r0`, `~p0` when the source left it unnamed).
    name: String,
    /// The Go type name (`string`, `*net/http.Request`).
    ty: String,
    /// The type's kind.
    kind: Kind,
    /// Field names and types, for a struct or a pointer to one.
    fields: Vec<(String, String)>,
    /// Passed on the stack, where gohook records nothing (`ctx.arg` fails for it).
    on_stack: bool,
}

/// A function's parameters and results, as far as DWARF tells.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownFunction {
    params: Vec<Slot>,
    results: Vec<Slot>,
}

/// What `init` knows of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Described {
    /// Parameters and results from DWARF.
    Dwarf(KnownFunction),
    /// Nothing beyond the name and source position: why.
    Unknown(String),
}

/// Parameters and results of `hook`'s function from DWARF, or why they are unknown.
fn describe(dwarf: Option<&Dwarf>, hook: &HookPlan) -> Described {
    let Some(dwarf) = dwarf else {
        return Described::Unknown("the binary has no DWARF".into());
    };
    let Some(entry) = dwarf.function(&hook.func.name) else {
        return Described::Unknown("DWARF does not describe this function".into());
    };
    let mut table = TypeTable::new();
    let f = match dwarf.types().function(entry, &mut table) {
        Ok(f) => f,
        Err(e) => return Described::Unknown(format!("its DWARF is unreadable: {e}")),
    };
    let sig = f.signature();
    let frame = abi::assign(
        &table,
        &sig.param_types(),
        &sig.result_types(),
        abi::dictionary_index(&hook.func.name),
    )
    .ok();
    let on_stack = |locs: Option<&Vec<Location>>, i: usize| {
        locs.and_then(|l| l.get(i))
            .is_some_and(|l| matches!(l, Location::Stack { .. }))
    };
    let slots = |list: &[gostrings::dwarf::DwarfParam], locs: Option<&Vec<Location>>| {
        list.iter()
            .enumerate()
            .map(|(i, p)| Slot {
                on_stack: on_stack(locs, i),
                ..slot(&table, &p.name, p.ty)
            })
            .collect()
    };
    Described::Dwarf(KnownFunction {
        params: slots(&f.params, frame.as_ref().map(|f| &f.params)),
        results: slots(&f.results, frame.as_ref().map(|f| &f.results)),
    })
}

fn slot(table: &TypeTable, name: &str, ty: TypeId) -> Slot {
    let Some(t) = table.get(ty) else {
        return Slot {
            name: name.to_owned(),
            ty: "?".into(),
            kind: Kind::UnsafePointer,
            fields: vec![],
            on_stack: false,
        };
    };
    let fields_of = |id: TypeId| match table.get(id).map(|t| &t.shape) {
        Some(Shape::Struct { fields }) => fields
            .iter()
            .map(|f| {
                let ty = table.get(f.ty).map_or("?", |t| t.name.as_str());
                (f.name.clone(), ty.to_owned())
            })
            .collect(),
        _ => vec![],
    };
    let fields = match &t.shape {
        Shape::Struct { .. } => fields_of(ty),
        Shape::Pointer { elem } => fields_of(*elem),
        _ => vec![],
    };
    Slot {
        name: name.to_owned(),
        ty: t.name.clone(),
        kind: t.kind,
        fields,
        on_stack: false,
    }
}

/// A script file name for `func`: the name with path separators, receivers' parentheses and
/// stars, brackets and other characters unsafe in file names replaced, plus `.rhai`; made unique
/// among `taken` with a `-2`, `-3`… suffix.
fn unique_file_name(func: &str, taken: &mut HashSet<String>) -> String {
    let base = sanitize(func);
    let mut name = format!("{base}.rhai");
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}.rhai");
        n += 1;
    }
    name
}

/// `net/http.(*Client).do` → `net_http.Client.do`; `main.Max[go.shape.int]` →
/// `main.Max_go.shape.int`.
fn sanitize(func: &str) -> String {
    let mut s = String::new();
    for c in func.chars() {
        match c {
            '(' | ')' | '*' => {}
            c if c.is_ascii_alphanumeric() || c == '.' || c == '-' => s.push(c),
            _ => {
                if !s.ends_with('_') {
                    s.push('_')
                }
            }
        }
    }
    let s = s.trim_matches(|c| c == '_' || c == '.').to_owned();
    if s.is_empty() {
        "hook".into()
    } else {
        s
    }
}

/// `s` as a Rhai string literal.
fn rhai_str(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// True for names a signature and `ctx.arg("name")` can use as they are.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && name != "_"
}

/// The signature text for a known function: unnamed slots become `p0`, `r0`.
fn signature_text(f: &KnownFunction) -> String {
    let list = |slots: &[Slot], prefix: char| {
        slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let name = if is_plain_name(&s.name) {
                    s.name.clone()
                } else {
                    format!("{prefix}{i}")
                };
                format!("{name} {}", s.ty)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sig = format!("func({})", list(&f.params, 'p'));
    if !f.results.is_empty() {
        let _ = write!(sig, " ({})", list(&f.results, 'r'));
    }
    sig
}

/// The Rhai expression that turns value `v` of `slot` into an attribute value, or `None` when
/// the kind has no obvious scalar form (the script then shows how to dig in, commented).
fn scalar(v: &str, slot: &Slot) -> Option<String> {
    use Kind::*;
    Some(match slot.kind {
        String => format!("{v}.str()"),
        Bool => format!("{v}.bool()"),
        Int | Int8 | Int16 | Int32 | Int64 => format!("{v}.int()"),
        Uint | Uint8 | Uint16 | Uint32 | Uint64 | Uintptr => format!("{v}.uint()"),
        Float32 | Float64 => format!("{v}.float()"),
        _ => return None,
    })
}

/// Commented hints for reading a composite value `v`.
fn hints(v: &str, attr: &str, slot: &Slot, indent: &str) -> String {
    let mut s = String::new();
    let line = |s: &mut String, text: String| {
        let _ = writeln!(s, "{indent}// {text}");
    };
    match slot.kind {
        Kind::Struct | Kind::Pointer if !slot.fields.is_empty() => {
            let list: Vec<String> = slot
                .fields
                .iter()
                .take(12)
                .map(|(n, t)| format!("{n} {t}"))
                .collect();
            let more = slot.fields.len().saturating_sub(12);
            line(
                &mut s,
                format!(
                    "fields: {}{}",
                    list.join(", "),
                    if more > 0 {
                        format!(", … ({more} more)")
                    } else {
                        String::new()
                    }
                ),
            );
            let (first, _) = &slot.fields[0];
            let nil = if slot.kind == Kind::Pointer {
                format!("if !{v}.is_nil() {{ ")
            } else {
                String::new()
            };
            let close = if nil.is_empty() { "" } else { " }" };
            line(
                &mut s,
                format!(
                    "{nil}ctx.set({}, {v}.field({}).to_string());{close}",
                    rhai_str(&format!("{attr}.{first}")),
                    rhai_str(first)
                ),
            );
        }
        Kind::Slice | Kind::Array | Kind::Map | Kind::Chan => line(
            &mut s,
            format!("{v}.len(), {v}.index(i) (slices, arrays), {v}.get(key), {v}.keys() (maps)"),
        ),
        Kind::Interface => line(
            &mut s,
            format!(
                "{v}.is_nil(), {v}.type_name() (the dynamic type), {v}.elem() (the value inside), {v}.error_text() (an error)"
            ),
        ),
        _ => line(&mut s, format!("{v}.to_string() renders any value")),
    }
    s
}

/// The script for `hook`. `resolve` checks that a signature parses against the binary's
/// runtime type metadata, returning the parser's message when it does not.
fn render(
    program: &str,
    hook: &HookPlan,
    described: &Described,
    resolve: &mut dyn FnMut(&str) -> Result<(), String>,
) -> String {
    let name = &hook.func.name;
    let pos = match (&hook.func.file, hook.func.line) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        (Some(file), None) => file.clone(),
        _ => "an unknown source position".into(),
    };
    let mut s = String::new();
    let _ = writeln!(s, "// Hook script for {name}");
    let _ = writeln!(
        s,
        "// (defined at {pos}), written by `gohook init` from {program}."
    );
    let _ = writeln!(
        s,
        "// Load it with `gohook run -s <this file> -- ./{program} ...` (or attach -s); edit freely."
    );
    let _ = writeln!(s, "//");
    match described {
        Described::Dwarf(f) => render_known(&mut s, name, f, resolve),
        Described::Unknown(why) => render_unknown(&mut s, name, why),
    }
    s
}

fn render_known(
    s: &mut String,
    name: &str,
    f: &KnownFunction,
    resolve: &mut dyn FnMut(&str) -> Result<(), String>,
) {
    let sig = signature_text(f);
    let _ = writeln!(s, "// Parameters and results (from DWARF):");
    for p in &f.params {
        let _ = writeln!(s, "//   param  {} {}", p.name, p.ty);
    }
    for r in &f.results {
        let _ = writeln!(s, "//   result {} {}", r.name, r.ty);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "const HOOK = {};", rhai_str(name));
    match resolve(&sig) {
        Ok(()) => {
            let _ = writeln!(
                s,
                "// The same types as a signature, so this script also hooks a stripped build:"
            );
            let _ = writeln!(s, "const SIGNATURE = {};", rhai_str(&sig));
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "// For a stripped build, complete this signature and uncomment it; it does not"
            );
            let _ = writeln!(s, "// resolve against this binary's runtime type metadata:");
            let _ = writeln!(s, "//   {e}");
            let _ = writeln!(
                s,
                "// (write such types as struct{{...}} with their fields, or pass them as pointers)"
            );
            let _ = writeln!(s, "// const SIGNATURE = {};", rhai_str(&sig));
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "fn on_enter(ctx) {{");
    let _ = writeln!(s, "    ctx.span_start({}, \"internal\");", rhai_str(name));
    for (i, p) in f.params.iter().enumerate() {
        let access = if is_plain_name(&p.name) {
            format!("ctx.arg({})", rhai_str(&p.name))
        } else {
            format!("ctx.arg({i})")
        };
        let attr = rhai_str(&format!("arg.{}", display_name(&p.name, 'p', i)));
        let _ = writeln!(s, "    // {} {}", p.name, p.ty);
        if p.on_stack {
            let _ = writeln!(
                s,
                "    // (passed on the stack, which gohook does not record: {access} would fail)"
            );
            continue;
        }
        match scalar(&access, p) {
            Some(expr) => {
                let _ = writeln!(s, "    ctx.set({attr}, {expr});");
            }
            None => {
                let var = format!("a{i}");
                let _ = writeln!(s, "    let {var} = {access};");
                s.push_str(&hints(
                    &var,
                    &format!("arg.{}", display_name(&p.name, 'p', i)),
                    p,
                    "    ",
                ));
            }
        }
    }
    let _ = writeln!(s, "}}");
    let _ = writeln!(s);
    let _ = writeln!(s, "fn on_leave(ctx) {{");
    for (i, r) in f.results.iter().enumerate() {
        let access = format!("ctx.ret({i})");
        let _ = writeln!(s, "    // {} {}", r.name, r.ty);
        if r.on_stack {
            let _ = writeln!(
                s,
                "    // (returned on the stack, which gohook does not record: {access} would fail)"
            );
            continue;
        }
        if r.ty == "error" {
            let _ = writeln!(s, "    let err = {access};");
            let _ = writeln!(s, "    if !err.is_nil() {{ ctx.error(err.error_text()); }}");
            continue;
        }
        let attr = rhai_str(&format!("result.{}", display_name(&r.name, 'r', i)));
        match scalar(&access, r) {
            Some(expr) => {
                let _ = writeln!(s, "    ctx.set({attr}, {expr});");
            }
            None => {
                let var = format!("r{i}");
                let _ = writeln!(s, "    let {var} = {access};");
                s.push_str(&hints(
                    &var,
                    &format!("result.{}", display_name(&r.name, 'r', i)),
                    r,
                    "    ",
                ));
            }
        }
    }
    let _ = writeln!(s, "}}");
}

/// `name` for attributes: `~r0` (unnamed) becomes `r0`.
fn display_name(name: &str, prefix: char, i: usize) -> String {
    if is_plain_name(name) {
        name.to_owned()
    } else {
        format!("{prefix}{i}")
    }
}

/// The receiver a method's name implies, as the first parameter of a signature:
/// `main.(*User).Birthday` → `u *main.User`; `None` for plain functions and closures.
fn receiver_hint(func: &str) -> Option<String> {
    // The package path may contain dots (`example.com/x`): the name proper starts after the
    // last `/`.
    let slash = func.rfind('/').map_or(0, |i| i + 1);
    let (dir, rest) = func.split_at(slash);
    let dot = rest.find('.')?;
    let pkg = format!("{dir}{}", &rest[..dot]);
    let after = &rest[dot + 1..];
    // Closures (`main.main.func1`, `main.T.M.func2`) and generic bodies have no receiver.
    let is_closure = after.split('.').skip(1).any(|part| {
        part.strip_prefix("func")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    });
    if is_closure || after.contains('[') {
        return None;
    }
    let (ptr, ty) = if let Some(r) = after.strip_prefix("(*") {
        (true, &r[..r.find(')')?])
    } else {
        let end = after.find('.')?;
        (false, &after[..end])
    };
    if ty.is_empty() || ty.contains(['(', ' ']) || !ty.starts_with(|c: char| c.is_alphabetic()) {
        return None;
    }
    let var = ty
        .trim_start_matches('_')
        .chars()
        .next()
        .map_or("recv".to_owned(), |c| c.to_lowercase().to_string());
    let star = if ptr { "*" } else { "" };
    Some(format!("{var} {star}{pkg}.{ty}"))
}

fn render_unknown(s: &mut String, name: &str, why: &str) {
    let receiver = receiver_hint(name);
    let template = match &receiver {
        Some(r) => format!("func({r}, ...) (...)"),
        None => "func(...) (...)".to_owned(),
    };
    let _ = writeln!(
        s,
        "// The parameters are unknown ({why}). Write the function's Go signature as"
    );
    let _ = writeln!(
        s,
        "// SIGNATURE below and uncomment it; until then only ctx.reg(\"rax\") and the other"
    );
    let _ = writeln!(
        s,
        "// registers can be read. How to write it (from the source, or `go doc`):"
    );
    let _ = writeln!(
        s,
        "//   - Go syntax with full package paths: func(name string, req *net/http.Request) (int, error)"
    );
    let _ = writeln!(
        s,
        "//   - a method's receiver is the first parameter: {template}"
    );
    let _ = writeln!(
        s,
        "//   - named types resolve from the binary's runtime type metadata; a type that is not"
    );
    let _ = writeln!(
        s,
        "//     there must be written as struct{{...}} with its fields, or passed as a pointer"
    );
    let _ = writeln!(
        s,
        "//     (*T), which needs no layout; interfaces as their name, or `any` / `error`"
    );
    let _ = writeln!(
        s,
        "//   - the parameters after the last one you need may be left out; results are placed"
    );
    let _ = writeln!(s, "//     independently of the parameters");
    let _ = writeln!(s, "// const SIGNATURE = {};", rhai_str(&template));
    let _ = writeln!(s);
    let _ = writeln!(s, "const HOOK = {};", rhai_str(name));
    let _ = writeln!(s);
    let _ = writeln!(s, "fn on_enter(ctx) {{");
    let _ = writeln!(s, "    ctx.span_start({}, \"internal\");", rhai_str(name));
    let _ = writeln!(
        s,
        "    // Go's register ABI passes integer arguments in rax, rbx, rcx, rdi, rsi, r8-r11."
    );
    let _ = writeln!(s, "    ctx.set(\"reg.rax\", ctx.reg(\"rax\"));");
    let _ = writeln!(
        s,
        "    // With SIGNATURE set: ctx.set(\"arg.name\", ctx.arg(\"name\").to_string());"
    );
    let _ = writeln!(s, "}}");
    let _ = writeln!(s);
    let _ = writeln!(s, "fn on_leave(ctx) {{");
    let _ = writeln!(
        s,
        "    // With SIGNATURE set: ctx.set(\"result.0\", ctx.ret(0).to_string());"
    );
    let _ = writeln!(s, "}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_drop_receiver_syntax_and_path_separators() {
        assert_eq!(sanitize("main.Concat"), "main.Concat");
        assert_eq!(sanitize("main.(*User).Birthday"), "main.User.Birthday");
        assert_eq!(sanitize("net/http.(*Client).do"), "net_http.Client.do");
        assert_eq!(sanitize("main.Max[go.shape.int]"), "main.Max_go.shape.int");
        assert_eq!(sanitize("(*)"), "hook");
    }

    #[test]
    fn clashing_file_names_get_a_suffix() {
        let mut taken = HashSet::new();
        assert_eq!(unique_file_name("main.(*T).M", &mut taken), "main.T.M.rhai");
        assert_eq!(unique_file_name("main.T.M", &mut taken), "main.T.M-2.rhai");
        assert_eq!(unique_file_name("main.T.M", &mut taken), "main.T.M-3.rhai");
    }

    #[test]
    fn a_method_name_implies_its_receiver() {
        assert_eq!(
            receiver_hint("main.(*User).Birthday").as_deref(),
            Some("u *main.User")
        );
        assert_eq!(
            receiver_hint("main.User.Greeting").as_deref(),
            Some("u main.User")
        );
        assert_eq!(
            receiver_hint("net/http.serverHandler.ServeHTTP").as_deref(),
            Some("s net/http.serverHandler")
        );
        assert_eq!(
            receiver_hint("google.golang.org/grpc.(*ClientConn).Invoke").as_deref(),
            Some("c *google.golang.org/grpc.ClientConn")
        );
        assert_eq!(receiver_hint("main.Concat"), None);
        assert_eq!(receiver_hint("main.main.func1"), None);
        assert_eq!(receiver_hint("main.(*T).M.func2"), None);
        assert_eq!(receiver_hint("main.Max[go.shape.int]"), None);
    }

    #[test]
    fn unnamed_slots_get_positional_names_in_the_signature() {
        let s = |name: &str, ty: &str, kind| Slot {
            name: name.into(),
            ty: ty.into(),
            kind,
            fields: vec![],
            on_stack: false,
        };
        let f = KnownFunction {
            params: vec![s("a", "string", Kind::String), s("~p1", "int", Kind::Int)],
            results: vec![
                s("~r0", "string", Kind::String),
                s("err", "error", Kind::Interface),
            ],
        };
        assert_eq!(
            signature_text(&f),
            "func(a string, p1 int) (r0 string, err error)"
        );
        let none = KnownFunction {
            params: vec![],
            results: vec![],
        };
        assert_eq!(signature_text(&none), "func()");
    }

    #[test]
    fn strings_are_quoted_for_rhai() {
        assert_eq!(rhai_str(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
