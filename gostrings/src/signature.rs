//! Go function signatures written by users, parsed into the shared [`TypeTable`].
//!
//! A user hooking a stripped binary writes the signature in Go syntax with full package paths:
//! `func(name string, n int) (string, error)`,
//! `func(sh struct{srv *net/http.Server}, rw net/http.ResponseWriter, req *net/http.Request)`.
//! Predeclared types resolve directly (`error` is an interface with methods, `any` and
//! `interface{}` the empty one); named types resolve through a [`NamedTypes`] source (DWARF,
//! runtime type metadata). A pointer to a named type nobody can resolve is still an 8-byte
//! pointer whose element is opaque; any other use of an unresolved name is an error, because
//! its size decides where every later argument goes.
//!
//! Struct layouts follow the gc compiler on amd64: fields aligned to their natural alignment,
//! the size rounded up to the struct's alignment, plus one byte of padding when the last field
//! has size zero (so a pointer to it cannot point past the object).

use crate::gotype::{Field, GoType, Kind, Shape, TypeId, TypeTable};

/// A source of named types (`main.User`, `net/http.Request`).
pub trait NamedTypes {
    /// Adds the type named `name` (full package path, as in `net/http.Request`) to `table` and
    /// returns its id, or `None` when this source does not know it.
    fn resolve(&mut self, name: &str, table: &mut TypeTable) -> Option<TypeId>;
}

/// A [`NamedTypes`] source that knows nothing: only predeclared and literal types parse.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNamedTypes;

impl NamedTypes for NoNamedTypes {
    fn resolve(&mut self, _name: &str, _table: &mut TypeTable) -> Option<TypeId> {
        None
    }
}

/// One parameter or result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The name, if the signature gave one.
    pub name: Option<String>,
    /// The type.
    pub ty: TypeId,
}

/// A parsed function signature: parameters (a method's receiver written as the first
/// parameter) and results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signature {
    /// Parameters in order.
    pub params: Vec<Param>,
    /// Results in order.
    pub results: Vec<Param>,
}

impl Signature {
    /// The parameter types in order.
    pub fn param_types(&self) -> Vec<TypeId> {
        self.params.iter().map(|p| p.ty).collect()
    }
    /// The result types in order.
    pub fn result_types(&self) -> Vec<TypeId> {
        self.results.iter().map(|p| p.ty).collect()
    }
}

/// Why a signature did not parse. `column` counts characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Unexpected text.
    #[error("column {column}: expected {expected}, found {found}")]
    Syntax {
        /// Where.
        column: usize,
        /// What would have been accepted.
        expected: String,
        /// What was there.
        found: String,
    },
    /// A named type that no type source knows, used where its size matters.
    #[error("column {column}: unknown type {name}: no type information for it in this binary; write its layout as struct{{...}} or pass it as *{name}")]
    UnknownType {
        /// Where.
        column: usize,
        /// The name as written.
        name: String,
    },
    /// An array length that is not a number or too large.
    #[error("column {column}: bad array length {text}")]
    BadArrayLength {
        /// Where.
        column: usize,
        /// The length as written.
        text: String,
    },
    /// A type whose size overflows.
    #[error("column {column}: type is too large")]
    TooLarge {
        /// Where.
        column: usize,
    },
    /// Types nested too deeply.
    #[error("column {column}: types nest deeper than {MAX_NESTING} levels")]
    TooDeep {
        /// Where.
        column: usize,
    },
}

impl SignatureError {
    /// The 1-based column the error points at.
    pub fn column(&self) -> usize {
        match self {
            SignatureError::Syntax { column, .. }
            | SignatureError::UnknownType { column, .. }
            | SignatureError::BadArrayLength { column, .. }
            | SignatureError::TooLarge { column }
            | SignatureError::TooDeep { column } => *column,
        }
    }
}

/// How deeply type literals may nest.
pub const MAX_NESTING: usize = 64;

/// Parses `func(...) results` (the leading `func` and a function name after it are optional).
pub fn parse(
    text: &str,
    named: &mut dyn NamedTypes,
    table: &mut TypeTable,
) -> Result<Signature, SignatureError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        named,
        table,
        depth: 0,
    };
    p.skip_ws();
    if p.peek_word() == "func" {
        p.pos += 4;
        p.skip_ws();
        // An optional name: `func handle(...)`.
        if p.peek().is_some_and(is_ident_start) {
            p.qualified_name();
        }
    }
    let params = p.param_list()?;
    let results = p.results()?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(p.syntax("end of signature"));
    }
    Ok(Signature { params, results })
}

