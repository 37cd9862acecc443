//! Register-ABI assignment on hand-written signatures: the cases abi-internal.md spells out and
//! the ones that are easy to get wrong (rollback, arrays, results restarting at RAX, spills).

use gostrings::abi::{self, FrameLayout, Location, Reg, RegPiece};
use gostrings::signature::{self, NoNamedTypes};
use gostrings::TypeTable;

use Reg::*;

fn layout_with(sig: &str, dictionary: Option<usize>) -> FrameLayout {
    let mut table = TypeTable::new();
    let s = signature::parse(sig, &mut NoNamedTypes, &mut table).unwrap();
    abi::assign(&table, &s.param_types(), &s.result_types(), dictionary).unwrap()
}

fn layout(sig: &str) -> FrameLayout {
    layout_with(sig, None)
}

fn regs(pieces: &[(Reg, u64, u64)]) -> Location {
    Location::Registers(
        pieces
            .iter()
            .map(|&(reg, value_offset, size)| RegPiece {
                reg,
                value_offset,
                size,
            })
            .collect(),
    )
}

fn stack(offset: u64) -> Location {
    Location::Stack { offset }
}

#[test]
fn mixed_struct_splits_between_integer_and_float_registers() {
    let l = layout("func(p struct{X int; Y float64; S string})");
    assert_eq!(
        l.params[0],
        regs(&[(Rax, 0, 8), (X0, 8, 8), (Rbx, 16, 8), (Rcx, 24, 8)])
    );
}

#[test]
fn method_example_from_the_abi_notes() {
    // (*T).Method(x int, s []byte, i any, f float64): t=RAX, x=RBX, s=(RCX,RDI,RSI), i=(R8,R9), f=X0.
    let l = layout("func(t *struct{n int}, x int, s []byte, i any, f float64)");
    assert_eq!(l.params[0], regs(&[(Rax, 0, 8)]));
    assert_eq!(l.params[1], regs(&[(Rbx, 0, 8)]));
    assert_eq!(l.params[2], regs(&[(Rcx, 0, 8), (Rdi, 8, 8), (Rsi, 16, 8)]));
    assert_eq!(l.params[3], regs(&[(R8, 0, 8), (R9, 8, 8)]));
    assert_eq!(l.params[4], regs(&[(X0, 0, 8)]));
}

#[test]
fn more_than_nine_integers_spill_to_the_stack_in_order() {
    let l = layout("func(a, b, c, d, e, f, g, h, i, j, k int) int");
    let ints = [Rax, Rbx, Rcx, Rdi, Rsi, R8, R9, R10, R11];
    for (i, r) in ints.iter().enumerate() {
        assert_eq!(l.params[i], regs(&[(*r, 0, 8)]));
    }
    assert_eq!(l.params[9], stack(8));
    assert_eq!(l.params[10], stack(16));
    // The result restarts at RAX; the spill area follows the 16 bytes of stack arguments.
    assert_eq!(l.results[0], regs(&[(Rax, 0, 8)]));
    assert_eq!(l.stack_args_size, 16);
    assert_eq!(l.param_spills[0], Some(24));
    assert_eq!(l.param_spills[8], Some(24 + 64));
    assert_eq!(l.param_spills[9], None);
    assert_eq!(l.spill_size, 72);
}

#[test]
fn a_value_that_does_not_fit_rolls_back_and_later_values_still_use_registers() {
    // Eight ints take RAX..R10; the string needs two registers, only R11 is left: the string
    // goes to the stack and the next int still gets R11.
    let l = layout("func(a, b, c, d, e, f, g, h int, s string, z int)");
    assert_eq!(l.params[7], regs(&[(R10, 0, 8)]));
    assert_eq!(l.params[8], stack(8));
    assert_eq!(l.params[9], regs(&[(R11, 0, 8)]));
}

