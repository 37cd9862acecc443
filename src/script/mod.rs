//! Hook scripts: small Rhai programs that turn recorded calls into meaningful spans
//! (`GET /users/42`, kind server, `http.status_code = 200`). They run inside gohook, never in the
//! target, on the records the trampolines wrote, and read Go values out of the target's memory.
//!
//! ```rhai
//! const HOOK = "net/http.serverHandler.ServeHTTP";   // exact name or glob, or an array of them
//! // Only needed where the binary has no DWARF: the Go signature with package paths.
//! const SIGNATURE = "func(sh struct{srv *net/http.Server}, rw net/http.ResponseWriter, req *net/http.Request)";
//!
//! fn on_enter(ctx) {
//!     let req = ctx.arg("req");                  // by name, or ctx.arg(2) by position
//!     ctx.span_start("HTTP " + req.field("Method").str(), "server");
//!     ctx.set("url.path", req.field("URL").field("Path").str());
//! }
//! fn on_leave(ctx) { }                           // optional; ctx.ret(0) reads results
//! ```
//!
//! **Selection.** The functions hooked are those matching `-f` globs plus those matching the
//! scripts' `HOOK` patterns (a pattern that is the exact name of a function selects only it;
//! otherwise it is a glob as for `-f`). A user script whose `HOOK` matches no hookable function
//! is an error naming the closest functions; the bundled scripts ([`bundled`]) load only where
//! their functions exist. Several scripts may hook one function: bundled ones first, then the
//! user's in the order given, each with its own `ctx.state`.
//!
//! **Types.** From DWARF when it describes the function; otherwise from the script's `SIGNATURE`
//! (the first script of the function that gives one), whose named types are resolved from DWARF
//! types or the runtime type metadata. A `SIGNATURE` is ignored where DWARF describes the
//! function. Without either, `ctx.arg`/`ctx.ret` fail with a message saying so (`ctx.reg` still
//! works).
//!
//! **When scripts run.** After the records are put in timestamp order (the collector's 2 ms
//! reordering window), `on_enter` at the entry record and `on_leave` at the matching exit record
//! (on a real return only: a call unwound by a panic or `Goexit` gets no `on_leave`). Ordering
//! first is what lets `ctx.state` connect the two halves of a call and lets spans nest. So reads
//! of live memory (through pointers) happen a few milliseconds after the call; arguments passed
//! in registers and the first bytes of string arguments are as they were at the call, since the
//! record holds them. Reads of the executable's read-only data (constant strings, type metadata)
//! come from the file; once the target has exited, reads of its heap and stacks fail with an
//! error the script can catch.
//!
//! **Spans.** A span started in `on_enter` ends at the call's return. A scripted call that starts
//! no span produces none; calls made inside it attach to the nearest enclosing span. Hooks without
//! a script keep the default: one span per call named after the function, with string arguments
//! as `arg.<name>` attributes. `ctx.set`, `ctx.error` and `ctx.event` apply to the call's span and
//! are dropped when there is none.
//!
//! **Errors.** A syntax error stops gohook before it starts or attaches to anything
//! (`<file>:<line>:<col>: <message>`, exit status 2). A runtime error is printed once per distinct
//! message as `<file>:<line>: <message> (in on_enter of <func>)` and counted; that script's
//! output for the call is dropped, and the count is printed at the end.
//!
//! **Sandbox**: see [`sandbox`].

pub mod bundled;
pub mod ctx;
pub mod govalue;
pub mod loader;
pub mod memory;
pub mod redact;
pub mod reload;
pub mod runtime;
pub mod sandbox;
pub mod types;

use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;

use gostrings::value::{Decoder, Limits, MapLayout, RuntimeResolver, TypeResolver};
use gostrings::{GoBinary, MemoryReader};

pub use loader::{LoadError, Origin, Script};
pub use runtime::{Call, Runtime};

use crate::capture::Captures;
use crate::glob::Glob;
use ctx::HookInfo;

/// Loads the scripts of a trace: the bundled ones (unless `defaults` is false), then `paths` in
/// the order given.
pub fn load(paths: &[PathBuf], defaults: bool) -> Result<Vec<Script>, LoadError> {
    let mut all = if defaults {
        loader::load_bundled()?
    } else {
        Vec::new()
    };
    all.extend(loader::load_paths(paths)?);
    Ok(all)
}

/// Tells `scripts` what the user opted in to capture (`gohook::capture_*` in scripts).
pub fn configure(scripts: &mut [Script], capture: &redact::Capture) {
    for s in scripts {
        capture.register(&mut s.engine);
    }
}

/// Decides whether a `HOOK` pattern selects a function name: a pattern that is the exact name
/// of some function of the binary selects only that function; any other is a glob.
#[derive(Debug)]
pub struct PatternMatcher {
    exact: HashSet<String>,
    globs: Vec<(String, Glob)>,
}

impl PatternMatcher {
    /// A matcher for `patterns` against a binary whose function names are `names`.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>, names: &HashSet<&str>) -> Self {
        let mut exact = HashSet::new();
        let mut globs = Vec::new();
        for p in patterns {
            if names.contains(p) {
                exact.insert(p.to_owned());
            } else {
                globs.push((p.to_owned(), Glob::new(p)));
            }
        }
        PatternMatcher { exact, globs }
    }

    /// True when `pattern` selects `name`.
    pub fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact.contains(pattern) {
            return pattern == name;
        }
        self.globs
            .iter()
            .any(|(p, g)| p == pattern && g.matches(name))
    }
}