/// Parses a single type expression (`[]*main.User`, `map[string]int`).
pub fn parse_type(
    text: &str,
    named: &mut dyn NamedTypes,
    table: &mut TypeTable,
) -> Result<TypeId, SignatureError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        named,
        table,
        depth: 0,
    };
    let t = p.ty()?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(p.syntax("end of type"));
    }
    Ok(t)
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c == '.' || c == '/' || c == '-' || c == '~' || c.is_alphanumeric()
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    named: &'a mut dyn NamedTypes,
    table: &'a mut TypeTable,
    depth: usize,
}

/// One entry of a parameter list before grouping: `name Type`, or a lone `Type` (which may turn
/// out to be a name when other entries are named).
struct Entry {
    name: Option<String>,
    ty: Option<TypeId>,
    /// For lone entries: the text, when it is a plain identifier.
    ident: Option<String>,
    column: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn column(&self) -> usize {
        self.pos + 1
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn peek_word(&self) -> String {
        self.chars[self.pos..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect()
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "end of input".to_owned(),
            Some(_) => {
                let s: String = self.chars[self.pos..].iter().take(12).collect();
                format!("{s:?}")
            }
        }
    }

    fn syntax(&self, expected: &str) -> SignatureError {
        SignatureError::Syntax {
            column: self.column(),
            expected: expected.to_owned(),
            found: self.found(),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), SignatureError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.syntax(&format!("'{c}'")))
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        self.skip_ws();
        if self.peek_word() == w {
            self.pos += w.chars().count();
            true
        } else {
            false
        }
    }

