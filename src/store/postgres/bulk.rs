//! Rows written many at a time: a first sync's new users and their `create`
//! audit rows with `COPY … BINARY`, and queued memberships and audit
//! records gathered into one `unnest` statement per kind.

use crate::model::{name_key, normalize_dn, NewUser};
use crate::store::row::{created_summary, split_fields};
use crate::time::Timestamp;

/// A statement's parameter, owned (it waits in a queue).
pub(super) type Param = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

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

    /// Inserts the users, then their audit rows, each with `COPY … BINARY`
    /// (PostgreSQL's fastest way in).
    pub(super) async fn write(self, conn: &deadpool_postgres::Object) -> Result<(), tokio_postgres::Error> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::Type;
        let [source, ext, username, ukey, dn, dnkey, status] = &self.cols;
        let sink = conn
            .copy_in("COPY users (id, source, external_id, username, username_key, dn, dn_key, status, full_name, email, department, office, card_number, card_number2, fields, dir_values, created_at, updated_at) FROM STDIN BINARY")
            .await?;
        let mut types = vec![Type::INT8];
        types.extend([Type::TEXT; 17]);
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures_util::pin_mut!(writer);
        for i in 0..self.ids.len() {
            let core = self.core.each_ref().map(|c| &c[i]);
            writer
                .as_mut()
                .write(&[
                    &self.ids[i],
                    &source[i],
                    &ext[i],
                    &username[i],
                    &ukey[i],
                    &dn[i],
                    &dnkey[i],
                    &status[i],
                    core[0],
                    core[1],
                    core[2],
                    core[3],
                    core[4],
                    core[5],
                    &self.custom[i],
                    &self.dir_values[i],
                    &self.now,
                    &self.now,
                ])
                .await?;
        }
        writer.finish().await?;
        let sink = conn.copy_in("COPY audit (id, run_id, at, user_id, name, action, new) FROM STDIN BINARY").await?;
        let types = [Type::INT8, Type::INT8, Type::TEXT, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT];
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures_util::pin_mut!(writer);
        let rows = self.audit_ids.iter().zip(&self.ids).zip(username).zip(&self.summaries);
        for (((audit_id, user_id), name), summary) in rows {
            let row: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                [audit_id, &self.run_id, &self.now, user_id, name, &"create", summary];
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await?;
        Ok(())
    }
}

/// A write waiting in a transaction's queue: one statement, or rows of
/// memberships or audit records gathered into one multi-row statement.
pub(super) enum Queued {
    One(&'static str, Vec<Param>),
    Members(Members),
    Audits(Audits),
}

/// New user memberships, as two columns.
#[derive(Default)]
pub(super) struct Members {
    users: Vec<i64>,
    groups: Vec<i64>,
}

/// Audit records, as columns.
#[derive(Default)]
pub(super) struct Audits {
    run_id: Vec<Option<i64>>,
    at: Vec<Timestamp>,
    user_id: Vec<Option<i64>>,
    name: Vec<String>,
    action: Vec<String>,
    field: Vec<Option<String>>,
    old: Vec<Option<String>>,
    new: Vec<Option<String>>,
    image: Vec<Option<String>>,
}

/// Rows one gathered statement takes at most.
const ROWS: usize = 20_000;

impl Queued {
    /// The statement and its parameters.
    pub(super) fn statement(self) -> (&'static str, Vec<Param>) {
        match self {
            Queued::One(sql, params) => (sql, params),
            Queued::Members(m) => (
                "INSERT INTO user_groups (user_id, group_id) SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
                vec![Box::new(m.users), Box::new(m.groups)],
            ),
            Queued::Audits(a) => (
                "INSERT INTO audit (run_id, at, user_id, name, action, field, old, new, image) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])",
                vec![
                    Box::new(a.run_id),
                    Box::new(a.at),
                    Box::new(a.user_id),
                    Box::new(a.name),
                    Box::new(a.action),
                    Box::new(a.field),
                    Box::new(a.old),
                    Box::new(a.new),
                    Box::new(a.image),
                ],
            ),
        }
    }
}

/// The gathered entry of a kind that a new row may join: the last entry,
/// or the one before it when the last is of the other gathered kind
/// (membership and audit inserts do not depend on each other, so their
/// order between themselves does not matter).
fn joinable(queue: &mut [Queued], fits: impl Fn(&Queued) -> bool) -> Option<&mut Queued> {
    let n = queue.len();
    let other = |q: &Queued| matches!(q, Queued::Members(_) | Queued::Audits(_));
    match n {
        0 => None,
        _ if fits(&queue[n - 1]) => queue.get_mut(n - 1),
        _ if n >= 2 && other(&queue[n - 1]) && fits(&queue[n - 2]) => queue.get_mut(n - 2),
        _ => None,
    }
}

/// Queues one new membership.
pub(super) fn push_member(queue: &mut Vec<Queued>, user_id: i64, group_id: i64) {
    let fits = |q: &Queued| matches!(q, Queued::Members(m) if m.users.len() < ROWS);
    match joinable(queue, fits) {
        Some(Queued::Members(m)) => {
            m.users.push(user_id);
            m.groups.push(group_id);
        }
        _ => queue.push(Queued::Members(Members { users: vec![user_id], groups: vec![group_id] })),
    }
}

/// Queues one audit record.
pub(super) fn push_audit(queue: &mut Vec<Queued>, r: &crate::model::records::AuditRecord) {
    let fits = |q: &Queued| matches!(q, Queued::Audits(a) if a.name.len() < ROWS);
    if !matches!(joinable(queue, fits), Some(Queued::Audits(_))) {
        queue.push(Queued::Audits(Audits::default()));
    }
    let Some(Queued::Audits(a)) = joinable(queue, fits) else { unreachable!("an audit entry was just queued") };
    a.run_id.push(r.run_id);
    a.at.push(r.at);
    a.user_id.push(r.user_id);
    a.name.push(r.name.clone());
    a.action.push(r.action.clone());
    a.field.push(r.field.clone());
    a.old.push(r.old.clone());
    a.new.push(r.new.clone());
    a.image.push(r.image.clone());
}
