//! Decides which functions can be hooked and how, from the binary alone.
//!
//! For each function the user's globs select, this module applies gohook's policy (never the
//! runtime, assembly, or special runtime functions: go-runtime.md §0 rule 9), decodes the
//! function, and asks `trampolines` for an entry plan (the stack check to replace) and the
//! epilogues its returns can be hooked at. Every refusal carries a reason the user sees.

use gostrings::pclntab::Func;
use gostrings::{GoBinary, UnsafePoint};
use trampolines::decode::DecodedFunction;
use trampolines::epilogue::{self, Exit, ExitPlan};
use trampolines::plan::{self, EntryPlan, FunctionFacts};
use trampolines::unsafe_points::UnsafePointTable;

/// Package prefixes whose functions are never hooked: the runtime and its internals run on
/// system stacks, inside signal handlers and with no P, where a trampoline's assumptions fail.
pub const FORBIDDEN_PREFIXES: [&str; 4] = [
    "runtime.",
    "runtime/internal/",
    "internal/runtime/",
    "internal/abi.",
];

/// One epilogue a return can be hooked at.
#[derive(Debug, Clone)]
pub struct ExitSite {
    /// The plan from `trampolines`.
    pub plan: ExitPlan,
    /// Interior boundaries where an async-preempted goroutine could be parked; the engine
    /// patches the site only after proving no goroutine is parked at any of them.
    pub needs_goroutine_proof: bool,
}

/// How a function will be hooked.
#[derive(Debug, Clone)]
pub struct HookPlan {
    /// The function.
    pub func: Func,
    /// The entry patch.
    pub entry: EntryPlan,
    /// Every return that can be hooked.
    pub exits: Vec<ExitSite>,
    /// Returns that cannot be hooked, with the reason (calls leaving there end as unfinished).
    pub exit_refusals: Vec<(u64, String)>,
}

/// The verdict on one function.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// It can be hooked like this.
    Hookable(Box<HookPlan>),
    /// It cannot, for this reason.
    Refused(String),
}

impl Verdict {
    /// The refusal reason, if refused.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Verdict::Refused(r) => Some(r),
            Verdict::Hookable(_) => None,
        }
    }
}

/// Why a function is off limits by policy, before looking at its code: from its name, its
/// `FuncFlag` bits and its `FuncID`.
pub fn policy_refusal(name: &str, flag: u8, func_id: u8) -> Option<String> {
    if let Some(p) = FORBIDDEN_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Some(format!("in the Go runtime ({p}*): never hooked"));
    }
    if flag & gostrings::pclntab::FUNC_FLAG_ASM != 0 {
        return Some("assembly function: never hooked".into());
    }
    if flag & gostrings::pclntab::FUNC_FLAG_SP_WRITE != 0 {
        return Some("writes SP directly (FuncFlagSPWrite): never hooked".into());
    }
    if func_id != 0 {
        return Some(format!(
            "compiler wrapper or special runtime function (FuncID {func_id}): never hooked"
        ));
    }
    None
}

/// The function's PCDATA_UnsafePoint table in the form `trampolines` takes, at run-time
/// addresses (link-time addresses plus `bias`, the load bias of a PIE process).
pub fn unsafe_point_table(bin: &GoBinary, f: &Func, bias: u64) -> UnsafePointTable {
    let ranges = bin
        .pclntab
        .unsafe_points(f)
        .into_iter()
        .map(|(r, v)| {
            (
                r.start.wrapping_add(bias),
                r.end.wrapping_add(bias),
                raw_unsafe_point(v),
            )
        })
        .collect();
    UnsafePointTable::new(ranges)
}

fn raw_unsafe_point(v: UnsafePoint) -> i32 {
    match v {
        UnsafePoint::Safe => -1,
        UnsafePoint::Unsafe => -2,
        UnsafePoint::Restart1 => -3,
        UnsafePoint::Restart2 => -4,
        UnsafePoint::RestartAtEntry => -5,
        UnsafePoint::Other(x) => x,
    }
}

/// Decides whether and how `f` can be hooked. Plans are made at run-time addresses: `bias` is
/// the load bias of a PIE process (0 for fixed-address binaries and for static listings).
pub fn assess(bin: &GoBinary, f: &Func, bias: u64) -> Verdict {
    if let Some(why) = policy_refusal(&f.name, f.flag, f.func_id) {
        return Verdict::Refused(why);
    }
    let Some(code) = usize::try_from(f.size())
        .ok()
        .and_then(|n| bin.elf.bytes_at(f.entry, n))
    else {
        return Verdict::Refused("function bytes are not in the file".into());
    };
    let decoded = match DecodedFunction::decode(code, f.entry.wrapping_add(bias)) {
        Ok(d) => d,
        Err(e) => return Verdict::Refused(e.to_string()),
    };
    let up = unsafe_point_table(bin, f, bias);
    let facts = FunctionFacts {
        is_assembly: false,
        unsafe_points: &up,
    };
    let entry = match plan::plan_entry(&decoded, facts) {
        Ok(p) => p,
        Err(r) => return Verdict::Refused(r.to_string()),
    };
    let mut exits = Vec::new();
    let mut exit_refusals = Vec::new();
    for e in epilogue::exits(&decoded, &up) {
        match e {
            Exit::Return { plan: Ok(plan), .. } => {
                let needs_goroutine_proof = !plan.async_safe_boundaries.is_empty();
                exits.push(ExitSite {
                    plan,
                    needs_goroutine_proof,
                });
            }
            Exit::Return { ret, plan: Err(r) } => exit_refusals.push((ret, r.to_string())),
            Exit::TailJump { at, .. } => {
                exit_refusals.push((at, "tail jump: the callee returns to our caller".into()))
            }
            Exit::IndirectJump { .. } => {} // jump tables inside the function
        }
    }
    Verdict::Hookable(Box::new(HookPlan {
        func: f.clone(),
        entry,
        exits,
        exit_refusals,
    }))
}

