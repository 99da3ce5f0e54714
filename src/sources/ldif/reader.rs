//! An RFC 2849 content-record reader, bounded and linear: every line, value,
//! entry and attribute count has a limit, attribute lookups are hashed, and
//! `file://` values are read only from regular files under one folder (off
//! when no folder is given). A malformed file is an error naming the line,
//! never a silent drop: a missing blank line between records, bare-CR line
//! endings, a record without attributes. Errors never quote the file's
//! content, so pointing `path` at a secret file cannot print the secret.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use base64::Engine;
use rustc_hash::FxHashMap;

use crate::model::{AttrValue, RawEntry};

/// Longest logical line (an attribute and its value, base64 or folded).
pub const MAX_LINE: usize = 16 << 20;
/// Most bytes of values in one entry (a group with a million members fits).
pub const MAX_ENTRY: usize = 64 << 20;
/// Most distinct attribute names in one entry.
pub const MAX_ATTRIBUTES: usize = 1000;
/// Largest file a `file://` value may name.
pub const MAX_FILE_VALUE: u64 = 16 << 20;

/// Reads content records one at a time.
pub struct Reader<R> {
    input: R,
    line_no: usize,
    /// The line the current logical line starts on (for error messages).
    line_start: usize,
    pending: Option<(usize, String)>,
    /// Where `file://` values may come from (`None`: nowhere).
    files_under: Option<PathBuf>,
    records: usize,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader { input, line_no: 0, line_start: 0, pending: None, files_under: None, records: 0 }
    }

    /// Allows `file://` values naming regular files under `dir` (relative
    /// paths resolve against it).
    pub fn with_files_under(mut self, dir: &Path) -> Self {
        self.files_under = Some(dir.to_path_buf());
        self
    }

    /// The line an error was found on (1-based; at least 1).
    pub fn error_line(&self) -> usize {
        self.line_start.max(1)
    }

    /// One physical line without its `\n` or `\r\n`, at most [`MAX_LINE`] bytes.
    fn raw_line(&mut self) -> Result<Option<String>, String> {
        let mut buf = Vec::new();
        loop {
            let chunk = self.input.fill_buf().map_err(|e| format!("read error: {e}"))?;
            if chunk.is_empty() {
                break;
            }
            let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if buf.len() + take > MAX_LINE + 2 {
                self.line_start = self.line_no + 1;
                return Err(format!("a line is longer than {} MiB", MAX_LINE >> 20));
            }
            buf.extend_from_slice(&chunk[..take]);
            self.input.consume(take);
            if end {
                break;
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.contains(&b'\r') {
            self.line_start = self.line_no;
            return Err("a carriage return inside a line (bare-CR line endings?): LDIF lines end with \\n or \\r\\n; convert the file".into());
        }
        String::from_utf8(buf).map(Some).map_err(|_| {
            self.line_start = self.line_no;
            "the line is not UTF-8 (use `attr:: base64` for binary values)".to_string()
        })
    }

    /// One logical line (folded continuation lines joined) and its first line number.
    fn logical_line(&mut self) -> Result<Option<(usize, String)>, String> {
        let (start, mut line) = match self.pending.take() {
            Some(p) => p,
            None => match self.raw_line()? {
                Some(l) => (self.line_no, l),
                None => return Ok(None),
            },
        };
        self.line_start = start;
        loop {
            match self.raw_line()? {
                Some(next) if next.starts_with(' ') && !line.is_empty() => {
                    if line.len() + next.len() > MAX_LINE {
                        self.line_start = start;
                        return Err(format!("a folded line is longer than {} MiB", MAX_LINE >> 20));
                    }
                    line.push_str(&next[1..]);
                }
                other => {
                    self.pending = other.map(|l| (self.line_no, l));
                    self.line_start = start;
                    return Ok(Some((start, line)));
                }
            }
        }
    }

    /// The next entry, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<RawEntry>, String> {
        let mut entry: Option<RawEntry> = None;
        let mut record_line = 0;
        let mut index: FxHashMap<String, usize> = FxHashMap::default();
        let mut bytes = 0usize;
        loop {
            let Some((at, line)) = self.logical_line()? else {
                return self.end_of_record(entry, record_line);
            };
            if line.is_empty() {
                if entry.is_some() {
                    return self.end_of_record(entry, record_line);
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (attr, value) = self.parse_attr_line(&line)?;
            match &mut entry {
                None => {
                    if attr.eq_ignore_ascii_case("version") {
                        if self.records > 0 {
                            return Err("\"version:\" may only stand before the first record".into());
                        }
                        if !matches!(&value, AttrValue::Text(t) if t.trim() == "1") {
                            return Err("unsupported LDIF version (expected \"version: 1\")".into());
                        }
                        continue;
                    }
                    if !attr.eq_ignore_ascii_case("dn") {
                        return Err("a record must start with a \"dn:\" line".into());
                    }
                    record_line = at;
                    let dn = match value {
                        AttrValue::Text(t) => t,
                        AttrValue::Binary(_) => return Err("the DN is not UTF-8".into()),
                    };
                    entry = Some(RawEntry::new(dn));
                }
                Some(e) => {
                    if attr.eq_ignore_ascii_case("dn") {
                        return Err(format!(
                            "a second \"dn:\" line inside the record that starts at line {record_line} (is the blank line between two records missing?)"
                        ));
                    }
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
                    bytes += value.bytes().len();
                    if bytes > MAX_ENTRY {
                        return Err(format!(
                            "the record that starts at line {record_line} is larger than {} MiB",
                            MAX_ENTRY >> 20
                        ));
                    }
                    let name = attr.to_ascii_lowercase();
                    match index.get(&name) {
                        Some(&i) => e.attrs[i].1.push(value),
                        None => {
                            if e.attrs.len() >= MAX_ATTRIBUTES {
                                return Err(format!(
                                    "the record that starts at line {record_line} has more than {MAX_ATTRIBUTES} attribute names"
                                ));
                            }
                            index.insert(name.clone(), e.attrs.len());
                            e.attrs.push((name, vec![value]));
                        }
                    }
                }
            }
        }
    }

    fn end_of_record(&mut self, entry: Option<RawEntry>, record_line: usize) -> Result<Option<RawEntry>, String> {
        if let Some(e) = &entry {
            if e.attrs.is_empty() {
                self.line_start = record_line;
                return Err("the record has a DN but no attributes".into());
            }
            self.records += 1;
        }
        Ok(entry)
    }

    fn parse_attr_line<'l>(&self, line: &'l str) -> Result<(&'l str, AttrValue), String> {
        let colon = line.find(':').ok_or("expected \"attribute: value\" (the line has no colon)")?;
        let attr = &line[..colon];
        if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.') {
            return Err("bad attribute name (letters, digits, '-', ';' and '.' only)".into());
        }
        let rest = &line[colon + 1..];
        let value = if let Some(b64) = rest.strip_prefix(':') {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("attribute {attr}: bad base64 value: {e}"))?;
            bytes_value(bytes)
        } else if let Some(url) = rest.strip_prefix('<') {
            bytes_value(self.read_url(attr, url.trim())?)
        } else {
            AttrValue::Text(rest.trim_start_matches(' ').to_string())
        };
        Ok((attr, value))
    }

    /// A `file://` value: a regular file under the allowed folder, bounded.
    fn read_url(&self, attr: &str, url: &str) -> Result<Vec<u8>, String> {
        let Some(dir) = &self.files_under else {
            return Err(format!("attribute {attr}: file:// values are not allowed here"));
        };
        let path =
            url.strip_prefix("file://").ok_or_else(|| format!("attribute {attr}: only file:// URLs are supported"))?;
        let path = dir.join(path); // an absolute path replaces dir
        let no = |why: &str| format!("attribute {attr}: cannot use {}: {why}", path.display());
        let real = path.canonicalize().map_err(|e| no(&e.to_string()))?;
        let base = dir.canonicalize().map_err(|e| no(&e.to_string()))?;
        if !real.starts_with(&base) {
            return Err(no(&format!("file:// values must name files in {} or below", base.display())));
        }
        let meta = std::fs::metadata(&real).map_err(|e| no(&e.to_string()))?;
        if !meta.is_file() {
            return Err(no("not a regular file"));
        }
        if meta.len() > MAX_FILE_VALUE {
            return Err(no(&format!("larger than {} MiB", MAX_FILE_VALUE >> 20)));
        }
        let mut out = Vec::new();
        std::fs::File::open(&real)
            .map_err(|e| no(&e.to_string()))?
            .take(MAX_FILE_VALUE + 1)
            .read_to_end(&mut out)
            .map_err(|e| no(&e.to_string()))?;
        if out.len() as u64 > MAX_FILE_VALUE {
            return Err(no(&format!("larger than {} MiB", MAX_FILE_VALUE >> 20)));
        }
        Ok(out)
    }
}

fn bytes_value(bytes: Vec<u8>) -> AttrValue {
    match String::from_utf8(bytes) {
        Ok(s) => AttrValue::Text(s),
        Err(e) => AttrValue::Binary(e.into_bytes()),
    }
}

/// Every record of `text`, or the first error as `line: message`.
pub fn read_all(text: &[u8]) -> Result<Vec<RawEntry>, String> {
    let mut r = Reader::new(text);
    let mut v = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(e)) => v.push(e),
            Ok(None) => return Ok(v),
            Err(m) => return Err(format!("{}: {m}", r.error_line())),
        }
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
