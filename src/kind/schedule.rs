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
