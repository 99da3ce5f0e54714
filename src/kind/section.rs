//! One TOML table read key by key: a `[[sources]]` table and its sub-tables.
//! Each read takes its key out of the table, checks the value's type and, on
//! a mistake, names the key (`sources[0].page_size`) and what is expected,
//! never the value (which may be a secret). [`Section::finish`] refuses the
//! keys nobody read, so a kind's parser only reads the keys it knows and
//! everything else is reported as not used by that kind.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::settings::{read_password, PasswordKeys};
use crate::secret::Secret;

/// A table being read; see the module doc.
pub struct Section<'a> {
    table: toml::Table,
    prefix: String,
    file: &'a Path,
    resolve: &'a dyn Fn(&str) -> PathBuf,
    /// Things that work but deserve attention (e.g. a literal password).
    pub warnings: &'a mut Vec<String>,
}

impl<'a> Section<'a> {
    /// `prefix` names the table in errors (`sources[0]`); `resolve` makes a
    /// path relative to the config file's folder absolute.
    pub fn new(
        table: toml::Table,
        prefix: impl Into<String>,
        file: &'a Path,
        resolve: &'a dyn Fn(&str) -> PathBuf,
        warnings: &'a mut Vec<String>,
    ) -> Self {
        Section { table, prefix: prefix.into(), file, resolve, warnings }
    }

    /// The full name of key `k` (`sources[0].k`).
    pub fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.prefix)
    }

    /// An error about key `k`.
    pub fn err(&self, k: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, self.key(k), message)
    }

    /// A path from the config, relative to the config file's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        (self.resolve)(p)
    }

    /// Whether key `k` is (still) in the table.
    pub fn has(&self, k: &str) -> bool {
        self.table.contains_key(k)
    }

    /// Key `k`'s value, left in the table for its owner to read.
    pub fn peek(&self, k: &str) -> Option<&toml::Value> {
        self.table.get(k)
    }

    fn take(&mut self, k: &str) -> Option<toml::Value> {
        self.table.remove(k)
    }

    fn wrong(&self, k: &str, expected: &str, got: &toml::Value) -> ConfigError {
        self.err(k, format!("expected {expected}, got {}", article(got.type_str())))
    }

    pub fn string(&mut self, k: &str) -> Result<Option<String>, ConfigError> {
        match self.take(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(k, "a quoted string", &v)),
        }
    }

    pub fn boolean(&mut self, k: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(k) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(b)),
            Some(v) => Err(self.wrong(k, "true or false", &v)),
        }
    }

    pub fn integer(&mut self, k: &str) -> Result<Option<i64>, ConfigError> {
        match self.take(k) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) => Ok(Some(n)),
            Some(v) => Err(self.wrong(k, "a whole number", &v)),
        }
    }

    /// A number, whole or not.
    pub fn number(&mut self, k: &str) -> Result<Option<f64>, ConfigError> {
        match self.take(k) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) => Ok(Some(n as f64)),
            Some(toml::Value::Float(f)) => Ok(Some(f)),
            Some(v) => Err(self.wrong(k, "a number", &v)),
        }
    }

    pub fn strings(&mut self, k: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let list = "a list of strings such as [\"a\", \"b\"]".to_string();
        self.array(k, "a quoted string", list, |v| match v {
            toml::Value::String(s) => Ok(s),
            v => Err(v),
        })
    }

    /// An array whose items `item` takes (giving back what it refuses).
    fn array<T>(
        &mut self,
        k: &str,
        item_expected: &str,
        expected: String,
        item: impl Fn(toml::Value) -> Result<T, toml::Value>,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        match self.take(k) {
            None => Ok(None),
            Some(toml::Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, v) in a.into_iter().enumerate() {
                    out.push(item(v).map_err(|v| self.wrong(&format!("{k}[{i}]"), item_expected, &v))?);
                }
                Ok(Some(out))
            }
            Some(v) => Err(self.wrong(k, &expected, &v)),
        }
    }

    pub fn table(&mut self, k: &str) -> Result<Option<toml::Table>, ConfigError> {
        match self.take(k) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(t)),
            Some(v) => Err(self.wrong(k, &format!("a table ([{}.{k}])", self.prefix), &v)),
        }
    }

    /// Sub-table `k` as a section of its own (`None` when absent).
    pub fn sub(&mut self, k: &str) -> Result<Option<Section<'_>>, ConfigError> {
        let Some(t) = self.table(k)? else { return Ok(None) };
        let prefix = self.key(k);
        Ok(Some(Section { table: t, prefix, file: self.file, resolve: self.resolve, warnings: self.warnings }))
    }

    /// A bind password given as `bind_password`, `bind_password_file` or
    /// `bind_password_env` (at most one).
    pub fn password(&mut self) -> Result<Option<Secret>, ConfigError> {
        self.secret("bind_password")
    }

    /// A secret given as `<base>`, `<base>_file` or `<base>_env` (at most one).
    pub fn secret(&mut self, base: &str) -> Result<Option<Secret>, ConfigError> {
        let literal = self.string(base)?;
        let file = self.string(&format!("{base}_file"))?;
        let env = self.string(&format!("{base}_env"))?;
        let keys = PasswordKeys {
            base,
            literal: literal.as_deref(),
            file: file.as_deref(),
            env: env.as_deref(),
            where_: self.prefix.clone(),
        };
        let (resolve, file_path, prefix) = (self.resolve, self.file, self.prefix.clone());
        read_password(&keys, resolve, &|k, m| ConfigError::new(file_path, format!("{prefix}.{k}"), m), self.warnings)
    }

    /// An array of tables (`[[server.clients]]`), each to read with [`Section::child`].
    pub fn take_array(&mut self, k: &str) -> Result<Option<Vec<toml::Table>>, ConfigError> {
        let expected = format!("tables ([[{}.{k}]])", self.prefix);
        self.array(k, "a table", expected, |v| match v {
            toml::Value::Table(t) => Ok(t),
            v => Err(v),
        })
    }

    /// A section for `table`, named `<prefix>.<name>` in errors.
    pub fn child(&mut self, table: toml::Table, name: &str) -> Section<'_> {
        let prefix = self.key(name);
        Section { table, prefix, file: self.file, resolve: self.resolve, warnings: self.warnings }
    }

    /// Refuses the keys nobody read: `what` says who did not use them
    /// (`type = "ldif"`), `known` lists every key some reader knows, so a
    /// typo is told apart from a key of another kind.
    pub fn finish(&self, what: &str, known: &[&str]) -> Result<(), ConfigError> {
        if let Some(k) = self.table.keys().next() {
            let message = if known.contains(&k.as_str()) {
                format!("is not used by {what}")
            } else {
                format!("unknown key (not used by {what}; check the spelling)")
            };
            return Err(self.err(k, message));
        }
        Ok(())
    }
}

