//! Secrets never leak, even through someone else's error message: a
//! gateway echoing the request line (a secret or token in the query
//! string), a SCIM server echoing request headers, a config syntax error on
//! the line holding a secret. Checked in stderr, `status`, `runs show` and
//! the mirror's files.

use crate::fake::{Common, Fake};
use crate::fake_wecom::{CORP_ID, CORP_SECRET, FakeWeCom, org};
use crate::harness::{Env, Scim};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

/// Everything orgsync printed or stored after one sync, as text.
fn everything(env: &Env, sync: &crate::harness::Run) -> String {
    let mut all = format!("{}\n{}\n", sync.stdout, sync.stderr);
    for args in [&["status"][..], &["status", "--output", "json"], &["runs", "show", "1"], &["runs", "show", "1", "--output", "json"]] {
        let r = env.orgsync(args);
        all.push_str(&r.stdout);
        all.push_str(&r.stderr);
    }
    for f in std::fs::read_dir(env.path("state")).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        all.push_str(&String::from_utf8_lossy(&bytes));
    }
    all
}

fn wecom_env(echo_token: bool, echo_data: bool) -> (Env, Scim, FakeWeCom) {
    let env = Env::new();
    let scim = Scim::start(env.dir.path());
    let mut world = org();
    world.echo_token_request = echo_token;
    world.echo_data_requests = echo_data;
    let fake = FakeWeCom::start(world);
    std::fs::write(env.path("corp-secret"), format!("{CORP_SECRET}\n")).unwrap();
    let source = format!(
        "kind = \"wecom\"\nbase_url = \"{}\"\ncorp_id = \"{CORP_ID}\"\ncorp_secret_file = \"corp-secret\"\nmax_retries = 1\n",
        fake.base
    );
    env.scim_config_with_source(&scim, &source, "");
    (env, scim, fake)
}

#[test]
fn a_gateway_echoing_the_token_request_line_does_not_leak_the_corp_secret() {
    let (env, _scim, _fake) = wecom_env(true, false);
    let r: crate::harness::Run = env.command(&["sync"]).env("RUST_LOG", "debug").output().unwrap().into();
    let all = everything(&env, &r);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(all.contains("502") && all.contains("<redacted>"), "the error is still told: {}", r.stderr);
    assert!(!all.contains(CORP_SECRET), "the secret leaked:\n{all}");
}

#[test]
fn a_gateway_echoing_a_data_request_line_does_not_leak_the_access_token() {
    let (env, _scim, fake) = wecom_env(false, true);
    let r: crate::harness::Run = env.command(&["sync"]).env("RUST_LOG", "debug").output().unwrap().into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(fake.count("token") >= 1);
    let all = everything(&env, &r);
    assert!(all.contains("<redacted>"), "{}", r.stderr);
    assert!(!all.contains("wcfake0"), "a live token leaked:\n{all}");
}

#[derive(Default)]
struct Echo {
    common: Common,
}

impl crate::fake::World for Echo {
    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
}

#[test]
fn a_scim_401_echoing_the_request_headers_does_not_leak_the_bearer_token() {
    // Any request: 401, with the request's headers in the body.
    let server = Fake::serve(Echo::default(), |_| {
        axum::Router::new().fallback(|headers: HeaderMap| async move {
            let echoed: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or(""))).collect();
            let body = serde_json::json!({"status": "401", "detail": format!("unauthorized; request headers: {}", echoed.join("; "))});
            (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
        })
    });
    let env = Env::new();
    let secret = "scim-bearer-7c1d0a9e5f";
    std::fs::write(env.path("token"), format!("{secret}\n")).unwrap();
    std::fs::write(
        env.path("orgsync.toml"),
        format!(
            "state_dir = \"state\"\n[source]\nkind = \"file\"\npath = \"org.json\"\n\
             [target]\nkind = \"scim\"\nbase_url = \"{}/scim/v2\"\ntoken_file = \"token\"\n",
            server.base
        ),
    )
    .unwrap();
    env.write_org(&crate::harness::org(1, 1));
    let r: crate::harness::Run = env.command(&["sync"]).env("RUST_LOG", "debug").output().unwrap().into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let all = everything(&env, &r);
    assert!(all.contains("401") && all.contains("<redacted>"), "{}", r.stderr);
    assert!(!all.contains(secret), "the bearer token leaked:\n{all}");
}

#[test]
fn a_config_syntax_error_on_a_secret_line_names_the_line_not_its_text() {
    let env = Env::new();
    let secret = "inline-admin-token-4f2a9";
    std::fs::write(
        env.path("orgsync.toml"),
        format!("[source]\nkind = \"file\"\npath = \"org.json\"\n[daemon]\nadmin_token = \"{secret}\" trailing\n"),
    )
    .unwrap();
    let r = env.orgsync(&["check-config"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("line 5"), "{}", r.stderr);
    assert!(!r.stderr.contains(secret) && !r.stderr.contains("trailing"), "the line was echoed: {}", r.stderr);
}

#[test]
fn an_invalid_environment_override_names_the_variable() {
    let env = Env::new();
    env.write_org(&crate::harness::org(1, 1));
    std::fs::write(
        env.path("orgsync.toml"),
        "[source]\nkind = \"file\"\npath = \"org.json\"\n[target]\nkind = \"file\"\npath = \"t.json\"\n",
    )
    .unwrap();
    let r: crate::harness::Run =
        env.command(&["check-config"]).env("ORGSYNC__POLICY__USERS__TARGET_ONLY", "remove").output().unwrap().into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("policy.users.target_only") && r.stderr.contains("ORGSYNC__POLICY__USERS__TARGET_ONLY"), "{}", r.stderr);
}
