//! The pc-value tables the hook engine relies on, read from real binaries of the oldest and the
//! newest layouts: unsafe points around the stack check, frame sizes, lines and files, pc
//! lookups, and the function flags that forbid hooking.

use fixtures::{Toolchain, Variant};
use gostrings::pclntab::{Pclntab, PclntabVersion, UnsafePoint};
use gostrings::GoBinary;

/// spin built by the installed Go, Go 1.21 and Go 1.19 (the 0xfffffff0 layout).
fn binaries() -> Vec<(String, GoBinary)> {
    [
        Toolchain::installed(),
        Toolchain::release("go1.21.13"),
        Toolchain::release("go1.19.13"),
    ]
    .into_iter()
    .map(|tc| {
        let path = fixtures::must_build("spin", Variant::Default, &tc);
        (tc.gotoolchain().to_owned(), GoBinary::open(path).unwrap())
    })
    .collect()
}

fn named(t: &Pclntab, name: &str) -> gostrings::Func {
    t.func_by_name(name)
        .unwrap_or_else(|| panic!("{name} not in the table"))
}

#[test]
fn the_layout_follows_the_toolchain() {
    for (tc, b) in binaries() {
        let want = if tc == "go1.19.13" {
            PclntabVersion::Go118
        } else {
            PclntabVersion::Go120
        };
        assert_eq!(b.pclntab.version(), want, "{tc}");
        assert_eq!(
            named(&b.pclntab, "main.main").start_line.is_some(),
            want == PclntabVersion::Go120,
            "{tc}"
        );
    }
}

#[test]
fn the_stack_check_is_unsafe_and_the_body_has_async_safe_points() {
    for (tc, b) in binaries() {
        let t = &b.pclntab;
        let f = named(t, "main.main");
        // main.main opens with its stack check (CMPQ SP or LEAQ -d(SP),R12 + CMPQ R12, then
        // JBE to morestack). Observed on 1.19, 1.21 and 1.26: the entry and the CMPQ are
        // async-safe (resuming there just redoes the check); the JBE is unsafe (-2), so a
        // goroutine never resumes between the compare and its branch.
        assert_eq!(
            t.unsafe_point_at(f.entry),
            Some(UnsafePoint::Safe),
            "{tc}: entry"
        );
        let code = b.elf.bytes_at(f.entry, 32).unwrap();
        let jbe = iced_x86::Decoder::with_ip(64, code, f.entry, iced_x86::DecoderOptions::NONE)
            .into_iter()
            .take(4)
            .find(|i| i.mnemonic() == iced_x86::Mnemonic::Jbe)
            .expect("the stack check's JBE within the first four instructions")
            .ip();
        assert_eq!(
            t.unsafe_point_at(jbe),
            Some(UnsafePoint::Unsafe),
            "{tc}: the JBE of the check at +{}",
            jbe - f.entry
        );
        let runs = t.unsafe_points(&f);
        assert_eq!(
            runs.first().unwrap().0.start,
            f.entry,
            "{tc}: runs start at the entry"
        );
        // The table covers the code; only the alignment padding before the next function
        // (at most 31 bytes on amd64) may be left out.
        let last = runs.last().unwrap().0.end;
        assert!(
            last <= f.end && f.end - last < 32,
            "{tc}: runs end at {last:#x}, function at {:#x}",
            f.end
        );
        assert!(
            runs.windows(2).all(|w| w[0].0.end == w[1].0.start),
            "{tc}: runs are contiguous: {runs:?}"
        );
        assert!(
            runs.iter().any(|r| r.1 == UnsafePoint::Safe),
            "{tc}: no async-safe point in main.main"
        );
    }
}

#[test]
fn frames_are_empty_at_entry_and_grow_in_the_body() {
    for (tc, b) in binaries() {
        let t = &b.pclntab;
        let f = named(t, "main.main");
        assert_eq!(t.sp_delta_at(f.entry), Some(0), "{tc}");
        let max = t.pcsp(&f).unwrap().map(|v| v.value).max().unwrap();
        assert!(max >= 16, "{tc}: main.main frame of {max} bytes");
    }
}

#[test]
fn line_and_file_lookups_agree_with_the_function_record() {
    for (tc, b) in binaries() {
        let t = &b.pclntab;
        let f = named(t, "main.step");
        assert_eq!(t.line_at(f.entry), f.line, "{tc}");
        assert_eq!(t.file_at(f.entry), f.file, "{tc}");
        assert!(
            f.file
                .as_deref()
                .unwrap()
                .ends_with("fixtures/go/spin/main.go"),
            "{tc}: {:?}",
            f.file
        );
        if let Some(start) = f.start_line {
            assert!(
                start <= f.line.unwrap(),
                "{tc}: func keyword after the first line"
            );
        }
        // Inlined calls bring other files' lines into main.main's table, but never line 0.
        let main = named(t, "main.main");
        assert!(t.pcln(&main).unwrap().all(|v| v.value > 0), "{tc}");
    }
}

#[test]
fn func_at_finds_the_function_containing_any_pc() {
    for (tc, b) in binaries() {
        let t = &b.pclntab;
        let text = t.text_range();
        for f in t.funcs().map(Result::unwrap).step_by(37) {
            if f.size() == 0 {
                continue;
            }
            assert_eq!(
                t.func_at(f.entry).map(|g| g.index),
                Some(f.index),
                "{tc}: entry of {}",
                f.name
            );
            assert_eq!(
                t.func_at(f.end - 1).map(|g| g.index),
                Some(f.index),
                "{tc}: last byte of {}",
                f.name
            );
        }
        assert!(t.func_at(text.start - 1).is_none(), "{tc}: before text");
        assert!(t.func_at(text.end).is_none(), "{tc}: at the end of text");
    }
}

#[test]
fn flags_mark_the_functions_the_hook_engine_must_refuse() {
    for (tc, b) in binaries() {
        let t = &b.pclntab;
        let goexit = named(t, "runtime.goexit");
        assert!(
            goexit.is_top_frame() && goexit.is_asm(),
            "{tc}: goexit flag {}",
            goexit.flag
        );
        let morestack = named(t, "runtime.morestack");
        assert!(
            morestack.writes_sp() && morestack.is_asm(),
            "{tc}: morestack flag {}",
            morestack.flag
        );
        assert_ne!(
            morestack.func_id, 0,
            "{tc}: morestack is a special runtime function"
        );
        let step = named(t, "main.step");
        assert_eq!((step.flag, step.func_id), (0, 0), "{tc}: main.step");
    }
}