    /// A possibly package-qualified name, with generic instantiation brackets when qualified
    /// (`main.Pair[int,string]`).
    fn qualified_name(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        let mut s: String = self.chars[start..self.pos].iter().collect();
        if s.contains('.') && self.peek() == Some('[') {
            let mut depth = 0usize;
            let save = self.pos;
            let mut inst = String::new();
            while let Some(c) = self.peek() {
                self.pos += 1;
                if !c.is_whitespace() {
                    inst.push(c);
                }
                match c {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if depth == 0 {
                s.push_str(&inst);
            } else {
                self.pos = save;
            }
        }
        s
    }

    fn param_list(&mut self) -> Result<Vec<Param>, SignatureError> {
        self.expect('(')?;
        let mut entries = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(')') {
                break;
            }
            entries.push(self.entry()?);
            if self.eat(',') {
                continue;
            }
            self.expect(')')?;
            break;
        }
        self.group(entries)
    }

    fn entry(&mut self) -> Result<Entry, SignatureError> {
        self.skip_ws();
        let column = self.column();
        let save = self.pos;
        if self.peek().is_some_and(is_ident_start) {
            let word = self.qualified_name();
            let plain = !word.contains(['.', '/', '[']);
            self.skip_ws();
            let next = self.peek();
            if plain
                && !matches!(next, Some(',') | Some(')') | None)
                && word != "func"
                && word != "map"
                && word != "chan"
                && word != "struct"
                && word != "interface"
            {
                // `name Type`, or `name ...Type` (variadic: a slice).
                let variadic = self.chars[self.pos..].starts_with(&['.', '.', '.']);
                if variadic {
                    self.pos += 3;
                }
                let mut ty = self.ty()?;
                if variadic {
                    ty = self.slice_of(ty);
                }
                return Ok(Entry {
                    name: Some(word),
                    ty: Some(ty),
                    ident: None,
                    column,
                });
            }
            if plain && matches!(next, Some(',') | Some(')')) {
                return Ok(Entry {
                    name: None,
                    ty: None,
                    ident: Some(word),
                    column,
                });
            }
            self.pos = save;
        }
        let variadic = self.chars[self.pos..].starts_with(&['.', '.', '.']);
        if variadic {
            self.pos += 3;
        }
        let mut ty = self.ty()?;
        if variadic {
            ty = self.slice_of(ty);
        }
        Ok(Entry {
            name: None,
            ty: Some(ty),
            ident: None,
            column,
        })
    }

    /// Go's grouping rule: if any entry is `name Type`, every lone identifier is a name that
    /// takes the type of the next typed entry (`a, b int`); otherwise every entry is a type.
    fn group(&mut self, entries: Vec<Entry>) -> Result<Vec<Param>, SignatureError> {
        let any_named = entries.iter().any(|e| e.name.is_some());
        let mut out = Vec::with_capacity(entries.len());
        if !any_named {
            for e in entries {
                let ty = match (e.ty, e.ident) {
                    (Some(t), _) => t,
                    (None, Some(id)) => self.named_type(&id, e.column)?,
                    (None, None) => unreachable_entry(e.column)?,
                };
                out.push(Param { name: None, ty });
            }
            return Ok(out);
        }
        let mut pending: Vec<String> = Vec::new();
        for e in entries {
            match (e.name, e.ty, e.ident) {
                (Some(name), Some(ty), _) => {
                    for n in pending.drain(..) {
                        out.push(Param { name: Some(n), ty });
                    }
                    out.push(Param {
                        name: Some(name),
                        ty,
                    });
                }
                (None, None, Some(id)) => pending.push(id),
                _ => {
                    return Err(SignatureError::Syntax {
                        column: e.column,
                        expected: "a parameter name (mixing named and unnamed parameters)".into(),
                        found: "a type".into(),
                    })
                }
            }
        }
        if !pending.is_empty() {
            return Err(SignatureError::Syntax {
                column: self.column(),
                expected: "a type after the parameter names".into(),
                found: "')'".into(),
            });
        }
        Ok(out)
    }

    fn results(&mut self) -> Result<Vec<Param>, SignatureError> {
        self.skip_ws();
        match self.peek() {
            None | Some(')') | Some(',') | Some(';') | Some('}') | Some(']') => Ok(Vec::new()),
            Some('(') => self.param_list(),
            Some(_) => {
                let ty = self.ty()?;
                Ok(vec![Param { name: None, ty }])
            }
        }
    }

    fn intern(&mut self, ty: GoType) -> TypeId {
        if let Some(id) = self.table.by_name(&ty.name) {
            if self.table.get(id) == Some(&ty) {
                return id;
            }
        }
        self.table.add(ty)
    }

    fn basic(&mut self, kind: Kind, name: &str) -> TypeId {
        let size = kind.fixed_size().unwrap_or(8);
        let align = match kind {
            Kind::Complex64 => 4,
            Kind::Complex128 | Kind::String | Kind::Interface | Kind::Slice => 8,
            _ => size.max(1),
        };
        let shape = match kind {
            Kind::Interface => Shape::Interface {
                empty: name != "error",
            },
            _ => Shape::Basic,
        };
        self.intern(GoType {
            name: name.to_owned(),
            kind,
            size,
            align,
            shape,
        })
    }

    fn slice_of(&mut self, elem: TypeId) -> TypeId {
        let name = format!("[]{}", self.name_of(elem));
        self.intern(GoType {
            name,
            kind: Kind::Slice,
            size: 24,
            align: 8,
            shape: Shape::Slice { elem },
        })
    }

    fn name_of(&self, id: TypeId) -> String {
        self.table
            .get(id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    }

    fn named_type(&mut self, name: &str, column: usize) -> Result<TypeId, SignatureError> {
        if let Some(kind) = Kind::from_basic_name(name) {
            let canonical = match name {
                "byte" => "uint8",
                "rune" => "int32",
                n => n,
            };
            return Ok(self.basic(kind, canonical));
        }
        match name {
            "error" => return Ok(self.basic(Kind::Interface, "error")),
            "any" => return Ok(self.basic(Kind::Interface, "interface {}")),
            _ => {}
        }
        if name.is_empty() {
            return Err(SignatureError::Syntax {
                column,
                expected: "a type".into(),
                found: self.found(),
            });
        }
        self.named
            .resolve(name, self.table)
            .ok_or_else(|| SignatureError::UnknownType {
                column,
                name: name.to_owned(),
            })
    }

    fn ty(&mut self) -> Result<TypeId, SignatureError> {
        self.skip_ws();
        let column = self.column();
        if self.depth >= MAX_NESTING {
            return Err(SignatureError::TooDeep { column });
        }
        self.depth += 1;
        let r = self.ty_inner(column);
        self.depth -= 1;
        r
    }

    fn ty_inner(&mut self, column: usize) -> Result<TypeId, SignatureError> {
        match self.peek() {
            Some('*') => {
                self.pos += 1;
                self.skip_ws();
                let elem_col = self.column();
                let elem = if self.peek().is_some_and(is_ident_start)
                    && !["func", "map", "chan", "struct", "interface"]
                        .contains(&self.peek_word().as_str())
                {
                    let name = self.qualified_name();
                    match self.named_type(&name, elem_col) {
                        Ok(t) => t,
                        Err(SignatureError::UnknownType { .. }) => self.table.add(GoType {
                            name,
                            kind: Kind::Struct,
                            size: 0,
                            align: 1,
                            shape: Shape::Opaque,
                        }),
                        Err(e) => return Err(e),
                    }
                } else {
                    self.ty()?
                };
                let name = format!("*{}", self.name_of(elem));
                Ok(self.intern(GoType {
                    name,
                    kind: Kind::Pointer,
                    size: 8,
                    align: 8,
                    shape: Shape::Pointer { elem },
                }))
            }
            Some('[') => {
                self.pos += 1;
                self.skip_ws();
                if self.eat(']') {
                    let elem = self.ty()?;
                    return Ok(self.slice_of(elem));
                }
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                let len = parse_len(&text).ok_or(SignatureError::BadArrayLength {
                    column: start + 1,
                    text,
                })?;
                self.expect(']')?;
                let elem = self.ty()?;
                let (esize, ealign, ename) = {
                    let e = self.table.get(elem);
                    (
                        e.map_or(0, |e| e.size),
                        e.map_or(1, |e| e.align),
                        self.name_of(elem),
                    )
                };
                let size = esize
                    .checked_mul(len)
                    .ok_or(SignatureError::TooLarge { column })?;
                let kind_opaque =
                    matches!(self.table.get(elem).map(|e| &e.shape), Some(Shape::Opaque));
                if kind_opaque {
                    return Err(SignatureError::UnknownType {
                        column,
                        name: ename,
                    });
                }
                Ok(self.intern(GoType {
                    name: format!("[{len}]{ename}"),
                    kind: Kind::Array,
                    size,
                    align: ealign,
                    shape: Shape::Array { elem, len },
                }))
            }
            Some('<') => {
                // <-chan T
                if self.chars[self.pos..].starts_with(&['<', '-']) {
                    self.pos += 2;
                    if !self.eat_word("chan") {
                        return Err(self.syntax("chan"));
                    }
                    let elem = self.ty()?;
                    return Ok(self.chan(elem, "<-chan "));
                }
                Err(self.syntax("a type"))
            }
            Some('(') => {
                self.pos += 1;
                let t = self.ty()?;
                self.expect(')')?;
                Ok(t)
            }
            Some(c) if is_ident_start(c) => {
                let word = self.peek_word();
                match word.as_str() {
                    "map" if !self.word_is_qualified() => {
                        self.pos += 3;
                        self.expect('[')?;
                        let key = self.ty()?;
                        self.expect(']')?;
                        let elem = self.ty()?;
                        let name = format!("map[{}]{}", self.name_of(key), self.name_of(elem));
                        Ok(self.intern(GoType {
                            name,
                            kind: Kind::Map,
                            size: 8,
                            align: 8,
                            shape: Shape::Map { key, elem },
                        }))
                    }
                    "chan" if !self.word_is_qualified() => {
                        self.pos += 4;
                        self.skip_ws();
                        let mut prefix = "chan ";
                        if self.chars[self.pos..].starts_with(&['<', '-']) {
                            self.pos += 2;
                            prefix = "chan<- ";
                        }
                        let elem = self.ty()?;
                        Ok(self.chan(elem, prefix))
                    }
                    "func" if !self.word_is_qualified() => {
                        self.pos += 4;
                        // Parse and discard the inner signature: a func value is one pointer.
                        self.param_list()?;
                        self.results()?;
                        let name = "func(...)".to_owned();
                        Ok(self.intern(GoType {
                            name,
                            kind: Kind::Func,
                            size: 8,
                            align: 8,
                            shape: Shape::Func,
                        }))
                    }
                    "struct" if !self.word_is_qualified() => {
                        self.pos += 6;
                        self.struct_body(column)
                    }
                    "interface" if !self.word_is_qualified() => {
                        self.pos += 9;
                        self.expect('{')?;
                        let body_start = self.pos;
                        let mut depth = 1usize;
                        while let Some(c) = self.peek() {
                            self.pos += 1;
                            match c {
                                '{' => depth += 1,
                                '}' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        break;
                                    }
                                }
                                _ => {}
                            }
                        }
                        if depth != 0 {
                            return Err(self.syntax("'}'"));
                        }
                        let body: String = self.chars[body_start..self.pos - 1].iter().collect();
                        let empty = body.trim().is_empty();
                        let name = if empty {
                            "interface {}".to_owned()
                        } else {
                            format!("interface {{ {} }}", body.trim())
                        };
                        Ok(self.intern(GoType {
                            name,
                            kind: Kind::Interface,
                            size: 16,
                            align: 8,
                            shape: Shape::Interface { empty },
                        }))
                    }
                    _ => {
                        let name = self.qualified_name();
                        self.named_type(&name, column)
                    }
                }
            }
            _ => Err(self.syntax("a type")),
        }
    }

