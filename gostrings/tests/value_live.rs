//! The value decoder against live processes: `values -globals` fills one package-level variable
//! with a value of every family, prints its address (and each field's, each error's `Error()`
//! and each time's `UnixNano()`), and waits; the test reads everything back through
//! `ProcessMemory`, with types from DWARF (default and PIE builds; PIE resolves interface types
//! through the load bias) and from runtime type metadata (stripped build), on every toolchain of
//! `fixtures::toolchains()` (both map layouts).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fixtures::{must_build, toolchains, Toolchain, Variant};
use gostrings::rtype::RuntimeTypes;
use gostrings::value::{Decoder, Limits, MapKey, MapLayout, RuntimeResolver, Value, ValueError};
use gostrings::{GoBinary, MemoryReader, TypeTable};
use injector::mem::ProcessMemory;

/// A running `values -globals`, killed when dropped.
struct Globals {
    child: Child,
    g: u64,
    fields: Vec<(String, u64)>,
    errors: HashMap<String, String>,
    times: HashMap<String, i64>,
}

impl Drop for Globals {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex address")
}

/// Undoes Go's `%q` for the texts the fixture prints.
fn unquote(q: &str) -> String {
    let inner = q
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .expect("quoted");
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let h: String = it.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&h, 16).expect("\\x")));
            }
            Some('u') => {
                let h: String = it.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).expect("\\u")).unwrap());
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn start(exe: &std::path::Path) -> Globals {
    let mut child = Command::new(exe)
        .arg("-globals")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("values starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut g = Globals {
        child,
        g: 0,
        fields: Vec::new(),
        errors: HashMap::new(),
        times: HashMap::new(),
    };
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("values prints");
        if line == "ready" {
            return g;
        }
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("G"), Some(a), None) => g.g = hex(a),
            (Some("field"), Some(n), Some(a)) => g.fields.push((n.to_owned(), hex(a))),
            (Some("error"), Some(n), Some(q)) => {
                g.errors.insert(n.to_owned(), unquote(q));
            }
            (Some("time"), Some(n), Some(t)) => {
                g.times.insert(n.to_owned(), t.parse().expect("UnixNano"));
            }
            _ => panic!("unexpected line from values -globals: {line}"),
        }
    }
    panic!("values -globals ended before printing ready");
}

/// Runs checks, counting them.
struct Check<'a> {
    dec: &'a Decoder,
    mem: &'a dyn MemoryReader,
    g: Value,
    what: String,
    n: usize,
}

impl Check<'_> {
    fn f(&self, path: &str) -> Value {
        let mut v = self.g;
        for name in path.split('.') {
            v = self
                .dec
                .field(self.mem, v, name)
                .unwrap_or_else(|e| panic!("{}: field {path}: {e}", self.what));
        }
        v
    }
    fn ok<T>(&self, what: &str, r: Result<T, ValueError>) -> T {
        r.unwrap_or_else(|e| panic!("{}: {what}: {e}", self.what))
    }
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        assert_eq!(got, want, "{}: {what}", self.what);
        self.n += 1;
    }
    fn str(&mut self, path: &str, want: &str) {
        let got = self.ok(path, self.dec.str(self.mem, self.f(path)));
        self.eq(path, got.as_str(), want);
    }
    fn int(&mut self, path: &str, want: i64) {
        let got = self.ok(path, self.dec.int(self.mem, self.f(path)));
        self.eq(path, got, want);
    }
    fn err_msg(&mut self, what: &str, r: Result<impl std::fmt::Debug, ValueError>, want: &str) {
        match r {
            Err(e) => self.eq(what, e.to_string(), want.to_owned()),
            Ok(v) => panic!(
                "{}: {what}: expected the error {want:?}, got {v:?}",
                self.what
            ),
        }
    }
    fn get(&self, map: Value, key: MapKey) -> Option<Value> {
        self.ok("map_get", self.dec.map_get(self.mem, map, &key))
    }
    fn sorted_strs(&self, vals: &[Value]) -> Vec<String> {
        let mut v: Vec<String> = vals
            .iter()
            .map(|k| self.ok("key", self.dec.str(self.mem, *k)))
            .collect();
        v.sort();
        v
    }
}

