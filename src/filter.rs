//! LDAP search filters (RFC 4515): parsed once, to validate `user_filter` and
//! `group_filter` at config load, and evaluated locally against entries of
//! offline sources (LDIF), so the same filter selects the same entries there
//! as a server would. Matching is case-insensitive (caseIgnoreMatch), which is
//! what the attributes used in such filters (objectClass, uid, cn…) use.

use crate::model::{AttrValue, RawEntry};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equal(String, String),
    Present(String),
    Substring { attr: String, initial: Option<String>, any: Vec<String>, fin: Option<String> },
    GreaterOrEqual(String, String),
    LessOrEqual(String, String),
    Approx(String, String),
}

impl Filter {
    /// Parses a filter string; the error says what is wrong and where.
    pub fn parse(s: &str) -> Result<Filter, String> {
        let s = s.trim();
        let mut p = Parser { s: s.as_bytes(), pos: 0, depth: 0 };
        let f = if s.starts_with('(') {
            p.filter()?
        } else {
            // RFC 4515 requires parentheses; accept a bare item as servers do.
            let end = s.len();
            p.item(end)?
        };
        if p.pos != s.len() {
            return Err(format!("unexpected text after the filter at position {}: {:?}", p.pos, &s[p.pos..]));
        }
        Ok(f)
    }

    /// Whether an entry matches.
    pub fn matches(&self, e: &RawEntry) -> bool {
        let texts = |a: &str| {
            e.values(a)
                .iter()
                .filter_map(|v| match v {
                    AttrValue::Text(t) => Some(t.to_lowercase()),
                    AttrValue::Binary(_) => None,
                })
                .collect::<Vec<_>>()
        };
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(e)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(e)),
            Filter::Not(f) => !f.matches(e),
            Filter::Present(a) => a == "objectclass" || !e.values(a).is_empty(),
            Filter::Equal(a, v) | Filter::Approx(a, v) => texts(a).iter().any(|t| t == v),
            Filter::GreaterOrEqual(a, v) => texts(a).iter().any(|t| order(t, v).is_ge()),
            Filter::LessOrEqual(a, v) => texts(a).iter().any(|t| order(t, v).is_le()),
            Filter::Substring { attr, initial, any, fin } => texts(attr).iter().any(|t| {
                let mut rest = t.as_str();
                if let Some(i) = initial {
                    match rest.strip_prefix(i.as_str()) {
                        Some(r) => rest = r,
                        None => return false,
                    }
                }
                for a in any {
                    match rest.find(a.as_str()) {
                        Some(pos) => rest = &rest[pos + a.len()..],
                        None => return false,
                    }
                }
                fin.as_ref().is_none_or(|f| rest.ends_with(f.as_str()))
            }),
        }
    }
}

/// Orders integers as numbers (uidNumber>=1000), everything else as text.
fn order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// How deeply `&`, `|` and `!` may nest: real filters use a handful of
/// levels; thousands would overflow the stack of every recursive reader.
pub const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at position {}", c as char, self.pos))
        }
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the filter is nested more than {MAX_DEPTH} levels deep (at position {})", self.pos));
        }
        let f = self.filter_inner();
        self.depth -= 1;
        f
    }

    fn filter_inner(&mut self) -> Result<Filter, String> {
        self.expect(b'(')?;
        let f = match self.s.get(self.pos) {
            Some(b'&') => {
                self.pos += 1;
                Filter::And(self.list()?)
            }
            Some(b'|') => {
                self.pos += 1;
                Filter::Or(self.list()?)
            }
            Some(b'!') => {
                self.pos += 1;
                Filter::Not(Box::new(self.filter()?))
            }
            Some(_) => {
                let end = self.closing()?;
                self.item(end)?
            }
            None => return Err("unexpected end of filter".into()),
        };
        self.expect(b')')?;
        Ok(f)
    }

    fn list(&mut self) -> Result<Vec<Filter>, String> {
        let mut v = Vec::new();
        while self.s.get(self.pos) == Some(&b'(') {
            v.push(self.filter()?);
        }
        if v.is_empty() {
            return Err(format!("expected '(' after '&' or '|' at position {}", self.pos));
        }
        Ok(v)
    }

    /// Position of the ')' closing the current item (items have no parentheses inside; escaped ones are `\28`/`\29`).
    fn closing(&self) -> Result<usize, String> {
        self.s[self.pos..].iter().position(|&c| c == b')').map(|i| self.pos + i).ok_or_else(|| "missing ')'".into())
    }

    fn item(&mut self, end: usize) -> Result<Filter, String> {
        let text = std::str::from_utf8(&self.s[self.pos..end]).map_err(|_| "filter is not UTF-8".to_string())?;
        let start = self.pos;
        self.pos = end;
        let eq = text.find('=').ok_or_else(|| format!("expected attr=value at position {start}: {text:?}"))?;
        let (mut attr, value) = (&text[..eq], &text[eq + 1..]);
        let op = match attr.as_bytes().last() {
            Some(b'>') | Some(b'<') | Some(b'~') => {
                let op = attr.as_bytes()[attr.len() - 1];
                attr = &attr[..attr.len() - 1];
                op
            }
            _ => b'=',
        };
        if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.') {
            return Err(format!("expected an attribute name at position {start}: {text:?}"));
        }
        if let Some(i) = value.find('(') {
            return Err(format!(
                "unescaped '(' in the value at position {} (write \\28 for a literal parenthesis)",
                start + eq + 1 + i
            ));
        }
        let attr = attr.to_ascii_lowercase();
        let val = |v: &str| unescape(v).map(|v| v.to_lowercase());
        Ok(match op {
            b'>' => Filter::GreaterOrEqual(attr, val(value)?),
            b'<' => Filter::LessOrEqual(attr, val(value)?),
            b'~' => Filter::Approx(attr, val(value)?),
            _ if value == "*" => Filter::Present(attr),
            _ if value.contains('*') => {
                let parts: Vec<&str> = value.split('*').collect();
                let initial = Some(parts[0]).filter(|s| !s.is_empty()).map(val).transpose()?;
                let last = parts[parts.len() - 1];
                let fin = Some(last).filter(|s| !s.is_empty()).map(val).transpose()?;
                let any = parts[1..parts.len() - 1]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| val(s))
                    .collect::<Result<_, _>>()?;
                Filter::Substring { attr, initial, any, fin }
            }
            _ => Filter::Equal(attr, val(value)?),
        })
    }
}