#[test]
fn arrays_of_zero_or_one_element_are_registers_longer_ones_the_stack() {
    let l = layout("func(a [2]int, b [1]string, c [0]int, d int)");
    assert_eq!(l.params[0], stack(8));
    assert_eq!(l.params[1], regs(&[(Rax, 0, 8), (Rbx, 8, 8)]));
    // Zero-sized values are stack-assigned and take no space.
    assert_eq!(l.params[2], stack(24));
    assert_eq!(l.params[3], regs(&[(Rcx, 0, 8)]));
    // A struct containing a long array is on the stack as a whole.
    let l = layout("func(s struct{n int; a [2]byte}, x int)");
    assert_eq!(l.params[0], stack(8));
    assert_eq!(l.params[1], regs(&[(Rax, 0, 8)]));
}

#[test]
fn floats_beyond_x14_go_to_the_stack() {
    let fifteen = ["float64"; 15].join(", ");
    let l = layout(&format!("func({fifteen}, float32, complex128)"));
    assert_eq!(l.params[14], regs(&[(X14, 0, 8)]));
    assert_eq!(l.params[15], stack(8));
    assert_eq!(l.params[16], stack(16));
}

#[test]
fn complex_and_narrow_values_use_their_own_sizes() {
    let l = layout("func(a int8, b uint16, c bool, d float32, e complex64) float32");
    assert_eq!(l.params[0], regs(&[(Rax, 0, 1)]));
    assert_eq!(l.params[1], regs(&[(Rbx, 0, 2)]));
    assert_eq!(l.params[2], regs(&[(Rcx, 0, 1)]));
    assert_eq!(l.params[3], regs(&[(X0, 0, 4)]));
    assert_eq!(l.params[4], regs(&[(X1, 0, 4), (X2, 4, 4)]));
    assert_eq!(l.results[0], regs(&[(X0, 0, 4)]));
}

#[test]
fn struct_padding_shows_in_value_offsets() {
    let l = layout("func(u struct{Name string; Age int; Admin bool; Manager *int})");
    assert_eq!(
        l.params[0],
        regs(&[
            (Rax, 0, 8),
            (Rbx, 8, 8),
            (Rcx, 16, 8),
            (Rdi, 24, 1),
            (Rsi, 32, 8)
        ])
    );
}

#[test]
fn results_restart_at_rax_and_stack_results_follow_stack_arguments() {
    let l = layout("func(name string, n int) (string, error)");
    assert_eq!(l.params[0], regs(&[(Rax, 0, 8), (Rbx, 8, 8)]));
    assert_eq!(l.params[1], regs(&[(Rcx, 0, 8)]));
    assert_eq!(l.results[0], regs(&[(Rax, 0, 8), (Rbx, 8, 8)]));
    assert_eq!(l.results[1], regs(&[(Rcx, 0, 8), (Rdi, 8, 8)]));

    // a [3]int on the stack at 8; the [2]int result after it, at 32.
    let l = layout("func(a [3]int, x uint8) ([2]int, bool)");
    assert_eq!(l.params[0], stack(8));
    assert_eq!(l.params[1], regs(&[(Rax, 0, 1)]));
    assert_eq!(l.results[0], stack(32));
    assert_eq!(l.results[1], regs(&[(Rax, 0, 1)]));
    assert_eq!(l.stack_args_size, 40);
    assert_eq!(l.param_spills[1], Some(48));
}

