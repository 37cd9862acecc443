//! Arbitrary bytes — random, or a real prologue with random damage — go through decoding,
//! entry planning and exit listing without a panic, and any plan produced is internally
//! consistent.

use proptest::prelude::*;
use trampolines::decode::DecodedFunction;
use trampolines::epilogue::{exits, Exit};
use trampolines::plan::{plan_entry, FunctionFacts};
use trampolines::unsafe_points::UnsafePoints;

struct AllUnsafe;
impl UnsafePoints for AllUnsafe {
    fn value_at(&self, _pc: u64) -> Option<i32> {
        Some(-2)
    }
}

/// Go 1.21 small-shape function with a morestack tail (see shapes.rs for the disassembly).
const GOOD: [u8; 37] = [
    0x49, 0x3b, 0x66, 0x10, 0x76, 0x0e, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0x48, 0x83,
    0xc4, 0x10, 0x5d, 0xc3, 0x48, 0x89, 0x44, 0x24, 0x08, 0xe8, 0, 0, 0, 0, 0x48, 0x8b, 0x44, 0x24,
    0x08, 0xeb, 0xdb,
];

fn check(code: &[u8], entry: u64) {
    let Ok(f) = DecodedFunction::decode(code, entry) else {
        return;
    };
    let facts = FunctionFacts {
        is_assembly: false,
        unsafe_points: &AllUnsafe,
    };
    if let Ok(p) = plan_entry(&f, facts) {
        assert!(p.patch_len >= 5);
        assert!(p.resume > p.entry && p.resume <= f.end());
        assert!(f.contains(p.morestack));
        assert!(p.replicated.first().map(|i| i.ip()) == Some(entry));
    }
    for e in exits(&f, &AllUnsafe) {
        if let Exit::Return { ret, plan: Ok(p) } = e {
            assert!(p.start < ret && p.len >= 5 && p.start + p.len as u64 == ret + 1);
        }
    }
}

#[test]
fn the_reference_function_plans() {
    let f = DecodedFunction::decode(&GOOD, 0x1000).unwrap();
    let facts = FunctionFacts {
        is_assembly: false,
        unsafe_points: &AllUnsafe,
    };
    assert!(plan_entry(&f, facts).is_ok());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(code in proptest::collection::vec(any::<u8>(), 0..256), entry in any::<u64>()) {
        check(&code, entry);
    }

    #[test]
    fn damaged_prologues_never_panic(flips in proptest::collection::vec((0usize..37, any::<u8>()), 1..4)) {
        let mut code = GOOD.to_vec();
        for (at, v) in flips {
            code[at] = v;
        }
        check(&code, 0x40_0000);
    }
}
