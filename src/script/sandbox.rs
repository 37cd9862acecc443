//! The engine every hook script runs in, and its limits.
//!
//! Rhai has no file, network or process access of its own; its one way out is `import`, whose
//! default resolver reads files: it is replaced by a resolver that finds nothing. `eval` (code
//! built from strings, which could hide what a script does from a reader) is disabled, and so is
//! Rhai's `sleep`, which would stall gohook's consumer for as long as a script asks. Each call of
//! `on_enter`/`on_leave` (and the top level, once at load) is bounded in operations, and
//! strings, arrays, maps, call depth and expression depth are bounded too, so a script can slow
//! gohook but never hang it or exhaust its memory. Nothing a script does reaches the target.
//! `print` and `debug` go to gohook's standard error prefixed with the script's name.

use rhai::module_resolvers::DummyModuleResolver;
use rhai::Engine;

/// Operations one call of a script function may perform (`loop {}` stops here).
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Longest string a script may build, in bytes.
pub const MAX_STRING: usize = 256 << 10;
/// Most elements of an array (and bytes of a blob) a script may build.
pub const MAX_ARRAY: usize = 16_384;
/// Most properties of an object map.
pub const MAX_MAP: usize = 4_096;
/// Deepest script function call nesting.
pub const MAX_CALL_LEVELS: usize = 32;
/// Deepest expression nesting (global level, inside functions).
pub const MAX_EXPR_DEPTH: (usize, usize) = (64, 64);
/// Most variables alive at once (all frames together). Sizes are counted over a whole value
/// (an array of strings counts its strings' bytes), so one call holds at most about
/// `MAX_VARIABLES` × (`MAX_ARRAY` × 16 B + `MAX_MAP` entries + `MAX_STRING`): some 128 MiB.
pub const MAX_VARIABLES: usize = 128;
/// Most script functions a script may define.
pub const MAX_FUNCTIONS: usize = 1_000;

/// A sandboxed engine for the script called `name` (used in its `print`/`debug` lines), with the
/// `ctx` and Go value API registered.
pub fn engine(name: &str) -> Engine {
    let mut e = Engine::new();
    e.set_module_resolver(DummyModuleResolver::new());
    e.set_max_operations(MAX_OPERATIONS);
    e.set_max_string_size(MAX_STRING);
    e.set_max_array_size(MAX_ARRAY);
    e.set_max_map_size(MAX_MAP);
    e.set_max_call_levels(MAX_CALL_LEVELS);
    e.set_max_expr_depths(MAX_EXPR_DEPTH.0, MAX_EXPR_DEPTH.1);
    e.set_max_variables(MAX_VARIABLES);
    e.set_max_functions(MAX_FUNCTIONS);
    e.disable_symbol("eval");
    // Registered functions take precedence over the standard package's `sleep(seconds)`.
    e.register_fn("sleep", |_: rhai::INT| no_sleep());
    e.register_fn("sleep", |_: rhai::FLOAT| no_sleep());
    let who = name.to_owned();
    e.on_print(move |s| eprintln!("gohook: {who}: {s}"));
    let who = name.to_owned();
    e.on_debug(move |s, _source, pos| match pos.line() {
        Some(line) => eprintln!("gohook: {who}:{line}: {s}"),
        None => eprintln!("gohook: {who}: {s}"),
    });
    super::ctx::register(&mut e);
    super::govalue::register(&mut e);
    // Nothing captured beyond the defaults until `script::configure` says otherwise.
    super::redact::Capture::default().register(&mut e);
    e
}

/// What `sleep` does in a hook script: fail, since a sleeping script would hold up every span.
fn no_sleep() -> Result<(), Box<rhai::EvalAltResult>> {
    Err("sleep is not available in hook scripts (they run on gohook's consumer thread)".into())
}
