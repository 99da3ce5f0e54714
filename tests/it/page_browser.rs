//! The admin page in a real browser: Debian's headless Chromium driven over
//! WebDriver (chromedriver, fantoccini) against `dirsync serve` on a real
//! slapd. Sign in (wrong, then right), the dashboard, Preview, Sync now, a
//! user search that shows markup as text, sign out; a running sync's live
//! progress. Screenshots go to
//! `target/screenshots/`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

use crate::harness::*;
use crate::page::{page_env, ADMIN_PASSWORD};
use crate::serve::*;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> (Driver, u16) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (scripts/test.sh installs chromium and chromium-driver)");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Driver(child), port)
}

fn screenshots() -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A WebDriver session on headless Chromium.
async fn browser(port: u16, profile: &std::path::Path) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,900",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session")
}

/// The text of `css` once it contains `want` (pages change under a click: retried).
async fn wait_text(c: &fantoccini::Client, css: &str, want: &str) -> String {
    let t0 = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(want) {
                    return t;
                }
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{css} never showed {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in(c: &fantoccini::Client, base: &str, user: &str, pw: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("input[name=username]")).await.unwrap().send_keys(user).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(pw).await.unwrap();
    c.find(Locator::Css("form.login button")).await.unwrap().click().await.unwrap();
}

/// chromedriver, a browser profile and a runtime, for one test.
struct Chrome {
    _driver: Driver,
    port: u16,
    profile: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Chrome {
    fn start() -> Chrome {
        let (driver, port) = chromedriver();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Chrome { _driver: driver, port, profile: tempfile::tempdir().unwrap(), rt }
    }

    /// Runs `steps` in a new browser session, closed afterwards.
    fn run<F: std::future::Future<Output = ()>>(&self, steps: impl FnOnce(fantoccini::Client) -> F) {
        self.rt.block_on(async {
            let c = browser(self.port, self.profile.path()).await;
            steps(c.clone()).await;
            c.close().await.unwrap();
        });
    }
}

/// Signs in as the local admin and waits for the dashboard.
async fn as_admin(c: &fantoccini::Client, base: &str) {
    sign_in(c, base, "admin", ADMIN_PASSWORD).await;
    wait_text(c, "main h1", "Dashboard").await;
}

#[test]
fn a_running_sync_shows_its_progress_without_a_reload() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    // The source answers the bind, then stalls: the run stays running.
    let proxy = CutProxy::stalling(slapd.port, 100);
    env.point_at(&slapd.url(), proxy.port);
    let svc = Service::start(&env);
    let chrome = Chrome::start();
    let base = &svc.base;
    chrome.run(|c| async move {
        as_admin(&c, base).await;
        c.find(Locator::XPath("//button[text()='Sync now']")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main h1", "Run #").await;
        // The script replaces the paragraph's text with live figures.
        let t = wait_text(&c, "#progress", "entries read in").await;
        assert!(t.starts_with("running: "), "{t}");
        std::fs::write(screenshots().join("running.png"), c.screenshot().await.unwrap()).unwrap();
    });
    assert_eq!(svc.stop(15), 0);
}

#[test]
fn an_admin_signs_in_previews_syncs_and_searches_in_a_real_browser() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    let chrome = Chrome::start();
    let base = &svc.base;
    chrome.run(|c| async move {
        let shot = |name: &'static str| {
            let c = c.clone();
            async move { std::fs::write(screenshots().join(name), c.screenshot().await.unwrap()).unwrap() }
        };
        // Wrong password: the page says so, and stays on sign-in.
        sign_in(&c, base, "admin", "not-the-password").await;
        wait_text(&c, "p.error[role=alert]", "not right").await;
        shot("sign-in-refused.png").await;
        // Right password: the dashboard.
        as_admin(&c, base).await;
        let row = wait_text(&c, "main table tbody tr", "corp").await;
        assert!(row.contains("ok"), "{row}");
        shot("dashboard.png").await;
        // Preview: the plan, nothing changed.
        c.find(Locator::XPath("//button[text()='Preview']")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main", "nothing has been changed yet").await;
        shot("preview.png").await;
        // Sync now: the run's page.
        c.goto(base).await.unwrap();
        c.find(Locator::XPath("//button[text()='Sync now']")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main h1", "Run #").await;
        shot("run.png").await;
        // A search: markup from the directory is shown as text, never run.
        c.goto(&format!("{}/ui/users", base)).await.unwrap();
        c.find(Locator::Css("input[name=q]")).await.unwrap().send_keys("mallory").await.unwrap();
        c.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main table tbody tr", "<img src=x onerror=alert(1)>").await;
        assert!(c.find_all(Locator::Css("main img")).await.unwrap().is_empty(), "no image element was made");
        shot("users.png").await;
        // Sign out: back to sign-in.
        c.find(Locator::Css("form.signout button")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main h1", "Sign in").await;
    });
    for name in ["sign-in-refused.png", "dashboard.png", "preview.png", "run.png", "users.png"] {
        assert!(std::fs::metadata(screenshots().join(name)).unwrap().len() > 1000, "{name}");
    }
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn in_the_browser_a_blocked_run_is_approved_settings_are_tested_and_users_filtered() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    // One of four users leaves the directory: 25% is over the 20% threshold.
    slapd.modify(&format!("dn: uid=carol,ou=people,{SUFFIX}\nchangetype: delete\n\n"));
    let chrome = Chrome::start();
    let base = &svc.base;
    chrome.run(|c| async move {
        as_admin(&c, base).await;
        c.find(Locator::XPath("//button[text()='Sync now']")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main", "blocked by the safety guards").await;
        let plan = wait_text(&c, "main", "Disables and deletes (1)").await;
        assert!(plan.contains("carol — disable"), "{plan}");
        std::fs::write(screenshots().join("blocked.png"), c.screenshot().await.unwrap()).unwrap();
        c.find(Locator::XPath("//button[text()='Approve']")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main p", "forced").await;
        // The run's page reloads itself when the run ends (its progress script).
        wait_text(&c, "main p span.badge", "ok").await;
        // The approved run applied: carol is disabled; filter the users by status.
        c.goto(&format!("{}/ui/users?status=disabled", base)).await.unwrap();
        let rows = wait_text(&c, "main table tbody", "carol").await;
        assert!(!rows.contains("alice"), "{rows}");
        // Test settings: reads the source, changes nothing.
        c.goto(&format!("{}/ui/settings", base)).await.unwrap();
        c.find(Locator::XPath("//button[text()='Test settings']")).await.unwrap().click().await.unwrap();
        let t = wait_text(&c, "main", "Nothing was changed").await;
        assert!(t.contains("3 users") && t.contains("mallory"), "{t}");
        std::fs::write(screenshots().join("test-settings.png"), c.screenshot().await.unwrap()).unwrap();
    });
    assert_eq!(env.user("carol")["status"], "disabled");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn in_the_browser_an_app_owned_field_is_edited_queued_pushed_and_a_conflict_resolved() {
    let slapd = Slapd::start();
    let env = crate::page::writeback_page_env(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    let alice = format!("uid=alice,ou=people,{SUFFIX}");
    let chrome = Chrome::start();
    let base = &svc.base;
    chrome.run(|c| async move {
        as_admin(&c, base).await;
        // The user's page: edit the app-owned field; it is queued.
        c.goto(&format!("{}/ui/users/alice", base)).await.unwrap();
        wait_text(&c, "main", "Fields the application owns").await;
        let input = c.find(Locator::Css("form.field input[name=value]")).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys("4711").await.unwrap();
        c.find(Locator::XPath("//form[contains(@class,'field')]//button[text()='Save']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, "main", "print_code → 4711: pending").await;
        std::fs::write(screenshots().join("user.png"), c.screenshot().await.unwrap()).unwrap();
        // Pushed from the write-back page.
        c.goto(&format!("{}/ui/writeback", base)).await.unwrap();
        c.find(Locator::XPath("//button[text()='Retry now']")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main", "Pending (0)").await;
    });
    assert_eq!(slapd.values(&alice, "pager"), ["4711"]);
    // The directory and the application both change it: a conflict, resolved in the browser.
    slapd.modify(&format!("dn: {alice}\nchangetype: modify\nreplace: pager\npager: 9999\n"));
    chrome.run(|c| async move {
        as_admin(&c, base).await;
        c.goto(&format!("{}/ui/users/alice", base)).await.unwrap();
        let input = c.find(Locator::Css("form.field input[name=value]")).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys("1234").await.unwrap();
        c.find(Locator::XPath("//form[contains(@class,'field')]//button[text()='Save']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, "main", "print_code → 1234: pending").await;
        c.goto(&format!("{}/ui/writeback", base)).await.unwrap();
        c.find(Locator::XPath("//button[text()='Retry now']")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main", "Conflicts (1)").await;
        std::fs::write(screenshots().join("conflict.png"), c.screenshot().await.unwrap()).unwrap();
        c.find(Locator::XPath("//button[text()='Keep app value']")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main", "Conflicts (0)").await;
    });
    assert_eq!(slapd.values(&alice, "pager"), ["1234"], "the application's value was written");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn in_the_browser_live_states_and_webhooks_show_and_a_run_is_undone_after_its_preview() {
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    std::fs::write(env.dir.path().join("print.whsec"), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    let down = format!("http://127.0.0.1:{}/hook", free_port());
    env.edit_config(|c| {
        let hook = format!("[[server.webhooks]]\nname = \"print\"\nurl = \"{down}\"\nsecret_file = \"print.whsec\"\nmax_retry_secs = 1\n\n");
        c.replacen("[sources.fields]", "[sources.live]\nenabled = true\ndebounce_ms = 200\n[sources.fields]", 1)
            .replacen("[[server.clients]]", &format!("{hook}[[server.clients]]"), 1)
    });
    let svc = Service::start(&env);
    crate::live::wait_state(&svc, "live", 20);
    crate::live::wait_user(&svc, "alice", "read in full first", |u| u["status"] == "active");
    slapd.modify(&person("nina", "Nina New", ""));
    crate::live::wait_user(&svc, "nina", "created live", |u| u["status"] == "active");
    let live_run =
        crate::live::runs(&svc).into_iter().find(|r| r["mode"] == "live").expect("a live run")["id"].as_i64().unwrap();
    let chrome = Chrome::start();
    let base = &svc.base;
    chrome.run(|c| async move {
        let shot = |name: &'static str| {
            let c = c.clone();
            async move { std::fs::write(screenshots().join(name), c.screenshot().await.unwrap()).unwrap() }
        };
        as_admin(&c, base).await;
        wait_text(&c, "main", "refreshAndPersist").await;
        wait_text(&c, "main", "Webhooks").await;
        shot("dashboard-live.png").await;
        c.goto(&format!("{base}/ui/runs/{live_run}")).await.unwrap();
        c.find(Locator::LinkText("Undo this run…")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main", "Would put back").await;
        shot("undo-preview.png").await;
        c.find(Locator::XPath("//button[starts-with(text(), 'Undo run')]")).await.unwrap().click().await.unwrap();
        wait_text(&c, "main h1", "Run #").await;
        shot("undo-run.png").await;
    });
    for name in ["dashboard-live.png", "undo-preview.png", "undo-run.png"] {
        assert!(std::fs::metadata(screenshots().join(name)).unwrap().len() > 1000, "{name}");
    }
    let t0 = Instant::now();
    while svc.get("/api/users/nina", READER).1["status"] != "disabled" {
        assert!(t0.elapsed() < Duration::from_secs(15), "the undo disabled nina");
        std::thread::sleep(Duration::from_millis(50));
    }
}
