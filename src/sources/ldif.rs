//! The LDIF source: reads an RFC 2849 file (an export such as `slapcat` or
//! `ldapsearch -LLL` writes) so admins can import a directory offline. Entries
//! are selected with the same `user_filter`/`group_filter` a server would
//! apply. A syntax error fails the source with the line number: a file that
//! cannot be read whole must not remove anybody.

use std::io::BufRead;
use std::path::PathBuf;

use async_trait::async_trait;
use base64::Engine;

use super::{EntrySink, FetchCounts, Fetched, Source, SourceError};
use crate::config::{LdifConfig, SourceConfig};
use crate::filter::Filter;
use crate::model::{normalize_dn, AttrValue, EntryKind, RawEntry};

pub struct LdifSource {
    name: String,
    path: PathBuf,
    base_dn: Option<String>,
    user_filter: Filter,
    group_filter: Option<Filter>,
}

impl LdifSource {
    pub fn new(cfg: &SourceConfig, l: &LdifConfig) -> Self {
        LdifSource {
            name: cfg.name.clone(),
            path: l.path.clone(),
            base_dn: l.base_dn.as_deref().map(normalize_dn),
            // Validated at config load.
            user_filter: Filter::parse(&cfg.user_filter).expect("validated filter"),
            group_filter: cfg.group_filter.as_deref().map(|f| Filter::parse(f).expect("validated filter")),
        }
    }

    fn in_scope(&self, dn: &str) -> bool {
        match &self.base_dn {
            None => true,
            Some(base) => {
                let dn = normalize_dn(dn);
                dn == *base || dn.ends_with(&format!(",{base}"))
            }
        }
    }
}

#[async_trait]
impl Source for LdifSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| SourceError::new(&self.name, format!("cannot open {}: {e}", self.path.display())))?;
        let mut batcher = sink.batcher();
        let mut counts = FetchCounts::default();
        let mut reader = Reader::new(std::io::BufReader::with_capacity(1 << 16, file));
        loop {
            let entry = match reader.next_record() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(msg) => {
                    return Err(SourceError::new(
                        &self.name,
                        format!("{}:{}: {msg}", self.path.display(), reader.record_line),
                    ))
                }
            };
            if !self.in_scope(&entry.dn) {
                continue;
            }
            let kind = if self.group_filter.as_ref().is_some_and(|f| f.matches(&entry)) {
                counts.groups += 1;
                EntryKind::Group
            } else if self.user_filter.matches(&entry) {
                counts.users += 1;
                EntryKind::User
            } else {
                continue;
            };
            batcher.push(kind, entry).await.map_err(|m| SourceError::new(&self.name, m))?;
        }
        batcher.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        Ok(Fetched { counts, delta: None, next_state: None })
    }
}

