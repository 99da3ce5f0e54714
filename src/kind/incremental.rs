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

/// The longest duration accepted: a hundred years.
const MAX_SECS: u64 = 100 * 366 * 86400;

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
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .filter(|&t| t <= MAX_SECS)
            .ok_or_else(|| format!("\"{s}\" is too long (at most 100 years)"))?;
        num.clear();
    }
    if !num.is_empty() || total == 0 {
        return Err(format!("expected a duration such as \"24h\", \"90m\" or \"7d\" (with a unit), got \"{s}\""));
    }
    Ok(Some(std::time::Duration::from_secs(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_an_overflow_is_an_error_not_a_wrap() {
        assert_eq!(parse_duration("1h30m").unwrap(), Some(std::time::Duration::from_secs(5400)));
        assert_eq!(parse_duration("never").unwrap(), None);
        for bad in ["18446744073709551615s2s", "99999999999999999999s", "1000000000000d", "h", "5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("18446744073709551615s2s").unwrap_err().contains("too long"));
    }
}
