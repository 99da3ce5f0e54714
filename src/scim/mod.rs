//! SCIM 2.0 (RFC 7643 and 7644), the protocol identity providers push users
//! and groups with: its filter and PATCH-path grammar ([`filter`]), its
//! resources as JSON (what a body keeps, what a path selects, how a PATCH
//! applies: [`resource`]), its discovery documents and error answer
//! ([`discovery`]). Plain protocol, importing nothing else of dirsync.

pub mod discovery;
pub mod filter;
pub mod resource;

#[cfg(test)]
mod tests;