/// What a set of globs selected.
#[derive(Debug, Default)]
pub struct Selection {
    /// Functions that will be hooked.
    pub hooks: Vec<HookPlan>,
    /// Functions that matched but cannot be hooked, with reasons.
    pub refused: Vec<(String, String)>,
}

/// Why a selection cannot proceed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// A glob matched no hookable function.
    #[error("{}", describe_no_match(&format!("-f {:?}", .glob), .closest, .refused))]
    NoHookableMatch {
        /// The glob.
        glob: String,
        /// Names resembling it.
        closest: Vec<String>,
        /// Functions it matched that were refused, with reasons.
        refused: Vec<(String, String)>,
    },
    /// The pclntab could not be read.
    #[error("reading the function table: {0}")]
    Pclntab(String),
}

/// "`subject` matches no hookable function", then the refused matches with their reasons (at most
/// five) or, when nothing was refused, the closest names. `subject` says where the pattern came
/// from: `-f "main.x"`, or a script's `HOOK "main.x"`.
pub fn describe_no_match(
    subject: &str,
    closest: &[String],
    refused: &[(String, String)],
) -> String {
    let mut s = format!("{subject} matches no hookable function");
    if !refused.is_empty() {
        let list: Vec<String> = refused
            .iter()
            .take(5)
            .map(|(n, r)| format!("{n}: {r}"))
            .collect();
        s.push_str(&format!("; matched but refused: {}", list.join("; ")));
        if refused.len() > 5 {
            s.push_str(&format!(" (and {} more)", refused.len() - 5));
        }
    } else if !closest.is_empty() {
        s.push_str(&format!("; closest names: {}", closest.join(", ")));
    }
    s
}

/// Selects and plans every function matched by any of `globs` (`matches(glob, name)` decides a
/// match). A glob matching nothing hookable is an error naming the closest functions, or the
/// reasons its matches were refused.
pub fn select(
    bin: &GoBinary,
    bias: u64,
    globs: &[String],
    matches: impl Fn(&str, &str) -> bool,
) -> Result<Selection, SelectError> {
    let funcs: Vec<Func> = bin
        .pclntab
        .funcs()
        .collect::<Result<_, _>>()
        .map_err(|e| SelectError::Pclntab(e.to_string()))?;
    let mut sel = Selection::default();
    let mut seen = std::collections::HashSet::new();
    for glob in globs {
        let mut hooked_here = 0;
        let mut refused_here = Vec::new();
        for f in funcs.iter().filter(|f| matches(glob, &f.name)) {
            if !seen.insert(f.entry) {
                hooked_here += usize::from(sel.hooks.iter().any(|h| h.func.entry == f.entry));
                continue;
            }
            match assess(bin, f, bias) {
                Verdict::Hookable(p) => {
                    sel.hooks.push(*p);
                    hooked_here += 1;
                }
                Verdict::Refused(r) => {
                    refused_here.push((f.name.clone(), r.clone()));
                    sel.refused.push((f.name.clone(), r));
                }
            }
        }
        if hooked_here == 0 {
            return Err(SelectError::NoHookableMatch {
                glob: glob.clone(),
                closest: closest_names(glob, &funcs),
                refused: refused_here,
            });
        }
    }
    Ok(sel)
}

/// Up to five function names most similar to `glob` (ignoring its wildcards).
fn closest_names(glob: &str, funcs: &[Func]) -> Vec<String> {
    let needle: String = glob.chars().filter(|c| *c != '*' && *c != '?').collect();
    let mut scored: Vec<(f64, &str)> = funcs
        .iter()
        .map(|f| (strsim::jaro_winkler(&needle, &f.name), f.name.as_str()))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_and_assembly_are_never_hooked() {
        assert!(policy_refusal("runtime.mallocgc", 0, 0)
            .unwrap()
            .contains("Go runtime"));
        assert!(policy_refusal("internal/runtime/maps.(*Map).Get", 0, 0).is_some());
        let asm = gostrings::pclntab::FUNC_FLAG_ASM;
        assert!(policy_refusal("main.asm", asm, 0)
            .unwrap()
            .contains("assembly"));
        assert!(policy_refusal("main.sp", gostrings::pclntab::FUNC_FLAG_SP_WRITE, 0).is_some());
        assert!(policy_refusal("main.special", 0, 3)
            .unwrap()
            .contains("FuncID 3"));
        assert!(policy_refusal("main.handler", 0, 0).is_none());
        assert!(policy_refusal("net/http.(*Server).Serve", 0, 0).is_none());
    }

    #[test]
    fn no_match_message_lists_refusals_or_closest_names() {
        let e = SelectError::NoHookableMatch {
            glob: "main.stepp".into(),
            closest: vec!["main.step".into()],
            refused: vec![],
        };
        assert_eq!(
            e.to_string(),
            "-f \"main.stepp\" matches no hookable function; closest names: main.step"
        );
        let e = SelectError::NoHookableMatch {
            glob: "main.leaf".into(),
            closest: vec![],
            refused: vec![("main.leaf".into(), "no stack check".into())],
        };
        assert!(e
            .to_string()
            .contains("matched but refused: main.leaf: no stack check"));
    }
}
