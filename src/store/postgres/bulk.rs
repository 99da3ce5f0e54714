//! A first sync's new users and their `create` audit rows, written with one
//! statement each per batch: the rows go as arrays, one per column, and
//! `unnest` turns them back into rows on the server.

use crate::model::{name_key, normalize_dn, NewUser};
use crate::store::row::{created_summary, split_fields};
use crate::time::Timestamp;

/// The column arrays of a batch of new users and their audit rows.
pub(super) struct Created {
    ids: Vec<i64>,
    cols: [Vec<String>; 7],
    core: [Vec<Option<String>>; 6],
    custom: Vec<String>,
    dir_values: Vec<String>,
    audit_ids: Vec<i64>,
    summaries: Vec<String>,
    run_id: Option<i64>,
    now: Timestamp,
}

impl Created {
    pub(super) fn new(
        users: &[NewUser],
        ids: &[i64],
        audit_ids: &[i64],
        run_id: Option<i64>,
        now: Timestamp,
    ) -> Created {
        let mut c = Created {
            ids: ids.to_vec(),
            cols: Default::default(),
            core: Default::default(),
            custom: Vec::with_capacity(users.len()),
            dir_values: Vec::with_capacity(users.len()),
            audit_ids: audit_ids.to_vec(),
            summaries: Vec::with_capacity(users.len()),
            run_id,
            now,
        };
        for u in users {
            let (core, custom) = split_fields(&u.fields);
            let row = [
                u.source.to_string(),
                u.external_id.to_string(),
                u.username.to_string(),
                name_key(&u.username),
                u.dn.to_string(),
                normalize_dn(&u.dn),
                u.status.as_str().to_string(),
            ];
            for (col, v) in c.cols.iter_mut().zip(row) {
                col.push(v);
            }
            for (col, v) in c.core.iter_mut().zip(core) {
                col.push(v.map(str::to_string));
            }
            c.custom.push(custom);
            c.dir_values.push(split_fields(&u.dir_values).1);
            c.summaries.push(created_summary(u));
        }
        c
    }

    /// Inserts the users, then their audit rows (two round trips).
    pub(super) async fn write(self, conn: &deadpool_postgres::Object) -> Result<(), tokio_postgres::Error> {
        let [source, ext, username, ukey, dn, dnkey, status] = &self.cols;
        let [full_name, email, department, office, card, card2] = &self.core;
        let users = conn
            .prepare_cached(
                "INSERT INTO users (id, source, external_id, username, username_key, dn, dn_key, status, full_name, email, department, office, card_number, card_number2, fields, dir_values, created_at, updated_at) \
                 SELECT *, $17, $17 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])",
            )
            .await?;
        conn.execute(
            &users,
            &[
                &self.ids,
                source,
                ext,
                username,
                ukey,
                dn,
                dnkey,
                status,
                full_name,
                email,
                department,
                office,
                card,
                card2,
                &self.custom,
                &self.dir_values,
                &self.now,
            ],
        )
        .await?;
        let audit = conn
            .prepare_cached(
                "INSERT INTO audit (id, user_id, name, new, run_id, at, action) \
                 SELECT *, $5::bigint, $6::text, 'create' FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])",
            )
            .await?;
        conn.execute(&audit, &[&self.audit_ids, &self.ids, username, &self.summaries, &self.run_id, &self.now]).await?;
        Ok(())
    }
}
