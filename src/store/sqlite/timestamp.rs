//! How SQLite holds a [`Timestamp`]: as its RFC 3339 text, which sorts as
//! the instant does.

use crate::time::Timestamp;

impl rusqlite::types::ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.to_string()))
    }
}

impl rusqlite::types::FromSql for Timestamp {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        Timestamp::parse(s).ok_or_else(|| rusqlite::types::FromSqlError::Other(format!("not a time: {s:?}").into()))
    }
}
