//! The suite's write-back queue checks: an item queued, failed, replaced,
//! in conflict, done, or settled by taking the directory's value.

use super::Store;
use crate::model::Status;
use crate::store::{NewWriteback, PushOutcome, QueueStatus};
use crate::time::Timestamp;

fn enqueue(store: &dyn Store, user_id: i64, value: &str) {
    let w = NewWriteback {
        user_id,
        field: "print_code",
        attribute: "employeeNumber",
        value: Some(value),
        old_value: None,
        base_value: None,
    };
    store.transaction(&mut |tx| tx.enqueue_writeback(&w, Timestamp::now())).unwrap();
}

fn pending(store: &dyn Store) -> crate::store::WritebackItem {
    let mut items = store.writeback_items(&[QueueStatus::Pending]).unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    items.remove(0)
}

pub(super) fn the_writeback_queue_goes_pending_failed_conflict_done(store: &dyn Store) {
    let amy = store.user_by_name("amy").unwrap().unwrap();
    assert_eq!(store.writeback_counts().unwrap(), [0, 0, 0]);
    assert!(store.last_push_success().unwrap().is_none());
    enqueue(store, amy.id, "1111");
    let item = pending(store);
    assert_eq!(
        (item.username.as_str(), item.dn.as_str(), item.external_id.as_str()),
        ("amy", "uid=amy,dc=t", "id-amy")
    );
    assert_eq!((item.attribute.as_str(), item.value.as_deref(), item.attempts), ("employeeNumber", Some("1111"), 0));
    assert_eq!(store.writeback_counts().unwrap(), [1, 0, 0]);

    let retry_at = Timestamp::parse("2030-01-01T00:00:00.001Z").unwrap();
    let failed = PushOutcome::Failed { code: Some(50), error: "insufficient access".into(), retry_at };
    store.finish_writebacks(&[(&item, failed)], Timestamp::now()).unwrap();
    assert_eq!(store.writeback_counts().unwrap(), [0, 1, 0]);
    let f = store.writeback_items(&[QueueStatus::Failed]).unwrap().remove(0);
    assert_eq!((f.attempts, f.last_code, f.next_attempt_at), (1, Some(50), Some(retry_at)));
    assert_eq!(f.last_error.as_deref(), Some("insufficient access"));

    // A new local change replaces the failed item: pending again, from scratch.
    enqueue(store, amy.id, "2222");
    let item = pending(store);
    assert_eq!((item.value.as_deref(), item.attempts, item.last_error.as_deref()), (Some("2222"), 0, None));
    store
        .finish_writebacks(&[(&item, PushOutcome::Conflict { error: "changed meanwhile".into() })], Timestamp::now())
        .unwrap();
    assert_eq!(store.writeback_counts().unwrap(), [0, 0, 1]);

    enqueue(store, amy.id, "3333");
    let item = pending(store);
    store.finish_writebacks(&[(&item, PushOutcome::Done)], Timestamp::now()).unwrap();
    assert_eq!(store.writeback_counts().unwrap(), [0, 0, 0]);
    assert!(store.last_push_success().unwrap().is_some());
    let done = store.writeback_items(&[QueueStatus::Done]).unwrap();
    assert!(done.iter().any(|d| d.id == item.id && d.done_at.is_some()));
    let amy = store.user_by_name("amy").unwrap().unwrap();
    assert_eq!(amy.dir_values.get("print_code"), Some("3333"), "the directory's value is now the pushed one");

    // on_conflict = "directory": the directory's value is taken locally.
    enqueue(store, amy.id, "4444");
    let item = pending(store);
    let took = PushOutcome::TookDirectory { value: Some("9999".into()) };
    store.finish_writebacks(&[(&item, took)], Timestamp::now()).unwrap();
    let amy = store.user_by_name("amy").unwrap().unwrap();
    assert_eq!((amy.fields.get("print_code"), amy.dir_values.get("print_code")), (Some("9999"), Some("9999")));
    assert_eq!(amy.status, Status::Active);
    assert_eq!(store.writeback_counts().unwrap(), [0, 0, 0]);
    assert_eq!(store.audit_of(amy.id, 1).unwrap()[0].action, "conflict_directory_wins", "and audited");
}
