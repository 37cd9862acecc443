//! User-written Go signatures: the syntax users type, predeclared types, named types through a
//! resolver, struct layouts computed like the compiler, and errors that point at a column.

use gostrings::signature::{self, NamedTypes, NoNamedTypes, SignatureError};
use gostrings::{Field, GoType, Kind, Shape, TypeId, TypeTable};

/// A resolver that knows `main.User` (a 72-byte struct) and `net/http.ResponseWriter` (an
/// interface), and records what it was asked.
#[derive(Default)]
struct Known {
    asked: Vec<String>,
}

impl NamedTypes for Known {
    fn resolve(&mut self, name: &str, table: &mut TypeTable) -> Option<TypeId> {
        self.asked.push(name.to_owned());
        match name {
            "main.User" => {
                let s = table.add(GoType {
                    name: "string".into(),
                    kind: Kind::String,
                    size: 16,
                    align: 8,
                    shape: Shape::Basic,
                });
                Some(table.add(GoType {
                    name: "main.User".into(),
                    kind: Kind::Struct,
                    size: 72,
                    align: 8,
                    shape: Shape::Struct {
                        fields: vec![Field {
                            name: "Name".into(),
                            ty: s,
                            offset: 0,
                            embedded: false,
                        }],
                    },
                }))
            }
            "net/http.ResponseWriter" => Some(table.add(GoType {
                name: name.into(),
                kind: Kind::Interface,
                size: 16,
                align: 8,
                shape: Shape::Interface { empty: false },
            })),
            _ => None,
        }
    }
}

fn ty(table: &TypeTable, id: TypeId) -> &GoType {
    table.get(id).unwrap()
}

#[test]
fn names_results_and_predeclared_types() {
    let mut t = TypeTable::new();
    let s = signature::parse(
        "func(name string, n int) (string, error)",
        &mut NoNamedTypes,
        &mut t,
    )
    .unwrap();
    assert_eq!(s.params.len(), 2);
    assert_eq!(s.params[0].name.as_deref(), Some("name"));
    assert_eq!(ty(&t, s.params[0].ty).kind, Kind::String);
    assert_eq!(ty(&t, s.params[1].ty).kind, Kind::Int);
    assert_eq!(s.results.len(), 2);
    assert!(s.results.iter().all(|r| r.name.is_none()));
    assert_eq!(
        ty(&t, s.results[1].ty).shape,
        Shape::Interface { empty: false },
        "error has methods"
    );
}

#[test]
fn every_kind_the_issue_lists() {
    let mut t = TypeTable::new();
    let mut k = Known::default();
    let s = signature::parse(
        "func(xs []int, m map[string]int, f float64, c complex128, a [3]int, i any, e error, \
         p *main.User, fn func(int) int, ch chan int, u main.User, e2 interface{}, r <-chan bool)",
        &mut k,
        &mut t,
    )
    .unwrap();
    let kinds: Vec<Kind> = s.params.iter().map(|p| ty(&t, p.ty).kind).collect();
    use Kind::*;
    assert_eq!(
        kinds,
        [
            Slice, Map, Float64, Complex128, Array, Interface, Interface, Pointer, Func, Chan,
            Struct, Interface, Chan
        ]
    );
    assert_eq!(ty(&t, s.params[4].ty).size, 24);
    assert_eq!(
        ty(&t, s.params[5].ty).shape,
        Shape::Interface { empty: true }
    );
    assert_eq!(
        ty(&t, s.params[11].ty).shape,
        Shape::Interface { empty: true }
    );
    assert_eq!(ty(&t, s.params[10].ty).size, 72);
    let Shape::Map { key, elem } = ty(&t, s.params[1].ty).shape else {
        panic!()
    };
    assert_eq!((ty(&t, key).kind, ty(&t, elem).kind), (String, Int));
    assert_eq!(ty(&t, s.params[1].ty).name, "map[string]int");
    assert!(
        k.asked.iter().all(|n| n == "main.User"),
        "predeclared types never reach the resolver: {:?}",
        k.asked
    );
}

#[test]
fn the_net_http_handler_example_with_an_inline_struct_receiver() {
    let mut t = TypeTable::new();
    let mut k = Known::default();
    let s = signature::parse(
        "func(sh struct{srv *net/http.Server}, rw net/http.ResponseWriter, req *net/http.Request)",
        &mut k,
        &mut t,
    )
    .unwrap();
    let sh = ty(&t, s.params[0].ty);
    assert_eq!((sh.kind, sh.size), (Kind::Struct, 8));
    let Shape::Struct { fields } = &sh.shape else {
        panic!()
    };
    assert_eq!(fields[0].name, "srv");
    // *net/http.Server is unknown to the resolver: still an 8-byte pointer, to an opaque type.
    let Shape::Pointer { elem } = ty(&t, fields[0].ty).shape else {
        panic!()
    };
    assert_eq!(ty(&t, elem).shape, Shape::Opaque);
    assert_eq!(ty(&t, elem).name, "net/http.Server");
    assert_eq!(ty(&t, s.params[1].ty).kind, Kind::Interface);
    assert_eq!(ty(&t, s.params[2].ty).size, 8);
}

