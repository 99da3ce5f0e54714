//! PostgreSQL's before-images of users and groups, and their restoration
//! with the same ids (undoing a run): SQLite's statements in PostgreSQL's
//! spelling, read inside the transaction (its queue sent first).

use super::bulk::Param;
use super::tx::PgTx;
use crate::model::images::{GroupImage, UserImage};
use crate::model::{name_key, normalize_dn};
use crate::store::row::{image_columns, image_fields, json_map};
use crate::store::StoreError;
use crate::time::Timestamp;

macro_rules! params {
    ($($p:expr),* $(,)?) => { vec![$(Box::new($p) as Param),*] };
}

impl PgTx {
    pub(super) fn read_user_image(&mut self, id: i64) -> Result<Option<UserImage>, StoreError> {
        self.read(move |c| {
            Box::pin(async move {
                let Some(r) = c
                    .query_opt(
                        "SELECT source, external_id, username, dn, status, missing_since, full_name, email, department, office, card_number, card_number2, fields, dir_values, created_at FROM users WHERE id = $1",
                        &[&id],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let core: [Option<String>; 6] = [r.get(6), r.get(7), r.get(8), r.get(9), r.get(10), r.get(11)];
                let groups = c.query("SELECT group_id FROM user_groups WHERE user_id = $1 ORDER BY group_id", &[&id]).await?;
                Ok(Some(UserImage {
                    id,
                    source: r.get(0),
                    external_id: r.get(1),
                    username: r.get(2),
                    dn: r.get(3),
                    status: r.get(4),
                    missing_since: r.get(5),
                    fields: image_fields(core, &r.get::<_, String>(12)),
                    dir_values: json_map(&r.get::<_, String>(13)),
                    created_at: r.get(14),
                    groups: groups.iter().map(|g| g.get(0)).collect(),
                }))
            })
        })
    }

    pub(super) fn read_group_image(&mut self, id: i64) -> Result<Option<GroupImage>, StoreError> {
        self.read(move |c| {
            Box::pin(async move {
                let Some(r) = c
                    .query_opt("SELECT source, external_id, name, dn, created_at FROM groups WHERE id = $1", &[&id])
                    .await?
                else {
                    return Ok(None);
                };
                let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|x| x.get(0)).collect::<Vec<i64>>();
                let members =
                    c.query("SELECT user_id FROM user_groups WHERE group_id = $1 ORDER BY user_id", &[&id]).await?;
                let children =
                    c.query("SELECT child_id FROM group_groups WHERE parent_id = $1 ORDER BY child_id", &[&id]).await?;
                let parents = c
                    .query("SELECT parent_id FROM group_groups WHERE child_id = $1 ORDER BY parent_id", &[&id])
                    .await?;
                Ok(Some(GroupImage {
                    id,
                    source: r.get(0),
                    external_id: r.get(1),
                    name: r.get(2),
                    dn: r.get(3),
                    created_at: r.get(4),
                    members: ids(members),
                    children: ids(children),
                    parents: ids(parents),
                }))
            })
        })
    }

    pub(super) fn write_user_image(&mut self, u: &UserImage, now: Timestamp) -> Result<(), StoreError> {
        let (core, custom, dir) = image_columns(u);
        let core: Vec<Option<String>> = core.iter().map(|c| c.map(str::to_string)).collect();
        self.push(
            "INSERT INTO users (id, source, external_id, username, username_key, dn, dn_key, status, missing_since, full_name, email, department, office, card_number, card_number2, fields, dir_values, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
            params![
                u.id,
                u.source.clone(),
                u.external_id.clone(),
                u.username.clone(),
                name_key(&u.username),
                u.dn.clone(),
                normalize_dn(&u.dn),
                u.status.clone(),
                u.missing_since,
                core[0].clone(),
                core[1].clone(),
                core[2].clone(),
                core[3].clone(),
                core[4].clone(),
                core[5].clone(),
                custom,
                dir,
                u.created_at,
                now
            ],
        )?;
        for g in &u.groups {
            // A group deleted since is left out.
            self.push(
                "INSERT INTO user_groups (user_id, group_id) SELECT $1, id FROM groups WHERE id = $2 ON CONFLICT DO NOTHING",
                params![u.id, *g],
            )?;
        }
        Ok(())
    }

    pub(super) fn write_group_image(&mut self, g: &GroupImage, now: Timestamp) -> Result<(), StoreError> {
        self.push(
            "INSERT INTO groups (id, source, external_id, name, name_key, dn, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            params![g.id, g.source.clone(), g.external_id.clone(), g.name.clone(), name_key(&g.name), g.dn.clone(), g.created_at, now],
        )?;
        for m in &g.members {
            self.push(
                "INSERT INTO user_groups (user_id, group_id) SELECT id, $2 FROM users WHERE id = $1 ON CONFLICT DO NOTHING",
                params![*m, g.id],
            )?;
        }
        for c in &g.children {
            self.push(
                "INSERT INTO group_groups (child_id, parent_id) SELECT id, $2 FROM groups WHERE id = $1 ON CONFLICT DO NOTHING",
                params![*c, g.id],
            )?;
        }
        for p in &g.parents {
            self.push(
                "INSERT INTO group_groups (child_id, parent_id) SELECT $1, id FROM groups WHERE id = $2 ON CONFLICT DO NOTHING",
                params![g.id, *p],
            )?;
        }
        Ok(())
    }
}
