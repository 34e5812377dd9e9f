//! Source `entra` through the binary, against the fake Microsoft Graph
//! (tests/it/fake_graph.rs) and a real scim2-server.

use crate::fake_graph::{CLIENT_ID, CLIENT_SECRET, FakeGraph, Restart, TENANT, org, user};
use crate::harness::{Env, Scim};
use serde_json::json;

fn entra_config(env: &Env, scim: &Scim, fake: &FakeGraph, secret: &str, extra: &str, policy: &str) {
    std::fs::write(env.path("client-secret"), format!("{secret}\n")).unwrap();
    let source = format!(
        "kind = \"entra\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"client-secret\"\n\
         authority_host = \"{0}\"\ngraph_host = \"{0}\"\n{extra}",
        fake.base
    );
    env.scim_config_with_source(scim, &source, policy);
}

fn message(env: &Env) -> String {
    env.status_json()["runs"][0]["message"].as_str().unwrap().to_owned()
}

/// What the source kept in the mirror (its delta links and snapshot).
fn kept(env: &Env) -> Option<Vec<u8>> {
    let db = rusqlite::Connection::open(env.path("state/mirror.db")).unwrap();
    db.query_row("SELECT state FROM source_state WHERE source = 'entra'", [], |r| r.get(0)).ok()
}

fn id(i: usize) -> String {
    user(i)["id"].as_str().unwrap().to_owned()
}

#[test]
fn entra_full_then_delta_rounds_touch_exactly_what_changed() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeGraph::start(org(1200));
    entra_config(&env, &scim, &fake, CLIENT_SECRET, "", "[policy.users]\ntarget_only = \"disable\"\n");

    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    assert_eq!(fake.count("users "), 12, "1,200 users in 12 pages: with $expand=manager Graph pages 100 at a time");
    assert_eq!(scim.users().len(), 1200);
    let groups = scim.groups();
    assert_eq!(groups.len(), 13, "the security groups, not the mail-only one");
    let u5 = scim.user_by_name("user5@contoso.com").unwrap();
    assert_eq!(u5["externalId"], id(5), "the stable id is Graph's id");
    assert_eq!(u5["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"], "1005");
    assert_eq!(u5["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Team 1.2", "its team group");
    assert!(
        !r.stderr.contains(CLIENT_SECRET) && !r.stderr.contains("eyJfake") && !r.stdout.contains("eyJfake"),
        "a secret or token leaked"
    );

    // A rename, a disabled account, a soft-deleted and a hard-deleted user, a new one.
    {
        let mut w = fake.world.lock().unwrap();
        w.change(&id(5), json!({"displayName": "Renamed Five"}));
        w.change(&id(6), json!({"accountEnabled": false}));
        w.remove(&id(7), "changed");
        w.remove(&id(8), "deleted");
        w.add(user(5000));
    }
    let before = scim.writes().len();
    let requests = fake.count("");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fake.count("users "), 12, "no full listing again");
    assert!(fake.count("") - requests <= 4, "a delta round: {} requests", fake.count("") - requests);
    let touched: std::collections::BTreeSet<String> =
        scim.writes()[before..].iter().filter(|(_, p, _)| p.contains("/Users")).map(|(m, p, _)| format!("{m} {p}")).collect();
    let ext = |i: usize| scim.user_by_name(&format!("user{i}@contoso.com")).unwrap();
    assert_eq!(ext(5)["displayName"], "Renamed Five");
    assert_eq!(ext(6)["active"], false, "disabled");
    assert_eq!(ext(7)["active"], false, "soft-deleted: inactive");
    assert_eq!(ext(8)["active"], false, "hard-deleted: target-only, disabled by the policy");
    assert!(ext(5000)["active"] == true, "the new user");
    let user_writes: Vec<&String> = touched.iter().collect();
    assert_eq!(user_writes.len(), 5, "exactly the five accounts: {user_writes:?}");

    // An idle delta run: token, users delta, groups delta; nothing written.
    let before = scim.writes().len();
    let requests = fake.count("");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(fake.count("") - requests <= 3, "an idle delta run made {} Graph requests", fake.count("") - requests);
    assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)]);

    // Every "start again" answer: a full fetch, and nothing to do.
    let mut full = None;
    for how in [Restart::NotFound, Restart::Invalid, Restart::Required, Restart::Gone] {
        fake.world.lock().unwrap().expire_delta_tokens_with(how);
        let (before, listed) = (scim.writes().len(), fake.count("users "));
        let r = env.sync(&[]);
        assert_eq!(r.code, 0, "{how:?}: {}\n{}", r.stdout, r.stderr);
        // The first is the full listing's size (its pages and a new delta link); each answer costs the same.
        let this = fake.count("users ") - listed;
        if full.is_none() {
            assert_eq!(fake.count("users "), 24, "a full listing again");
        }
        assert_eq!(*full.get_or_insert(this), this, "{how:?}: a full listing again");
        assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)], "{how:?}: converged");
        assert_eq!(r.stderr.matches("start the delta again").count(), 1, "{how:?}: said once: {}", r.stderr);
    }
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[test]
fn entra_a_failure_on_the_second_users_page_fails_with_zero_writes_and_keeps_the_delta_link() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeGraph::start(org(1200));
    entra_config(&env, &scim, &fake, CLIENT_SECRET, "max_retries = 1\n", "[policy.users]\ntarget_only = \"delete\"\n");
    assert_eq!(env.sync(&[]).code, 0);
    let state = kept(&env).expect("the first run keeps a delta link");
    // The next run must list everything again (the token expired), and page 2 fails.
    {
        let mut w = fake.world.lock().unwrap();
        w.expire_delta_tokens();
        w.common.knobs.fail_page = Some((String::new(), 2));
    }
    let before = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(&scim.writes()[before..], &[] as &[(String, String, u16)]);
    let msg = message(&env);
    assert!(msg.contains("Entra /v1.0/users") && msg.contains("serviceNotAvailable"), "{msg}");
    assert_eq!(kept(&env), Some(state), "what was kept is unchanged");
}

