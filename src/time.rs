//! Times as runs, the audit trail and the store keep them: UTC instants,
//! compared as instants (never as text), written as RFC 3339 with
//! milliseconds (`2026-11-23T10:21:02.123Z`), which is also how the store
//! keeps them as text and JSON shows them.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// A UTC instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(Utc::now())
    }

    /// Parses RFC 3339 (any offset; kept as UTC).
    pub fn parse(s: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(s).ok().map(|t| Timestamp(t.with_timezone(&Utc)))
    }

    /// This instant plus `d` (saturating at the far future).
    pub fn plus(self, d: Duration) -> Timestamp {
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Timestamp(self.0.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC))
    }

    /// This instant minus `d` (saturating at the far past).
    pub fn minus(self, d: Duration) -> Timestamp {
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Timestamp(self.0.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC))
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.timestamp()
    }

    /// How long after `earlier` this instant is (zero if it is not after).
    pub fn since(self, earlier: Timestamp) -> Duration {
        (self.0 - earlier.0).to_std().unwrap_or_default()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_millis_and_compare_as_instants() {
        let t = Timestamp::parse("2026-11-23T10:21:02.123Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:21:02.123Z");
        // Another offset, the same instant: equal, though the text differs.
        assert_eq!(Timestamp::parse("2026-11-23T11:21:02.123+01:00"), Some(t));
        // Text order and time order differ across offsets; instants do not.
        let later = Timestamp::parse("2026-11-23T10:30:00+05:00").unwrap();
        assert!(later < t, "10:30 at +05:00 is 05:30 UTC");
        assert_eq!(t.plus(Duration::from_secs(60)).since(t), Duration::from_secs(60));
        assert_eq!(t.since(t.plus(Duration::from_secs(1))), Duration::ZERO);
        assert!(Timestamp::parse("yesterday").is_none());
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-11-23T10:21:02.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>("\"2026-11-23T10:21:02.123Z\"").unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }
}
