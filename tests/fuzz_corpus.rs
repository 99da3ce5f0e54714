//! Replays every input kept in `fuzz/corpus/<target>/` (hand-made
//! reproducers of hostile input and what fuzzing found) through the same functions the fuzz
//! targets call, so CI checks them on every run.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target}: {} breaks a promise", path.display());
        n += 1;
    }
    assert!(n >= 5, "{target}: only {n} inputs in {}", dir.display());
}

#[test]
fn ldif_corpus_replays() {
    replay("ldif", dirsync::fuzzing::ldif);
}

#[test]
fn scim_filter_corpus_replays() {
    replay("scim_filter", dirsync::fuzzing::scim_filter);
}

#[test]
fn filter_corpus_replays() {
    replay("filter", dirsync::fuzzing::filter);
}

#[test]
fn config_corpus_replays() {
    replay("config", dirsync::fuzzing::config);
}

#[test]
fn mapping_corpus_replays() {
    replay("mapping", dirsync::fuzzing::mapping);
}

#[test]
fn tables_corpus_replays() {
    replay("tables", dirsync::fuzzing::tables);
}

#[test]
fn scim_patch_corpus_replays() {
    replay("scim_patch", dirsync::fuzzing::scim_patch);
}
