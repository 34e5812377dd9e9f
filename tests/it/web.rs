//! The admin page in a real headless browser (JavaScript off), against
//! `orgsync run` with a file source and a real scim2-server: the pages show
//! real runs, the filters work, approving held-back deletions applies
//! exactly them and rejecting keeps them (and silences their notification).
//! Every page is kept as a screenshot in target/screenshots/.

use crate::browser::Browser;
use crate::daemon::{Daemon, finished, trigger_and_status};
use crate::harness::{Env, Scim, TOKEN, free_port, org};
use std::time::Duration;

const ADMIN: &str = "web-admin-token-for-tests";

#[test]
fn the_admin_page_in_a_browser_shows_runs_filters_items_and_approves_exactly_the_held_deletions() {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let hook = crate::notify::receiver();
    let mut doc = org(2, 20);
    env.write_org(&doc);
    std::fs::write(env.path("admin"), format!("{ADMIN}\n")).unwrap();
    let port = free_port();
    env.scim_config(
        &scim,
        &format!(
            "[policy.users]\ntarget_only = \"delete\"\n[schedule]\nmode = \"manual\"\nrun_on_start = true\n\
             [daemon]\nlisten = \"127.0.0.1:{port}\"\nadmin_token_file = \"admin\"\nweb_actions = true\n\
             [[notify]]\nkind = \"webhook\"\nurl = \"{}/hook\"\non = [\"held_back\"]\nmin_interval = \"0s\"\n",
            hook.base
        ),
    );
    let d = Daemon::start(&env, port);
    d.wait_runs("the first run", Duration::from_secs(60), |r| finished(r) == 1);
    let b = Browser::start();
    let mut pages = Vec::new();
    let mut keep = |b: &Browser, name: &str| {
        b.screenshot(name);
        pages.push((name.to_owned(), b.source()));
    };

    // The token once, into the form.
    b.go(&d.url("/runs/1"));
    assert!(b.url().contains("/login?next="), "{}", b.url());
    keep(&b, "login");
    b.type_into("#token", ADMIN);
    b.click_to_load("main button[type=submit]");
    assert!(b.url().ends_with("/runs/1"), "back where it was asked: {}", b.url());

    // The overview: kinds, the run, counts.
    b.go(&d.url("/"));
    assert_eq!((b.text("#source-kind"), b.text("#target-kind")), ("file".to_owned(), "scim".to_owned()));
    let rows = b.texts("#runs tbody tr");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("succeeded") && rows[0].contains("startup") && rows[0].contains("created 22"), "{rows:?}");
    keep(&b, "overview");

    // A run's items, filtered through the form.
    b.go(&d.url("/runs/1"));
    let all = b.all("tr.item").len();
    assert!(all > 20, "users, departments and memberships: {all}");
    b.click("#f-kind option[value=user]");
    b.click("#f-op option[value=create]");
    b.click_to_load("form.filters button");
    assert!(b.url().contains("kind=user") && b.url().contains("op=create"), "{}", b.url());
    let items = b.texts("tr.item");
    assert_eq!(items.len(), 20, "{items:?}");
    assert!(items.iter().all(|i| i.starts_with("user create")), "{items:?}");
    keep(&b, "run");
    b.click("#f-outcome option[value=held_back]");
    b.click_to_load("form.filters button");
    assert!(b.all("tr.item").is_empty());
    assert!(b.source().contains("No item matches."));

    // Half the users leave: the guard holds their deletions back, and says so once.
    let gone: Vec<String> = doc["users"].as_array().unwrap()[10..].iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect();
    doc["users"].as_array_mut().unwrap().truncate(10);
    env.write_org(&doc);
    assert_eq!(d.post_sync("", Some(ADMIN)).0, 202);
    let runs = d.wait_runs("the held-back run", Duration::from_secs(60), |r| finished(r) == 2);
    assert_eq!(trigger_and_status(&runs[0]), ("http", "partial"));
    wait_for(|| crate::notify::got(&hook).len() == 1, "the held-back notification");
    b.go(&d.url("/deletions"));
    assert_eq!(b.text("#removals"), "10");
    let held = b.texts("tr.held");
    assert_eq!(held.len(), 10, "{held:?}");
    keep(&b, "deletions");

    // Rejected: kept, recorded, and silent while they are the same.
    b.click_to_load("#reject");
    assert!(b.source().contains("they stay held back"), "{}", b.source());
    b.go(&d.url("/deletions"));
    assert!(!b.all("#rejected").is_empty());
    assert!(b.texts("#action-table tbody tr")[0].contains("token 127.0.0.1 reject"), "{:?}", b.texts("#action-table tbody tr"));
    assert_eq!(d.post_sync("", Some(ADMIN)).0, 202);
    let runs = d.wait_runs("a run after the rejection", Duration::from_secs(60), |r| finished(r) == 3);
    assert_eq!(trigger_and_status(&runs[0]), ("http", "partial"));
    assert_eq!(scim.users().len(), 20, "rejected deletions are kept");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(crate::notify::got(&hook), Vec::new(), "a rejected held set is not announced again");

    // Approved: exactly those ten go.
    b.go(&d.url("/deletions"));
    b.click_to_load("#approve");
    assert!(b.source().contains("a run that may do these removals is queued"), "{}", b.source());
    let runs = d.wait_runs("the approved run", Duration::from_secs(60), |r| finished(r) == 4);
    assert_eq!(trigger_and_status(&runs[0]), ("web", "succeeded"), "{runs:#?}");
    let mut left: Vec<String> = scim.users().iter().map(|u| u["userName"].as_str().unwrap().to_owned()).collect();
    left.sort();
    let mut kept: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    kept.sort();
    assert_eq!(left, kept, "exactly the held-back ones were deleted: {gone:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(crate::notify::got(&hook), Vec::new(), "nothing more said: the rejected set, then its approval");
    b.go(&d.url("/deletions"));
    assert!(!b.all("#held-none").is_empty());
    assert!(b.texts("#action-table tbody tr")[0].contains("approve"));
    b.go(&d.url("/runs/4?outcome=ok&op=delete"));
    assert_eq!(b.all("tr.item").len(), 10);

    // The other pages.
    b.go(&d.url("/quarantine"));
    keep(&b, "quarantine");
    b.go(&d.url("/lookup"));
    b.type_into("#q", "user3");
    b.click_to_load("main form button");
    assert!(b.text("h2#answer").contains("u3"), "{}", b.source());
    assert!(!b.text("#decision").is_empty());
    keep(&b, "explain");
    b.go(&d.url("/check"));
    b.click_to_load("#run-checks");
    assert!(!b.all("#config-ok").is_empty(), "{}", b.source());
    keep(&b, "check");
    b.go(&d.url(&format!("/runs/{}", 2)));
    keep(&b, "run-held-back");
    b.click_to_load("a[lang=zh]");
    assert_eq!(b.text("h1").split_whitespace().next(), Some("同步"));
    b.go(&d.url("/"));
    assert_eq!(b.text("h1"), "概览");
    keep(&b, "overview-zh");
    // On a phone.
    b.resize(390, 844);
    b.go(&d.url("/lang/en?back=%2Fdeletions"));
    keep(&b, "deletions-phone");

    for (name, html) in &pages {
        assert!(!html.contains("<script"), "{name}: the page needs no JavaScript");
        assert!(!html.contains(ADMIN) && !html.contains(TOKEN), "{name} shows a secret");
    }
    assert!(!d.log().contains(ADMIN) && !d.log().contains(TOKEN), "a secret in the log");
}

fn wait_for(f: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
