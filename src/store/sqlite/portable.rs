//! SQLite's side of `store copy`: rows of any table as [`Cell`]s, read in
//! order and written with their ids.

use std::sync::Arc;

use rusqlite::types::{Value, ValueRef};

use super::{backend, SqliteStore};
use crate::store::copy::{Cell, Kind, Portable, Table};
use crate::store::{Store, StoreError};

fn columns(t: &Table) -> String {
    t.columns.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
}

fn order(t: &Table) -> &'static str {
    match t.order {
        "@rowid" => "rowid",
        o => o,
    }
}

impl Portable for SqliteStore {
    fn each_row(&self, t: &Table, f: &mut dyn FnMut(Vec<Cell>) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let err = backend(self.path());
        let conn = self.write();
        let mut st =
            conn.prepare(&format!("SELECT {} FROM {} ORDER BY {}", columns(t), t.name, order(t))).map_err(&err)?;
        let mut rows = st.query([]).map_err(&err)?;
        while let Some(r) = rows.next().map_err(&err)? {
            let mut row = Vec::with_capacity(t.columns.len());
            for (i, (_, kind)) in t.columns.iter().enumerate() {
                row.push(match (r.get_ref(i).map_err(&err)?, kind) {
                    (ValueRef::Null, _) => Cell::Null,
                    (ValueRef::Integer(v), Kind::Bool) => Cell::Bool(v != 0),
                    (ValueRef::Integer(v), _) => Cell::Int(v),
                    (ValueRef::Text(s), _) => Cell::Text(String::from_utf8_lossy(s).into_owned()),
                    (ValueRef::Real(v), _) => Cell::Text(v.to_string()),
                    (ValueRef::Blob(b), _) => Cell::Text(String::from_utf8_lossy(b).into_owned()),
                });
            }
            f(row)?;
        }
        Ok(())
    }

    fn insert_rows(&self, t: &Table, rows: &[Vec<Cell>]) -> Result<(), StoreError> {
        let err = backend(self.path());
        let mut conn = self.write();
        let tx = conn.transaction().map_err(&err)?;
        {
            let marks = (1..=t.columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
            let mut st =
                tx.prepare(&format!("INSERT INTO {} ({}) VALUES ({marks})", t.name, columns(t))).map_err(&err)?;
            for row in rows {
                let values = row.iter().map(|c| match c {
                    Cell::Null => Value::Null,
                    Cell::Int(v) => Value::Integer(*v),
                    Cell::Bool(b) => Value::Integer(*b as i64),
                    Cell::Text(s) => Value::Text(s.clone()),
                });
                st.execute(rusqlite::params_from_iter(values)).map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    fn count_rows(&self, t: &Table) -> Result<u64, StoreError> {
        let err = backend(self.path());
        let n: i64 =
            self.write().query_row(&format!("SELECT count(*) FROM {}", t.name), [], |r| r.get(0)).map_err(&err)?;
        Ok(n as u64)
    }

    fn clear(&self, t: &Table) -> Result<(), StoreError> {
        let err = backend(self.path());
        self.write().execute(&format!("DELETE FROM {}", t.name), []).map_err(&err).map(drop)
    }

    fn after_copy(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn store(&self) -> Arc<dyn Store> {
        self.handle()
    }
}
