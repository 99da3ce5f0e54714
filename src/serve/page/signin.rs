//! Signing in to the admin page, and who stays signed in. The local `admin`
//! (its Argon2id hash; checks run at most two at a time, so parallel
//! sign-ins cannot exhaust memory) and effective members of `[server.admin]
//! group` in its source sign in. Every attempt takes its place in the
//! page's own rate limits before it is checked, and every refusal counts
//! the same (a right password of somebody who may not sign in is a
//! failure too). A directory admin's session is checked against the store
//! on every request (still active, still in the group) and ends at its
//! absolute lifetime whatever its use.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::session::{self, Session, COOKIE};
use super::{cookie, layout, Checked, CsrfForm, Denied};
use crate::config::AdminConfig;
use crate::serve::dirauth::{AuthError, Origin};
use crate::serve::AppState;
use crate::store::{on_store, Store, StoreError};

/// Argon2 checks under way at once (19 MiB each).
static ARGON2: Semaphore = Semaphore::const_new(2);

/// The local admin's password, checked with at most two checks at once.
async fn local_password_ok(hash: String, password: String) -> bool {
    let Ok(_permit) = ARGON2.acquire().await else { return false };
    tokio::task::spawn_blocking(move || session::verify_password(&hash, &password)).await.unwrap_or(false)
}

/// The admin group in the store: in `[server.admin] source`, or the one
/// source that has a group of that name. `Err` says why group sign-in is
/// refused (none or several sources have it).
pub fn admin_group(store: &dyn Store, admin: &AdminConfig) -> Result<Result<i64, String>, StoreError> {
    let Some(name) = &admin.group else { return Ok(Err("no [server.admin] group is configured".into())) };
    let found = store.groups_by_name(name)?;
    let of_source: Vec<_> = found.iter().filter(|g| admin.source.as_ref().is_none_or(|s| *s == g.source)).collect();
    Ok(match (of_source.as_slice(), &admin.source) {
        ([g], _) => Ok(g.id),
        ([], Some(s)) => Err(format!("source \"{s}\" has no group \"{name}\"")),
        ([], None) => Err(format!("no source has a group \"{name}\"")),
        (_, _) => Err(format!(
            "sources {} each have a group \"{name}\": set [server.admin] source to the one that decides",
            found.iter().map(|g| format!("\"{}\"", g.source)).collect::<Vec<_>>().join(", ")
        )),
    })
}

/// Whether `username` may use the page as a directory admin now: active,
/// and an effective member of the admin group.
pub fn is_directory_admin(store: &dyn Store, admin: &AdminConfig, username: &str) -> Result<bool, StoreError> {
    let group = match admin_group(store, admin)? {
        Ok(g) => g,
        Err(why) => {
            tracing::warn!(user = %username, "admin page: group sign-in refused: {why}");
            return Ok(false);
        }
    };
    let Some(u) = store.user_by_name(username)? else { return Ok(false) };
    Ok(u.status == crate::model::Status::Active && store.is_member(u.id, group)?)
}

/// The signed-in admin: an open session within its idle and absolute
/// lifetimes, whose directory user is still an admin.
pub async fn signed_in(st: &AppState, headers: &HeaderMap) -> Result<Session, Denied> {
    let admin = st.config().server.as_ref().map(|s| s.admin.clone()).unwrap_or_default();
    let id = cookie(headers, COOKIE).ok_or(Denied::SignIn)?;
    let s = st.sessions.get(&id, admin.session, admin.session_max).ok_or(Denied::SignIn)?;
    if s.local {
        return Ok(s);
    }
    let user = s.user.clone();
    let still = on_store(&*st.store, move |store| is_directory_admin(store, &admin, &user)).await;
    match still {
        Ok(true) => Ok(s),
        Ok(false) => {
            tracing::info!(user = %s.user, "admin page: the session ends: the user is no longer an active admin");
            st.sessions.close(&id);
            Err(Denied::SignIn)
        }
        Err(e) => {
            tracing::warn!("admin page: the session could not be checked: {e}");
            Err(Denied::SignIn)
        }
    }
}

pub async fn login_form(State(st): State<AppState>) -> Response {
    let admin = st.config().server.as_ref().map(|s| s.admin.clone()).unwrap_or_default();
    login_page(&admin, None, StatusCode::OK)
}

