//! How PostgreSQL holds a [`Timestamp`]: as its RFC 3339 text in a `text`
//! column, as SQLite does, so the two stores sort and copy alike.

use tokio_postgres::types::{accepts, to_sql_checked, FromSql, IsNull, ToSql, Type};

use crate::time::Timestamp;

impl ToSql for Timestamp {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_string().as_str().to_sql(ty, out)
    }

    accepts!(TEXT, VARCHAR);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Timestamp {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Timestamp, Box<dyn std::error::Error + Sync + Send>> {
        let s = <&str as FromSql>::from_sql(ty, raw)?;
        Timestamp::parse(s).ok_or_else(|| format!("not a time: {s:?}").into())
    }

    accepts!(TEXT, VARCHAR);
}
