//! The admin page over HTTP, without a browser (the browser test is in
//! `page_browser.rs`): sign-in for the local admin and for members of the
//! admin group, sessions and CSRF tokens, security headers, escaping of
//! directory values, no secret in any page, rate limits, sign-out.

use std::time::Duration;

use crate::harness::*;
use crate::serve::*;
use reqwest::redirect::Policy;

pub const ADMIN_PASSWORD: &str = "local-admin-pass-0123";

/// Slapd's school plus a user whose full name is markup; the page's admin
/// group is Staff (alice through Teachers, bob directly); a local admin.
pub fn page_env(slapd: &Slapd) -> Env {
    school(slapd);
    slapd.modify(&person("mallory", "<img src=x onerror=alert(1)>", "userPassword: mallory-pw-5"));
    let env = Env::ldap(slapd, "", "");
    let hash = env.dir.path().join("admin.hash");
    let mut child = env
        .command(&["admin-password", hash.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{ADMIN_PASSWORD}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&hash).unwrap();
    assert!(text.starts_with("$argon2id$") && !text.contains(ADMIN_PASSWORD));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&hash).unwrap().permissions().mode() & 0o777, 0o600);
    let server = server_section(&env, "[server.admin]\ngroup = \"staff\"\npassword_file = \"admin.hash\"\n");
    env.edit_config(|c| format!("{c}\n{server}"));
    env
}

/// Slapd's school; `print_code` is app-owned, pushed to `pager`, generated
/// by [codes]; the local admin signs in.
pub fn writeback_page_env(slapd: &Slapd) -> Env {
    school(slapd);
    let rest = "print_code = { attribute = \"pager\", owner = \"app\" }\n\n[sources.writeback]\nenabled = true\n\n[codes]\nprint_code = { length = 6, charset = \"digits\", unique = true }\n";
    let env = Env::ldap(slapd, "", rest);
    let hash = env.dir.path().join("admin.hash");
    std::fs::write(&hash, dirsync::serve::page::session::hash_password(ADMIN_PASSWORD).unwrap()).unwrap();
    let server = server_section(&env, "[server.admin]\npassword_file = \"admin.hash\"\n");
    env.edit_config(|c| format!("{c}\n{server}"));
    env
}

pub struct Browser {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        Browser { rt, http, base: base.to_string(), cookies: Vec::new() }
    }

    pub fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !cookie.is_empty() {
            req = req.header("cookie", cookie.join("; "));
        }
        if method == "POST" {
            let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
            req = req.header("content-type", "application/x-www-form-urlencoded").body(body);
        }
        let (status, headers, body) = self.rt.block_on(async {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.headers().clone(), r.text().await.unwrap())
        });
        for c in headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (k, v) = c.split(';').next().unwrap().split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        Page { status, headers, body }
    }

    pub fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, &[])
    }

    /// The first `name="csrf" value="…"` on the page.
    pub fn csrf(page: &Page) -> String {
        let i = page.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        page.body[i..i + page.body[i..].find('"').unwrap()].to_string()
    }

    pub fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/login");
        let csrf = Browser::csrf(&form);
        self.send("POST", "/login", &[("csrf", &csrf), ("username", user), ("password", password)])
    }
}