fn login_page(admin: &AdminConfig, problem: Option<&str>, status: StatusCode) -> Response {
    let token = session::token();
    let body = html! {
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        @if admin.group.is_none() && admin.password_hash.is_none() {
            p.error { "No sign-in is configured: set [server.admin] group or password_file." }
        }
        form.login method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            label { "Username" input name="username" autocomplete="username" required autofocus; }
            label { "Password" input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
        @if let Some(g) = &admin.group { p.hint { "Members of " strong { (g) } " sign in with their directory password." } }
        @if admin.password_hash.is_some() { p.hint { "The local administrator signs in as " strong { "admin" } " (its password is set with " code { "dirsync admin-password" } ")." } }
    };
    let mut res = (status, layout("Sign in", None, body)).into_response();
    // Double-submit token for the sign-in form (there is no session yet).
    let c = format!("dirsync_login={token}; HttpOnly; SameSite=Strict; Path=/login");
    res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&c).expect("a valid cookie"));
    res
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

const REFUSED: &str = "The username or the password is not right, or this account may not sign in here.";

/// Who the form signs in, if anyone: `Err` is the page to answer with.
async fn check(
    st: &AppState,
    admin: &AdminConfig,
    f: &LoginForm,
    address: Option<IpAddr>,
) -> Result<(String, bool), Box<Response>> {
    let attempt = match st.auth.reserve(&f.username, Origin::Page { address }) {
        Ok(a) => a,
        Err(AuthError::RateLimited { retry_after }) => {
            let secs = retry_after.as_secs().max(1);
            let mut r = login_page(
                admin,
                Some(&format!("Too many failed attempts: try again in {secs} s.")),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return Err(Box::new(r));
        }
        Err(_) => return Err(Box::new(login_page(admin, Some(REFUSED), StatusCode::UNAUTHORIZED))),
    };
    let refused = |attempt: crate::serve::dirauth::limiter::Attempt<'_>| {
        attempt.failed();
        Err(Box::new(login_page(admin, Some(REFUSED), StatusCode::UNAUTHORIZED)))
    };
    if let Some(hash) = admin.password_hash.as_ref().filter(|_| f.username == "admin") {
        let ok = local_password_ok(hash.expose().to_string(), f.password.clone()).await;
        st.auth.count(ok);
        return if ok {
            attempt.succeeded();
            Ok(("admin".into(), true))
        } else {
            refused(attempt)
        };
    }
    match st.auth.check(&f.username, &f.password).await {
        Ok(a) => {
            let (a2, user) = (admin.clone(), a.username.clone());
            match on_store(&*st.store, move |s| is_directory_admin(s, &a2, &user)).await {
                Ok(true) => {
                    attempt.succeeded();
                    Ok((a.username, false))
                }
                Ok(false) => {
                    tracing::info!(user = %a.username, "admin page: the password is right but the user is not an admin");
                    refused(attempt)
                }
                Err(e) => Err(Box::new(super::page_failure(e))),
            }
        }
        Err(AuthError::Unavailable(_)) => {
            attempt.succeeded(); // not the caller's failure
            let m = "The directory cannot be reached: try again later.";
            Err(Box::new(login_page(admin, Some(m), StatusCode::SERVICE_UNAVAILABLE)))
        }
        Err(_) => refused(attempt),
    }
}

pub async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    Form(f): Form<LoginForm>,
) -> Response {
    let cfg = st.config();
    let server = cfg.server.clone().unwrap_or_default();
    let admin = server.admin.clone();
    if cookie(&headers, "dirsync_login").as_deref() != Some(f.csrf.as_str()) || f.csrf.is_empty() {
        return login_page(&admin, Some("The form is stale: try again."), StatusCode::FORBIDDEN);
    }
    let address = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let (user, local) = match check(&st, &admin, &f, address).await {
        Ok(u) => u,
        Err(page) => return *page,
    };
    let id = st.sessions.open(&user, local, admin.session);
    tracing::info!(%user, "admin page: signed in");
    let secure = if server.tls.is_some() { "; Secure" } else { "" };
    let max_age = admin.session_max.as_secs();
    let c = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    let mut res = Redirect::to("/").into_response();
    res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&c).expect("a valid cookie"));
    res
}

pub async fn logout(State(st): State<AppState>, headers: HeaderMap, Checked(_s, _f): Checked<CsrfForm>) -> Response {
    if let Some(id) = cookie(&headers, COOKIE) {
        st.sessions.close(&id);
    }
    let mut res = Redirect::to("/login").into_response();
    let c = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&c).expect("a valid cookie"));
    res
}
