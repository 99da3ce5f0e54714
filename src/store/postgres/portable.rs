//! PostgreSQL's side of `store copy`: rows of any table as [`Cell`]s, read
//! through a cursor in batches and written with multi-row inserts, then
//! each id sequence moved past the copied ids.

use std::sync::Arc;

use tokio_postgres::types::ToSql;

use super::{explain, PgStore};
use crate::store::copy::{Cell, Kind, Portable, Table, BATCH, TABLES};
use crate::store::{Store, StoreError};

fn columns(t: &Table) -> String {
    t.columns.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
}

fn cell(r: &tokio_postgres::Row, i: usize, kind: Kind) -> Cell {
    match kind {
        Kind::Int => r.get::<_, Option<i64>>(i).map(Cell::Int),
        Kind::Bool => r.get::<_, Option<bool>>(i).map(Cell::Bool),
        Kind::Text => r.get::<_, Option<String>>(i).map(Cell::Text),
    }
    .unwrap_or(Cell::Null)
}

/// A cell as a parameter (a null typed as its column, which the server checks).
fn param(c: &Cell, kind: Kind) -> Box<dyn ToSql + Sync + Send> {
    match c {
        Cell::Null => match kind {
            Kind::Int => Box::new(Option::<i64>::None),
            Kind::Bool => Box::new(Option::<bool>::None),
            Kind::Text => Box::new(Option::<String>::None),
        },
        Cell::Int(v) => Box::new(*v),
        Cell::Bool(b) => Box::new(*b),
        Cell::Text(s) => Box::new(s.clone()),
    }
}

impl Portable for PgStore {
    fn each_row(&self, t: &Table, f: &mut dyn FnMut(Vec<Cell>) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let name = &self.inner.name;
        let conn = self.block(self.conn())?;
        let order = match t.order {
            "@rowid" => "id",
            o => o,
        };
        let declare =
            format!("BEGIN; DECLARE rows NO SCROLL CURSOR FOR SELECT {} FROM {} ORDER BY {order}", columns(t), t.name);
        self.block(conn.batch_execute(&declare)).map_err(|e| explain(name, e))?;
        loop {
            let rows =
                self.block(conn.query(&format!("FETCH {BATCH} FROM rows"), &[])).map_err(|e| explain(name, e))?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                f(t.columns.iter().enumerate().map(|(i, (_, k))| cell(r, i, *k)).collect())?;
            }
        }
        self.block(conn.batch_execute("COMMIT")).map_err(|e| explain(name, e))
    }

    fn insert_rows(&self, t: &Table, rows: &[Vec<Cell>]) -> Result<(), StoreError> {
        let n = t.columns.len();
        let values = (0..rows.len())
            .map(|r| format!("({})", (1..=n).map(|c| format!("${}", r * n + c)).collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO {} ({}) VALUES {values}", t.name, columns(t));
        let params: Vec<Box<dyn ToSql + Sync + Send>> =
            rows.iter().flat_map(|r| r.iter().zip(t.columns).map(|(c, (_, k))| param(c, *k))).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| &**b as _).collect();
        self.block(async {
            let conn = self.conn().await?;
            conn.execute(sql.as_str(), &refs).await.map_err(|e| explain(&self.inner.name, e))
        })
        .map(drop)
    }

    fn count_rows(&self, t: &Table) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM {}", t.name);
        self.block(async {
            let conn = self.conn().await?;
            let r = conn.query_one(sql.as_str(), &[]).await.map_err(|e| explain(&self.inner.name, e))?;
            Ok(r.get::<_, i64>(0) as u64)
        })
    }

    fn clear(&self, t: &Table) -> Result<(), StoreError> {
        self.exec(&format!("DELETE FROM {}", t.name), &[]).map(drop)
    }

    fn after_copy(&self) -> Result<(), StoreError> {
        let serial = TABLES.iter().filter(|t| t.serial_id).map(|t| t.name).chain(["run_errors", "run_removals"]);
        for table in serial {
            self.exec(
                &format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"),
                &[],
            )?;
        }
        Ok(())
    }

    fn store(&self) -> Arc<dyn Store> {
        self.handle()
    }
}
