//! The HTTP API's handlers, one file an area (`people`: users and groups,
//! `runs`: runs, syncs and write-back, `live`: live sync and webhooks,
//! `ops`: health, metrics, auth), with
//! the clients' scopes ([`clients`]), the one mapping of library errors to
//! answers ([`error`]) and the route table the router is built from and the
//! OpenAPI document is written from ([`openapi`]). Each handler parses,
//! authorizes, calls one library function and answers.

pub mod clients;
pub mod error;
pub mod live;
pub mod openapi;
pub mod ops;
pub mod people;
pub mod runs;
pub mod undo;