/// For each function of `functions` (hook order), the indices of the scripts hooking it, in
/// script order.
pub fn bind(scripts: &[Script], functions: &[String], m: &PatternMatcher) -> Vec<Vec<usize>> {
    functions
        .iter()
        .map(|f| {
            scripts
                .iter()
                .enumerate()
                .filter(|(_, s)| s.hooks.iter().any(|p| m.matches(p, f)))
                .map(|(i, _)| i)
                .collect()
        })
        .collect()
}

/// The scripts' runtime for a process running `bin` at load bias `bias`: hook `h` is function
/// `functions[h]`, runs the scripts `by_hook[h]`, has the types `book.funcs[h]` and records what
/// `captures[h]` says. Values are read from `memory`; interface types are resolved from the
/// binary's runtime type metadata; maps are read in the layout of the binary's Go release.
#[allow(clippy::too_many_arguments)]
pub fn runtime_for(
    bin: &GoBinary,
    bias: u64,
    scripts: Vec<Script>,
    by_hook: Vec<Vec<usize>>,
    book: types::TypeBook,
    captures: &[Captures],
    functions: &[String],
    memory: Rc<dyn MemoryReader>,
) -> Runtime {
    let version = bin.go_version();
    let experiment = bin
        .buildinfo
        .as_ref()
        .and_then(|b| b.setting("GOEXPERIMENT"));
    let layout = MapLayout::for_build(&version, experiment);
    let resolver = types::runtime_types(bin)
        .map(|rt| Box::new(RuntimeResolver::new(rt, bias)) as Box<dyn TypeResolver>);
    let decoder = Decoder::new(book.table, resolver, layout, Limits::default());
    let hooks = functions
        .iter()
        .zip(book.funcs)
        .enumerate()
        .map(|(h, (f, types))| HookInfo {
            function: f.as_str().into(),
            types,
            string_ptr_regs: captures
                .get(h)
                .map(|c| c.entry.strings.iter().map(|s| s.ptr as usize).collect())
                .unwrap_or_default(),
            paths: captures.get(h).map(|c| c.paths.clone()).unwrap_or_default(),
        })
        .collect();
    Runtime::new(scripts, by_hook, hooks, decoder, memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> Result<Script, LoadError> {
        loader::load_source("t.rhai", text, Origin::Bundled)
    }

    #[test]
    fn hook_is_a_name_or_an_array_of_names_and_signature_is_optional() {
        let s = script(r#"const HOOK = "main.f"; fn on_enter(ctx) {}"#).unwrap();
        assert_eq!(s.hooks, ["main.f"]);
        assert_eq!(s.signature, None);
        assert!(s.has_enter && !s.has_leave);
        let s = script(
            r#"const HOOK = ["main.f", "main.g*"]; const SIGNATURE = "func(a int)"; fn on_leave(ctx) {}"#,
        )
        .unwrap();
        assert_eq!(s.hooks, ["main.f", "main.g*"]);
        assert_eq!(s.signature.as_deref(), Some("func(a int)"));
        assert!(!s.has_enter && s.has_leave);
    }

    #[test]
    fn scripts_without_hook_or_handlers_are_refused_with_the_reason() {
        let e = script("fn on_enter(ctx) {}").unwrap_err();
        assert!(e.to_string().starts_with("t.rhai: no HOOK constant"), "{e}");
        let e = script(r#"const HOOK = 3; fn on_enter(ctx) {}"#).unwrap_err();
        assert!(e.to_string().contains("HOOK must be"), "{e}");
        let e = script(r#"const HOOK = "main.f";"#).unwrap_err();
        assert!(e.to_string().contains("neither on_enter"), "{e}");
        assert!(e.is_usage());
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let e = script("const HOOK = \"main.f\";\nfn on_enter(ctx) {\n  let x = ;\n}").unwrap_err();
        assert_eq!(e.to_string(), "t.rhai:3:11: Unexpected ';'");
    }

    #[test]
    fn the_top_level_runs_inside_the_limits_and_cannot_import() {
        let e = script("import \"/etc/passwd\" as p;\nconst HOOK = \"main.f\";").unwrap_err();
        assert!(
            e.to_string().starts_with("t.rhai:1: Module not found"),
            "{e}"
        );
        let e = script("loop {}\nconst HOOK = \"main.f\"; fn on_enter(ctx) {}").unwrap_err();
        assert!(e.to_string().contains("too many operations"), "{e}");
    }

    #[test]
    fn an_exact_function_name_is_not_a_glob() {
        let names: HashSet<&str> = ["main.(*T).M", "main.(*Tx).M", "main.f"].into();
        let m = PatternMatcher::new(["main.(*T).M", "main.f*"], &names);
        assert!(m.matches("main.(*T).M", "main.(*T).M"));
        assert!(!m.matches("main.(*T).M", "main.(*Tx).M"));
        assert!(m.matches("main.f*", "main.f"));
        assert!(m.matches("main.f*", "main.fx"));
    }
}