fn article(t: &str) -> String {
    match t {
        "integer" | "array" => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section<'a>(text: &str, w: &'a mut Vec<String>, r: &'a dyn Fn(&str) -> PathBuf) -> Section<'a> {
        Section::new(toml::from_str(text).unwrap(), "sources[0]", Path::new("/c.toml"), r, w)
    }

    #[test]
    fn a_wrong_type_names_the_key_and_never_the_value() {
        let (mut w, r) = (Vec::new(), |p: &str| PathBuf::from(p));
        let mut s = section("bind_password = 98765\npage_size = \"ten\"\n", &mut w, &r);
        let e = s.password().unwrap_err().to_string();
        assert!(e.contains("sources[0].bind_password: expected a quoted string, got an integer"), "{e}");
        assert!(!e.contains("98765"), "{e}");
        let e = s.integer("page_size").unwrap_err().to_string();
        assert!(e.contains("sources[0].page_size: expected a whole number, got a string") && !e.contains("ten"), "{e}");
    }

    #[test]
    fn keys_left_over_are_refused_by_name() {
        let (mut w, r) = (Vec::new(), |p: &str| PathBuf::from(p));
        let mut s = section("url = \"x\"\nbase_dn = \"y\"\n", &mut w, &r);
        assert_eq!(s.string("base_dn").unwrap().as_deref(), Some("y"));
        let e = s.finish("type = \"ldif\"", &["url"]).unwrap_err().to_string();
        assert!(e.ends_with("sources[0].url: is not used by type = \"ldif\""), "{e}");
        let s = section("uurl = \"x\"\n", &mut w, &r);
        let e = s.finish("type = \"ldap\"", &["url"]).unwrap_err().to_string();
        assert!(e.contains("sources[0].uurl: unknown key"), "{e}");
        assert!(s_empty_finishes(&mut w));
    }

    fn s_empty_finishes(w: &mut Vec<String>) -> bool {
        let r = |p: &str| PathBuf::from(p);
        section("", w, &r).finish("x", &[]).is_ok()
    }
}
