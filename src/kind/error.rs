//! The error a configuration mistake is reported with: which file, which
//! key, what is expected, and the source whose table it is in.

use std::fmt;
use std::path::PathBuf;

/// A configuration mistake: which file, which key, what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
    /// The name of the source whose table `key` is in, once it is known:
    /// messages say `source "corp": sources[2].url: …`, not only an index.
    pub source_name: Option<String>,
}

impl ConfigError {
    pub fn new(file: impl Into<PathBuf>, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { file: file.into(), key: key.into(), message: message.into(), source_name: None }
    }

    /// The same error, said to be in source `name`'s table.
    pub fn in_source(mut self, name: &str) -> Self {
        if self.key.starts_with("sources[") {
            self.source_name = Some(name.to_string());
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(n) = &self.source_name {
            write!(f, "source \"{n}\": ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