    /// True when the keyword-looking word at the cursor is really a package path (`map.T`).
    fn word_is_qualified(&self) -> bool {
        let n = self.peek_word().chars().count();
        matches!(self.chars.get(self.pos + n), Some('.') | Some('/'))
    }

    fn chan(&mut self, elem: TypeId, prefix: &str) -> TypeId {
        let name = format!("{prefix}{}", self.name_of(elem));
        self.intern(GoType {
            name,
            kind: Kind::Chan,
            size: 8,
            align: 8,
            shape: Shape::Chan { elem },
        })
    }

    fn struct_body(&mut self, column: usize) -> Result<TypeId, SignatureError> {
        self.expect('{')?;
        // (names, type, embedded)
        let mut decls: Vec<(Vec<String>, TypeId, bool)> = Vec::new();
        loop {
            self.skip_ws();
            if self.eat('}') {
                break;
            }
            let decl_col = self.column();
            let save = self.pos;
            let mut names = Vec::new();
            let mut embedded = false;
            if self.peek().is_some_and(is_ident_start) {
                let w = self.qualified_name();
                self.skip_ws();
                let plain = !w.contains(['.', '/', '[']);
                if plain && matches!(self.peek(), Some(',')) {
                    names.push(w);
                    while self.eat(',') {
                        self.skip_ws();
                        if !self.peek().is_some_and(is_ident_start) {
                            return Err(self.syntax("a field name"));
                        }
                        names.push(self.qualified_name());
                    }
                } else if plain && !matches!(self.peek(), Some(';') | Some('}') | None) {
                    names.push(w);
                } else {
                    embedded = true;
                    self.pos = save;
                }
            } else if self.peek() == Some('*') {
                embedded = true;
            } else {
                return Err(self.syntax("a field"));
            }
            let ty = self.ty()?;
            if embedded {
                let n = self.name_of(ty);
                let base = n.trim_start_matches('*');
                let short = base.rsplit('.').next().unwrap_or(base).to_owned();
                names.push(short);
            }
            if let Some(Shape::Opaque) = self.table.get(ty).map(|t| &t.shape) {
                return Err(SignatureError::UnknownType {
                    column: decl_col,
                    name: self.name_of(ty),
                });
            }
            decls.push((names, ty, embedded));
            // Skip an optional tag.
            self.skip_ws();
            if self.peek() == Some('"') || self.peek() == Some('`') {
                let q = self.peek().unwrap_or('"');
                self.pos += 1;
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if c == q {
                        break;
                    }
                }
            }
            if self.eat(';') {
                continue;
            }
            self.skip_ws();
            if self.peek() == Some('}') {
                continue;
            }
            return Err(self.syntax("';' or '}'"));
        }
        let mut fields = Vec::new();
        let mut offset = 0u64;
        let mut align = 1u64;
        let mut last_zero = false;
        let mut parts = Vec::new();
        for (names, ty, embedded) in decls {
            let (size, falign, tname) = {
                let t = self.table.get(ty);
                (
                    t.map_or(0, |t| t.size),
                    t.map_or(1, |t| t.align.max(1)),
                    self.name_of(ty),
                )
            };
            for n in names {
                offset = round_up(offset, falign).ok_or(SignatureError::TooLarge { column })?;
                fields.push(Field {
                    name: n.clone(),
                    ty,
                    offset,
                    embedded,
                });
                parts.push(if embedded {
                    tname.clone()
                } else {
                    format!("{n} {tname}")
                });
                offset = offset
                    .checked_add(size)
                    .ok_or(SignatureError::TooLarge { column })?;
                align = align.max(falign);
                last_zero = size == 0;
            }
        }
        if last_zero && offset > 0 {
            offset += 1;
        }
        let size = round_up(offset, align).ok_or(SignatureError::TooLarge { column })?;
        let name = if parts.is_empty() {
            "struct {}".to_owned()
        } else {
            format!("struct {{ {} }}", parts.join("; "))
        };
        Ok(self.intern(GoType {
            name,
            kind: Kind::Struct,
            size,
            align,
            shape: Shape::Struct { fields },
        }))
    }
}

fn unreachable_entry(column: usize) -> Result<TypeId, SignatureError> {
    Err(SignatureError::Syntax {
        column,
        expected: "a type".into(),
        found: "nothing".into(),
    })
}

fn round_up(v: u64, align: u64) -> Option<u64> {
    let a = align.max(1);
    v.checked_add(a - 1).map(|x| x / a * a)
}

fn parse_len(text: &str) -> Option<u64> {
    let t = text.replace('_', "");
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else {
        t.parse().ok()?
    };
    // Go arrays cannot exceed the address space; refuse lengths no binary could use.
    (v <= 1 << 48).then_some(v)
}
