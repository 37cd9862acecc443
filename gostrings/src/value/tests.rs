//! Unit tests of the value decoders on byte images laid out as Go lays out its values.

use super::maps::SlotLayout;
use super::*;
use crate::abi::{Location, Reg, RegPiece};
use crate::gotype::Field;
use crate::memory::{Overlay, SliceMemory};

const BASE: u64 = 0x10000;

/// A growing memory image: `put` places bytes at the next 16-aligned address.
#[derive(Default)]
struct Image {
    bytes: Vec<u8>,
}

impl Image {
    fn put(&mut self, b: &[u8]) -> u64 {
        while !self.bytes.len().is_multiple_of(16) {
            self.bytes.push(0xEE);
        }
        let at = BASE + self.bytes.len() as u64;
        self.bytes.extend_from_slice(b);
        at
    }
    fn words(&mut self, w: &[u64]) -> u64 {
        let b: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(&b)
    }
    /// A string header pointing at a copy of `s`.
    fn string(&mut self, s: &str) -> u64 {
        let p = self.put(s.as_bytes());
        self.words(&[p, s.len() as u64])
    }
    /// The 16-byte header (string or interface) at `addr`.
    fn header(&self, addr: u64) -> &[u8] {
        let o = (addr - BASE) as usize;
        &self.bytes[o..o + 16]
    }
    fn patch(&mut self, addr: u64, b: &[u8]) {
        let o = (addr - BASE) as usize;
        self.bytes[o..o + b.len()].copy_from_slice(b);
    }
    fn mem(&self) -> SliceMemory {
        SliceMemory::new(BASE, self.bytes.clone())
    }
}

/// Builds types as the compiler lays them out.
#[derive(Default)]
struct Types {
    t: TypeTable,
}

impl Types {
    fn basic(&mut self, name: &str) -> TypeId {
        let kind = Kind::from_basic_name(name).unwrap();
        let size = kind.fixed_size().unwrap();
        let align = match kind {
            Kind::Complex64 => 4,
            Kind::String | Kind::Complex128 => 8,
            _ => size.clamp(1, 8),
        };
        self.t.add(GoType {
            name: name.into(),
            kind,
            size,
            align,
            shape: Shape::Basic,
        })
    }
    fn named(&mut self, name: &str, like: TypeId) -> TypeId {
        let mut t = self.t.get(like).unwrap().clone();
        t.name = name.into();
        self.t.add(t)
    }
    fn ptr(&mut self, elem: TypeId) -> TypeId {
        let name = format!("*{}", self.t.get(elem).unwrap().name);
        self.t.add(GoType {
            name,
            kind: Kind::Pointer,
            size: 8,
            align: 8,
            shape: Shape::Pointer { elem },
        })
    }
    fn slice(&mut self, elem: TypeId) -> TypeId {
        let name = format!("[]{}", self.t.get(elem).unwrap().name);
        self.t.add(GoType {
            name,
            kind: Kind::Slice,
            size: 24,
            align: 8,
            shape: Shape::Slice { elem },
        })
    }
    fn array(&mut self, elem: TypeId, len: u64) -> TypeId {
        let e = self.t.get(elem).unwrap().clone();
        self.t.add(GoType {
            name: format!("[{len}]{}", e.name),
            kind: Kind::Array,
            size: e.size * len,
            align: e.align,
            shape: Shape::Array { elem, len },
        })
    }
    fn map(&mut self, key: TypeId, elem: TypeId) -> TypeId {
        let name = format!(
            "map[{}]{}",
            self.t.get(key).unwrap().name,
            self.t.get(elem).unwrap().name
        );
        self.t.add(GoType {
            name,
            kind: Kind::Map,
            size: 8,
            align: 8,
            shape: Shape::Map { key, elem },
        })
    }
    fn iface(&mut self, name: &str, empty: bool) -> TypeId {
        self.t.add(GoType {
            name: name.into(),
            kind: Kind::Interface,
            size: 16,
            align: 8,
            shape: Shape::Interface { empty },
        })
    }
    /// A struct with Go's field offsets (embedded when the name starts with '^').
    fn strukt(&mut self, name: &str, fields: &[(&str, TypeId)]) -> TypeId {
        let mut off = 0u64;
        let mut align = 1u64;
        let mut out = Vec::new();
        for (n, ty) in fields {
            let t = self.t.get(*ty).unwrap();
            off = off.div_ceil(t.align) * t.align;
            align = align.max(t.align);
            out.push(Field {
                name: n.trim_start_matches('^').into(),
                ty: *ty,
                offset: off,
                embedded: n.starts_with('^'),
            });
            off += t.size;
        }
        self.t.add(GoType {
            name: name.into(),
            kind: Kind::Struct,
            size: off.div_ceil(align) * align,
            align,
            shape: Shape::Struct { fields: out },
        })
    }
    fn decoder(self, layout: MapLayout) -> Decoder {
        Decoder::new(self.t, None, layout, Limits::default())
    }
}

/// Resolves fixed descriptor addresses to ids.
struct FakeResolver(Vec<(u64, TypeId)>);

impl TypeResolver for FakeResolver {
    fn resolve(&self, addr: u64, _table: &mut TypeTable) -> Option<TypeId> {
        self.0.iter().find(|(a, _)| *a == addr).map(|(_, t)| *t)
    }
}

fn v(ty: TypeId, addr: u64) -> Value {
    Value { ty, addr }
}

