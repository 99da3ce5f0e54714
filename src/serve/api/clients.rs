//! Who is calling: `Authorization: Bearer <token>` matched against the
//! configured clients in constant time (every client's token is compared,
//! whatever matches), then the route's scope checked. 401 for a missing or
//! wrong token, 403 for a client without the scope. Tokens are never logged.

use axum::http::{HeaderMap, StatusCode};

use super::error::ApiError;
use crate::config::Scope;
use crate::serve::AppState;

/// The client a request came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    /// The client may read users (the `read` scope or `admin`).
    pub reads: bool,
}

/// Equal bytes in time that depends only on the lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// The caller, if its token is known and has `scope`.
pub fn authorize(st: &AppState, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid Authorization: Bearer <token> header is needed",
        )
    };
    // The scheme is matched without regard to case (RFC 9110, 11.1).
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            tracing::info!(scope = %scope, "API request without a bearer token refused");
            unauthorized()
        })?;
    let cfg = st.config();
    let clients = cfg.server.as_ref().map(|s| s.clients.as_slice()).unwrap_or_default();
    let mut found = None;
    for c in clients {
        if ct_eq(c.token.expose().as_bytes(), given.as_bytes()) {
            found = Some(c);
        }
    }
    let client = found.ok_or_else(|| {
        tracing::info!(scope = %scope, "API request with an unknown token refused");
        unauthorized()
    })?;
    if !client.may(scope) {
        tracing::info!(client = %client.name, scope = %scope, "API request refused: the client lacks the scope");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("client \"{}\" does not have the \"{scope}\" scope", client.name),
        ));
    }
    Ok(Caller { name: client.name.clone(), reads: client.may(Scope::Read) })
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(ct_eq(b"abcdef0123456789", b"abcdef0123456789"));
        assert!(!ct_eq(b"abcdef0123456789", b"abcdef012345678"));
        assert!(!ct_eq(b"abcdef0123456789", b"abcdef0123456788"));
        assert!(!ct_eq(b"", b"x") && !ct_eq(b"x", b""));
        // A length differing by a multiple of 256 is still unequal.
        assert!(!ct_eq(&[b'a'; 256], &[b'a'; 512]));
    }
}
