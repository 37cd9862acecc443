//! Keeping sensitive data out of spans unless asked for: SQL literals replaced by `?`
//! ([`redact_sql`]), and the opt-ins ([`Capture`]) that let the bundled scripts keep SQL
//! literals, URL query strings and HTTP header values.
//!
//! Scripts see both: `redact_sql(text)` is a global function, and the opt-ins are the
//! variables of the `gohook` module (`gohook::capture_sql_literals`,
//! `gohook::capture_url_query`, `gohook::capture_headers`), all `false` unless the matching
//! `run`/`attach` flag is given.

use rhai::{Engine, Module};

/// What the user asked to keep that is left out by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capture {
    /// Keep SQL statements as the program wrote them, literals included
    /// (`--capture-sql-literals`).
    pub sql_literals: bool,
    /// Record URL query strings (`url.query`, and in `url.full`) (`--capture-url-query`).
    pub url_query: bool,
    /// Record HTTP request header values (`http.request.header.<name>`) (`--capture-headers`).
    pub headers: bool,
}

impl Capture {
    /// The `gohook` module scripts read the opt-ins from.
    pub fn module(&self) -> Module {
        let mut m = Module::new();
        m.set_var("capture_sql_literals", self.sql_literals);
        m.set_var("capture_url_query", self.url_query);
        m.set_var("capture_headers", self.headers);
        m.build_index();
        m
    }

    /// Registers the `gohook` module (replacing an earlier one) and `redact_sql` on `e`.
    pub fn register(&self, e: &mut Engine) {
        e.register_static_module("gohook", self.module().into());
        e.register_fn("redact_sql", |s: &str| redact_sql(s));
    }
}

/// `text` with every SQL literal replaced by `?`: quoted strings (`'it''s'`, `E'\n'`,
/// `X'0A'`, `N'…'`, MySQL's backslash escapes), dollar-quoted strings (`$tag$…$tag$`), numbers
/// (`42`, `-1.5e3`, `0x1F`, `.5`), with comments (`-- …`, `/* … */`) removed. Identifiers,
/// keywords, operators, placeholders (`?`, `$1`, `:name`, `@p`) and quoted identifiers
/// (`"t"`, `` `t` ``, `[t]`) are kept, so the statement keeps its shape:
/// `SELECT * FROM t WHERE a = 'x' AND b IN (1, 2)` → `SELECT * FROM t WHERE a = ? AND b IN (?, ?)`.
///
/// Errs on the side of hiding: an unterminated string or comment hides everything after its
/// start, and a backslash always escapes inside a single-quoted string (so standard SQL's
/// `'C:\'` hides what follows it too). The output is never longer than the input.
pub fn redact_sql(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // Byte index of the next character to copy; everything before it is decided.
    let mut i = 0;
    // Whether the previous significant token ends an operand (an identifier, a literal, `)`),
    // so that a following `-` is a binary minus and not a sign.
    let mut after_operand = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                i = skip_quoted(b, i);
                out.push('?');
                after_operand = true;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = find(b, i + 2, b"*/").map_or(b.len(), |p| p + 2);
                // A comment separates tokens: keep them apart.
                if !out.ends_with(' ') && i < b.len() && !b[i].is_ascii_whitespace() {
                    out.push(' ');
                }
            }
            b'"' | b'`' | b'[' => {
                let close = match c {
                    b'[' => b']',
                    q => q,
                };
                let end = b[i + 1..]
                    .iter()
                    .position(|&x| x == close)
                    .map_or(b.len(), |p| i + 1 + p + 1);
                out.push_str(&text[i..end]);
                i = end;
                after_operand = true;
            }
            b'$' => {
                if let Some(end) = dollar_quoted(b, i) {
                    out.push('?');
                    i = end;
                    after_operand = true;
                } else {
                    // `$1` and any other `$`: a placeholder or an operator, copied.
                    let end = i + 1 + word_len(&b[i + 1..]);
                    out.push_str(&text[i..end]);
                    after_operand = end > i + 1;
                    i = end;
                }
            }
            b':' | b'@' if b.get(i + 1).is_some_and(|&n| is_word(n)) => {
                // Named placeholders (`:name`, `@p1`, `:1`) and `@@session` variables.
                let start = i;
                i += 1;
                while i < b.len() && b[i] == b'@' {
                    i += 1;
                }
                i += word_len(&b[i..]);
                out.push_str(&text[start..i]);
                after_operand = true;
            }
            b'-' if !after_operand && number_at(b, i + 1).is_some() => {
                i = number_at(b, i + 1).unwrap();
                out.push('?');
                after_operand = true;
            }
            b'0'..=b'9' | b'.' if number_at(b, i).is_some() => {
                i = number_at(b, i).unwrap();
                out.push('?');
                after_operand = true;
            }
            _ if is_word(c) => {
                let len = word_len(&b[i..]);
                let word = &text[i..i + len];
                // Prefixed strings: E'…' (escapes), N'…' (national), X'…'/B'…' (hex, bits),
                // U&'…' (Unicode escapes), _charset'…' (MySQL introducers).
                let next = b.get(i + len).copied();
                let prefix = matches!(word.to_ascii_uppercase().as_str(), "E" | "N" | "X" | "B")
                    || word.starts_with('_');
                if next == Some(b'\'') && prefix {
                    i = skip_quoted(b, i + len);
                    out.push('?');
                } else if (word == "U" || word == "u")
                    && next == Some(b'&')
                    && b.get(i + 2) == Some(&b'\'')
                {
                    i = skip_quoted(b, i + 2);
                    out.push('?');
                } else {
                    out.push_str(word);
                    i += len;
                }
                after_operand = true;
            }
            _ => {
                // Whitespace, operators, punctuation; copied as one UTF-8 character.
                let len = utf8_len(c);
                let end = (i + len).min(b.len());
                out.push_str(&text[i..end]);
                if !c.is_ascii_whitespace() {
                    after_operand = c == b')';
                }
                i = end;
            }
        }
    }
    out
}