#[test]
fn integers_of_every_width_sign_extend_and_refuse_what_does_not_fit() {
    let mut ts = Types::default();
    let names = [
        "int8", "int16", "int32", "int64", "int", "uint8", "uint16", "uint32", "uint64", "uintptr",
    ];
    let ids: Vec<TypeId> = names.iter().map(|n| ts.basic(n)).collect();
    let f32t = ts.basic("float32");
    let bt = ts.basic("bool");
    let dec = ts.decoder(MapLayout::Swiss);
    let mut img = Image::default();
    let all_ones = img.put(&[0xFF; 8]);
    let f = img.put(&1.5f32.to_le_bytes());
    let b = img.put(&[2]);
    let m = img.mem();
    for (id, n) in ids.iter().zip(names) {
        let got = dec.int(&m, v(*id, all_ones));
        match n {
            "int8" | "int16" | "int32" | "int64" | "int" => assert_eq!(got.unwrap(), -1, "{n}"),
            "uint8" => assert_eq!(got.unwrap(), 255),
            "uint16" => assert_eq!(got.unwrap(), 65535),
            "uint32" => assert_eq!(got.unwrap(), u32::MAX as i64),
            _ => assert_eq!(
                got.unwrap_err().to_string(),
                format!("18446744073709551615 of type {n} does not fit in an i64")
            ),
        }
    }
    assert_eq!(dec.uint(&m, v(ids[8], all_ones)).unwrap(), u64::MAX);
    assert!(dec.uint(&m, v(ids[0], all_ones)).is_err());
    assert_eq!(dec.float(&m, v(f32t, f)).unwrap(), 1.5);
    assert_eq!(dec.float(&m, v(ids[0], all_ones)).unwrap(), -1.0);
    assert!(dec.bool(&m, v(bt, b)).unwrap());
    assert_eq!(
        dec.str(&m, v(ids[3], f)).unwrap_err().to_string(),
        "str() needs a string, []byte or [N]byte, not int64"
    );
    assert_eq!(
        dec.int(&m, v(ids[3], 0x10)).unwrap_err().to_string(),
        "cannot read 8 bytes at 0x10: not mapped (freed or unmapped memory)"
    );
}

#[test]
fn strings_are_cut_at_max_string_lossy_and_refuse_absurd_lengths() {
    let mut ts = Types::default();
    let s = ts.basic("string");
    let u8t = ts.basic("uint8");
    let bs = ts.slice(u8t);
    let ba = ts.array(u8t, 3);
    let mut dec = ts.decoder(MapLayout::Swiss);
    dec.limits.max_string = 5;
    let mut img = Image::default();
    let hello = img.string("hello, world");
    let bad = img.put(b"a\xffb");
    let bad_hdr = img.words(&[bad, 3]);
    let slice = img.words(&[bad, 3, 8]);
    let absurd = img.words(&[bad, 1 << 60]);
    let dangling = img.words(&[0xdead_0000, 4]);
    let m = img.mem();
    assert_eq!(dec.str(&m, v(s, hello)).unwrap(), "hello");
    assert_eq!(dec.len(&m, v(s, hello)).unwrap(), 12);
    assert_eq!(dec.str(&m, v(s, bad_hdr)).unwrap(), "a\u{fffd}b");
    assert_eq!(dec.str(&m, v(bs, slice)).unwrap(), "a\u{fffd}b");
    assert_eq!(dec.str(&m, v(ba, bad)).unwrap(), "a\u{fffd}b");
    assert_eq!(dec.bytes(&m, v(bs, slice), 2).unwrap(), b"a\xff");
    assert_eq!(dec.render(&m, v(bs, slice)), "[]uint8(\"a\\xffb\")");
    assert_eq!(dec.render(&m, v(ba, bad)), "[3]uint8(\"a\\xffb\")");
    assert!(matches!(
        dec.str(&m, v(s, absurd)),
        Err(ValueError::Implausible { .. })
    ));
    assert_eq!(
        dec.str(&m, v(s, dangling)).unwrap_err().to_string(),
        "cannot read 4 bytes at 0xdead0000: not mapped (freed or unmapped memory)"
    );
    let byte = dec.index(&m, v(s, hello), 4).unwrap();
    assert_eq!(dec.uint(&m, byte).unwrap(), u64::from(b'o'));
    assert_eq!(dec.type_name(byte), "uint8");
}

#[test]
fn fields_are_found_through_pointers_and_promoted_from_embedded_structs() {
    let mut ts = Types::default();
    let int = ts.basic("int");
    let s = ts.basic("string");
    let inner = ts.strukt("main.Inner", &[("A", int)]);
    let pinner = ts.ptr(inner);
    let base = ts.strukt("main.Base", &[("ID", int), ("Kind", s)]);
    let user = ts.strukt(
        "main.User",
        &[("Name", s), ("^Base", base), ("^Inner", pinner)],
    );
    let pu = ts.ptr(user);
    let ppu = ts.ptr(pu);
    let dec = ts.decoder(MapLayout::Swiss);

    let mut img = Image::default();
    let a = img.words(&[77]);
    let name = img.string("ann");
    let kind = img.string("k");
    // main.User{Name string @0; Base{ID @16, Kind @24}; *Inner @40}
    let nh = img.header(name).to_vec();
    let kh = img.header(kind).to_vec();
    let mut u = Vec::new();
    u.extend_from_slice(&nh);
    u.extend_from_slice(&5u64.to_le_bytes());
    u.extend_from_slice(&kh);
    u.extend_from_slice(&a.to_le_bytes());
    let ua = img.put(&u);
    let p = img.words(&[ua]);
    let pp = img.words(&[p]);
    let nil = img.words(&[0]);
    let m = img.mem();

    let f = |val: Value, n: &str| dec.field(&m, val, n);
    assert_eq!(dec.str(&m, f(v(ppu, pp), "Name").unwrap()).unwrap(), "ann");
    assert_eq!(dec.int(&m, f(v(pu, p), "ID").unwrap()).unwrap(), 5);
    assert_eq!(dec.str(&m, f(v(user, ua), "Kind").unwrap()).unwrap(), "k");
    assert_eq!(dec.int(&m, f(v(user, ua), "A").unwrap()).unwrap(), 77);
    assert_eq!(
        f(v(pu, nil), "Name").unwrap_err().to_string(),
        "nil pointer: cannot read field Name of *main.User"
    );
    assert_eq!(
        f(v(user, ua), "Nmae").unwrap_err().to_string(),
        "main.User has no field Nmae (fields: Name, Base, Inner)"
    );
    // An embedded nil pointer is reported only when it would have supplied the field.
    let mut img2 = img.bytes.clone();
    let o = (ua - BASE) as usize + 40;
    img2[o..o + 8].copy_from_slice(&0u64.to_le_bytes());
    let m2 = SliceMemory::new(BASE, img2);
    assert!(matches!(
        dec.field(&m2, v(user, ua), "A"),
        Err(ValueError::Nil { .. })
    ));
    assert_eq!(
        dec.int(&m2, dec.field(&m2, v(user, ua), "ID").unwrap())
            .unwrap(),
        5
    );
}

