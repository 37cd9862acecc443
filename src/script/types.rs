//! Where each hooked function's parameters and results are, and of what Go type: from DWARF when
//! the binary describes the function, otherwise from a script's `SIGNATURE` (Go syntax, named
//! types resolved from DWARF types or the runtime type metadata). A `SIGNATURE` given while DWARF
//! describes the function is ignored: DWARF is what the compiler really did.
//!
//! All hooks share one [`TypeTable`], handed to the value decoder afterwards.

use gostrings::abi::{self, Location};
use gostrings::dwarf::Dwarf;
use gostrings::moduledata::ModuleData;
use gostrings::signature::{self, NamedTypes};
use gostrings::{GoBinary, RuntimeTypes, TypeId, TypeTable};

/// One parameter or result: its name, type and where it is at the record.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The Go name (`req`; `~p0`/`~r0` when unnamed).
    pub name: String,
    /// The type in the shared table.
    pub ty: TypeId,
    /// Registers (recorded) or stack (not recorded).
    pub loc: Location,
}

/// A hooked function's parameters (receiver first) and results.
#[derive(Debug, Clone, Default)]
pub struct FuncTypes {
    /// Parameters at entry.
    pub params: Vec<Slot>,
    /// Results at return.
    pub results: Vec<Slot>,
}

/// What one hook asks of the type sources: the function, and the first `SIGNATURE` of a script
/// hooking it (with the script's name for messages).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The Go function name.
    pub function: &'a str,
    /// `(script name, SIGNATURE text)`.
    pub signature: Option<(&'a str, &'a str)>,
}

/// A `SIGNATURE` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{script}: SIGNATURE for {function}: {message}")]
pub struct SignatureProblem {
    /// The script that gave it.
    pub script: String,
    /// The hooked function.
    pub function: String,
    /// What is wrong (from the parser or the ABI assignment).
    pub message: String,
}

/// The types of every hook, in one table.
#[derive(Debug, Default)]
pub struct TypeBook {
    /// The shared table.
    pub table: TypeTable,
    /// Per hook: the types, or why there are none (said when a script asks for an argument).
    pub funcs: Vec<Result<FuncTypes, String>>,
}

/// Named types for signatures: DWARF's first (when present), then the runtime type metadata.
struct Chain<'a, A: NamedTypes, B: NamedTypes> {
    first: Option<&'a mut A>,
    second: Option<&'a mut B>,
}

impl<A: NamedTypes, B: NamedTypes> NamedTypes for Chain<'_, A, B> {
    fn resolve(&mut self, name: &str, table: &mut TypeTable) -> Option<TypeId> {
        if let Some(a) = self.first.as_deref_mut() {
            if let Some(t) = a.resolve(name, table) {
                return Some(t);
            }
        }
        self.second.as_deref_mut()?.resolve(name, table)
    }
}

/// The runtime type metadata of `bin`, read from the file (link-time addresses).
pub fn runtime_types(bin: &GoBinary) -> Option<RuntimeTypes<gostrings::ElfFile>> {
    let version = bin.go_version();
    let md = ModuleData::from_elf(&bin.elf, bin.pclntab.header_addr(), Some(&version)).ok()?;
    Some(RuntimeTypes::new(bin.elf.clone(), md, Some(&version)))
}

fn slots(
    names: impl Iterator<Item = Option<String>>,
    tys: &[TypeId],
    locs: &[Location],
    unnamed: &str,
) -> Vec<Slot> {
    names
        .zip(tys.iter().zip(locs))
        .enumerate()
        .map(|(i, (n, (ty, loc)))| Slot {
            name: n
                .filter(|n| !n.is_empty() && n != "_")
                .unwrap_or_else(|| format!("~{unnamed}{i}")),
            ty: *ty,
            loc: loc.clone(),
        })
        .collect()
}

/// Resolves the types of every hook in `requests` (in hook order). A `SIGNATURE` that does not
/// parse or cannot be assigned is an error when `strict`; otherwise that hook gets no types.
/// `strict(i)` says whether request `i`'s signature comes from a user's script (bundled scripts
/// are skipped quietly instead).
pub fn resolve(
    bin: &GoBinary,
    dwarf: Option<&Dwarf>,
    requests: &[Request<'_>],
    strict: impl Fn(usize) -> bool,
) -> Result<TypeBook, SignatureProblem> {
    let mut book = TypeBook::default();
    let mut dtypes = dwarf.map(Dwarf::types);
    // The runtime metadata is found by a scan of the data: only when a signature needs it.
    let rtypes = if requests.iter().any(|r| r.signature.is_some()) {
        runtime_types(bin)
    } else {
        None
    };
    let mut rnamed = rtypes.as_ref().map(RuntimeTypes::named_types);
    for (i, req) in requests.iter().enumerate() {
        let from_dwarf = match (dwarf, dtypes.as_mut()) {
            (Some(d), Some(dt)) => d.function(req.function).map(|entry| {
                dt.function(entry, &mut book.table)
                    .map_err(|e| format!("DWARF of {}: {e}", req.function))
                    .and_then(|f| {
                        let params: Vec<_> = f.params.iter().map(|p| p.ty).collect();
                        let results: Vec<_> = f.results.iter().map(|p| p.ty).collect();
                        let frame = abi::assign(
                            &book.table,
                            &params,
                            &results,
                            abi::dictionary_index(req.function),
                        )
                        .map_err(|e| format!("{}: {e}", req.function))?;
                        Ok(FuncTypes {
                            params: slots(
                                f.params.iter().map(|p| Some(p.name.clone())),
                                &params,
                                &frame.params,
                                "p",
                            ),
                            results: slots(
                                f.results.iter().map(|p| Some(p.name.clone())),
                                &results,
                                &frame.results,
                                "r",
                            ),
                        })
                    })
            }),
            _ => None,
        };
        let got = match (from_dwarf, req.signature) {
            (Some(r), _) => r,
            (None, Some((script, text))) => {
                let mut named = Chain {
                    first: dtypes.as_mut(),
                    second: rnamed.as_mut(),
                };
                let parsed = signature::parse(text, &mut named, &mut book.table)
                    .map_err(|e| e.to_string())
                    .and_then(|sig| {
                        let frame = abi::assign(
                            &book.table,
                            &sig.param_types(),
                            &sig.result_types(),
                            abi::dictionary_index(req.function),
                        )
                        .map_err(|e| e.to_string())?;
                        Ok(FuncTypes {
                            params: slots(
                                sig.params.iter().map(|p| p.name.clone()),
                                &sig.param_types(),
                                &frame.params,
                                "p",
                            ),
                            results: slots(
                                sig.results.iter().map(|p| p.name.clone()),
                                &sig.result_types(),
                                &frame.results,
                                "r",
                            ),
                        })
                    });
                match parsed {
                    Ok(f) => Ok(f),
                    Err(message) if strict(i) => {
                        return Err(SignatureProblem {
                            script: script.to_owned(),
                            function: req.function.to_owned(),
                            message,
                        })
                    }
                    Err(message) => Err(format!("{script}: SIGNATURE: {message}")),
                }
            }
            (None, None) => Err(format!(
                "no parameter types for {}: the binary has no DWARF for it; give the script a SIGNATURE",
                req.function
            )),
        };
        book.funcs.push(got);
    }
    Ok(book)
}
