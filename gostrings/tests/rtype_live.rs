//! The same readers work on a live process: a PIE program loaded at a random base, read through
//! `/proc/PID/mem`, yields the moduledata and type layouts the file gives, shifted by the load
//! bias.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};

use fixtures::{Toolchain, Variant};
use gostrings::moduledata::{ModuleData, SearchSpace};
use gostrings::rtype::RuntimeTypes;
use gostrings::{ElfFile, MemError, MemoryReader, Pclntab, Shape, TypeTable};

/// Reads a child's memory through `/proc/PID/mem` (the injector uses `process_vm_readv`).
struct ProcMem(File);

impl MemoryReader for ProcMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        match self.0.read_exact_at(buf, addr) {
            Ok(()) => Ok(()),
            Err(_) => Err(MemError::Unmapped {
                addr,
                len: buf.len(),
            }),
        }
    }
}

/// The load bias of `exe` in process `pid`: where its first mapping starts minus the ELF's
/// lowest link-time address.
fn load_bias(pid: u32, exe: &std::path::Path, elf: &ElfFile) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let exe = exe.canonicalize().unwrap();
    let line = maps
        .lines()
        .find(|l| {
            l.ends_with(exe.to_str().unwrap()) && l.split_whitespace().nth(2) == Some("00000000")
        })
        .expect("the executable's first mapping");
    let start = u64::from_str_radix(line.split('-').next().unwrap(), 16).unwrap();
    start - elf.link_base()
}

#[test]
fn a_live_pie_process_yields_the_same_layouts_as_its_file_shifted_by_the_load_bias() {
    let exe = fixtures::must_build("values", Variant::Pie, &Toolchain::installed());
    let elf = ElfFile::open(&exe).unwrap();
    let pcl = Pclntab::from_elf(&elf).unwrap();
    let file_md = ModuleData::from_elf(&elf, pcl.header_addr(), None).unwrap();

    let mut child = Command::new(&exe)
        .arg("-wait")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let pid = child.id();
    let bias = load_bias(pid, &exe, &elf);
    let mem = ProcMem(File::open(format!("/proc/{pid}/mem")).unwrap());
    let space = SearchSpace::from_elf(&elf).shifted(bias);
    let live_md = ModuleData::find(&mem, pcl.header_addr() + bias, &space, None);

    let result = std::panic::catch_unwind(|| {
        let live_md = live_md.unwrap();
        assert_ne!(bias, 0, "a PIE should load away from its link address");
        assert_eq!(live_md.addr, file_md.addr + bias);
        assert_eq!(live_md.types, file_md.types + bias);
        assert_eq!(live_md.text, file_md.text + bias);
        assert_eq!(live_md.typelinks, file_md.typelinks);
        assert_eq!(
            live_md
                .itablinks
                .iter()
                .map(|a| a - bias)
                .collect::<Vec<_>>(),
            file_md.itablinks
        );
        let live = RuntimeTypes::new(&mem, live_md, None);
        let file = RuntimeTypes::new(&elf, file_md.clone(), None);
        // Enumeration (LEAQ targets in text, pointer words in data) finds the same descriptors.
        let mut on_file = file.all_types();
        let mut in_process: Vec<u64> = live.all_types().into_iter().map(|a| a - bias).collect();
        on_file.sort_unstable();
        in_process.sort_unstable();
        assert!(on_file.len() > 500);
        // (Globals assigned at run time may add references; none found in the file may vanish.)
        let missing: Vec<u64> = on_file
            .iter()
            .copied()
            .filter(|a| in_process.binary_search(a).is_err())
            .collect();
        assert!(
            missing.is_empty(),
            "{} descriptors found in the file but not in the process",
            missing.len()
        );
        for name in ["main.User", "main.Outer", "main.Derived"] {
            let (mut a, mut b) = (TypeTable::new(), TypeTable::new());
            let la = live.lookup(name, &mut a).unwrap();
            let fb = file.lookup(name, &mut b).unwrap();
            let fields = |t: &TypeTable, id| match &t.get(id).unwrap().shape {
                Shape::Struct { fields } => fields
                    .iter()
                    .map(|f| (f.name.clone(), f.offset, t.get(f.ty).unwrap().name.clone()))
                    .collect::<Vec<_>>(),
                s => panic!("{name}: {s:?}"),
            };
            assert_eq!(fields(&a, la), fields(&b, fb), "{name}");
            assert_eq!(live.find(name).unwrap(), file.find(name).unwrap() + bias);
        }
    });
    // The child waits on stdin for as long as we read its memory; then let it finish.
    let _ = child.stdin.take().unwrap().write_all(b"\n");
    let _ = child.kill();
    let _ = child.wait();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