#[test]
fn index_len_and_cap_check_their_bounds() {
    let mut ts = Types::default();
    let i16t = ts.basic("int16");
    let s = ts.basic("string");
    let ss = ts.slice(s);
    let arr = ts.array(i16t, 3);
    let parr = ts.ptr(arr);
    let dec = ts.decoder(MapLayout::Swiss);
    let mut img = Image::default();
    let a = img.put(&[1, 0, 0xfe, 0xff, 3, 0]);
    let pa = img.words(&[a]);
    let s0 = img.string("x");
    let s1 = img.string("yy");
    let mut elems = img.header(s0).to_vec();
    elems.extend_from_slice(img.header(s1));
    let data = img.put(&elems);
    let sl = img.words(&[data, 2, 4]);
    let broken = img.words(&[data, 5, 4]);
    let m = img.mem();
    assert_eq!(
        dec.int(&m, dec.index(&m, v(arr, a), 1).unwrap()).unwrap(),
        -2
    );
    assert_eq!(
        dec.int(&m, dec.index(&m, v(parr, pa), 2).unwrap()).unwrap(),
        3
    );
    assert_eq!(dec.len(&m, v(parr, pa)).unwrap(), 3);
    assert_eq!(
        dec.str(&m, dec.index(&m, v(ss, sl), 1).unwrap()).unwrap(),
        "yy"
    );
    assert_eq!(
        (
            dec.len(&m, v(ss, sl)).unwrap(),
            dec.cap(&m, v(ss, sl)).unwrap()
        ),
        (2, 4)
    );
    assert_eq!(
        dec.index(&m, v(ss, sl), 2).unwrap_err().to_string(),
        "index 2 out of range [0, 2) of []string"
    );
    assert_eq!(
        dec.index(&m, v(ss, sl), -1).unwrap_err().to_string(),
        "index -1 out of range [0, 2) of []string"
    );
    assert!(matches!(
        dec.len(&m, v(ss, broken)),
        Err(ValueError::Implausible { .. })
    ));
}

#[test]
fn interfaces_resolve_their_dynamic_type_and_keep_pointer_shapes_in_the_data_word() {
    let mut ts = Types::default();
    let int = ts.basic("int");
    let pint = ts.ptr(int);
    let onep = ts.strukt("main.OnePtr", &[("P", pint)]);
    let two = ts.strukt("main.Two", &[("A", int), ("B", int)]);
    let any = ts.iface("interface {}", true);
    let shape = ts.iface("main.Shape", false);
    let mut dec = ts.decoder(MapLayout::Swiss);
    dec.resolver = Some(Box::new(FakeResolver(vec![
        (0x900, int),
        (0x908, pint),
        (0x910, onep),
        (0x918, two),
    ])));
    let mut img = Image::default();
    let seven = img.words(&[7]);
    let pair = img.words(&[1, 2]);
    let e_int = img.words(&[0x900, seven]);
    let e_ptr = img.words(&[0x908, seven]);
    let e_one = img.words(&[0x910, seven]);
    let itab = img.words(&[0xabc, 0x918, 0]);
    let i_two = img.words(&[itab, pair]);
    let e_nil = img.words(&[0, 0]);
    let e_unknown = img.words(&[0x999, seven]);
    let m = img.mem();

    let c = dec.elem(&m, v(any, e_int)).unwrap();
    assert_eq!(dec.int(&m, c).unwrap(), 7);
    let c = dec.elem(&m, v(any, e_ptr)).unwrap();
    assert_eq!(c.addr, e_ptr + 8, "a pointer lives in the data word");
    assert_eq!(dec.int(&m, dec.deref(&m, c).unwrap()).unwrap(), 7);
    let c = dec.elem(&m, v(any, e_one)).unwrap();
    assert_eq!(c.addr, e_one + 8, "a struct of one pointer too");
    let c = dec.elem(&m, v(shape, i_two)).unwrap();
    assert_eq!(dec.type_name(c), "main.Two");
    assert_eq!(dec.int(&m, dec.field(&m, c, "B").unwrap()).unwrap(), 2);
    assert_eq!(
        dec.dynamic_type_name(&m, v(shape, i_two)).unwrap(),
        "main.Two"
    );
    assert!(dec.is_nil(&m, v(any, e_nil)).unwrap());
    assert_eq!(dec.dynamic_type_name(&m, v(any, e_nil)).unwrap(), "nil");
    assert!(matches!(
        dec.elem(&m, v(any, e_nil)),
        Err(ValueError::Nil { .. })
    ));
    assert!(matches!(
        dec.elem(&m, v(any, e_unknown)),
        Err(ValueError::Unresolved { .. })
    ));
    // The failed resolution is remembered, and still an error.
    assert!(dec.elem(&m, v(any, e_unknown)).is_err());
}

#[test]
fn slot_layouts_match_the_compilers_bucket_and_group_types() {
    let mut ts = Types::default();
    let s = ts.basic("string");
    let int = ts.basic("int");
    let i8t = ts.basic("int8");
    let empty = ts.strukt("struct {}", &[]);
    let big = ts.array(int, 20);
    let t = |id: TypeId| ts.t.get(id).unwrap().clone();
    // map[string]int: 208-byte buckets (runtime.hmap era), 24-byte slots, 200-byte groups.
    let l = SlotLayout::compute(&t(s), &t(int));
    assert_eq!(
        (l.keys_off, l.elems_off, l.overflow_off, l.unit_size),
        (8, 136, 200, 208)
    );
    assert_eq!((l.elem_off, l.slot_size, l.group_size()), (16, 24, 200));
    // map[int8]int: elem aligned to 8 in the slot.
    let l = SlotLayout::compute(&t(i8t), &t(int));
    assert_eq!((l.elem_off, l.slot_size), (8, 16));
    assert_eq!((l.elems_off, l.overflow_off), (16, 80));
    // map[string]struct{}: a trailing zero-sized field pads the slot by one byte, then aligns.
    let l = SlotLayout::compute(&t(s), &t(empty));
    assert_eq!((l.elem_off, l.slot_size), (16, 24));
    // map[int][20]int: the 160-byte element is stored as a pointer.
    let l = SlotLayout::compute(&t(int), &t(big));
    assert!(l.elem_indirect && !l.key_indirect);
    assert_eq!((l.elem_off, l.slot_size), (8, 16));
}

/// map[int64]int64 fixture pieces.
fn int_map_types(layout: MapLayout) -> (Decoder, TypeId, TypeId) {
    let mut ts = Types::default();
    let i = ts.basic("int64");
    let mt = ts.map(i, i);
    (ts.decoder(layout), mt, i)
}