#[test]
fn stack_arguments_are_aligned_to_their_type() {
    // The example in abi-internal.md: f(a1 uint8, a2 [2]uintptr, a3 uint8) (r1 struct{x uintptr;
    // y [2]uintptr}, r2 string) → a1, a3 in registers; a2 then r1 on the stack.
    let l = layout(
        "func(a1 uint8, a2 [2]uintptr, a3 uint8) (r1 struct{x uintptr; y [2]uintptr}, r2 string)",
    );
    assert_eq!(l.params[0], regs(&[(Rax, 0, 1)]));
    assert_eq!(l.params[1], stack(8));
    assert_eq!(l.params[2], regs(&[(Rbx, 0, 1)]));
    assert_eq!(l.results[0], stack(24));
    assert_eq!(l.results[1], regs(&[(Rax, 0, 8), (Rbx, 8, 8)]));
    // Spill slots: a1Spill uint8, a3Spill uint8 right after the 40 bytes of args and results.
    assert_eq!(l.stack_args_size, 40);
    assert_eq!(l.param_spills, vec![Some(48), None, Some(49)]);
    assert_eq!(l.spill_size, 8);
    // Two uint8 on the stack pack; an int32 after them aligns to 4.
    let nine = ["int"; 9].join(", ");
    let l = layout(&format!("func({nine}, a uint8, b uint8, c int32)"));
    assert_eq!(
        (
            l.params[9].clone(),
            l.params[10].clone(),
            l.params[11].clone()
        ),
        (stack(8), stack(9), stack(12))
    );
}

#[test]
fn generic_dictionary_comes_first_for_functions_and_after_the_receiver_for_methods() {
    let l = layout_with(
        "func(a, b int) int",
        abi::dictionary_index("main.Max[go.shape.int]"),
    );
    assert_eq!(l.dictionary, Some(regs(&[(Rax, 0, 8)])));
    assert_eq!(l.params[0], regs(&[(Rbx, 0, 8)]));
    assert_eq!(l.params[1], regs(&[(Rcx, 0, 8)]));
    let l = layout_with(
        "func(l *struct{}, x int)",
        abi::dictionary_index("main.(*List[go.shape.int]).Push"),
    );
    assert_eq!(l.params[0], regs(&[(Rax, 0, 8)]));
    assert_eq!(l.dictionary, Some(regs(&[(Rbx, 0, 8)])));
    assert_eq!(l.params[1], regs(&[(Rcx, 0, 8)]));
}

#[test]
fn abi0_puts_everything_on_the_stack() {
    let mut table = TypeTable::new();
    let s = signature::parse(
        "func(fd uintptr, p unsafe.Pointer, n int32) int32",
        &mut NoNamedTypes,
        &mut table,
    )
    .unwrap();
    let l = abi::assign_abi0(&table, &s.param_types(), &s.result_types()).unwrap();
    assert_eq!(l.params, vec![stack(8), stack(16), stack(24)]);
    assert_eq!(l.results, vec![stack(32)]);
}

#[test]
fn unknown_layouts_are_refused_with_the_type_name() {
    let mut table = TypeTable::new();
    let s = signature::parse("func(p *main.Secret)", &mut NoNamedTypes, &mut table).unwrap();
    let l = abi::assign(&table, &s.param_types(), &[], None).unwrap();
    assert_eq!(
        l.params[0],
        regs(&[(Rax, 0, 8)]),
        "a pointer to an unknown type is still a pointer"
    );
    let elem = match table.get(s.params[0].ty).unwrap().shape {
        gostrings::Shape::Pointer { elem } => elem,
        _ => panic!(),
    };
    let err = abi::assign(&table, &[elem], &[], None).unwrap_err();
    assert!(err.to_string().contains("main.Secret"), "{err}");
}

#[test]
fn a_struct_that_contains_itself_is_an_error_not_a_stack_overflow() {
    use gostrings::{Field, GoType, Kind, Shape, TypeId};
    let mut table = TypeTable::new();
    let id = table.add(GoType {
        name: "main.Loop".into(),
        kind: Kind::Struct,
        size: 8,
        align: 8,
        shape: Shape::Opaque,
    });
    table.set(
        id,
        GoType {
            name: "main.Loop".into(),
            kind: Kind::Struct,
            size: 8,
            align: 8,
            shape: Shape::Struct {
                fields: vec![Field {
                    name: "x".into(),
                    ty: id,
                    offset: 0,
                    embedded: false,
                }],
            },
        },
    );
    assert!(abi::assign(&table, &[id], &[], None).is_err());
    assert!(abi::assign(&table, &[TypeId(99)], &[], None).is_err());
}
