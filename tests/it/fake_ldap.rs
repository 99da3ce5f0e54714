//! What the in-process LDAP servers share: one connection's loop (binds
//! succeed, an unbind ends it, every reply is sent in order) and the small
//! message builders.

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::proto::{LdapBindResponse, LdapMsg, LdapOp, LdapPartialAttribute, LdapResult, LdapResultCode};
use ldap3_proto::LdapCodec;
use tokio_util::codec::Framed;

/// Serves one connection: binds are accepted, an unbind ends the loop, and
/// every other message goes to `answer`, whose replies are sent in order.
pub async fn serve_ldap(stream: tokio::net::TcpStream, mut answer: impl FnMut(LdapMsg) -> Vec<LdapMsg>) {
    let mut framed = Framed::new(stream, LdapCodec::default());
    while let Some(Ok(msg)) = framed.next().await {
        let replies = match msg.op {
            LdapOp::BindRequest(_) => vec![LdapMsg::new(
                msg.msgid,
                LdapOp::BindResponse(LdapBindResponse { res: result(LdapResultCode::Success), saslcreds: None }),
            )],
            LdapOp::UnbindRequest => return,
            _ => answer(msg),
        };
        for r in replies {
            if framed.send(r).await.is_err() {
                return;
            }
        }
    }
}

pub fn result(code: LdapResultCode) -> LdapResult {
    LdapResult { code, matcheddn: String::new(), message: String::new(), referral: vec![] }
}

/// An attribute with one text value.
pub fn text_attr(name: &str, v: &str) -> LdapPartialAttribute {
    LdapPartialAttribute { atype: name.into(), vals: vec![v.as_bytes().to_vec()] }
}
