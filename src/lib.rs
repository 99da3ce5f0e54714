//! dirsync keeps an application's users and groups in step with the directory
//! where people really live.
//!
//! # Layout
//! Layers, bottom up; each imports only from the rows above it (none of
//! them imports a row below it, and no two import each other):
//!
//! | layer | module | what it owns |
//! |---|---|---|
//! | plain data | [`model`], [`time`], [`secret`], [`tls`] | users, groups, entries, facts, what a run leaves ([`model::records`]), the write-back queue's items; instants; secrets that never print; the TLS client settings for a CA bundle |
//! | the store | [`store`] | the storage traits (a shared handle: lease, presence, snapshots, indexed reads, transactions, write sessions), [`store::open`], [`store::migrate`], [`store::copy`], the suite every backend passes, and the two backends, SQLite (`store/sqlite*`) and PostgreSQL (`store/postgres*`), the only places SQL is written |
//! | the kind contract | [`kind`] | what a source kind and dirsync agree on: [`kind::Kind`], [`kind::Source`], [`kind::Transport`], [`kind::PasswordCheck`], the settings every source has ([`kind::SourceConfig`], [`kind::live`]) and the section reader a kind parses its keys with |
//! | config | [`config`] | the TOML file, read once into a validated [`config::Config`] with the registry of kinds it is given |
//! | the engine | [`engine`] | one sync's steps: [`engine::mapping`] and [`engine::batch`] (entry → mapped user/group, validation, duplicates, replayed versions, member references), [`engine::plan`] (a pure diff against a [`model::Snapshot`]), [`engine::guards`], [`engine::apply`] (one store transaction, with audit rows), [`engine::writeback`] and [`engine::codes`] (local field changes, pushes through a kind's transport, generated values), [`engine::history`]; [`engine::sync`] runs them in order; [`engine::push`] runs them for one change an identity provider pushed (SCIM), with the push guard; [`engine::undo`] puts back what a run changed, from its audit rows; [`engine::backfill`] fills what existing users lack and a create would have set; [`engine::views`] shows users and groups, [`engine::feed`] the change feed as applications and webhooks get it |
//! | the kinds | [`sources`] | one folder per kind, registered in [`sources::KINDS`]: `ldap/` (LDAP and AD: connection, paged search, RFC 4533, uSNChanged, range retrieval, AD facts, password check, write-back transport, live sync's change channels), `ldif/` (bounded reader, writer), `graph/` and `google/` (cloud APIs, one-user lookups), `program/` (PaperCut's program interface, leftovers reaped), `unix/`, `csv/`, `scim/` (pushed, never read: the token, resources as entries), `cloud/` (shared HTTP, JSON, JWT), `tabular` (what table-shaped kinds share) |
//! | the service | [`serve`] | `dirsync serve`: [`serve::runner`] (run queue), [`serve::schedule`] (cron), [`serve::dirauth`] (password checks and their rate limits), [`serve::api`] (the HTTP API's handlers, route table and error answers), [`serve::scim`] (`/scim/v2`: identity providers' pushes through [`engine::push`]), [`serve::live`] (live sources' change channels turned into runs), [`serve::hooks`] (webhook deliveries from the change feed), [`serve::page`] (the admin page), connections and TLS, as thin layers over the engine |
//! | the binary | `main.rs`, `cli/`, `alloc.rs` | the CLI's commands, its output, the allocator's settings |
//!
//! [`filter`] (LDAP filter text, escaped), [`scim`] (SCIM's filter and
//! PATCH-path grammar, resources as JSON, discovery) and [`webhook`]
//! (Standard Webhooks signatures) sit beside the model; [`fuzzing`]
//! holds the fuzz targets' entry points (`fuzz/`). Where to add a kind, a
//! store backend, an endpoint or a page: ARCHITECTURE.md.

pub mod config;
pub mod engine;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod kind;
pub mod model;
pub mod scim;
pub mod secret;
pub mod serve;
pub mod sources;
pub mod store;
pub mod time;
pub mod tls;
pub mod webhook;
