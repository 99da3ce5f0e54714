//! `[sources.incremental]`: whether to read only what changed, and how often
//! to read in full anyway.

/// `[sources.incremental]`: read only what changed, when the source can say.
#[derive(Debug, Clone)]
pub struct Incremental {
    /// Default true: incremental whenever the source supports it.
    pub enabled: bool,
    /// A full read at least this often, so drift cannot accumulate (`None`: never).
    pub full_every: Option<std::time::Duration>,
}

impl Default for Incremental {
    fn default() -> Self {
        Incremental { enabled: true, full_every: Some(std::time::Duration::from_secs(24 * 3600)) }
    }
}

/// Parses "24h", "90m", "7d", "1h30m", "3600s"; "never" or "0" for none.
pub fn parse_duration(s: &str) -> Result<Option<std::time::Duration>, String> {
    let t = s.trim();
    if t == "never" || t == "0" {
        return Ok(None);
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("expected a duration such as \"24h\", \"90m\" or \"7d\", got \"{s}\"")),
        };
        let n: u64 =
            num.parse().map_err(|_| format!("expected a duration such as \"24h\", \"90m\" or \"7d\", got \"{s}\""))?;
        total += n * unit;
        num.clear();
    }
    if !num.is_empty() || total == 0 {
        return Err(format!("expected a duration such as \"24h\", \"90m\" or \"7d\" (with a unit), got \"{s}\""));
    }
    Ok(Some(std::time::Duration::from_secs(total)))
}
