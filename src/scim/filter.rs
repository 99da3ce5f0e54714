//! SCIM filters and PATCH paths (RFC 7644 §3.4.2.2, §3.5.2): a parser for
//! the whole grammar (`eq ne co sw ew pr gt ge lt le`, `and or not`,
//! grouping, value paths such as `emails[type eq "work"]`, URN-qualified
//! attributes), bounded in length and depth, and an evaluator over a
//! resource as JSON. Attribute names compare without case; string values
//! compare as their attribute says (`caseExact`). `Display` writes a filter
//! back in a form that parses to the same tree.

use std::fmt;

use serde_json::Value;

/// The longest filter or path accepted (characters).
pub const MAX_LEN: usize = 4096;
/// The deepest nesting accepted (groups, `not`, value paths).
pub const MAX_DEPTH: usize = 32;

/// An attribute path: `[uri:]name[.sub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URI (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`).
    pub uri: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A comparison's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, Op, Literal),
    /// `attr[filter]`: some value of a multi-valued attribute matches.
    ValuePath(AttrPath, Box<Filter>),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// A PATCH operation's `path`: an attribute, or some values of one
/// (`members[value eq "2819c223"]`), and a sub-attribute of those.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// `emails[type eq "work"].value`
    pub sub: Option<String>,
}

/// Why a filter or path does not parse (`scimType` `invalidFilter` or `invalidPath`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {at})")]
pub struct ParseError {
    pub message: String,
    pub at: usize,
}

impl Filter {
    /// Parses a filter.
    pub fn parse(text: &str) -> Result<Filter, ParseError> {
        let mut p = Parser::new(text)?;
        let f = p.or(0)?;
        p.end()?;
        Ok(f)
    }

    /// `attr eq "value"` on its own: what a store answers by index.
    pub fn simple_eq(&self) -> Option<(&AttrPath, &str)> {
        match self {
            Filter::Compare(a, Op::Eq, Literal::Str(v)) => Some((a, v)),
            _ => None,
        }
    }

    /// Whether `resource` matches; `case_exact` says which string
    /// attributes compare with case.
    pub fn matches(&self, resource: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource, case_exact) && b.matches(resource, case_exact),
            Filter::Or(a, b) => a.matches(resource, case_exact) || b.matches(resource, case_exact),
            Filter::Not(f) => !f.matches(resource, case_exact),
            Filter::ValuePath(attr, inner) => {
                values(resource, attr, false).iter().any(|v| inner.matches(v, case_exact))
            }
            Filter::Present(attr) => values(resource, attr, true).iter().any(|v| present(v)),
            Filter::Compare(attr, op, lit) => {
                let exact = case_exact(attr);
                let found = values(resource, attr, true);
                match (op, lit) {
                    // `ne` matches when no value equals (absent included).
                    (Op::Ne, _) => !found.iter().any(|v| compare(v, Op::Eq, lit, exact)),
                    (Op::Eq, Literal::Null) => found.is_empty() || found.iter().all(|v| v.is_null()),
                    _ => found.iter().any(|v| compare(v, *op, lit, exact)),
                }
            }
        }
    }
}

impl PatchPath {
    /// Parses a PATCH `path`.
    pub fn parse(text: &str) -> Result<PatchPath, ParseError> {
        let mut p = Parser::new(text)?;
        let attr = p.attr_path()?;
        let (filter, sub) = match p.peek() {
            Some(Tok::Open('[')) => {
                p.next();
                let f = p.or(1)?;
                p.expect(']')?;
                let sub = match p.peek() {
                    Some(Tok::Word(w)) if w.starts_with('.') => {
                        let w = w.clone();
                        p.next();
                        Some(name_part(&w[1..], p.pos)?)
                    }
                    _ => None,
                };
                (Some(f), sub)
            }
            _ => (None, None),
        };
        p.end()?;
        Ok(PatchPath { attr, filter, sub })
    }
}

/// The values `attr` names in `resource` (a multi-valued attribute's values
/// one by one; with `sub`, each value's sub-attribute). With `flatten`, a
/// sub-attribute of a multi-valued attribute is looked for in each value.
fn values<'a>(resource: &'a Value, attr: &AttrPath, flatten: bool) -> Vec<&'a Value> {
    let mut scope = resource;
    if let Some(uri) = &attr.uri {
        match get_ci(resource, uri) {
            Some(v) => scope = v,
            None => return Vec::new(),
        }
    }
    let Some(top) = get_ci(scope, &attr.name) else { return Vec::new() };
    let tops: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    match &attr.sub {
        None => tops,
        Some(sub) if flatten => tops.into_iter().filter_map(|v| get_ci(v, sub)).collect(),
        Some(_) => Vec::new(),
    }
}