/// Decodes RFC 4515 `\XX` escapes.
fn unescape(v: &str) -> Result<String, String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let hex = v.get(i + 1..i + 3).ok_or_else(|| format!("bad escape in {v:?} (expected \\XX)"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape in {v:?} (expected \\XX)"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("value {v:?} is not UTF-8"))
}

/// A parse error of `filter` for an admin: the message, then the filter
/// quoted with a caret under the position the message names.
pub fn explain(filter: &str, message: &str) -> String {
    let at = message
        .split("position ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    match at.filter(|&p| p <= filter.len() && filter.len() <= 200 && filter.is_char_boundary(p)) {
        Some(p) => format!("{message}\n    {filter}\n    {}^", " ".repeat(filter[..p].chars().count())),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> RawEntry {
        let mut e = RawEntry::new("uid=jdoe,ou=people,dc=x");
        for (a, v) in [
            ("objectClass", "top"),
            ("objectClass", "inetOrgPerson"),
            ("uid", "JDoe"),
            ("cn", "John (Jack) Doe"),
            ("uidNumber", "1005"),
        ] {
            e.push(a, AttrValue::Text(v.into()));
        }
        e
    }

    #[test]
    fn matches_like_a_server() {
        let e = entry();
        let yes = [
            "(objectClass=inetOrgPerson)",
            "(uid=jdoe)",
            "(&(objectClass=inetorgperson)(!(uid=other)))",
            "(|(uid=nobody)(cn=*Doe))",
            "(cn=john*doe)",
            "(cn=*\\28jack\\29*)",
            "(uid=*)",
            "uid=jdoe",
            "(uidNumber>=999)",
        ];
        for f in yes {
            assert!(Filter::parse(f).unwrap().matches(&e), "{f}");
        }
        for f in ["(uid=jdo)", "(!(uid=jdoe))", "(&(uid=jdoe)(mail=*))", "(cn=jack*)"] {
            assert!(!Filter::parse(f).unwrap().matches(&e), "{f}");
        }
    }

    #[test]
    fn bad_filters_say_why() {
        for f in ["(uid=x", "(&)", "(uid)", "(=x)", "(uid=\\zz)", "(uid=a))", "(cn=a(b)"] {
            assert!(Filter::parse(f).is_err(), "{f}");
        }
        assert!(Filter::parse("(cn=a(b)").unwrap_err().contains("unescaped '('"));
    }

    #[test]
    fn a_deeply_nested_filter_is_refused_not_a_stack_overflow() {
        let deep = format!("{}(uid=a){}", "(!".repeat(10_000), ")".repeat(10_000));
        let e = Filter::parse(&deep).unwrap_err();
        assert!(e.contains("nested more than 32 levels"), "{e}");
        let ok = format!("{}(uid=a){}", "(!".repeat(31), ")".repeat(31));
        assert!(Filter::parse(&ok).is_ok());
    }
}