/// One classic bucket of map[int64]int64 (8 tophash, 8 keys, 8 elems, overflow: 144 bytes).
fn bucket(entries: &[(u8, i64, i64)], overflow: u64) -> Vec<u8> {
    let mut b = vec![0u8; 144];
    for (i, (top, k, e)) in entries.iter().enumerate() {
        b[i] = *top;
        b[8 + i * 8..16 + i * 8].copy_from_slice(&k.to_le_bytes());
        b[72 + i * 8..80 + i * 8].copy_from_slice(&e.to_le_bytes());
    }
    b[136..144].copy_from_slice(&overflow.to_le_bytes());
    b
}

fn sorted_pairs(dec: &Decoder, m: &dyn MemoryReader, map: Value) -> Vec<(i64, i64)> {
    let mut v: Vec<(i64, i64)> = dec
        .map_items(m, map)
        .unwrap()
        .into_iter()
        .map(|(k, e)| (dec.int(m, k).unwrap(), dec.int(m, e).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn bucket_maps_read_overflow_chains_and_unevacuated_old_buckets_during_growth() {
    let (dec, mt, _) = int_map_types(MapLayout::Buckets);
    let mut img = Image::default();
    let ovf = img.put(&bucket(&[(9, 30, 300), (0, 99, 99)], 0));
    // New table, B = 1: bucket 0 has an empty slot (1 = emptyOne) then a live entry and an
    // overflow bucket; bucket 1 holds one entry.
    let mut nb = bucket(&[(1, 77, 77), (7, 10, 100)], ovf);
    nb.extend(bucket(&[(8, 20, 200)], 0));
    let buckets = img.put(&nb);
    // Old table (B = 0, growing to 1): one bucket, not yet evacuated, with one live entry
    // and one slot already moved (evacuatedX = 2).
    let old_live = img.put(&bucket(&[(6, 40, 400), (2, 10, 100)], 0));
    let hmap = |img: &mut Image, count: u64, old: u64| {
        let mut h = vec![0u8; 48];
        h[0..8].copy_from_slice(&count.to_le_bytes());
        h[9] = 1; // B
        h[16..24].copy_from_slice(&buckets.to_le_bytes());
        h[24..32].copy_from_slice(&old.to_le_bytes());
        let at = img.put(&h);
        img.words(&[at])
    };
    let grown = hmap(&mut img, 3, 0);
    let growing = hmap(&mut img, 4, old_live);
    let m = img.mem();
    assert_eq!(
        sorted_pairs(&dec, &m, v(mt, grown)),
        vec![(10, 100), (20, 200), (30, 300)]
    );
    assert_eq!(dec.len(&m, v(mt, grown)).unwrap(), 3);
    assert_eq!(
        sorted_pairs(&dec, &m, v(mt, growing)),
        vec![(10, 100), (20, 200), (30, 300), (40, 400)]
    );
    let e = dec
        .map_get(&m, v(mt, growing), &MapKey::Int(40))
        .unwrap()
        .unwrap();
    assert_eq!(dec.int(&m, e).unwrap(), 400);
    assert!(dec
        .map_get(&m, v(mt, growing), &MapKey::Int(99))
        .unwrap()
        .is_none());
    // An evacuated old bucket (tophash[0] = evacuatedEmpty) is skipped whole.
    let mut evac = img.bytes.clone();
    let o = (old_live - BASE) as usize;
    evac[o] = 4;
    let m2 = SliceMemory::new(BASE, evac);
    assert_eq!(sorted_pairs(&dec, &m2, v(mt, growing)).len(), 3);
}

#[test]
fn a_cyclic_overflow_chain_stops_at_the_scan_limit() {
    let (mut dec, mt, _) = int_map_types(MapLayout::Buckets);
    dec.limits.max_entries_scanned = 1000;
    let mut img = Image::default();
    let b = img.put(&[0u8; 144]);
    img.patch(b, &bucket(&[(5, 1, 1)], b));
    let mut h = vec![0u8; 48];
    h[0] = 1;
    h[16..24].copy_from_slice(&b.to_le_bytes());
    let hm = img.put(&h);
    let mv = img.words(&[hm]);
    let m = img.mem();
    let e = dec.map_keys(&m, v(mt, mv)).unwrap_err();
    assert!(matches!(e, ValueError::Limit { .. }), "{e}");
    assert!(e.to_string().contains("max_entries_scanned"), "{e}");
    // A key found before the limit is still found.
    assert!(dec
        .map_get(&m, v(mt, mv), &MapKey::Int(1))
        .unwrap()
        .is_some());
}

/// One swiss group of map[int64]int64: ctrl word, 8 slots of {key, elem} (136 bytes).
fn group(slots: &[(u8, i64, i64)]) -> Vec<u8> {
    let mut g = vec![0u8; 136];
    g[..8].fill(0x80);
    for (i, (ctrl, k, e)) in slots.iter().enumerate() {
        g[i] = *ctrl;
        g[8 + i * 16..16 + i * 16].copy_from_slice(&k.to_le_bytes());
        g[16 + i * 16..24 + i * 16].copy_from_slice(&e.to_le_bytes());
    }
    g
}

#[test]
fn swiss_maps_read_small_groups_and_directories_of_tables() {
    let (dec, mt, _) = int_map_types(MapLayout::Swiss);
    let mut img = Image::default();
    // Small map: one group; slot 1 deleted (0xFE), slot 2 empty (0x80).
    let small_g = img.put(&group(&[
        (0x11, 1, 10),
        (0xFE, 2, 20),
        (0x80, 3, 30),
        (0x05, 4, 40),
    ]));
    let small = img.words(&[2, 0, small_g, 0, 0]);
    // Two tables; the first spans two directory entries (localDepth 1 < globalDepth 2).
    let mut g2 = group(&[(0x01, 5, 50)]);
    g2.extend(group(&[(0x7f, 6, 60), (0x02, 7, 70)]));
    let groups_a = img.put(&g2);
    let table_a = img.words(&[0, 0, groups_a, 1]);
    let groups_b = img.put(&group(&[(0x03, 8, 80)]));
    let table_b = img.words(&[0, 0, groups_b, 0]);
    let dir = img.words(&[table_a, table_a, table_b, table_b]);
    let big = img.words(&[4, 0, dir, 4, 2]);
    let pm = |img: &mut Image, m: u64| img.words(&[m]);
    let small_v = pm(&mut img, small);
    let big_v = pm(&mut img, big);
    let nil_v = img.words(&[0]);
    let m = img.mem();
    assert_eq!(
        sorted_pairs(&dec, &m, v(mt, small_v)),
        vec![(1, 10), (4, 40)]
    );
    assert_eq!(dec.len(&m, v(mt, small_v)).unwrap(), 2);
    assert_eq!(
        sorted_pairs(&dec, &m, v(mt, big_v)),
        vec![(5, 50), (6, 60), (7, 70), (8, 80)]
    );
    let e = dec
        .map_get(&m, v(mt, big_v), &MapKey::Uint(8))
        .unwrap()
        .unwrap();
    assert_eq!(dec.int(&m, e).unwrap(), 80);
    assert_eq!(dec.len(&m, v(mt, nil_v)).unwrap(), 0);
    assert!(dec.map_keys(&m, v(mt, nil_v)).unwrap().is_empty());
    assert!(matches!(
        dec.map_get(&m, v(mt, big_v), &MapKey::Str("x".into())),
        Err(ValueError::KeyKind { .. })
    ));
    let int = dec.types().by_name("int64").unwrap();
    assert_eq!(
        dec.map_keys(&m, v(int, big_v)).unwrap_err().to_string(),
        "map_keys() needs a map, not int64"
    );
    // A corrupt group mask is reported, not followed.
    let mut bad = img.bytes.clone();
    let o = (table_b - BASE) as usize + 24;
    bad[o..o + 8].copy_from_slice(&6u64.to_le_bytes());
    let mb = SliceMemory::new(BASE, bad);
    assert!(matches!(
        dec.map_keys(&mb, v(mt, big_v)),
        Err(ValueError::Implausible { .. })
    ));
}

#[test]
fn swiss_maps_with_string_keys_and_indirect_elements() {
    let mut ts = Types::default();
    let s = ts.basic("string");
    let int = ts.basic("int");
    let big = ts.array(int, 20);
    let mt = ts.map(s, big);
    let dec = ts.decoder(MapLayout::Swiss);
    let mut img = Image::default();
    let mut elem = vec![0u8; 160];
    elem[8..16].copy_from_slice(&42u64.to_le_bytes());
    let e = img.put(&elem);
    let kb = img.put(b"key");
    // Slot: string key (16) + pointer to the element (8) = 24 bytes.
    let mut g = vec![0x80u8; 8];
    g[3] = 0x12;
    g.resize(8 + 8 * 24, 0);
    let o = 8 + 3 * 24;
    g[o..o + 8].copy_from_slice(&kb.to_le_bytes());
    g[o + 8..o + 16].copy_from_slice(&3u64.to_le_bytes());
    g[o + 16..o + 24].copy_from_slice(&e.to_le_bytes());
    let ga = img.put(&g);
    let mh = img.words(&[1, 0, ga, 0, 0]);
    let mv = img.words(&[mh]);
    let m = img.mem();
    let got = dec
        .map_get(&m, v(mt, mv), &MapKey::Str("key".into()))
        .unwrap()
        .unwrap();
    assert_eq!(got.addr, e);
    assert_eq!(dec.int(&m, dec.index(&m, got, 1).unwrap()).unwrap(), 42);
    assert!(dec
        .map_get(&m, v(mt, mv), &MapKey::Str("kez".into()))
        .unwrap()
        .is_none());
}

#[test]
fn time_values_decode_both_encodings() {
    let mut ts = Types::default();
    let u64t = ts.basic("uint64");
    let i64t = ts.basic("int64");
    let tt = ts.strukt("time.Time", &[("wall", u64t), ("ext", i64t)]);
    let dec = ts.decoder(MapLayout::Swiss);
    let mut img = Image::default();
    // 2024-02-29T23:59:30.123456789Z without a monotonic reading: ext = seconds since year 1.
    let unix = 1_709_251_170i64;
    let plain = img.words(&[123_456_789, (unix + UNIX_TO_INTERNAL) as u64]);
    // The same instant with hasMonotonic: seconds since 1885 in bits 62..30.
    let since1885 = (unix + UNIX_TO_INTERNAL - WALL_TO_INTERNAL) as u64;
    let mono = img.words(&[1 << 63 | since1885 << 30 | 123_456_789, 5_000_000]);
    let m = img.mem();
    let want = unix * 1_000_000_000 + 123_456_789;
    assert_eq!(dec.unix_nano(&m, v(tt, plain)).unwrap(), want);
    assert_eq!(dec.unix_nano(&m, v(tt, mono)).unwrap(), want);
    assert_eq!(
        dec.render(&m, v(tt, mono)),
        "time.Time(2024-02-29T23:59:30.123456789Z)"
    );
}

#[test]
fn error_texts_of_the_common_error_types() {
    let mut ts = Types::default();
    let s = ts.basic("string");
    let uptr = ts.basic("uintptr");
    let errt = ts.iface("error", false);
    let es = ts.strukt("errors.errorString", &[("s", s)]);
    let pes = ts.ptr(es);
    let errno = ts.named("syscall.Errno", uptr);
    let pe = ts.strukt("io/fs.PathError", &[("Op", s), ("Path", s), ("Err", errt)]);
    let ppe = ts.ptr(pe);
    let custom = ts.strukt("main.E", &[("Code", uptr), ("Msg", s)]);
    let pcustom = ts.ptr(custom);
    let opaque = ts.strukt("main.NoText", &[("Code", uptr)]);
    let popaque = ts.ptr(opaque);
    let mut dec = ts.decoder(MapLayout::Swiss);
    dec.resolver = Some(Box::new(FakeResolver(vec![
        (0x900, pes),
        (0x908, errno),
        (0x910, ppe),
        (0x918, pcustom),
        (0x920, popaque),
    ])));
    let mut img = Image::default();
    let itab = |img: &mut Image, t: u64| img.words(&[0x1, t, 0]);
    let msg = img.string("boom");
    let e_string = {
        let it = itab(&mut img, 0x900);
        img.words(&[it, msg])
    };
    let two = img.words(&[2]);
    let e_errno = {
        let it = itab(&mut img, 0x908);
        img.words(&[it, two])
    };
    let op = img.string("open");
    let path = img.string("/x");
    let mut pe_bytes = Vec::new();
    for a in [op, path] {
        pe_bytes.extend_from_slice(img.header(a));
    }
    pe_bytes.extend_from_slice(img.header(e_errno));
    let pe_at = img.put(&pe_bytes);
    let e_path = {
        let it = itab(&mut img, 0x910);
        img.words(&[it, pe_at])
    };
    let mut c = 7u64.to_le_bytes().to_vec();
    c.extend_from_slice(img.header(msg));
    let c_at = img.put(&c);
    let e_custom = {
        let it = itab(&mut img, 0x918);
        img.words(&[it, c_at])
    };
    let e_opaque = {
        let it = itab(&mut img, 0x920);
        img.words(&[it, two])
    };
    let e_nil = img.words(&[0, 0]);
    let m = img.mem();
    let text = |at| dec.error_text(&m, v(errt, at)).unwrap();
    assert_eq!(text(e_string), "boom");
    assert_eq!(text(e_errno), "no such file or directory");
    assert_eq!(text(e_path), "open /x: no such file or directory");
    assert_eq!(text(e_custom), "boom");
    assert_eq!(text(e_opaque), "<*main.NoText value>");
    assert_eq!(text(e_nil), "<nil>");
}

#[test]
fn materialized_register_values_read_through_an_overlay() {
    let mut ts = Types::default();
    let s = ts.basic("string");
    let f = ts.basic("float64");
    let int = ts.basic("int");
    let p = ts.strukt("main.P", &[("X", int), ("Y", f), ("S", s)]);
    let table = ts.t.clone();
    let dec = ts.decoder(MapLayout::Swiss);
    let live = SliceMemory::new(0x5000, b"changed!".to_vec());
    let mut ints = [0u64; 9];
    ints[0] = 7; // RAX: X
    ints[1] = 0x5000; // RBX: S.ptr
    ints[2] = 5; // RCX: S.len
    let mut floats = [0u64; 15];
    floats[0] = 2.5f64.to_bits();
    let loc = Location::Registers(vec![
        RegPiece {
            reg: Reg::Rax,
            value_offset: 0,
            size: 8,
        },
        RegPiece {
            reg: Reg::X0,
            value_offset: 8,
            size: 8,
        },
        RegPiece {
            reg: Reg::Rbx,
            value_offset: 16,
            size: 8,
        },
        RegPiece {
            reg: Reg::Rcx,
            value_offset: 24,
            size: 8,
        },
    ]);
    let image = materialize(&table, p, &loc, &ints, &floats).unwrap();
    assert_eq!(image.len(), 32);
    let mut ov = Overlay::new(&live);
    let at = synthetic_addr(3);
    assert_eq!(at, SYNTHETIC_BASE + 3 * 0x10000);
    ov.add(at, image);
    // String bytes copied at the call win over what live memory holds now.
    ov.add(0x5000, b"hello".to_vec());
    let pv = v(p, at);
    assert_eq!(dec.int(&ov, dec.field(&ov, pv, "X").unwrap()).unwrap(), 7);
    assert_eq!(
        dec.float(&ov, dec.field(&ov, pv, "Y").unwrap()).unwrap(),
        2.5
    );
    assert_eq!(
        dec.str(&ov, dec.field(&ov, pv, "S").unwrap()).unwrap(),
        "hello"
    );
    // Narrow pieces fill only their bytes.
    let i32t = table.by_name("int").unwrap();
    let narrow = Location::Registers(vec![RegPiece {
        reg: Reg::R11,
        value_offset: 0,
        size: 4,
    }]);
    ints[8] = 0xffff_ffff_1234_5678;
    assert_eq!(
        materialize(&table, i32t, &narrow, &ints, &floats).unwrap(),
        vec![0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]
    );
    assert!(materialize(&table, p, &Location::Stack { offset: 8 }, &ints, &floats).is_none());
    let outside = Location::Registers(vec![RegPiece {
        reg: Reg::Rax,
        value_offset: 30,
        size: 8,
    }]);
    assert!(materialize(&table, p, &outside, &ints, &floats).is_none());
}

#[test]
fn render_cuts_long_and_wide_values_and_shows_nils() {
    let mut ts = Types::default();
    let s = ts.basic("string");
    let int = ts.basic("int");
    let ints = ts.slice(int);
    let mt = ts.map(s, int);
    let st = ts.strukt("main.S", &[("Name", s), ("Nums", ints), ("M", mt)]);
    let mut dec = ts.decoder(MapLayout::Swiss);
    dec.limits.max_items = 3;
    dec.limits.max_string = 4;
    let mut img = Image::default();
    let name = img.put(b"abcdefgh");
    let nums = img.words(&[1, 2, 3, 4, 5]);
    let sv = img.words(&[name, 8, nums, 5, 5, 0]);
    let nil_slice = img.words(&[name, 8, 0, 0, 0, 0]);
    let m = img.mem();
    assert_eq!(
        dec.render(&m, v(st, sv)),
        "main.S{Name: \"abcd…\", Nums: []int{1, 2, 3, …(5 total)}, M: map[string]int(nil)}"
    );
    assert_eq!(
        dec.render(&m, v(st, nil_slice)),
        "main.S{Name: \"abcd…\", Nums: []int(nil), M: map[string]int(nil)}"
    );
    assert_eq!(
        dec.render(&m, v(st, 0x42)),
        "<error: cannot read 48 bytes at 0x42: not mapped (freed or unmapped memory)>"
    );
}

/// Cyclic data as a hostile (or just ordinary) program has it: a node whose Next is itself, a
/// two-node loop, a slice whose element points back into the slice, and a slice header with an
/// absurd length. Every reader ends within the limits and renders a bounded text.
#[test]
fn cyclic_pointers_and_absurd_lengths_end_within_the_limits() {
    let mut ts = Types::default();
    let int = ts.basic("int");
    let s = ts.basic("string");
    let node = ts.strukt("main.Node", &[("V", int)]);
    let pnode = ts.ptr(node);
    let full = ts.strukt("main.Node", &[("V", int), ("Next", pnode), ("S", s)]);
    let mut t = ts.t.get(full).unwrap().clone();
    t.name = "main.Node".into();
    ts.t.set(node, t);
    let nodes = ts.slice(pnode);
    let dec = ts.decoder(MapLayout::Swiss);
    let limits = dec.limits();
    let mut img = Image::default();
    let text = img.put(b"node");
    // self: Node{V: 1, Next: &self, S: "node"}
    let me = img.words(&[1, 0, text, 4]);
    img.patch(me + 8, &me.to_le_bytes());
    // a → b → a
    let a = img.words(&[2, 0, text, 4]);
    let b = img.words(&[3, a, text, 4]);
    img.patch(a + 8, &b.to_le_bytes());
    // A []*Node whose backing array holds a pointer to the node that is the slice header's own
    // neighbour, and a header claiming 2^62 elements.
    let backing = img.words(&[me, a, b]);
    let sl = img.words(&[backing, 3, 3]);
    let absurd = img.words(&[backing, 1 << 62, 1 << 62]);
    let to_me = img.put(&me.to_le_bytes());
    let m = img.mem();
    for (what, val) in [
        ("self", v(node, me)),
        ("pointer to self", v(pnode, to_me)),
        ("two-node loop", v(node, a)),
        ("slice of loops", v(nodes, sl)),
    ] {
        let r = dec.render(&m, val);
        assert!(r.len() < 16 * 1024, "{what}: {} bytes: {r}", r.len());
        // Past max_depth a pointer is shown as its address: that is where a cycle ends.
        assert!(r.contains("(*main.Node)(0x"), "{what} is cut: {r}");
        assert!(
            r.matches("&main.Node{").count() <= limits.max_depth * 3,
            "{what}: {r}"
        );
    }
    assert!(dec.render(&m, v(nodes, absurd)).starts_with("<error"));
    // Following Next forever just goes round the loop, one bounded read at a time.
    let mut cur = v(node, a);
    for _ in 0..10_000 {
        cur = dec.deref(&m, dec.field(&m, cur, "Next").unwrap()).unwrap();
    }
    assert_eq!(dec.int(&m, dec.field(&m, cur, "V").unwrap()).unwrap(), 2);
    // The absurd slice is refused as implausible, not walked; a large but plausible one is
    // read only up to the item limit, and elements past its backing array fail to read.
    assert!(matches!(
        dec.len(&m, v(nodes, absurd)),
        Err(ValueError::Implausible { .. })
    ));
    assert!(dec.index(&m, v(nodes, absurd), 1).is_err());
    let large = img.words(&[backing, 1 << 30, 1 << 30]);
    let m = img.mem();
    assert_eq!(dec.len(&m, v(nodes, large)).unwrap(), 1 << 30);
    let r = dec.render(&m, v(nodes, large));
    assert!(r.contains(&format!("({} total)", 1u64 << 30)), "{r}");
    assert!(r.len() < 16 * 1024);
    let far = dec.index(&m, v(nodes, large), 1 << 29).unwrap();
    assert!(dec.deref(&m, far).is_err());
    assert!(dec.index(&m, v(nodes, large), i64::MAX).is_err());
    assert!(limits.max_items < 1 << 30);
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    /// Every type family, for the fuzzer to pick from.
    fn table() -> (Types, Vec<TypeId>) {
        let mut ts = Types::default();
        let s = ts.basic("string");
        let int = ts.basic("int");
        let i8t = ts.basic("int8");
        let f = ts.basic("float32");
        let b = ts.basic("bool");
        let c = ts.basic("complex128");
        let u = ts.basic("unsafe.Pointer");
        let ps = ts.ptr(s);
        let ss = ts.slice(s);
        let arr = ts.array(i8t, 4);
        let m1 = ts.map(s, int);
        let big = ts.array(int, 20);
        let m2 = ts.map(big, s);
        let any = ts.iface("interface {}", true);
        let errt = ts.iface("error", false);
        let node = ts.strukt("main.Node", &[("V", int)]);
        let pnode = ts.ptr(node);
        // Make it cyclic: Node{V int; Next *Node; S string; M map[string]int; A any}.
        let cyc = ts.strukt(
            "main.Node",
            &[("V", int), ("Next", pnode), ("S", s), ("M", m1), ("A", any)],
        );
        let mut t = ts.t.get(cyc).unwrap().clone();
        t.name = "main.Node".into();
        ts.t.set(node, t);
        let tt = ts.strukt("time.Time", &[("wall", int), ("ext", int)]);
        let ids = vec![
            s, int, i8t, f, b, c, u, ps, ss, arr, m1, m2, any, errt, node, pnode, tt,
        ];
        (ts, ids)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn no_method_panics_on_random_memory(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            off in 0u64..2100,
            pick in 0usize..17,
            idx in -2i64..40,
            swiss in any::<bool>(),
        ) {
            let (ts, ids) = table();
            let ty = ids[pick % ids.len()];
            let res: Vec<(u64, TypeId)> = ids.iter().enumerate()
                .map(|(i, t)| (BASE + 8 * i as u64, *t)).collect();
            let mut dec = ts.decoder(if swiss { MapLayout::Swiss } else { MapLayout::Buckets });
            dec.resolver = Some(Box::new(FakeResolver(res)));
            dec.limits.max_entries_scanned = 4096;
            // Sprinkle plausible pointers into the image so walks go somewhere.
            let mut bytes = bytes;
            for (i, chunk) in bytes.chunks_mut(8).enumerate() {
                if chunk.len() == 8 && chunk[7] & 1 == 1 {
                    let p = BASE + (u64::from(chunk[0]) * 8) % 2048 + (i as u64 % 3);
                    chunk.copy_from_slice(&p.to_le_bytes());
                }
            }
            let m = SliceMemory::new(BASE, bytes);
            let val = v(ty, BASE + off);
            let _ = dec.str(&m, val);
            let _ = dec.int(&m, val);
            let _ = dec.uint(&m, val);
            let _ = dec.float(&m, val);
            let _ = dec.bool(&m, val);
            let _ = dec.complex(&m, val);
            let _ = dec.is_nil(&m, val);
            let _ = dec.deref(&m, val);
            let _ = dec.field(&m, val, "Next");
            let _ = dec.field(&m, val, "S");
            let _ = dec.index(&m, val, idx);
            let _ = dec.len(&m, val);
            let _ = dec.cap(&m, val);
            let _ = dec.bytes(&m, val, 64);
            let _ = dec.elem(&m, val);
            let _ = dec.dynamic_type_name(&m, val);
            let _ = dec.error_text(&m, val);
            let _ = dec.map_keys(&m, val);
            let _ = dec.map_get(&m, val, &MapKey::Str("k".into()));
            let _ = dec.map_get(&m, val, &MapKey::Int(idx));
            let _ = dec.unix_nano(&m, val);
            let r = dec.render(&m, val);
            prop_assert!(r.len() <= 64 * 1024 + 4);
            let _ = dec.type_name(val);
        }

        #[test]
        fn materialize_never_panics_and_stays_within_the_type(
            pieces in proptest::collection::vec((0usize..24, 0u64..64, 0u64..10), 0..12),
            regs in proptest::collection::vec(any::<u64>(), 24),
            pick in 0usize..17,
        ) {
            let (ts, ids) = table();
            let ty = ids[pick % ids.len()];
            let all: Vec<Reg> = Reg::INT_ARGS.into_iter().chain(Reg::FLOAT_ARGS).collect();
            let loc = Location::Registers(
                pieces
                    .iter()
                    .map(|&(r, value_offset, size)| RegPiece { reg: all[r], value_offset, size })
                    .collect(),
            );
            let ints: [u64; 9] = regs[..9].try_into().unwrap();
            let floats: [u64; 15] = regs[9..].try_into().unwrap();
            if let Some(img) = materialize(&ts.t, ty, &loc, &ints, &floats) {
                prop_assert_eq!(img.len() as u64, ts.t.get(ty).unwrap().size);
            }
        }
    }
}

#[test]
fn map_layout_follows_the_release_and_its_experiments() {
    let v = |m| GoVersion::new(1, m, 0);
    assert_eq!(MapLayout::for_version(&v(23)), MapLayout::Buckets);
    assert_eq!(MapLayout::for_version(&v(24)), MapLayout::Swiss);
    let noswiss = Some("noswissmap");
    assert_eq!(MapLayout::for_build(&v(24), noswiss), MapLayout::Buckets);
    assert_eq!(
        MapLayout::for_build(&v(25), Some("x,noswissmap")),
        MapLayout::Buckets
    );
    assert_eq!(MapLayout::for_build(&v(26), noswiss), MapLayout::Swiss);
    assert_eq!(
        MapLayout::for_build(&v(27), Some("mapsplitgroup")),
        MapLayout::SwissSplit
    );
    assert_eq!(
        MapLayout::for_build(&v(26), Some("mapsplitgroup")),
        MapLayout::Swiss
    );
    assert_eq!(MapLayout::for_build(&v(21), None), MapLayout::Buckets);
}

#[test]
fn split_groups_hold_all_keys_then_all_elements() {
    let mut ts = Types::default();
    let s = ts.basic("string");
    let empty = ts.strukt("struct {}", &[]);
    let t = |id: TypeId| ts.t.get(id).unwrap().clone();
    let l = SlotLayout::compute(&t(s), &t(empty));
    assert_eq!((l.keys_off, l.elems_off, l.split_group_size), (8, 136, 144));

    let (dec, mt, _) = int_map_types(MapLayout::SwissSplit);
    let mut g = vec![0x80u8; 8];
    g[2] = 0x33;
    g.resize(136, 0);
    g[8 + 2 * 8..8 + 3 * 8].copy_from_slice(&5i64.to_le_bytes());
    g[72 + 2 * 8..72 + 3 * 8].copy_from_slice(&55i64.to_le_bytes());
    let mut img = Image::default();
    let ga = img.put(&g);
    let mh = img.words(&[1, 0, ga, 0, 0]);
    let mv = img.words(&[mh]);
    let m = img.mem();
    assert_eq!(sorted_pairs(&dec, &m, v(mt, mv)), vec![(5, 55)]);
}

#[test]
fn all_maps_of_one_rendering_share_one_scan_budget() {
    let mut ts = Types::default();
    let i = ts.basic("int64");
    let mt = ts.map(i, i);
    let ms = ts.slice(mt);
    let mut dec = ts.decoder(MapLayout::Buckets);
    dec.limits.max_entries_scanned = 800;
    dec.limits.max_items = 64;
    let mut img = Image::default();
    // A bucket whose overflow pointer is itself and whose slots are all empty: an endless chain.
    let b = img.put(&[0u8; 144]);
    img.patch(b, &bucket(&[], b));
    let mut h = vec![0u8; 48];
    h[0] = 1;
    h[16..24].copy_from_slice(&b.to_le_bytes());
    let hm = img.put(&h);
    let maps = img.words(&[hm; 10]);
    let sl = img.words(&[maps, 10, 10]);
    let m = img.mem();
    let out = dec.render(&m, v(ms, sl));
    // The first map spends the budget (800 slots = 100 buckets); the nine others stop at once.
    assert_eq!(out.matches("stopped after 800").count(), 10, "{out}");
    // A later call starts with a fresh budget.
    let again = dec.render(&m, v(mt, maps));
    assert!(again.contains("stopped after 800"), "{again}");
    assert!(dec.map_keys(&m, v(mt, maps)).is_err());
}

/// A resolver that also reports descriptors' DirectIface flags.
struct FlagResolver(Vec<(u64, TypeId, bool)>);

impl TypeResolver for FlagResolver {
    fn resolve(&self, addr: u64, _table: &mut TypeTable) -> Option<TypeId> {
        self.0.iter().find(|e| e.0 == addr).map(|e| e.1)
    }
    fn direct_iface(&self, addr: u64) -> Option<bool> {
        self.0.iter().find(|e| e.0 == addr).map(|e| e.2)
    }
}

#[test]
fn the_descriptors_direct_iface_flag_wins_over_the_structural_rule() {
    let mut ts = Types::default();
    let int = ts.basic("int");
    let pint = ts.ptr(int);
    let empty = ts.strukt("struct {}", &[]);
    // Go 1.26+ stores struct{ _ struct{}; P *int } directly (8 bytes, all pointer); 1.25 did not.
    let wrapped = ts.strukt("main.W", &[("_", empty), ("P", pint)]);
    let any = ts.iface("interface {}", true);
    let mut dec = ts.decoder(MapLayout::Swiss);
    assert!(dec.is_direct_iface(pint));
    assert!(dec.is_direct_iface(wrapped));
    assert!(!dec.is_direct_iface(int));
    dec.resolver = Some(Box::new(FlagResolver(vec![(0x900, wrapped, false)])));
    let mut img = Image::default();
    let seven = img.words(&[7]);
    let boxed = img.words(&[seven]);
    let e = img.words(&[0x900, boxed]);
    let m = img.mem();
    let c = dec.elem(&m, v(any, e)).unwrap();
    assert_eq!(
        c.addr, boxed,
        "the flag says indirect: the data word points at the value"
    );
    let p = dec.field(&m, c, "P").unwrap();
    assert_eq!(dec.int(&m, dec.deref(&m, p).unwrap()).unwrap(), 7);
}