fn check_all(c: &mut Check<'_>, live: &Globals) {
    let (dec, mem) = (c.dec, c.mem);
    // Every field sits where the compiler put it.
    for (name, addr) in &live.fields {
        let v = c.f(name);
        c.eq(&format!("address of {name}"), v.addr, *addr);
    }

    // Strings and scalars.
    c.str("Str", "héllo, world");
    c.str("EmptyStr", "");
    let long = c.ok("LongStr", dec.str(mem, c.f("LongStr")));
    c.eq("LongStr cut at max_string", long.len(), 4096);
    c.eq("LongStr content", long.starts_with("01234567890123"), true);
    c.eq("len(LongStr)", dec.len(mem, c.f("LongStr")).unwrap(), 5000);
    for (p, w) in [
        ("I8", -8),
        ("I16", -1600),
        ("I32", -320000),
        ("I64", -6400000000),
        ("I", -42),
        ("U8", 200),
        ("U16", 60000),
        ("U32", 4000000000),
        ("U", 99),
        ("Uptr", 0xdeadbeef),
    ] {
        c.int(p, w);
    }
    c.eq(
        "uint(U64)",
        dec.uint(mem, c.f("U64")).unwrap(),
        18_000_000_000_000_000_000,
    );
    c.err_msg(
        "int(U64)",
        dec.int(mem, c.f("U64")),
        "18000000000000000000 of type uint64 does not fit in an i64",
    );
    c.err_msg(
        "uint(I8)",
        dec.uint(mem, c.f("I8")),
        "-8 of type int8 does not fit in a u64",
    );
    c.eq("F32", dec.float(mem, c.f("F32")).unwrap(), 1.5);
    c.eq("F64", dec.float(mem, c.f("F64")).unwrap(), -2.25e10);
    c.eq("float(I16)", dec.float(mem, c.f("I16")).unwrap(), -1600.0);
    c.eq("C128", dec.complex(mem, c.f("C128")).unwrap(), (1.0, -2.0));
    c.eq("T", dec.bool(mem, c.f("T")).unwrap(), true);
    c.eq("F", dec.bool(mem, c.f("F")).unwrap(), false);
    c.err_msg(
        "str(I64)",
        dec.str(mem, c.f("I64")),
        "str() needs a string, []byte or [N]byte, not int64",
    );

    // Pointers and structs.
    c.eq(
        "NilPtr is nil",
        dec.is_nil(mem, c.f("NilPtr")).unwrap(),
        true,
    );
    c.err_msg(
        "NilPtr.Name",
        dec.field(mem, c.f("NilPtr"), "Name"),
        "nil pointer: cannot read field Name of *main.User",
    );
    c.str("UserPtr.Name", "alice");
    c.int("UserPtr.Age", 30);
    c.eq(
        "UserPtr.Admin",
        dec.bool(mem, c.f("UserPtr.Admin")).unwrap(),
        true,
    );
    c.str("UserPtr.Manager.Name", "boss");
    c.int("UserPtr.Manager.Age", 60);
    c.eq(
        "UserPtr.Manager.Manager is nil",
        dec.is_nil(mem, c.f("UserPtr.Manager.Manager")).unwrap(),
        true,
    );
    let tags = c.f("UserPtr.Tags");
    c.eq(
        "UserPtr.Tags[1]",
        dec.str(mem, dec.index(mem, tags, 1).unwrap()).unwrap(),
        "b".to_owned(),
    );
    let attrs = c.f("UserPtr.Attrs");
    let x = c.get(attrs, MapKey::Str("x".into())).expect("Attrs[x]");
    c.eq("UserPtr.Attrs[x]", dec.int(mem, x).unwrap(), 1);
    c.str("PtrPtr.Name", "alice");
    let pp = dec.deref(mem, c.f("PtrPtr")).unwrap();
    c.eq(
        "*PtrPtr is UserPtr",
        dec.deref(mem, pp).unwrap().addr,
        dec.deref(mem, c.f("UserPtr")).unwrap().addr,
    );
    c.err_msg(
        "UserPtr.Nmae",
        dec.field(mem, c.f("UserPtr"), "Nmae"),
        "main.User has no field Nmae (fields: Name, Age, Admin, Manager, Tags, Attrs)",
    );
    c.int("Outer.ID", 42);
    c.int("Outer.In.A", -3);
    let b = c.f("Outer.In.B");
    c.eq(
        "Outer.In.B[2]",
        dec.int(mem, dec.index(mem, b, 2).unwrap()).unwrap(),
        3,
    );
    c.int("Outer.Ptr.A", 9);
    c.str("Outer.Label", "outer");
    c.int("Derived.ID", 7);
    c.str("Derived.Kind", "base");
    c.eq(
        "Derived.Extra",
        dec.float(mem, c.f("Derived.Extra")).unwrap(),
        0.25,
    );
    c.int("Emb.ID", 8);
    c.int("Emb.A", 11);
    c.str("Emb.Note", "n");
    let eb = c.f("Emb.B");
    c.eq(
        "Emb.B[1]",
        dec.int(mem, dec.index(mem, eb, 1).unwrap()).unwrap(),
        5,
    );

    // Slices and arrays.
    let strs = c.f("Strs");
    c.eq("len(Strs)", dec.len(mem, strs).unwrap(), 3);
    c.eq("cap(Strs)", dec.cap(mem, strs).unwrap() >= 3, true);
    c.eq(
        "Strs[2]",
        dec.str(mem, dec.index(mem, strs, 2).unwrap()).unwrap(),
        "zzz".to_owned(),
    );
    c.err_msg(
        "Strs[3]",
        dec.index(mem, strs, 3),
        "index 3 out of range [0, 3) of []string",
    );
    c.eq(
        "NilSlice is nil",
        dec.is_nil(mem, c.f("NilSlice")).unwrap(),
        true,
    );
    c.eq("len(NilSlice)", dec.len(mem, c.f("NilSlice")).unwrap(), 0);
    c.eq(
        "Bytes",
        dec.bytes(mem, c.f("Bytes"), 100).unwrap(),
        b"bytes\x00\xff".to_vec(),
    );
    let arr = c.f("Arr");
    c.eq("len(Arr)", dec.len(mem, arr).unwrap(), 4);
    c.eq(
        "Arr[3]",
        dec.int(mem, dec.index(mem, arr, 3).unwrap()).unwrap(),
        -4,
    );
    c.str("ByteArr", "hello");
    let r = dec.render(mem, c.f("Bytes"));
    c.eq("render(Bytes)", r.as_str(), "[]uint8(\"bytes\\x00\\xff\")");
    let r = dec.render(mem, c.f("ByteArr"));
    c.eq("render(ByteArr)", r.as_str(), "[5]uint8(\"hello\")");
    let s = c.f("Str");
    c.eq(
        "Str[1] is a byte",
        dec.uint(mem, dec.index(mem, s, 1).unwrap()).unwrap(),
        0xc3,
    );

    // Maps.
    let small = c.f("SmallMap");
    c.eq("len(SmallMap)", dec.len(mem, small).unwrap(), 3);
    for (k, w) in [("one", 1), ("two", 2), ("three", 3)] {
        let e = c.get(small, MapKey::Str(k.into())).expect(k);
        c.eq(&format!("SmallMap[{k}]"), dec.int(mem, e).unwrap(), w);
    }
    c.eq(
        "SmallMap[four]",
        c.get(small, MapKey::Str("four".into())).is_none(),
        true,
    );
    let keys = dec.map_keys(mem, small).unwrap();
    c.eq(
        "SmallMap keys",
        c.sorted_strs(&keys),
        ["one", "three", "two"].map(String::from).to_vec(),
    );

    let im = c.f("IntMap");
    c.eq("len(IntMap)", dec.len(mem, im).unwrap(), 2000);
    let mut ks: Vec<i64> = dec
        .map_keys(mem, im)
        .unwrap()
        .iter()
        .map(|k| dec.int(mem, *k).unwrap())
        .collect();
    ks.sort();
    c.eq(
        "IntMap keys",
        ks,
        (0..2000).map(|i| i * 7).collect::<Vec<i64>>(),
    );
    let e = c.get(im, MapKey::Int(7 * 1999)).expect("IntMap[13993]");
    c.eq(
        "IntMap[13993]",
        dec.str(mem, e).unwrap(),
        "v13993".to_owned(),
    );
    let e = c.get(im, MapKey::Uint(0)).expect("IntMap[0]");
    c.eq("IntMap[0]", dec.str(mem, e).unwrap(), "v0".to_owned());
    c.eq("IntMap[1]", c.get(im, MapKey::Int(1)).is_none(), true);
    c.err_msg(
        "IntMap[\"x\"]",
        dec.map_get(mem, im, &MapKey::Str("x".into())),
        "a string key cannot index map[int]string",
    );

    let items = c.f("ItemMap");
    c.eq("len(ItemMap)", dec.len(mem, items).unwrap(), 135);
    c.eq("ItemMap keys", dec.map_keys(mem, items).unwrap().len(), 135);
    let it = c.get(items, MapKey::Str("item5".into())).expect("item5");
    c.eq(
        "item5.ID",
        dec.int(mem, dec.field(mem, it, "ID").unwrap()).unwrap(),
        5,
    );
    c.eq(
        "item5.Name",
        dec.str(mem, dec.field(mem, it, "Name").unwrap()).unwrap(),
        "item5".to_owned(),
    );
    let tags = dec.field(mem, it, "Tags").unwrap();
    c.eq(
        "item5.Tags[0]",
        dec.str(mem, dec.index(mem, tags, 0).unwrap()).unwrap(),
        "25".to_owned(),
    );
    let it = c
        .get(items, MapKey::Str("item149".into()))
        .expect("item149");
    c.eq(
        "item149.ID",
        dec.int(mem, dec.field(mem, it, "ID").unwrap()).unwrap(),
        149,
    );
    c.eq(
        "deleted item10",
        c.get(items, MapKey::Str("item10".into())).is_none(),
        true,
    );

    let bv = c.f("BigValMap");
    c.eq("len(BigValMap)", dec.len(mem, bv).unwrap(), 20);
    for i in [0i64, 7, 19] {
        let e = c.get(bv, MapKey::Int(i)).expect("BigValMap entry");
        c.eq(
            "BigValMap[i].N (indirect elem)",
            dec.int(mem, dec.field(mem, e, "N").unwrap()).unwrap(),
            i * 1000,
        );
    }
    let bk = c.f("BigKeyMap");
    let mut pairs: Vec<(i64, i64)> = dec
        .map_items(mem, bk)
        .unwrap()
        .iter()
        .map(|(k, e)| {
            (
                dec.int(mem, dec.field(mem, *k, "K").unwrap()).unwrap(),
                dec.int(mem, *e).unwrap(),
            )
        })
        .collect();
    pairs.sort();
    c.eq(
        "BigKeyMap (indirect keys)",
        pairs,
        vec![(1, 10), (2, 20), (3, 30)],
    );
    let set = c.f("SetMap");
    let keys = dec.map_keys(mem, set).unwrap();
    c.eq(
        "SetMap keys (zero-size elements)",
        c.sorted_strs(&keys),
        "abcdefghij".chars().map(String::from).collect::<Vec<_>>(),
    );
    let gm = c.f("GrowMap");
    let mut pairs: Vec<(i64, i64)> = dec
        .map_items(mem, gm)
        .unwrap()
        .iter()
        .map(|(k, e)| (dec.int(mem, *k).unwrap(), dec.int(mem, *e).unwrap()))
        .collect();
    pairs.sort();
    c.eq(
        "GrowMap entries",
        pairs,
        (0..dec.int(mem, c.f("GrowN")).unwrap())
            .map(|i| (i, i * i))
            .collect::<Vec<_>>(),
    );
    if dec.map_layout() == MapLayout::Buckets {
        // hmap.oldbuckets (offset 24) is set: the walk above read a map mid-growth.
        let h = mem.read_u64(gm.addr).unwrap();
        c.eq(
            "GrowMap is growing",
            mem.read_u64(h + 24).unwrap() != 0,
            true,
        );
        let im = mem.read_u64(c.f("IntMap").addr).unwrap();
        eprintln!(
            "value_live: {}: IntMap has {} overflow buckets",
            c.what,
            mem.read_u16(im + 10).unwrap()
        );
    } else {
        let im = mem.read_u64(c.f("IntMap").addr).unwrap();
        eprintln!(
            "value_live: {}: IntMap has a directory of {} tables",
            c.what,
            mem.read_u64(im + 24).unwrap()
        );
    }
    let nm = c.f("NilMap");
    c.eq("NilMap is nil", dec.is_nil(mem, nm).unwrap(), true);
    c.eq("len(NilMap)", dec.len(mem, nm).unwrap(), 0);
    c.eq("NilMap keys", dec.map_keys(mem, nm).unwrap().len(), 0);
    c.eq(
        "NilMap[a]",
        c.get(nm, MapKey::Str("a".into())).is_none(),
        true,
    );
    let em = c.f("EmptyMap");
    c.eq("EmptyMap is nil", dec.is_nil(mem, em).unwrap(), false);
    c.eq("EmptyMap keys", dec.map_keys(mem, em).unwrap().len(), 0);

    // Interfaces.
    let dynamic = |c: &mut Check<'_>, p: &str, want: &str| {
        let got = c.ok(p, dec.dynamic_type_name(mem, c.f(p)));
        c.eq(&format!("dynamic type of {p}"), got.as_str(), want);
        c.ok(p, dec.elem(mem, c.f(p)))
    };
    let v = dynamic(c, "AnyInt", "int");
    c.eq("AnyInt", dec.int(mem, v).unwrap(), 12345);
    let v = dynamic(c, "AnyStr", "string");
    c.eq(
        "AnyStr",
        dec.str(mem, v).unwrap(),
        "in an interface".to_owned(),
    );
    let v = dynamic(c, "AnyStruct", "main.Point");
    c.eq(
        "AnyStruct.Y",
        dec.int(mem, dec.field(mem, v, "Y").unwrap()).unwrap(),
        -4,
    );
    let v = dynamic(c, "AnyPtr", "*main.User");
    c.eq(
        "AnyPtr.Name",
        dec.str(mem, dec.field(mem, v, "Name").unwrap()).unwrap(),
        "alice".to_owned(),
    );
    let v = dynamic(c, "AnyMap", "map[string]int");
    let e = c.get(v, MapKey::Str("two".into())).expect("AnyMap[two]");
    c.eq(
        "AnyMap[two] (direct interface)",
        dec.int(mem, e).unwrap(),
        2,
    );
    let v = dynamic(c, "AnyOnePtr", "main.OnePtr");
    let p = dec.deref(mem, dec.field(mem, v, "P").unwrap()).unwrap();
    c.eq("*AnyOnePtr.P (direct struct)", dec.int(mem, p).unwrap(), 7);
    c.eq(
        "AnyNil is nil",
        dec.is_nil(mem, c.f("AnyNil")).unwrap(),
        true,
    );
    c.eq(
        "dynamic type of AnyNil",
        dec.dynamic_type_name(mem, c.f("AnyNil")).unwrap(),
        "nil".to_owned(),
    );
    let v = dynamic(c, "Shape", "main.Rect");
    c.eq(
        "Shape.H",
        dec.float(mem, dec.field(mem, v, "H").unwrap()).unwrap(),
        3.0,
    );

    // Errors: what Go's Error() said, except where the fallback is documented to differ.
    let mut names: Vec<&String> = live.errors.keys().collect();
    names.sort();
    for name in names {
        let want = match name.as_str() {
            "ErrCustom" => "<*main.NotFoundError value>".to_owned(),
            _ => live.errors[name].clone(),
        };
        let got = c.ok(name, dec.error_text(mem, c.f(name)));
        c.eq(&format!("error_text({name})"), got, want);
    }

    let r = dec.render(mem, c.f("ErrWrap"));
    c.eq(
        "render(ErrWrap)",
        r.as_str(),
        "error(\"opening config: not allowed\")",
    );
    let r = dec.render(mem, c.f("ErrCustom"));
    c.eq(
        "render(ErrCustom) falls back to the struct",
        r.as_str(),
        "&main.NotFoundError{Key: \"k\", Code: 404}",
    );

    // Times.
    for (name, want) in &live.times {
        let got = c.ok(name, dec.unix_nano(mem, c.f(name)));
        c.eq(&format!("unix_nano({name})"), got, *want);
    }
    let r = dec.render(mem, c.f("TimeWall"));
    c.eq(
        "render(TimeWall)",
        r.as_str(),
        "time.Time(2024-02-29T23:59:30.123456789Z)",
    );

    // Channels, funcs, cycles, rendering.
    c.eq("len(NilChan)", dec.len(mem, c.f("NilChan")).unwrap(), 0);
    c.eq(
        "NilChan is nil",
        dec.is_nil(mem, c.f("NilChan")).unwrap(),
        true,
    );
    c.eq("len(Chan)", dec.len(mem, c.f("Chan")).unwrap(), 2);
    c.eq("cap(Chan)", dec.cap(mem, c.f("Chan")).unwrap(), 5);
    c.eq("Fn is nil", dec.is_nil(mem, c.f("Fn")).unwrap(), false);
    c.int("Cycle.Next.Next.Next.Val", 2);
    let r = dec.render(mem, c.f("Cycle"));
    c.eq(
        &format!("render(Cycle) stops at max_depth: {r}"),
        r.starts_with(
            "&main.Node{Val: 1, Next: &main.Node{Val: 2, Next: &main.Node{Val: 1, \
             Next: &main.Node{Val: 2, Next: (*main.Node)(0x",
        ),
        true,
    );
    let r = dec.render(mem, c.f("SmallMap"));
    c.eq(
        &format!("render(SmallMap): {r}"),
        r.starts_with("map[string]int{") && r.contains("\"two\": 2") && r.ends_with('}'),
        true,
    );
    let r = dec.render(mem, c.f("UserPtr"));
    c.eq(
        &format!("render(UserPtr): {r}"),
        r.starts_with(
            "&main.User{Name: \"alice\", Age: 30, Admin: true, Manager: &main.User{Name: \"boss\"",
        ),
        true,
    );
    let all = dec.render(mem, c.g);
    c.eq(
        &format!("render(G) is whole and error-free: {all}"),
        (
            all.starts_with("main.Globals{Str: \"héllo, world\""),
            all.contains("<error"),
        ),
        (true, false),
    );
}

