//! The suite's webhook and claim part: a webhook's state (with its pending
//! batch) comes back as saved, the change feed's head, and a claim held by
//! one owner at a time until it runs out.

use crate::store::{PendingBatch, Store, WebhookState};
use crate::time::Timestamp;

pub(super) fn webhook_states_are_kept_whole(store: &dyn Store) {
    assert_eq!(store.webhook("print").unwrap(), None);
    let head = store.change_head().unwrap();
    assert!(head >= 0);
    let mut w = WebhookState { name: "print".into(), cursor: head, ..WebhookState::default() };
    store.save_webhook(&w).unwrap();
    assert_eq!(store.webhook("print").unwrap().as_ref(), Some(&w));
    w.batch = Some(PendingBatch { id: "msg_1".into(), upto: head + 5, body: "{\"changes\":[]}".into(), count: 3 });
    w.failures = 2;
    w.last_error = Some("HTTP 500".into());
    w.next_try = Timestamp::parse("2026-12-06T10:00:00.123Z");
    store.save_webhook(&w).unwrap();
    assert_eq!(store.webhook("print").unwrap().as_ref(), Some(&w), "the pending batch is kept whole");
    w.cursor = head + 5;
    w.batch = None;
    w.failures = 0;
    w.last_delivery = Timestamp::parse("2026-12-06T10:00:01.456Z");
    store.save_webhook(&w).unwrap();
    assert_eq!(store.webhook("print").unwrap().as_ref(), Some(&w), "delivered: the batch is gone");
    assert_eq!(store.webhook("other").unwrap(), None);
}

pub(super) fn a_claim_is_held_by_one_owner_until_it_runs_out(store: &dyn Store) {
    let t0 = Timestamp::now();
    let later = |s: u64| t0.plus(std::time::Duration::from_secs(s));
    assert!(store.claim("live:corp", "a", t0, later(30)).unwrap());
    assert!(!store.claim("live:corp", "b", later(10), later(40)).unwrap(), "held by a");
    assert!(store.claim("live:corp", "a", later(10), later(40)).unwrap(), "a renews");
    assert!(store.claim("live:other", "b", later(10), later(40)).unwrap(), "claims are per name");
    assert!(store.claim("live:corp", "b", later(41), later(70)).unwrap(), "a's claim ran out");
    assert!(!store.claim("live:corp", "a", later(42), later(72)).unwrap());
    store.release("live:corp", "a").unwrap();
    assert!(!store.claim("live:corp", "a", later(42), later(72)).unwrap(), "a cannot release b's claim");
    store.release("live:corp", "b").unwrap();
    assert!(store.claim("live:corp", "a", later(43), later(73)).unwrap(), "released: free");
}
