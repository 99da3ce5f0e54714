//! The admin web page, served by `dirsync serve` at `/`: server-rendered
//! HTML (maud: every value is escaped), one embedded stylesheet, and one
//! small script (a running sync's progress) from the binary, never inline.
//! A thin layer over the same library functions as the API. Every page
//! needs a session ([`session`]); every form that changes something carries
//! the session's CSRF token; every answer carries a Content-Security-Policy
//! that allows no inline script, and is not cached. What it shows is in
//! [`views`].

pub mod actions;
pub mod live;
pub mod session;
pub mod settings;
pub mod signin;
pub mod undo;
pub mod views;

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::serve::AppState;
use session::Session;

/// The page's routes (merged into the service's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(views::dashboard))
        .route("/login", get(signin::login_form).post(signin::login))
        .route("/logout", post(signin::logout))
        .route("/ui/sync", post(views::sync_now))
        .route("/ui/preview", post(views::preview))
        .route("/ui/backfill", post(actions::backfill))
        .route("/ui/runs", get(views::runs))
        .route("/ui/runs/{id}", get(views::run))
        .route("/ui/runs/{id}/approve", post(views::approve))
        .route("/ui/runs/{id}/undo", get(undo::preview).post(undo::confirm))
        .route("/ui/runs/{id}/progress", get(views::progress))
        .route("/ui/users", get(views::users))
        .route("/ui/users/{username}", get(views::user))
        .route("/ui/users/{username}/field", post(actions::set_user_field))
        .route("/ui/users/{username}/sync", post(actions::sync_user))
        .route("/ui/groups", get(actions::groups))
        .route("/ui/groups/{name}", get(actions::group))
        .route("/ui/settings", get(settings::settings))
        .route("/ui/settings/test", post(settings::test))
        .route("/ui/writeback", get(actions::writeback))
        .route("/ui/writeback/push", post(actions::push))
        .route("/ui/writeback/{id}/resolve", post(actions::resolve))
        .route("/static/style.css", get(style))
        .route("/static/progress.js", get(script))
}

const CSS: &str = include_str!("style.css");
const JS: &str = include_str!("progress.js");

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], JS)
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], CSS).into_response()
}

/// Security headers on every page answer.
pub async fn headers(req: axum::extract::Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let csp = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The page around `body`.
pub fn layout(title: &str, who: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · dirsync" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    a.brand href="/" { "dirsync" }
                    @if let Some(s) = who {
                        nav {
                            a href="/" { "Dashboard" }
                            a href="/ui/runs" { "Runs" }
                            a href="/ui/users" { "Users" }
                            a href="/ui/groups" { "Groups" }
                            a href="/ui/writeback" { "Write-back" }
                            a href="/ui/settings" { "Settings" }
                        }
                        form.signout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span { (s.user) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Why a page was not served.
pub enum Denied {
    /// No session (or an expired one): to the sign-in page.
    SignIn,
    /// A changing form without this session's CSRF token: 403.
    Stale,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::SignIn => Redirect::to("/login").into_response(),
            Denied::Stale => page_error(
                StatusCode::FORBIDDEN,
                "The form is stale or was not sent by this page: reload it and try again.",
            ),
        }
    }
}

/// The signed-in admin, as a handler's argument (else to the sign-in page).
pub struct Admin(pub Session);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Admin, Denied> {
        signin::signed_in(st, &parts.headers).await.map(Admin)
    }
}

/// A form that carries the session's CSRF token.
pub trait WithCsrf {
    fn csrf(&self) -> &str;
}

/// A changing form from the signed-in admin, its CSRF token checked: the
/// last argument of every handler that changes something. A form without
/// this session's token (or that does not parse) is refused as stale.
pub struct Checked<T>(pub Session, pub T);

impl<T: serde::de::DeserializeOwned + WithCsrf + Send> FromRequest<AppState> for Checked<T> {
    type Rejection = Denied;

    async fn from_request(req: Request, st: &AppState) -> Result<Checked<T>, Denied> {
        let s = signin::signed_in(st, req.headers()).await?;
        let Form(f) = Form::<T>::from_request(req, st).await.map_err(|_| Denied::Stale)?;
        if !crate::serve::api::clients::ct_eq(s.csrf.as_bytes(), f.csrf().as_bytes()) {
            return Err(Denied::Stale);
        }
        Ok(Checked(s, f))
    }
}

/// A form that carries only the session's CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

impl WithCsrf for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub fn page_error(status: StatusCode, message: &str) -> Response {
    (status, layout("Not done", None, html! { p.error { (message) } p { a href="/" { "Back" } } })).into_response()
}

/// A library error on the page, with the status, words and `Retry-After`
/// the API gives it (one conversion decides both): store failures are
/// answered in general terms, never with their SQL.
pub fn page_failure(e: impl Into<crate::serve::api::error::ApiError>) -> Response {
    let e = e.into();
    let mut r = page_error(e.status, &e.message);
    if let Some(s) = e.retry_after {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(s.max(1)));
    }
    r
}