/// The end of the single-quoted string opening at `b[start] == '\''`: past its closing quote,
/// or the end of the text. `''` and `\'` do not close it.
fn skip_quoted(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// The end of a dollar-quoted string (`$$…$$`, `$tag$…$tag$`) opening at `b[start] == '$'`,
/// or `None` when none opens there (`$1`, a lone `$`). Unterminated: the end of the text.
fn dollar_quoted(b: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    if b.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &b[start..=j];
    Some(find(b, j + 1, tag).map_or(b.len(), |p| p + tag.len()))
}

/// The end of the number starting at `b[i]` (digits, one fraction, an exponent, or `0x…`),
/// or `None` when none starts there.
fn number_at(b: &[u8], i: usize) -> Option<usize> {
    let digits = |mut j: usize| {
        while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'_') {
            j += 1;
        }
        j
    };
    let first = *b.get(i)?;
    if first == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        let mut j = i + 2;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        return (j > i + 2).then_some(j);
    }
    let mut j = i;
    if first.is_ascii_digit() {
        j = digits(j);
        if b.get(j) == Some(&b'.') {
            j = digits(j + 1);
        }
    } else if first == b'.' && b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        j = digits(i + 1);
    } else {
        return None;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(b.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if b.get(k).is_some_and(|c| c.is_ascii_digit()) {
            j = digits(k);
        }
    }
    Some(j)
}

/// True for bytes of identifiers and keywords (non-ASCII letters included).
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Length of the identifier at the start of `b` (possibly 0).
fn word_len(b: &[u8]) -> usize {
    b.iter().position(|&c| !is_word(c)).unwrap_or(b.len())
}

