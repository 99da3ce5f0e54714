//! A webhook receiver for tests: an HTTP server on loopback that records
//! each delivery (its Standard Webhooks headers and body) and answers from
//! a script (a status, or a stall past dirsync's timeout); 200 when the
//! script is empty. Signatures are checked with the Standard Webhooks
//! algorithm written out here, independently of dirsync's own code.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use serde_json::Value;

/// The secret the tests configure (the reference implementation's example).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers one delivery.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Answer 200 only after this long (past dirsync's timeout).
    Stall(Duration),
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: String,
    /// What the receiver answered.
    pub answered: u16,
    /// Answered only after a stall (the sender had given up by then).
    pub stalled: bool,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
pub struct Inbox {
    pub got: Vec<Delivery>,
    pub script: VecDeque<Reply>,
}

pub struct Receiver {
    pub port: u16,
    pub inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let inbox: Arc<Mutex<Inbox>> = Arc::default();
        let port = crate::harness::spawn_app(Router::new().route("/hook", post(receive)).with_state(inbox.clone()));
        Receiver { port, inbox }
    }

    /// On a port chosen before (a receiver that comes up late).
    pub fn start_on(port: u16) -> Receiver {
        let inbox: Arc<Mutex<Inbox>> = Arc::default();
        let app = Router::new().route("/hook", post(receive)).with_state(inbox.clone());
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the chosen port is still free");
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app).await.unwrap()
            });
        });
        Receiver { port, inbox }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn script(&self, replies: &[Reply]) {
        self.inbox.lock().unwrap().script.extend(replies.iter().copied());
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inbox.lock().unwrap().got.clone()
    }

    /// The changes acknowledged (answered 2xx), in the order received.
    pub fn acknowledged(&self) -> Vec<Value> {
        let got = self.deliveries();
        got.iter()
            .filter(|d| d.answered < 300 && !d.stalled)
            .flat_map(|d| d.json()["changes"].as_array().unwrap().clone())
            .collect()
    }

    /// Waits (up to `secs`) until `ok` holds of the acknowledged changes.
    pub fn wait_for(&self, secs: u64, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let got = self.acknowledged();
            if ok(&got) {
                return got;
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "the receiver never got {what}: {got:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let reply = inbox.lock().unwrap().script.pop_front().unwrap_or(Reply::Status(200));
    let d = |answered, stalled| Delivery {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp").parse().unwrap_or(-1),
        signature: h("webhook-signature"),
        body: body.clone(),
        answered,
        stalled,
    };
    let answered = match reply {
        Reply::Status(s) => s,
        Reply::Stall(wait) => {
            // Recorded first: the sender gives up and the answer never lands.
            inbox.lock().unwrap().got.push(d(200, true));
            tokio::time::sleep(wait).await;
            return StatusCode::OK;
        }
    };
    inbox.lock().unwrap().got.push(d(answered, false));
    StatusCode::from_u16(answered).unwrap()
}

/// Standard Webhooks' check: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")),
/// the key being the base64 after `whsec_`.
pub fn signature_holds(d: &Delivery) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(SECRET.strip_prefix("whsec_").unwrap()).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let msg = format!("{}.{}.{}", d.id, d.timestamp, d.body);
    let want = format!("v1,{}", b64.encode(aws_lc_rs::hmac::sign(&key, msg.as_bytes()).as_ref()));
    d.signature.split(' ').any(|s| s == want)
}