/// A member of a JSON object by name, case ignored (SCIM's attribute names are).
pub fn get_ci<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// One value against a literal.
fn compare(v: &Value, op: Op, lit: &Literal, exact: bool) -> bool {
    match (v, lit) {
        (Value::String(s), Literal::Str(l)) => {
            let (s, l) = match exact {
                true => (s.clone(), l.clone()),
                false => (s.to_lowercase(), l.to_lowercase()),
            };
            match op {
                Op::Eq => s == l,
                Op::Ne => s != l,
                Op::Co => s.contains(&l),
                Op::Sw => s.starts_with(&l),
                Op::Ew => s.ends_with(&l),
                Op::Gt => s > l,
                Op::Ge => s >= l,
                Op::Lt => s < l,
                Op::Le => s <= l,
            }
        }
        (Value::Number(n), Literal::Num(l)) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            match op {
                Op::Eq => n == *l,
                Op::Ne => n != *l,
                Op::Gt => n > *l,
                Op::Ge => n >= *l,
                Op::Lt => n < *l,
                Op::Le => n <= *l,
                Op::Co | Op::Sw | Op::Ew => false,
            }
        }
        (Value::Bool(b), Literal::Bool(l)) => match op {
            Op::Eq => b == l,
            Op::Ne => b != l,
            _ => false,
        },
        // Entra sends booleans as strings ("False"): compared as booleans.
        (Value::Bool(b), Literal::Str(l)) if l.eq_ignore_ascii_case("true") || l.eq_ignore_ascii_case("false") => {
            compare(&Value::Bool(*b), op, &Literal::Bool(l.eq_ignore_ascii_case("true")), exact)
        }
        (Value::Null, Literal::Null) => op == Op::Eq,
        _ => false,
    }
}

/// One token of a filter or path.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open(char),
    Close(char),
    Word(String),
    Str(String),
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    pos: usize,
}

impl Parser {
    fn new(text: &str) -> Result<Parser, ParseError> {
        if text.chars().count() > MAX_LEN {
            return Err(ParseError { message: format!("longer than {MAX_LEN} characters"), at: MAX_LEN });
        }
        Ok(Parser { toks: tokens(text)?, i: 0, pos: 0 })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }

    fn next(&mut self) -> Option<Tok> {
        let (t, at) = self.toks.get(self.i)?.clone();
        self.i += 1;
        self.pos = at;
        Some(t)
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        let at = self.toks.get(self.i).map(|(_, at)| *at).unwrap_or(self.pos);
        Err(ParseError { message: message.into(), at })
    }

    fn expect(&mut self, close: char) -> Result<(), ParseError> {
        match self.next() {
            Some(Tok::Close(c)) if c == close => Ok(()),
            _ => self.fail(format!("expected '{close}'")),
        }
    }

    fn end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("unexpected text after the end"),
        }
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    /// `or` binds loosest, then `and`, then `not` and atoms.
    fn or(&mut self, depth: usize) -> Result<Filter, ParseError> {
        let mut f = self.and(depth)?;
        while self.keyword("or") {
            self.next();
            f = Filter::Or(Box::new(f), Box::new(self.and(depth)?));
        }
        Ok(f)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, ParseError> {
        let mut f = self.atom(depth)?;
        while self.keyword("and") {
            self.next();
            f = Filter::And(Box::new(f), Box::new(self.atom(depth)?));
        }
        Ok(f)
    }

    fn atom(&mut self, depth: usize) -> Result<Filter, ParseError> {
        if depth >= MAX_DEPTH {
            return self.fail(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        if self.keyword("not") {
            self.next();
            if !matches!(self.peek(), Some(Tok::Open('('))) {
                return self.fail("expected '(' after not");
            }
            return Ok(Filter::Not(Box::new(self.atom(depth + 1)?)));
        }
        if matches!(self.peek(), Some(Tok::Open('('))) {
            self.next();
            let f = self.or(depth + 1)?;
            self.expect(')')?;
            return Ok(f);
        }
        let attr = self.attr_path()?;
        if matches!(self.peek(), Some(Tok::Open('['))) {
            self.next();
            let f = self.or(depth + 1)?;
            self.expect(']')?;
            return Ok(Filter::ValuePath(attr, Box::new(f)));
        }
        let op = match self.next() {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            _ => return self.fail("expected an operator (eq ne co sw ew pr gt ge lt le)"),
        };
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(attr)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return self.fail(format!("unknown operator {other:?}")),
        };
        let lit = match self.next() {
            Some(Tok::Str(s)) => Literal::Str(s),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Some(Tok::Word(w)) => match w.parse::<f64>() {
                Ok(n) if n.is_finite() => Literal::Num(n),
                _ => {
                    return self
                        .fail(format!("expected a value (a \"string\", a number, true, false or null), got {w:?}"))
                }
            },
            _ => return self.fail("expected a value"),
        };
        Ok(Filter::Compare(attr, op, lit))
    }

    fn attr_path(&mut self) -> Result<AttrPath, ParseError> {
        let at = self.toks.get(self.i).map(|(_, at)| *at).unwrap_or(self.pos);
        let word = match self.next() {
            Some(Tok::Word(w)) => w,
            _ => return self.fail("expected an attribute name"),
        };
        attr_path(&word, at)
    }
}

/// `[uri:]name[.sub]`; a URI is everything up to its last ':'.
fn attr_path(word: &str, at: usize) -> Result<AttrPath, ParseError> {
    let (uri, rest) = match word.to_ascii_lowercase().starts_with("urn:") {
        true => match word.rfind(':') {
            Some(i) => (Some(word[..i].to_string()), &word[i + 1..]),
            None => (None, word),
        },
        false => (None, word),
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(name_part(s, at)?)),
        None => (rest, None),
    };
    Ok(AttrPath { uri, name: name_part(name, at)?, sub })
}

