//! Integration tests: the real binary against real servers. One test binary,
//! modules by topic.

mod ad;
mod behaviours;
mod cli;
mod cloud_jit;
mod contrib;
mod csv;
mod default_fields;
mod ds389;
mod early;
mod fake_ad;
mod fake_google;
mod fake_graph;
mod fake_ldap;
mod fake_limits;
mod fake_sync;
mod google;
mod graph;
mod graph_replay;
mod harness;
mod hostile;
mod hostile_ldap;
mod incremental;
mod multi;
mod page;
mod page_browser;
mod program;
mod safety;
mod schemathesis;
mod serve;
mod serve_auth;
mod serve_patch;
mod sync;
mod tls;
mod unix;
mod writeback;