#[test]
fn grouped_names_share_a_type_and_unnamed_parameters_are_types() {
    let mut t = TypeTable::new();
    let s = signature::parse("func(a, b int, s string)", &mut NoNamedTypes, &mut t).unwrap();
    let names: Vec<_> = s.params.iter().map(|p| p.name.clone().unwrap()).collect();
    assert_eq!(names, ["a", "b", "s"]);
    assert_eq!(s.params[0].ty, s.params[1].ty);
    let s = signature::parse("func(int, string) bool", &mut NoNamedTypes, &mut t).unwrap();
    assert_eq!(s.params.len(), 2);
    assert!(s.params.iter().all(|p| p.name.is_none()));
    assert_eq!(ty(&t, s.results[0].ty).kind, Kind::Bool);
    // Without the `func` keyword, with a name, with variadics.
    let s = signature::parse("(x []byte)", &mut NoNamedTypes, &mut t).unwrap();
    assert_eq!(ty(&t, s.params[0].ty).kind, Kind::Slice);
    let s = signature::parse(
        "func Sumv(prefix string, xs ...int) string",
        &mut NoNamedTypes,
        &mut t,
    )
    .unwrap();
    assert_eq!(ty(&t, s.params[1].ty).name, "[]int");
}

#[test]
fn struct_literals_are_laid_out_like_the_compiler() {
    let mut t = TypeTable::new();
    let id = signature::parse_type(
        "struct{A int16; B [3]int; C bool; D float32; E struct{}}",
        &mut NoNamedTypes,
        &mut t,
    )
    .unwrap();
    let s = ty(&t, id);
    let Shape::Struct { fields } = &s.shape else {
        panic!()
    };
    let offsets: Vec<u64> = fields.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [0, 8, 32, 36, 40]);
    // A trailing zero-sized field gets one byte of padding, then the size rounds to 8.
    assert_eq!(s.size, 48);
    assert_eq!(s.align, 8);
    let id = signature::parse_type("struct{X, Y int32}", &mut NoNamedTypes, &mut t).unwrap();
    assert_eq!((ty(&t, id).size, ty(&t, id).align), (8, 4));
    let id = signature::parse_type("struct{ *main.User; n int }", &mut Known::default(), &mut t)
        .unwrap();
    let Shape::Struct { fields } = &ty(&t, id).shape else {
        panic!()
    };
    assert!(fields[0].embedded);
    assert_eq!(fields[0].name, "User");
}

#[test]
fn unknown_named_types_are_errors_that_name_the_type_and_column() {
    let mut t = TypeTable::new();
    let err = signature::parse(
        "func(ctx context.Context, n int)",
        &mut NoNamedTypes,
        &mut t,
    )
    .unwrap_err();
    assert_eq!(
        err,
        SignatureError::UnknownType {
            column: 10,
            name: "context.Context".into()
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("column 10") && msg.contains("struct{") && msg.contains("*context.Context"),
        "{msg}"
    );
    // Inside a struct literal too: its size would be a guess.
    let err = signature::parse(
        "func(s struct{a int; c main.Conf})",
        &mut NoNamedTypes,
        &mut t,
    )
    .unwrap_err();
    assert!(
        matches!(err, SignatureError::UnknownType { ref name, .. } if name == "main.Conf"),
        "{err}"
    );
    // An array of opaque elements has no known size either.
    assert!(signature::parse("func(a [2]main.T)", &mut NoNamedTypes, &mut t).is_err());
}

#[test]
fn syntax_errors_point_at_the_column() {
    let mut t = TypeTable::new();
    let cases = [
        ("func(a int", 11),
        ("func(a int,, b int)", 12),
        ("func(a [x]int)", 9),
        ("func(a int) (b", 14),
        ("func(a map[string)", 18),
        ("func(a, b)", 6),
        ("func(a int) int junk", 17),
    ];
    for (text, col) in cases {
        let err = signature::parse(text, &mut NoNamedTypes, &mut t).unwrap_err();
        assert_eq!(err.column(), col, "{text}: {err}");
    }
}

#[test]
fn hostile_input_is_refused_without_recursing_forever() {
    let mut t = TypeTable::new();
    let deep = format!("func(x {}int)", "*".repeat(100_000));
    assert!(matches!(
        signature::parse(&deep, &mut NoNamedTypes, &mut t),
        Err(SignatureError::TooDeep { .. })
    ));
    let huge = "func(a [99999999999999999999]int)";
    assert!(matches!(
        signature::parse(huge, &mut NoNamedTypes, &mut t),
        Err(SignatureError::BadArrayLength { .. })
    ));
    let overflow = "func(a [281474976710656][281474976710656]int)";
    assert!(signature::parse(overflow, &mut NoNamedTypes, &mut t).is_err());
    for junk in [
        "",
        "(",
        ")",
        "func",
        "func(",
        "func()",
        "func(]",
        "func(a struct{",
        "func(a interface{",
        "\u{0}",
    ] {
        let _ = signature::parse(junk, &mut NoNamedTypes, &mut t);
    }
    assert!(signature::parse("func()", &mut NoNamedTypes, &mut t)
        .unwrap()
        .params
        .is_empty());
}
