//! `gohook info`: what a Go binary is, in a few lines (or one JSON object).

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::hex;
use super::target::Target;
use crate::cli::InfoArgs;

/// The `--json` document. Addresses are hex strings; `text_*` include the load bias with --pid.
#[derive(Debug, Serialize)]
struct Info {
    target: String,
    pid: Option<i32>,
    go_version: String,
    /// False when buildinfo is missing and the version is a lower bound from the pclntab layout.
    go_version_exact: bool,
    main_module: Option<String>,
    main_module_version: Option<String>,
    main_package: Option<String>,
    build_settings: BTreeMap<String, String>,
    dependencies: Vec<Dependency>,
    pie: bool,
    stripped: bool,
    dwarf: bool,
    functions: usize,
    text_start: String,
    text_end: String,
    load_bias: String,
    pclntab: String,
}

#[derive(Debug, Serialize)]
struct Dependency {
    path: String,
    version: String,
    replaced_by: Option<String>,
}

/// Runs `gohook info`.
pub fn run(args: &InfoArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let t = Target::open(args.binary.as_deref(), args.pid)?;
    let info = collect(&t);
    if args.json {
        serde_json::to_writer(&mut *out, &info)?;
        writeln!(out)?;
    } else {
        print_text(&info, out)?;
    }
    Ok(())
}

fn collect(t: &Target) -> Info {
    let b = &t.binary;
    let bi = b.buildinfo.as_ref();
    let range = b.text_range();
    Info {
        target: t.label.clone(),
        pid: t.pid,
        go_version: bi.map_or_else(
            || format!("{}+", b.go_version()),
            |bi| bi.go_version.clone(),
        ),
        go_version_exact: b.go_version_is_exact(),
        main_module: bi.map(|bi| bi.main.path.clone()).filter(|s| !s.is_empty()),
        main_module_version: bi
            .map(|bi| bi.main.version.clone())
            .filter(|s| !s.is_empty()),
        main_package: bi.map(|bi| bi.path.clone()).filter(|s| !s.is_empty()),
        build_settings: bi
            .map(|bi| bi.settings.iter().cloned().collect())
            .unwrap_or_default(),
        dependencies: bi
            .map(|bi| {
                bi.deps
                    .iter()
                    .map(|d| Dependency {
                        path: d.path.clone(),
                        version: d.version.clone(),
                        replaced_by: d
                            .replace
                            .as_ref()
                            .map(|r| format!("{} {}", r.path, r.version).trim().to_owned()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        pie: b.is_pie(),
        stripped: b.is_stripped(),
        dwarf: b.has_dwarf(),
        functions: b.pclntab.len(),
        text_start: hex(t.live(range.start)),
        text_end: hex(t.live(range.end)),
        load_bias: hex(t.bias),
        pclntab: hex(t.live(b.pclntab.header_addr())),
    }
}

fn print_text(i: &Info, out: &mut dyn Write) -> std::io::Result<()> {
    let yes = |b: bool| if b { "yes" } else { "no" };
    writeln!(out, "target:        {}", i.target)?;
    let exact = if i.go_version_exact {
        ""
    } else {
        " (no buildinfo: lower bound from the pclntab layout)"
    };
    writeln!(out, "go version:    {}{exact}", i.go_version)?;
    if let Some(m) = &i.main_module {
        let v = i.main_module_version.as_deref().unwrap_or("");
        writeln!(out, "main module:   {m} {v}")?;
    }
    if let Some(p) = &i.main_package {
        writeln!(out, "main package:  {p}")?;
    }
    writeln!(out, "pie:           {}", yes(i.pie))?;
    writeln!(out, "stripped:      {}", yes(i.stripped))?;
    writeln!(out, "dwarf:         {}", yes(i.dwarf))?;
    writeln!(out, "functions:     {}", i.functions)?;
    writeln!(out, "text:          {}-{}", i.text_start, i.text_end)?;
    if i.pid.is_some() {
        writeln!(out, "load bias:     {}", i.load_bias)?;
    }
    writeln!(out, "pclntab:       {}", i.pclntab)?;
    if !i.dependencies.is_empty() {
        writeln!(out, "dependencies:  {}", i.dependencies.len())?;
        for d in &i.dependencies {
            match &d.replaced_by {
                Some(r) => writeln!(out, "  {} {} => {r}", d.path, d.version)?,
                None => writeln!(out, "  {} {}", d.path, d.version)?,
            }
        }
    }
    if !i.build_settings.is_empty() {
        writeln!(out, "build settings:")?;
        for (k, v) in &i.build_settings {
            writeln!(out, "  {k}={v}")?;
        }
    }
    Ok(())
}
