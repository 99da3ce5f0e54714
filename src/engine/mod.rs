//! The engine: one sync's steps, each a module, over the plain data of
//! [`crate::model`] and the [`crate::store`]:
//!
//! ```text
//! sources → mapping & validation → plan → guards → apply → write-back → history
//!           mapping, batch          plan   guards   apply   writeback    history
//! ```
//!
//! [`sync`] runs them in order for a run; [`push`] runs them for one
//! change an identity provider pushed (SCIM), with the push guard; [`codes`] generates the values
//! provisioning sets; [`undo`] puts back what a run changed; [`backfill`] fills, on existing users, what a create
//! would have set and they lack; [`views`] shows users and groups as the
//! CLI and API answer them, [`feed`] the change feed as applications and
//! webhooks get it. The engine reaches a source only through the kind
//! contract ([`crate::kind`]), never a kind by name.

pub mod apply;
pub mod backfill;
pub mod batch;
pub mod codes;
pub mod feed;
pub mod guards;
pub mod history;
pub mod mapping;
pub mod plan;
pub mod push;
pub mod sync;
pub mod undo;
pub mod views;
pub mod writeback;