#[test]
fn entra_throttling_with_and_without_retry_after_and_a_token_expiry_recover() {
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org(300);
    world.common.knobs.throttle_every = Some(4);
    world.common.knobs.revoke_after = Some(6);
    let fake = FakeGraph::start(world);
    entra_config(&env, &scim, &fake, CLIENT_SECRET, "", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 300);
    assert_eq!(fake.count("token"), 2, "one refresh after the token expired");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[test]
fn entra_a_wrong_secret_names_aadsts7000215_and_the_key() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeGraph::start(org(10));
    entra_config(&env, &scim, &fake, "wrong-secret-value", "", "");
    let r = env.sync(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let msg = message(&env);
    assert!(msg.contains("AADSTS7000215") && msg.contains("source.client_secret"), "{msg}");
    for text in [&msg, &r.stdout, &r.stderr] {
        assert!(!text.contains("wrong-secret-value"), "the secret leaked: {text}");
    }
    assert_eq!(fake.count("token refused"), 1, "not retried");
    assert!(scim.writes().is_empty());
}

/// `[scope] include_departments` naming a group below the top (Division 1,
/// under Company): a root of the synced forest, with its teams and members.
#[test]
fn entra_an_included_group_below_the_top_is_a_root_with_its_subtree() {
    let env = Env::new();
    let fake = FakeGraph::start(org(18));
    std::fs::write(env.path("client-secret"), format!("{CLIENT_SECRET}\n")).unwrap();
    let division = fake.world.lock().unwrap().groups.iter().find(|g| g.1 == "Division 1").unwrap().0.clone();
    let source = format!(
        "kind = \"entra\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"client-secret\"\n\
         authority_host = \"{0}\"\ngraph_host = \"{0}\"\n",
        fake.base
    );
    // Users i go into Team (i % 9 / 3).(i % 3): Division 1's teams hold i % 9 in 3..6.
    crate::harness::sync_scoped_to(&env, &source, &division, "Division 1", &["Team 1.0", "Team 1.1", "Team 1.2"], 6);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// `orgsync explain` and `sync --only` read one user by `/users/{id}` and
/// its groups up the tree by `memberOf`, never the whole tenant; a group
/// that is not a security group is no department, as in a full fetch.
#[test]
fn entra_explains_and_syncs_one_user_by_id() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeGraph::start(org(30));
    entra_config(&env, &scim, &fake, CLIENT_SECRET, &format!("[scope]\nexclude_users = [\"{}\"]\n", id(6)), "");
    let hire = user(900);
    let hire_id = hire["id"].as_str().unwrap().to_owned();
    let add_hire = || {
        let mut w = fake.world.lock().unwrap();
        let team = "0000abcd-1111-4000-8000-00000000abcd".to_owned();
        let division = w.groups[1].0.clone();
        w.groups.iter_mut().find(|g| g.0 == division).unwrap().3.push((team.clone(), true));
        w.groups.push((team, "New Team".into(), true, vec![(hire_id.clone(), false)]));
        let mail = w.groups.iter_mut().find(|g| !g.2).unwrap();
        mail.3.push((hire_id.clone(), false));
        w.users.push(hire.clone());
    };
    let rename = || fake.world.lock().unwrap().users[5]["displayName"] = "Renamed Five".into();
    let listings = || fake.count("users  page") + fake.count("groups  page") + fake.count("members");
    let sent = crate::explain::check(&crate::explain::Case {
        env: &env,
        scim: &scim,
        bound: (&id(5), "user5@contoso.com"),
        excluded: &id(6),
        hire: (&hire_id, "user900@contoso.com", "New Team"),
        renamed: "Renamed Five",
        add_hire: &add_hire,
        rename: &rename,
        requests: &|| Some(fake.count("")),
    });
    // A token, the user, its groups, then each group's up to Company's (none).
    crate::explain::read_by_id(&env, &hire_id, (sent, 6), Some(6), ("userPrincipalName", "user900@contoso.com"), &listings);
    let groups: Vec<String> = scim.groups().iter().map(|g| g["displayName"].as_str().unwrap().to_owned()).collect();
    assert!(!groups.iter().any(|g| g.contains("mail")), "{groups:?}");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}