fn run(toolchain: &Toolchain, variant: Variant) -> usize {
    run_exe(&must_build("values", variant, toolchain), variant, None)
}

/// Checks the `values` executable `exe`, built as `variant`; `want_layout` is the map layout its
/// buildinfo must select, when the caller knows.
fn run_exe(exe: &Path, variant: Variant, want_layout: Option<MapLayout>) -> usize {
    let exe = exe.to_owned();
    let bin = GoBinary::open(&exe).expect("values opens");
    let version = bin.go_version();
    let layout = MapLayout::for_build(
        &version,
        bin.buildinfo
            .as_ref()
            .and_then(|b| b.setting("GOEXPERIMENT")),
    );
    if let Some(want) = want_layout {
        assert_eq!(layout, want, "{}: map layout from buildinfo", exe.display());
    }
    let mut table = TypeTable::new();
    let globals = match variant {
        Variant::Stripped => {
            let rt: RuntimeTypes<_> = bin.runtime_types().expect("runtime types");
            rt.lookup("main.Globals", &mut table)
                .expect("main.Globals in runtime types")
        }
        _ => {
            let dwarf = bin.dwarf().expect("DWARF");
            dwarf
                .types()
                .named("main.Globals", &mut table)
                .expect("DWARF types")
                .expect("main.Globals in DWARF")
        }
    };
    let live = start(&exe);
    let bias = load_bias(&bin, live.child.id() as i32);
    if variant != Variant::Pie {
        assert_eq!(bias, 0, "a non-PIE executable loads at its link addresses");
    }
    let resolver = RuntimeResolver::new(bin.runtime_types().expect("runtime types"), bias);
    let dec = Decoder::new(table, Some(Box::new(resolver)), layout, Limits::default());
    let mem = ProcessMemory::new(live.child.id() as i32);
    let mut c = Check {
        dec: &dec,
        mem: &mem,
        g: Value {
            ty: globals,
            addr: live.g,
        },
        what: format!("{version} {}", variant.name()),
        n: 0,
    };
    check_all(&mut c, &live);
    eprintln!(
        "value_live: {} ({layout:?} maps, bias {bias:#x}): {} values checked",
        c.what, c.n
    );
    c.n
}

