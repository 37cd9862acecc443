//! How many records per second the collector turns into spans with no script and with a typical
//! script (two arguments decoded, a span started, two attributes set). Ignored by default: run
//! with `cargo test --release --test scripts_throughput -- --ignored --nocapture`.

use std::rc::Rc;
use std::time::Instant;

use gohook::clock::TscClock;
use gohook::collector::{Collector, Event, EventKind, SpanSink, Stats};
use gohook::script::ctx::HookInfo;
use gohook::script::types::{FuncTypes, Slot};
use gohook::script::{loader, Origin, Runtime};
use gohook::spans::Span;
use gostrings::abi::{Location, Reg, RegPiece};
use gostrings::value::{Decoder, Limits, MapLayout};
use gostrings::{GoType, Kind, MemoryReader, Shape, SliceMemory, TypeTable};

struct Count(u64);
impl SpanSink for &mut Count {
    fn emit(&mut self, _span: Span) -> std::io::Result<()> {
        self.0 += 1;
        Ok(())
    }
    fn finish(&mut self, _stats: &Stats) -> std::io::Result<()> {
        Ok(())
    }
}

const SCRIPT: &str = r#"
const HOOK = "main.handle";
fn on_enter(ctx) {
    let path = ctx.arg("path").str();
    ctx.span_start("GET " + path, "server");
    ctx.set("url.path", path);
    ctx.set("n", ctx.arg("n").int());
}
"#;

const PATH_ADDR: u64 = 0x10000;

fn runtime() -> Runtime {
    let mut table = TypeTable::new();
    let string = table.add(GoType {
        name: "string".into(),
        kind: Kind::String,
        size: 16,
        align: 8,
        shape: Shape::Basic,
    });
    let int = table.add(GoType {
        name: "int".into(),
        kind: Kind::Int,
        size: 8,
        align: 8,
        shape: Shape::Basic,
    });
    let piece = |reg, value_offset| RegPiece {
        reg,
        value_offset,
        size: 8,
    };
    let types = FuncTypes {
        params: vec![
            Slot {
                name: "path".into(),
                ty: string,
                loc: Location::Registers(vec![piece(Reg::Rax, 0), piece(Reg::Rbx, 8)]),
            },
            Slot {
                name: "n".into(),
                ty: int,
                loc: Location::Registers(vec![piece(Reg::Rcx, 0)]),
            },
        ],
        results: vec![],
    };
    let script = loader::load_source("bench.rhai", SCRIPT, Origin::Bundled).unwrap();
    let hooks = vec![HookInfo {
        function: "main.handle".into(),
        types: Ok(types),
        string_ptr_regs: vec![0],
        paths: vec![],
    }];
    let mem: Rc<dyn MemoryReader> = Rc::new(SliceMemory::new(PATH_ADDR, b"/users/42".to_vec()));
    let decoder = Decoder::new(table, None, MapLayout::Swiss, Limits::default());
    Runtime::new(vec![script], vec![vec![0]], hooks, decoder, mem)
}

fn events(calls: u64) -> Vec<Event> {
    let mut out = Vec::with_capacity(2 * calls as usize);
    for i in 0..calls {
        let mut ints = [0u64; 9];
        ints[0] = PATH_ADDR;
        ints[1] = 9;
        ints[2] = i;
        let base = Event {
            hook: 0,
            kind: EventKind::Entry,
            tsc: 10 * i + 1,
            goid: 1 + i % 8,
            parent_goid: 0,
            depth: 100,
            int_regs: ints,
            float_regs: [0; 15],
            strings: vec![(9, b"/users/42".to_vec())],
        };
        out.push(base.clone());
        out.push(Event {
            kind: EventKind::Exit,
            tsc: 10 * i + 5,
            strings: vec![],
            ..base
        });
    }
    out
}

fn rate(with_script: bool, calls: u64) -> f64 {
    let evs = events(calls);
    let mut sink = Count(0);
    let clock = TscClock::calibrate(std::time::Duration::from_millis(5));
    let start = Instant::now();
    let mut c = Collector::new(vec!["main.handle".into()], clock, &mut sink);
    if with_script {
        c = c.with_scripts(runtime());
    }
    for e in evs {
        c.push(e);
    }
    let stats = c.finish().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(stats.spans, calls);
    assert_eq!(stats.script_errors, 0);
    (2 * calls) as f64 / secs
}

#[test]
#[ignore = "a measurement, not a check: run it with --ignored --nocapture"]
fn records_per_second_without_and_with_a_typical_script() {
    let calls = 200_000;
    let plain = rate(false, calls);
    let scripted = rate(true, calls);
    println!("records/s: no script {plain:.0}, typical script {scripted:.0}");
    assert!(scripted > 0.0 && plain > scripted);
}