/// An attribute name: a letter, then letters, digits, `_`, `-`, `$`.
fn name_part(s: &str, at: usize) -> Result<String, ParseError> {
    let mut chars = s.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
    match ok {
        true => Ok(s.to_string()),
        false => Err(ParseError { message: format!("{s:?} is not an attribute name"), at }),
    }
}

/// Splits text into tokens: brackets, JSON strings, and words (names,
/// operators, numbers, `.sub` after a `]`).
fn tokens(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | '[' => {
                out.push((Tok::Open(c), i));
                i += 1;
            }
            ')' | ']' => {
                out.push((Tok::Close(c), i));
                i += 1;
            }
            '"' => {
                let (s, next) = string(&chars, i)?;
                out.push((Tok::Str(s), i));
                i = next;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"()[]\"".contains(chars[i]) {
                    i += 1;
                }
                out.push((Tok::Word(chars[start..i].iter().collect()), start));
            }
        }
    }
    Ok(out)
}

/// A JSON string starting at `chars[start]` (the quote); its text and the
/// index after its closing quote.
fn string(chars: &[char], start: usize) -> Result<(String, usize), ParseError> {
    let mut i = start + 1;
    let mut raw = String::from("\"");
    while i < chars.len() {
        let c = chars[i];
        raw.push(c);
        if c == '\\' && i + 1 < chars.len() {
            raw.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '"' {
            return serde_json::from_str::<String>(&raw)
                .map(|s| (s, i + 1))
                .map_err(|e| ParseError { message: format!("a bad string: {e}"), at: start });
        }
        i += 1;
    }
    Err(ParseError { message: "a string without its closing quote".into(), at: start })
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.uri {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        };
        f.write_str(s)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Present(a) => write!(f, "{a} pr"),
            Filter::Compare(a, op, lit) => {
                write!(f, "{a} {op} ")?;
                match lit {
                    Literal::Str(s) => write!(f, "{}", Value::String(s.clone())),
                    Literal::Num(n) => write!(f, "{n}"),
                    Literal::Bool(b) => write!(f, "{b}"),
                    Literal::Null => f.write_str("null"),
                }
            }
            Filter::ValuePath(a, inner) => write!(f, "{a}[{inner}]"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            // Parentheses only where precedence or grouping needs them, so a
            // long chain prints (and parses back) as flat as it came.
            Filter::And(a, b) => {
                write_grouped(f, a, matches!(**a, Filter::Or(..)))?;
                f.write_str(" and ")?;
                write_grouped(f, b, matches!(**b, Filter::Or(..) | Filter::And(..)))
            }
            Filter::Or(a, b) => {
                write_grouped(f, a, false)?;
                f.write_str(" or ")?;
                write_grouped(f, b, matches!(**b, Filter::Or(..)))
            }
        }
    }
}

fn write_grouped(f: &mut fmt::Formatter<'_>, inner: &Filter, group: bool) -> fmt::Result {
    match group {
        true => write!(f, "({inner})"),
        false => write!(f, "{inner}"),
    }
}
