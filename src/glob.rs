//! Shell-style patterns for Go function names: `*` matches any run of characters — including
//! `/`, `.`, `(` and `*` — and `?` exactly one; `\` makes the next character literal; everything
//! else is literal. So `main.*`, `net/http.(*Client).*` and `*.ServeHTTP` select what a user
//! expects, and the `[` of generic instantiations (`main.Map[...]`) needs no escaping. The `*`
//! of a pointer receiver is a wildcard too (`(*Client)` also matches `(*http2Client)`); write
//! `(\*Client)` to match only the literal receiver.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<Tok>,
}

/// One pattern element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    AnyOne,
    Lit(char),
}

impl Glob {
    /// Compiles `pattern`; every string is a valid pattern.
    pub fn new(pattern: &str) -> Self {
        let mut toks = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::AnyOne,
                '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
                c => Tok::Lit(c),
            });
        }
        Glob { pattern: toks }
    }

    /// True when the whole of `name` matches.
    ///
    /// Greedy matching with a single backtrack point (the last `*`), which is exact for
    /// patterns made of `*`, `?` and literals and runs in O(len(name) × len(pattern)) at worst.
    pub fn matches(&self, name: &str) -> bool {
        let text: Vec<char> = name.chars().collect();
        let p = &self.pattern;
        let (mut ti, mut pi) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            let here = p.get(pi).copied();
            if here == Some(Tok::AnyOne) || here == Some(Tok::Lit(text[ti])) {
                ti += 1;
                pi += 1;
            } else if here == Some(Tok::Star) {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&t| t == Tok::Star)
    }
}

/// True when `name` matches any of `globs`, or when there are none.
pub fn any_match(globs: &[Glob], name: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| g.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).matches(s)
    }

    #[test]
    fn star_crosses_package_paths_dots_and_receivers() {
        assert!(m("main.*", "main.step"));
        assert!(m("main.*", "main.(*User).Name"));
        assert!(m("net/http.(*Client).*", "net/http.(*Client).Do"));
        assert!(!m("net/http.(*Client).*", "net/http.(*Server).Serve"));
        assert!(m("*.ServeHTTP", "net/http.HandlerFunc.ServeHTTP"));
        assert!(m("*", ""));
        assert!(m("**a*", "bab"));
    }

    #[test]
    fn question_mark_is_one_character_and_the_rest_is_literal() {
        assert!(m("main.ste?", "main.step"));
        assert!(!m("main.ste?", "main.ste"));
        assert!(m("main.Map[go.shape.int]", "main.Map[go.shape.int]"));
        assert!(!m("main.step", "main.stepper"));
        assert!(!m("main", "main.step"));
    }

    #[test]
    fn a_backslash_makes_the_receiver_star_literal() {
        assert!(m("net/http.(*Client).Do", "net/http.(*http2Client).Do"));
        assert!(!m("net/http.(\\*Client).Do", "net/http.(*http2Client).Do"));
        assert!(m("net/http.(\\*Client).*", "net/http.(*Client).Do"));
        assert!(m("a\\?", "a?"));
        assert!(!m("a\\?", "ab"));
    }

    #[test]
    fn backtracking_finds_late_matches() {
        assert!(m("*.(*T).M", "a.(*T).M.(*T).M"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn no_globs_select_everything() {
        assert!(any_match(&[], "anything"));
        assert!(!any_match(&[Glob::new("x")], "y"));
    }
}
