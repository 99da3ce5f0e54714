//! When a source's runs start on their own: a [`Schedule`] of cron
//! patterns, for full and incremental reads.

use std::fmt;

/// A cron pattern (5 fields, or 6 with seconds first), evaluated in local time.
#[derive(Clone)]
pub struct CronPattern {
    pub text: String,
    pub cron: croner::Cron,
}

impl fmt::Debug for CronPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl CronPattern {
    pub fn parse(text: &str) -> Result<CronPattern, String> {
        let fields = text.split_whitespace().count();
        if !(fields == 5 || fields == 6 || text.trim_start().starts_with('@')) {
            return Err(format!(
                "expected a cron pattern of 5 fields (minute hour day month weekday) or 6 (seconds first), got \"{text}\""
            ));
        }
        let parser = croner::parser::CronParser::builder().year(croner::parser::Year::Disallowed).build();
        let cron = parser.parse(text).map_err(|e| format!("\"{text}\" is not a valid cron pattern: {e}"))?;
        Ok(CronPattern { text: text.to_string(), cron })
    }

    /// A 6-field pattern (seconds first) that reads like a 5-field one with
    /// an extra `*`: `55 0 * * * *` runs every hour at :00:55, not daily at
    /// 00:55. Says so, and what was probably meant.
    pub fn doubt(&self) -> Option<String> {
        let f: Vec<&str> = self.text.split_whitespace().collect();
        let [sec, min, hour, ..] = f[..] else { return None };
        let number = |s: &str| s.parse::<u32>().ok();
        let (sec_n, min_n) = (number(sec)?, number(min)?);
        // Read as 5 fields, the first two would be a minute and an hour.
        if hour != "*" || f.len() != 6 || sec_n > 59 || min_n > 23 {
            return None;
        }
        // Probably meant: the same without the extra `*`.
        let meant: Vec<&str> = f.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, x)| *x).collect();
        Some(format!(
            "\"{}\" has 6 fields, seconds first: it runs every hour at :{min_n:02}:{sec_n:02}; for {min_n:02}:{sec_n:02} write \"{}\"",
            self.text,
            meant.join(" ")
        ))
    }

    /// The first time after `after` that matches, in local time.
    pub fn next_after(&self, after: chrono::DateTime<chrono::Local>) -> Option<chrono::DateTime<chrono::Local>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// When runs start on their own (`[schedule]`, `[sources.schedule]`).
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Full reads; `None`: never on a schedule.
    pub full: Option<CronPattern>,
    /// Incremental reads where the source supports them; `None`: off.
    pub incremental: Option<CronPattern>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            full: Some(CronPattern::parse("55 0 * * *").expect("valid default")),
            incremental: Some(CronPattern::parse("*/15 * * * *").expect("valid default")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CronPattern;

    #[test]
    fn a_doubt_is_raised_only_for_a_six_field_pattern_that_reads_like_five() {
        let doubt = |p: &str| CronPattern::parse(p).unwrap().doubt();
        assert!(doubt("55 0 * * * *").unwrap().contains("every hour at :00:55"));
        assert!(doubt("30 7 * * * 1-5").unwrap().contains("\"30 7 * * 1-5\""));
        assert_eq!(doubt("55 0 * * *"), None, "five fields");
        assert_eq!(doubt("0 55 0 * * *"), None, "the hour is given");
        assert_eq!(doubt("*/10 * * * * *"), None, "seconds meant");
        assert_eq!(doubt("55 30 * * * *"), None, "30 is no hour");
    }
}
