//! Runs the entry and exit analysis over every function of the fixture programs, built with each
//! toolchain of the test matrix, using the binary's own pclntab (bounds, flags, unsafe points).

use std::collections::BTreeMap;
use std::path::Path;
use trampolines::decode::DecodedFunction;
use trampolines::epilogue::{exits, Exit};
use trampolines::plan::{plan_entry, FunctionFacts, Refusal};
use trampolines::unsafe_points::UnsafePointTable;

use gostrings::elf::ElfFile;
use gostrings::pclntab::{Pclntab, UnsafePoint};

#[derive(Default, Debug)]
struct Tally {
    functions: usize,
    entry_ok: usize,
    entry_refused: BTreeMap<String, usize>,
    rets_ok: usize,
    rets_ok_with_safe_boundaries: usize,
    rets_refused: BTreeMap<String, usize>,
    tail_jumps: usize,
    /// main.* functions with a stack check whose entry was refused (must stay empty).
    main_refused: Vec<String>,
    main_ok: usize,
    /// Functions whose stack-guard read has an unknown form.
    unrecognised: Vec<String>,
    /// Functions whose bytes do not decode, with the error.
    undecodable: Vec<String>,
}

fn reason(r: &Refusal) -> String {
    // The variant name only, so counts group by reason.
    format!("{r:?}")
        .split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn value(u: UnsafePoint) -> i32 {
    match u {
        UnsafePoint::Safe => -1,
        UnsafePoint::Unsafe => -2,
        UnsafePoint::Restart1 => -3,
        UnsafePoint::Restart2 => -4,
        UnsafePoint::RestartAtEntry => -5,
        UnsafePoint::Other(v) => v,
    }
}

fn scan(path: &Path) -> Tally {
    let elf = ElfFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tab = Pclntab::from_elf(&elf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut t = Tally::default();
    for f in tab.funcs() {
        let Ok(f) = f else { continue };
        let Some(code) = elf.bytes_at(f.entry, f.size() as usize) else {
            continue;
        };
        t.functions += 1;
        let up = UnsafePointTable::new(
            tab.unsafe_points(&f)
                .into_iter()
                .map(|(r, u)| (r.start, r.end, value(u)))
                .collect(),
        );
        let facts = FunctionFacts {
            is_assembly: f.is_asm() || f.writes_sp(),
            unsafe_points: &up,
        };
        let decoded = DecodedFunction::decode(code, f.entry);
        let entry = match &decoded {
            Ok(d) => plan_entry(d, facts),
            // Assembly may embed data in text (crypto/internal/boring/sig.StandardCrypto does);
            // it is refused before decoding.
            Err(_) if facts.is_assembly => Err(Refusal::Assembly),
            Err(e) => {
                t.undecodable
                    .push(format!("{} ({} bytes): {e}", f.name, f.size()));
                Err(Refusal::Undecodable(e.clone()))
            }
        };
        match &entry {
            Ok(_) => t.entry_ok += 1,
            Err(r) => {
                if matches!(r, Refusal::UnrecognisedPrologue { .. }) {
                    t.unrecognised.push(f.name.clone());
                }
                *t.entry_refused.entry(reason(r)).or_default() += 1
            }
        }
        if f.name.starts_with("main.") && !f.is_asm() {
            match &entry {
                Ok(_) => t.main_ok += 1,
                // NOSPLIT leaves, and cgo's ABI0 `_Cfunc_` stubs (R14 is not g at their entry).
                Err(Refusal::NoStackCheck | Refusal::Abi0 { .. }) => {}
                Err(r) => t.main_refused.push(format!("{}: {r}", f.name)),
            }
        }
        let Ok(d) = decoded else { continue };
        for e in exits(&d, &up) {
            match e {
                Exit::Return { plan: Ok(p), .. } => {
                    t.rets_ok += 1;
                    if !p.async_safe_boundaries.is_empty() {
                        t.rets_ok_with_safe_boundaries += 1;
                    }
                }
                Exit::Return { plan: Err(r), .. } => {
                    let k = format!("{r:?}")
                        .split([' ', '(', '{'])
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    *t.rets_refused.entry(k).or_default() += 1;
                }
                Exit::TailJump { .. } | Exit::IndirectJump { .. } => t.tail_jumps += 1,
            }
        }
    }
    t
}

fn check_program(program: &str) {
    for tc in fixtures::toolchains() {
        check_build(program, fixtures::Variant::Default, &tc);
    }
}

fn check_build(program: &str, variant: fixtures::Variant, tc: &fixtures::Toolchain) {
    {
        let path = fixtures::must_build(program, variant, tc);
        let t = scan(&path);
        eprintln!(
            "{program} {} {}: {} functions, entry hookable {} refused {:?}; RETs patchable {} ({} with async-safe interior) refused {:?}; tail/indirect jumps {}",
            variant.name(),
            tc.gotoolchain(),
            t.functions,
            t.entry_ok,
            t.entry_refused,
            t.rets_ok,
            t.rets_ok_with_safe_boundaries,
            t.rets_refused,
            t.tail_jumps
        );
        assert!(t.functions > 1000, "a Go binary has its runtime: {t:?}");
        assert!(
            t.entry_ok > t.functions / 2,
            "most compiled functions have a hookable stack check: {t:?}"
        );
        assert!(
            t.main_refused.is_empty(),
            "main.* functions with a stack check refused: {:#?}",
            t.main_refused
        );
        eprintln!("  unrecognised prologues: {:?}", t.unrecognised);
        if !t.undecodable.is_empty() {
            eprintln!("  undecodable: {:?}", t.undecodable);
        }
        // The only unknown forms are runtime //go:systemstack functions that compare against
        // stackguard1 (24(R14)); never user code.
        assert!(
            t.unrecognised.iter().all(|n| n.starts_with("runtime.")),
            "{:?}",
            t.unrecognised
        );
        assert!(t.main_ok >= 1, "main.main at least is hookable");
        // Every compiled (non-assembly) function in the pclntab decodes: the decoder and the
        // pclntab bounds agree with the compiler.
        assert_eq!(t.entry_refused.get("Undecodable"), None, "{t:?}");
    }
}

#[test]
fn pie_and_stripped_builds_analyse_like_the_default_build() {
    let tc = fixtures::Toolchain::installed();
    let default = scan(&fixtures::must_build(
        "spin",
        fixtures::Variant::Default,
        &tc,
    ));
    for variant in [fixtures::Variant::Pie, fixtures::Variant::Stripped] {
        let t = scan(&fixtures::must_build("spin", variant, &tc));
        eprintln!(
            "spin {}: entry hookable {} refused {:?}",
            variant.name(),
            t.entry_ok,
            t.entry_refused
        );
        assert!(t.main_refused.is_empty(), "{:?}", t.main_refused);
        assert!(
            t.main_ok >= 1,
            "main.main is hookable in a {} build",
            variant.name()
        );
        if variant == fixtures::Variant::Stripped {
            // Stripping removes symbols and DWARF, not code: the same functions are hookable.
            assert_eq!(
                (t.functions, t.entry_ok),
                (default.functions, default.entry_ok)
            );
        }
    }
}

#[test]
fn every_spin_function_is_analysed_and_main_functions_are_hookable() {
    check_program("spin");
}

#[test]
fn every_values_function_is_analysed_and_main_functions_are_hookable() {
    if !fixtures::source_dir("values").is_dir() {
        eprintln!("fixture `values` not present; skipped");
        return;
    }
    check_program("values");
}

#[test]
fn every_torture_function_is_analysed_in_every_toolchain() {
    if !fixtures::source_dir("torture").is_dir() {
        eprintln!("fixture `torture` not present; skipped");
        return;
    }
    check_program("torture");
}

#[test]
fn cgo_race_and_unoptimised_builds_keep_main_functions_hookable() {
    if !fixtures::source_dir("torture").is_dir() {
        eprintln!("fixture `torture` not present; skipped");
        return;
    }
    let tc = fixtures::Toolchain::installed();
    for variant in [
        fixtures::Variant::Cgo,
        fixtures::Variant::Race,
        fixtures::Variant::NoOpt,
    ] {
        check_build("torture", variant, &tc);
    }
}

#[test]
fn a_net_http_server_is_analysed() {
    if !fixtures::source_dir("httpsvc").is_dir() {
        eprintln!("fixture `httpsvc` not present; skipped");
        return;
    }
    check_build(
        "httpsvc",
        fixtures::Variant::Default,
        &fixtures::Toolchain::installed(),
    );
}