/// Runtime address minus link address of the executable's `.text`, from `/proc/<pid>/maps`.
fn load_bias(bin: &GoBinary, pid: i32) -> u64 {
    let text = bin.elf.section(".text").expect(".text");
    let maps = injector::maps::read_maps(pid).expect("maps");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    let m = maps
        .iter()
        .find(|m| {
            m.path.starts_with(&*exe.to_string_lossy())
                && m.offset <= text.offset
                && text.offset < m.offset + m.len()
        })
        .expect("the mapping holding .text");
    (m.start + (text.offset - m.offset)).wrapping_sub(text.addr)
}

#[test]
fn every_family_of_go_value_decodes_from_a_live_process() {
    let mut total = 0;
    for tc in toolchains() {
        for variant in [Variant::Default, Variant::Stripped, Variant::Pie] {
            total += run(&tc, variant);
        }
    }
    assert!(total > 0);
}

/// Builds `values` with `GOEXPERIMENT=experiment` by `release` (the fixtures crate has no such
/// variant; the go build cache makes a rebuild a link step). `None` when the toolchain cannot
/// be had, outside CI.
fn build_experiment(release: &str, experiment: &str) -> Option<PathBuf> {
    let dir = fixtures::cache_dir().join(format!("values-{experiment}-{release}"));
    std::fs::create_dir_all(&dir).expect("cache dir");
    let exe = dir.join("values");
    let out = Command::new("go")
        .args(["build", "-buildvcs=false", "-o"])
        .arg(&exe)
        .arg(".")
        .current_dir(fixtures::source_dir("values"))
        .env("GOTOOLCHAIN", release)
        .env("GOEXPERIMENT", experiment)
        .env("CGO_ENABLED", "0")
        .output()
        .expect("go runs");
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            std::env::var_os("CI").is_none(),
            "building values with {release} GOEXPERIMENT={experiment} failed: {why}"
        );
        eprintln!("skipping {release} GOEXPERIMENT={experiment}: {why}");
        return None;
    }
    Some(exe)
}

#[test]
fn map_layout_experiments_decode_from_a_live_process() {
    for (release, experiment, layout) in [
        ("go1.24.13", "noswissmap", MapLayout::Buckets),
        ("go1.27.4", "mapsplitgroup", MapLayout::SwissSplit),
    ] {
        if let Some(exe) = build_experiment(release, experiment) {
            assert!(run_exe(&exe, Variant::Default, Some(layout)) > 0);
        }
    }
}