/// Bytes of the UTF-8 character starting with `c` (1 for a stray continuation byte).
fn utf8_len(c: u8) -> usize {
    match c {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// Position of `needle` in `b` at or after `from`.
fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > b.len() {
        return None;
    }
    b[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[track_caller]
    fn r(sql: &str, want: &str) {
        assert_eq!(redact_sql(sql), want, "{sql}");
    }

    #[test]
    fn string_and_number_literals_become_placeholders() {
        r(
            "SELECT * FROM users WHERE name = 'ada' AND age > 36",
            "SELECT * FROM users WHERE name = ? AND age > ?",
        );
        r(
            "INSERT INTO t (a, b, c) VALUES ('x', 1.5, 2e-3)",
            "INSERT INTO t (a, b, c) VALUES (?, ?, ?)",
        );
        r(
            "UPDATE t SET v = .5 WHERE id = 0x1F",
            "UPDATE t SET v = ? WHERE id = ?",
        );
        r("SELECT 1", "SELECT ?");
    }

    #[test]
    fn quotes_inside_strings_do_not_end_them() {
        r("WHERE s = 'it''s' AND t = 1", "WHERE s = ? AND t = ?");
        r(
            r"WHERE s = 'it\'s secret' AND t = 1",
            "WHERE s = ? AND t = ?",
        );
        r(r"WHERE s = 'back\\' AND t = 'x'", "WHERE s = ? AND t = ?");
        r("WHERE s = ''", "WHERE s = ?");
    }

    #[test]
    fn prefixed_strings_lose_their_prefix_too() {
        r(
            r"SELECT E'a\nb', N'nat', X'0A', B'101', U&'d\0061t'",
            "SELECT ?, ?, ?, ?, ?",
        );
        r("SELECT _utf8mb4'secret'", "SELECT ?");
        // A column called e next to a string is not a prefix when separated.
        r("SELECT e, 'x'", "SELECT e, ?");
    }

    #[test]
    fn dollar_quoting_is_a_literal_but_numbered_parameters_stay() {
        r("SELECT $$it's $1$$, $1, $2", "SELECT ?, $1, $2");
        r("SELECT $fn$ body 'x' $fn$ || $a$ x", "SELECT ? || ?");
        r("DO $x$ secret", "DO ?");
    }

    #[test]
    fn comments_are_removed() {
        r(
            "SELECT a -- the password is hunter2\nFROM t",
            "SELECT a \nFROM t",
        );
        r("SELECT /* 'x' 42 */ a FROM t", "SELECT  a FROM t");
        r("SELECT a/*x*/FROM t", "SELECT a FROM t");
        r("SELECT a /* unterminated 'secret'", "SELECT a ");
    }

    #[test]
    fn negative_numbers_are_one_literal_but_subtraction_stays() {
        r(
            "WHERE a = -5 AND b IN (-1, -2.5)",
            "WHERE a = ? AND b IN (?, ?)",
        );
        r(
            "SELECT a-5, a - 5, (a)-5, -a",
            "SELECT a-?, a - ?, (a)-?, -a",
        );
        r("SELECT 3-2", "SELECT ?-?");
    }

    #[test]
    fn in_lists_keep_one_placeholder_per_element() {
        r(
            "DELETE FROM t WHERE id IN (1, 2, 3) OR name IN ('a','b')",
            "DELETE FROM t WHERE id IN (?, ?, ?) OR name IN (?,?)",
        );
    }

    #[test]
    fn identifiers_placeholders_and_quoted_names_are_kept() {
        let q = r#"SELECT "col 1", `t2`.x1, [my col] FROM t3 WHERE a = ? AND b = :name AND c = @p1 AND d = $3 AND e = @@version"#;
        r(q, q);
        r(
            "SELECT tab1.col2 FROM schema3.tab4",
            "SELECT tab1.col2 FROM schema3.tab4",
        );
        r("SELECT 'ü', naïve FROM t", "SELECT ?, naïve FROM t");
    }

    #[test]
    fn unterminated_literals_hide_the_rest() {
        r("SELECT 'abc", "SELECT ?");
        r("SELECT 'abc\\", "SELECT ?");
        r("SELECT \"abc", "SELECT \"abc");
    }

    proptest! {
        #[test]
        fn never_panics_never_grows_and_hides_quoted_words(s in "\\PC{0,200}", secret in "[a-z]{12}") {
            let out = redact_sql(&s);
            prop_assert!(out.len() <= s.len());
            let q = format!("SELECT * FROM t WHERE a = '{secret}' AND {s}");
            let out = redact_sql(&q);
            prop_assert!(!out.contains(&secret), "{q} → {out}");
        }

        #[test]
        fn arbitrary_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = String::from_utf8_lossy(&bytes);
            prop_assert!(redact_sql(&s).len() <= s.len());
        }
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use rhai::Scope;

    #[test]
    fn scripts_see_the_opt_ins_given_after_they_were_compiled() {
        let mut e = crate::script::sandbox::engine("t.rhai");
        let ast = e
            .compile(
                "fn f() { [gohook::capture_sql_literals, gohook::capture_url_query, \
                 gohook::capture_headers, redact_sql(\"a = 'x'\")] }",
            )
            .unwrap();
        let get = |e: &Engine| {
            let a: rhai::Array = e.call_fn(&mut Scope::new(), &ast, "f", ()).unwrap();
            (
                a[0].as_bool().unwrap(),
                a[1].as_bool().unwrap(),
                a[2].as_bool().unwrap(),
                a[3].clone().into_string().unwrap(),
            )
        };
        assert_eq!(get(&e), (false, false, false, "a = ?".to_owned()));
        Capture {
            sql_literals: true,
            url_query: false,
            headers: true,
        }
        .register(&mut e);
        assert_eq!(get(&e), (true, false, true, "a = ?".to_owned()));
    }
}