/// An RFC 2849 content-record reader.
pub struct Reader<R> {
    input: R,
    line_no: usize,
    /// The line the current record starts on (for error messages).
    pub record_line: usize,
    pending: Option<String>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader { input, line_no: 0, record_line: 0, pending: None }
    }

    fn raw_line(&mut self) -> Result<Option<String>, String> {
        if let Some(l) = self.pending.take() {
            return Ok(Some(l));
        }
        let mut buf = Vec::new();
        let n = self.input.read_until(b'\n', &mut buf).map_err(|e| format!("read error: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
            buf.pop();
        }
        String::from_utf8(buf)
            .map(Some)
            .map_err(|_| format!("line {} is not UTF-8 (use `attr:: base64` for binary values)", self.line_no))
    }

    /// One logical line: folded continuation lines (starting with one space) joined.
    fn logical_line(&mut self) -> Result<Option<String>, String> {
        let Some(mut line) = self.raw_line()? else { return Ok(None) };
        loop {
            match self.raw_line()? {
                Some(next) if next.starts_with(' ') => line.push_str(&next[1..]),
                other => {
                    self.pending = other;
                    return Ok(Some(line));
                }
            }
        }
    }

    /// The next entry, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<RawEntry>, String> {
        let mut entry: Option<RawEntry> = None;
        loop {
            let line = match self.logical_line()? {
                None => return Ok(entry),
                Some(l) => l,
            };
            if line.is_empty() {
                if entry.is_some() {
                    return Ok(entry);
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (attr, value) = parse_attr_line(&line)?;
            match &mut entry {
                None => {
                    if attr.eq_ignore_ascii_case("version") {
                        continue;
                    }
                    if !attr.eq_ignore_ascii_case("dn") {
                        return Err(format!("expected \"dn:\" to start a record, got \"{attr}:\""));
                    }
                    self.record_line = self.line_no;
                    let dn = match value {
                        AttrValue::Text(t) => t,
                        AttrValue::Binary(_) => return Err("the DN is not UTF-8".into()),
                    };
                    entry = Some(RawEntry::new(dn));
                }
                Some(e) => {
                    if attr.eq_ignore_ascii_case("changetype") {
                        match &value {
                            AttrValue::Text(t) if t == "add" => continue,
                            _ => {
                                return Err(format!(
                                    "record {}: only content records (or changetype: add) can be imported",
                                    e.dn
                                ))
                            }
                        }
                    }
                    if attr.eq_ignore_ascii_case("control") {
                        return Err(format!("record {}: LDIF controls are not supported in an import", e.dn));
                    }
                    e.push(attr, value);
                }
            }
        }
    }
}

fn parse_attr_line(line: &str) -> Result<(&str, AttrValue), String> {
    let colon = line.find(':').ok_or_else(|| format!("expected \"attribute: value\", got {line:?}"))?;
    let attr = &line[..colon];
    if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.') {
        return Err(format!("bad attribute name {attr:?}"));
    }
    let rest = &line[colon + 1..];
    let value = if let Some(b64) = rest.strip_prefix(':') {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("attribute {attr}: bad base64 value: {e}"))?;
        match String::from_utf8(bytes) {
            Ok(s) => AttrValue::Text(s),
            Err(e) => AttrValue::Binary(e.into_bytes()),
        }
    } else if let Some(url) = rest.strip_prefix('<') {
        let url = url.trim();
        let path = url
            .strip_prefix("file://")
            .ok_or_else(|| format!("attribute {attr}: only file:// URLs are supported, got {url:?}"))?;
        let bytes = std::fs::read(path).map_err(|e| format!("attribute {attr}: cannot read {path}: {e}"))?;
        match String::from_utf8(bytes) {
            Ok(s) => AttrValue::Text(s),
            Err(e) => AttrValue::Binary(e.into_bytes()),
        }
    } else {
        AttrValue::Text(rest.strip_prefix(' ').unwrap_or(rest).trim_start().to_string())
    };
    Ok((attr, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Result<Vec<RawEntry>, String> {
        let mut r = Reader::new(text.as_bytes());
        let mut v = Vec::new();
        while let Some(e) = r.next_record()? {
            v.push(e);
        }
        Ok(v)
    }

    #[test]
    fn parses_folding_base64_comments_and_version() {
        let text = "version: 1\n# a comment\n#  folded comment\n\ndn: uid=jdoe,ou=people,\n dc=example,dc=com\nobjectClass: inetOrgPerson\ncn:: SsO8cmdlbiBNw7xsbGVy\ndescription: a long\n  value\njpegPhoto:: /9j/\n\n\ndn: cn=g,dc=example,dc=com\nchangetype: add\nmember: uid=jdoe,ou=people,dc=example,dc=com\n";
        let es = read_all(text).unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].dn, "uid=jdoe,ou=people,dc=example,dc=com");
        assert_eq!(es[0].first("cn"), Some(&AttrValue::Text("Jürgen Müller".into())));
        assert_eq!(es[0].first("description"), Some(&AttrValue::Text("a long value".into())));
        assert!(matches!(es[0].first("jpegphoto"), Some(AttrValue::Binary(_))));
        assert_eq!(es[1].values("member").len(), 1);
    }

    #[test]
    fn syntax_errors_are_errors() {
        assert!(read_all("cn: x\n").unwrap_err().contains("expected \"dn:\""));
        assert!(read_all("dn: a=b\nmail:: !!!\n").unwrap_err().contains("bad base64"));
        assert!(read_all("dn: a=b\nchangetype: delete\n").is_err());
        assert!(read_all("dn: a=b\nnocolon\n").is_err());
    }
}
