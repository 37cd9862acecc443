//! Loading hook scripts: reading files (or a directory of `.rhai` files), compiling them in the
//! sandbox, running their top level once, and reading the `HOOK`, `SIGNATURE` and `CAPTURE`
//! constants.
//! A syntax error is reported as `<file>:<line>:<col>: <message>` before anything is started.

use std::path::{Path, PathBuf};

use rhai::{Dynamic, Engine, Scope, AST};

use super::sandbox;

/// Where a script came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Given with `-s` (its HOOK must match a hookable function).
    User(PathBuf),
    /// Shipped with gohook (skipped quietly when its functions are absent).
    Bundled,
}

/// A compiled script, its top level run, ready to be called per event.
pub struct Script {
    /// Its name in messages: the path as given, or `bundled:<file>`.
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// The `HOOK` patterns (exact names or globs).
    pub hooks: Vec<String>,
    /// The `SIGNATURE` text, if given.
    pub signature: Option<String>,
    /// The `CAPTURE` paths: fields behind pointer parameters copied at the call.
    pub capture: Vec<crate::capture::PathRequest>,
    /// True when it defines `on_enter(ctx)`.
    pub has_enter: bool,
    /// True when it defines `on_leave(ctx)`.
    pub has_leave: bool,
    pub(crate) engine: Engine,
    pub(crate) ast: AST,
    pub(crate) scope: Scope<'static>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.name)
            .field("hooks", &self.hooks)
            .field("signature", &self.signature)
            .finish()
    }
}

/// Why a script could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or directory is unreadable.
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A directory without `.rhai` files.
    #[error("{path}: no .rhai files in this directory")]
    EmptyDirectory {
        /// The directory.
        path: String,
    },
    /// The script does not parse.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The script's name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser says.
        message: String,
    },
    /// It parses but is not a usable hook script (no HOOK, a failing top level, …).
    #[error("{file}: {message}")]
    Invalid {
        /// The script's name.
        file: String,
        /// What is wrong.
        message: String,
    },
}

impl LoadError {
    /// True for errors in what the user wrote (gohook exits with status 2, as for usage errors).
    pub fn is_usage(&self) -> bool {
        !matches!(self, LoadError::Read { .. })
    }
}

/// Loads every script named by `paths` (files, or directories of `.rhai` files taken in name
/// order), in the order given.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Script>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        let read_err = |source| LoadError::Read {
            path: p.display().to_string(),
            source,
        };
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(read_err)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "rhai") && f.is_file())
                .collect();
            if files.is_empty() {
                return Err(LoadError::EmptyDirectory {
                    path: p.display().to_string(),
                });
            }
            files.sort();
            for f in files {
                out.push(load_file(&f)?);
            }
        } else {
            out.push(load_file(p)?);
        }
    }
    Ok(out)
}

fn load_file(path: &Path) -> Result<Script, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_source(
        &path.display().to_string(),
        &source,
        Origin::User(path.to_owned()),
    )
}

/// The bundled scripts, compiled. A bundled script that does not load is a bug in gohook: it is
/// reported as an error like a user's script.
pub fn load_bundled() -> Result<Vec<Script>, LoadError> {
    super::bundled::SCRIPTS
        .iter()
        .map(|(name, src)| load_source(&format!("bundled:{name}"), src, Origin::Bundled))
        .collect()
}

/// Compiles `source` as the script `name`, runs its top level once and reads its constants.
pub fn load_source(name: &str, source: &str, origin: Origin) -> Result<Script, LoadError> {
    let engine = sandbox::engine(name);
    let mut ast = engine.compile(source).map_err(|e| LoadError::Syntax {
        file: name.to_owned(),
        line: e.position().line().unwrap_or(0),
        column: e.position().position().unwrap_or(0),
        message: e.err_type().to_string(),
    })?;
    ast.set_source(name);
    let invalid = |message: String| LoadError::Invalid {
        file: name.to_owned(),
        message,
    };
    let mut scope = Scope::new();
    engine.run_ast_with_scope(&mut scope, &ast).map_err(|e| {
        let d = super::runtime::describe(&e);
        LoadError::Invalid {
            file: match d.line {
                Some(l) => format!("{name}:{l}"),
                None => name.to_owned(),
            },
            message: d.message,
        }
    })?;
    let hooks = match scope.get_value::<Dynamic>("HOOK") {
        None => return Err(invalid(
            "no HOOK constant: say which functions it hooks, e.g. const HOOK = \"main.handle\";"
                .into(),
        )),
        Some(v) => hook_patterns(v).map_err(invalid)?,
    };
    let signature = match scope.get_value::<Dynamic>("SIGNATURE") {
        None => None,
        Some(v) if v.is_string() => Some(v.to_string()),
        Some(v) => {
            return Err(invalid(format!(
                "SIGNATURE must be a string, not {}",
                v.type_name()
            )))
        }
    };
    let capture = match scope.get_value::<Dynamic>("CAPTURE") {
        None => Vec::new(),
        Some(v) => capture_paths(v).map_err(invalid)?,
    };
    let has = |f: &str| {
        ast.iter_functions()
            .any(|m| m.name == f && m.params.len() == 1)
    };
    let (has_enter, has_leave) = (has("on_enter"), has("on_leave"));
    if !has_enter && !has_leave {
        return Err(invalid(
            "defines neither on_enter(ctx) nor on_leave(ctx)".into(),
        ));
    }
    Ok(Script {
        name: name.to_owned(),
        origin,
        hooks,
        signature,
        capture,
        has_enter,
        has_leave,
        engine,
        ast,
        scope,
    })
}

fn capture_paths(v: Dynamic) -> Result<Vec<crate::capture::PathRequest>, String> {
    let bad = || "CAPTURE must be an array of paths such as \"req.URL.Path\"".to_owned();
    let list = v.into_array().map_err(|_| bad())?;
    list.into_iter()
        .map(|e| {
            let text = e.into_immutable_string().map_err(|_| bad())?;
            crate::capture::PathRequest::parse(&text)
        })
        .collect()
}

fn hook_patterns(v: Dynamic) -> Result<Vec<String>, String> {
    let bad = || "HOOK must be a function name or glob, or an array of them".to_owned();
    let list: Vec<String> = if v.is_string() {
        vec![v.to_string()]
    } else if v.is_array() {
        v.into_array()
            .map_err(|_| bad())?
            .into_iter()
            .map(|x| {
                if x.is_string() {
                    Ok(x.to_string())
                } else {
                    Err(bad())
                }
            })
            .collect::<Result<_, _>>()?
    } else {
        return Err(bad());
    };
    if list.is_empty() || list.iter().any(|p| p.trim().is_empty()) {
        return Err("HOOK names no function".into());
    }
    Ok(list)
}