#[test]
fn the_page_signs_in_admins_only_checks_csrf_escapes_and_shows_no_secret() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    let mut b = Browser::new(&svc.base);

    // No session: to the sign-in page, which has the security headers.
    let p = b.get("/");
    assert_eq!((p.status, p.headers["location"].to_str().unwrap()), (303, "/login"));
    let p = b.get("/login");
    assert_eq!(p.status, 200);
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(p.headers["x-frame-options"], "DENY");
    assert_eq!(p.headers["cache-control"], "no-store");

    // A sign-in form posted without its own token is refused.
    let p = b.send("POST", "/login", &[("csrf", "forged"), ("username", "admin"), ("password", ADMIN_PASSWORD)]);
    assert_eq!(p.status, 403);
    // Wrong password, a directory user outside the admin group, then right.
    assert_eq!(b.sign_in("admin", "wrong-password-here").status, 401);
    assert_eq!(b.sign_in("carol", "carol-has-none").status, 401);
    assert_eq!(b.sign_in("mallory", "mallory-pw-5").status, 401, "right password, not in Staff");
    let p = b.sign_in("admin", ADMIN_PASSWORD);
    assert_eq!((p.status, p.headers["location"].to_str().unwrap()), (303, "/"), "{}", p.body);
    let set = p.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");

    // The dashboard: the source, its last run, forms with the session's token.
    let dash = b.get("/");
    assert_eq!(dash.status, 200, "{}", dash.body);
    assert!(
        dash.body.contains("corp") && dash.body.contains("Sync now") && dash.body.contains("badge ok"),
        "{}",
        dash.body
    );
    let csrf = Browser::csrf(&dash);
    // A changing form without the token: refused; with it: a run.
    assert_eq!(b.send("POST", "/ui/sync", &[("csrf", "0000"), ("source", "corp")]).status, 403);
    let p = b.send("POST", "/ui/sync", &[("csrf", &csrf), ("source", "corp")]);
    assert_eq!(p.status, 303, "{}", p.body);
    let run_page = p.headers["location"].to_str().unwrap().to_string();
    assert!(run_page.starts_with("/ui/runs/"), "{run_page}");
    // The run's page, once the run is done.
    let t0 = std::time::Instant::now();
    let p = loop {
        let p = b.get(&run_page);
        if p.body.contains("badge ok") || t0.elapsed() > Duration::from_secs(10) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(p.status == 200 && p.body.contains("badge ok"), "{}", p.body);
    // Preview: the plan, field by field, and memberships; nothing changed.
    slapd.modify(&format!("dn: uid=bob,ou=people,{SUFFIX}\nchangetype: modify\nreplace: cn\ncn: Robert Baker\n\n"));
    slapd.modify(&person("dave", "Dave Doe", ""));
    slapd.modify(&format!(
        "dn: cn=Students,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=dave,ou=people,{SUFFIX}\n\n"
    ));
    let p = b.send("POST", "/ui/preview", &[("csrf", &csrf), ("source", "corp")]);
    assert!(p.status == 200 && p.body.contains("nothing has been changed yet"), "{}", p.body);
    assert!(
        p.body.contains(">Sync now</button>") && p.body.contains("applies source <strong>corp</strong>"),
        "{}",
        p.body
    );
    assert!(p.body.contains("it compared"), "the preview says what it compared: {}", p.body);
    assert!(p.body.contains("full_name: Bob Baker → Robert Baker"), "{}", p.body);
    assert!(
        p.body.contains("Creates (1)")
            && p.body.contains("Memberships added (1)")
            && p.body.contains("dave → Students"),
        "{}",
        p.body
    );
    assert!(env.user("bob")["full_name"] == "Bob Baker", "the preview changed nothing");
    let p = b.send("POST", "/ui/preview", &[("csrf", &csrf), ("source", "corp"), ("all", "1")]);
    assert!(p.status == 200 && p.body.contains("dave → Students") && !p.body.contains("more ("), "{}", p.body);
    // An unknown source is answered as the API answers it: 404, from Preview and Sync now alike.
    for path in ["/ui/preview", "/ui/sync"] {
        let p = b.send("POST", path, &[("csrf", &csrf), ("source", "nope")]);
        assert_eq!(p.status, 404, "{path}: {}", p.body);
        assert!(p.body.contains("no source is named"), "{path}: {}", p.body);
    }
    let (s, _, e) = svc.call("POST", "/api/syncs", Some(WRITER), Some(serde_json::json!({"sources": ["nope"]})));
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")), "{e}");
    // Runs: a chart and a filter.
    let p = b.get("/ui/runs?status=ok");
    assert!(p.body.contains("<svg") && p.body.contains("class=\"bar ok\""), "{}", p.body);
    // Who asked for each run, and where it ran (the service's host:port).
    let port = svc.base.rsplit(':').next().unwrap();
    assert!(p.body.contains("<th>By</th>") && p.body.contains(&format!(":{port}</td>")), "{}", p.body);
    assert!(p.body.contains("api on ") || p.body.contains("cli on "), "{}", p.body);
    let p = b.get("/ui/runs?status=failed");
    assert!(!p.body.contains("badge ok"), "only failed runs: {}", p.body);

    // Directory values are text, never markup.
    let p = b.get("/ui/users?q=mallory");
    assert!(p.body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{}", p.body);
    assert!(!p.body.contains("<img src=x"), "escaped");
    let p = b.get("/ui/users/mallory");
    assert!(p.status == 200 && !p.body.contains("<img src=x"), "{}", p.body);

    // Settings: the config, read-only; Test settings reads the source and changes nothing.
    let p = b.get("/ui/settings");
    assert!(
        p.status == 200 && p.body.contains("bind_password_file") && p.body.contains("[server.admin]"),
        "{}",
        p.body
    );
    let runs_before = env.runs().len();
    let p = b.send("POST", "/ui/settings/test", &[("csrf", &csrf)]);
    assert!(p.status == 200 && p.body.contains("Nothing was changed") && p.body.contains("alice"), "{}", p.body);
    assert!(p.body.contains(" users, 3 groups"), "{}", p.body);
    // Every mapped field of the sample, one column each.
    for column in ["<th>full_name</th>", "<th>department</th>", "<th>card_number</th>", "<th>extension</th>"] {
        assert!(p.body.contains(column), "{column}: {}", p.body);
    }
    assert_eq!(env.runs().len(), runs_before, "no run was recorded");

    // No page shows a secret (bind password, tokens, the admin password, its hash).
    let hash = std::fs::read_to_string(env.dir.path().join("admin.hash")).unwrap();
    for path in
        ["/", "/ui/runs", "/ui/users", "/ui/users/alice", "/ui/settings", "/ui/groups", "/ui/writeback", &run_page]
    {
        let p = b.get(path);
        // (The bind password is "secret", also part of its file's name: looked for as a value.)
        let quoted = format!("\"{PASSWORD}\"");
        let text = format!(">{PASSWORD}<");
        for secret in [quoted.as_str(), text.as_str(), READER, ADMIN_TOKEN, ADMIN_PASSWORD, hash.trim()] {
            assert!(!p.body.contains(secret), "{path} shows a secret");
        }
    }

    // Sign out: the session is gone.
    let p = b.send("POST", "/logout", &[("csrf", &csrf)]);
    assert_eq!(p.status, 303);
    assert_eq!(b.get("/").status, 303);
    // A directory admin (bob, in Staff) signs in with the directory password.
    assert_eq!(b.sign_in("bob", "bob-pw-2").status, 303);
    assert_eq!(b.get("/").status, 200);
    let log = svc.log();
    for secret in [ADMIN_PASSWORD, "bob-pw-2", "mallory-pw-5"] {
        assert!(!log.contains(secret), "a password is in the log");
    }
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn sign_in_failures_are_rate_limited_like_the_api() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    let svc = Service::start(&env);
    let mut b = Browser::new(&svc.base);
    for _ in 0..5 {
        assert_eq!(b.sign_in("admin", "not-the-password").status, 401);
    }
    let p = b.sign_in("admin", ADMIN_PASSWORD);
    assert_eq!(p.status, 429, "even the right password waits: {}", p.body);
    assert!(p.body.contains("Too many failed attempts"), "{}", p.body);
    // The API's auth counts page failures too (one limiter).
    let (_, _, m) = svc.call("GET", "/metrics", None, None);
    let m: String = m.as_str().unwrap_or_default().to_string();
    assert!(m.contains("dirsync_auth_attempts_total{outcome=\"invalid\"} 5"), "{m}");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn from_the_page_an_admin_generates_a_code_pushes_it_resolves_a_conflict_and_browses_groups() {
    let slapd = Slapd::start();
    let env = writeback_page_env(&slapd);
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok");
    let mut b = Browser::new(&svc.base);
    assert_eq!(b.sign_in("admin", ADMIN_PASSWORD).status, 303);
    let alice = format!("uid=alice,ou=people,{SUFFIX}");

    // A code generated from the user's page, queued, then pushed.
    let page = b.get("/ui/users/alice");
    assert!(page.body.contains("Fields the application owns") && page.body.contains("Generate"), "{}", page.body);
    let csrf = Browser::csrf(&page);
    let p = b.send("POST", "/ui/users/alice/field", &[("csrf", &csrf), ("field", "print_code"), ("generate", "1")]);
    assert_eq!(p.status, 303, "{}", p.body);
    let code = env.user("alice")["fields"]["print_code"].as_str().unwrap().to_string();
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()), "{code}");
    assert!(b.get("/ui/writeback").body.contains("Pending (1)"));
    let dash = b.get("/").body;
    assert!(
        dash.contains("<p class=\"big\">1</p><p>pending · 0 failed · 0 conflicts</p>"),
        "the dashboard counts the queue: {dash}"
    );
    assert_eq!(b.send("POST", "/ui/writeback/push", &[("csrf", &csrf)]).status, 303);
    assert_eq!(slapd.values(&alice, "pager"), [code]);

    // The directory changes the value; the page sets another: a conflict, kept as the directory has it.
    slapd.modify(&format!("dn: {alice}\nchangetype: modify\nreplace: pager\npager: 9999\n"));
    let p = b.send("POST", "/ui/users/alice/field", &[("csrf", &csrf), ("field", "print_code"), ("value", "1234")]);
    assert_eq!(p.status, 303);
    b.send("POST", "/ui/writeback/push", &[("csrf", &csrf)]);
    let wb = b.get("/ui/writeback");
    assert!(wb.body.contains("Conflicts (1)") && wb.body.contains("Keep directory value"), "{}", wb.body);
    let end = wb.body.find("/resolve\"").expect("a resolve form") + "/resolve".len();
    let start = wb.body[..end].rfind('"').unwrap() + 1;
    let action = wb.body[start..end].to_string();
    assert!(action.starts_with("/ui/writeback/"), "{action}");
    assert_eq!(b.send("POST", &action, &[("csrf", &csrf), ("keep", "directory")]).status, 303);
    assert_eq!(env.user("alice")["fields"]["print_code"], "9999");
    assert!(b.get("/ui/writeback").body.contains("Conflicts (0)"));
    // A directory-owned field cannot be set from the page either.
    let p = b.send("POST", "/ui/users/alice/field", &[("csrf", &csrf), ("field", "full_name"), ("value", "X")]);
    assert_eq!(p.status, 409, "{}", p.body);

    // Groups, and one user synced now.
    let g = b.get("/ui/groups");
    assert!(g.body.contains("Staff") && g.body.contains("Teachers"), "{}", g.body);
    let staff = b.get("/ui/groups/Staff");
    assert!(staff.body.contains("Effective members (2)") && staff.body.contains(">alice<"), "{}", staff.body);
    let p = b.send("POST", "/ui/users/alice/sync", &[("csrf", &csrf)]);
    assert_eq!(p.status, 303);
    assert!(p.headers["location"].to_str().unwrap().starts_with("/ui/runs/"));
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn settings_shows_no_secret_written_over_several_lines() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    // The bind password inline, in a multi-line string whose value is on the next line.
    env.edit_config(|c| {
        c.replace(
            "bind_password_file = \"secret.txt\"",
            &format!("bind_password = \"\"\"\\\n    {PASSWORD}-multi\"\"\""),
        )
    });
    slapd.config_modify(&format!(
        "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nreplace: olcRootPW\nolcRootPW: {PASSWORD}-multi\n\n"
    ));
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok", "the multi-line password is the right one");
    let mut b = Browser::new(&svc.base);
    assert_eq!(b.sign_in("admin", ADMIN_PASSWORD).status, 303);
    let p = b.get("/ui/settings");
    assert_eq!(p.status, 200);
    assert!(!p.body.contains(&format!("{PASSWORD}-multi")), "the secret is on the page: {}", p.body);
    assert!(p.body.contains("bind_password") && p.body.contains("••••••"), "{}", p.body);
}
