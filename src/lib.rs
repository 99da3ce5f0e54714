//! dirsync keeps an application's users and groups in step with the directory
//! where people really live.
//!
//! # Layout
//! One data flow, one module per step:
//!
//! | step | module | what it owns |
//! |---|---|---|
//! | config | [`config`] | the TOML file, read once into a validated [`config::Config`]: what every source has, and each kind's own part |
//! | sources | [`sources`] | one module per kind behind one trait, registered in [`sources::KINDS`], streaming [`model::RawEntry`]s with neutral [`model::Facts`]: `ldap/` (LDAP and AD: connection, paged search, RFC 4533, uSNChanged, range retrieval, AD facts, password check, write-back transport), `ldif/` (bounded reader, writer), `graph/` and `google/` (cloud APIs, one-user lookups), `program/` (PaperCut's program interface, leftovers reaped), `unix/`, `csv/`, `cloud/` (shared HTTP, JSON, JWT) |
//! | mapping | [`mapping`], [`batch`] | entry → mapped user/group, validation, duplicates, replayed versions, member references |
//! | plan | [`plan`] | pure diff of mapped entries against a store [`model::Snapshot`] |
//! | guards | [`guards`] | safety checks between plan and apply |
//! | apply | [`apply`] | the plan in one store transaction, with audit rows |
//! | store | [`store`] | the storage trait (a shared handle: lease, snapshots, indexed reads, transactions) and its SQLite backend |
//! | history | [`history`] | run records, counts, audit records |
//! | pipeline | [`sync`] | wires the steps together (sources opened through an [`sync::Opener`]) |
//! | views | [`views`] | users and groups as the CLI and API show them |
//! | write-back | [`writeback`], [`codes`] | local field changes (all or nothing), app-owned fields pushed through a source's transport; generated codes |
//! | service | [`runner`], [`schedule`], [`dirauth`], [`service`] (with [`service::page`]) | `dirsync serve`: the run queue, the cron scheduler, password checks against the directory with their rate limits, the HTTP API and its connections, and the admin page, as thin layers over the steps above |
//!
//! [`fuzzing`] holds the fuzz targets' entry points (`fuzz/`).
//!
//! The types that flow between steps are plain data in [`model`]. The layers
//! and where to add a kind, a store backend or an endpoint: ARCHITECTURE.md.

pub mod apply;
pub mod batch;
pub mod codes;
pub mod config;
pub mod dirauth;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod guards;
pub mod history;
pub mod kind;
pub mod mapping;
pub mod model;
pub mod plan;
pub mod runner;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod sources;
pub mod store;
pub mod sync;
pub mod time;
pub mod views;
pub mod writeback;

/// The admin page lives with the service it is served by.
pub use service::page;
