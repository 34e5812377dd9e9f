//! `[mapping]`: fields set by expressions over the source's own records,
//! through the binary, judged by the SCIM server's own state.

use crate::fake_dingtalk::{APP_KEY, APP_SECRET, FakeDingTalk, org as dingtalk_org};
use crate::harness::{Env, Scim, org};
use serde_json::json;

fn dingtalk_source(fake: &FakeDingTalk) -> String {
    format!("kind = \"dingtalk\"\nbase_url = \"{}\"\napp_key = \"{APP_KEY}\"\napp_secret = \"{APP_SECRET}\"\n", fake.base)
}

/// The invalid items of run `id`: their errors.
fn invalid(env: &Env, id: &str) -> Vec<String> {
    let shown: serde_json::Value = serde_json::from_str(&env.orgsync(&["runs", "show", id, "--output", "json"]).stdout).unwrap();
    shown["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == "invalid")
        .filter_map(|i| i["error"].as_str())
        .map(str::to_owned)
        .collect()
}

#[test]
fn dingtalk_email_from_email_and_a_pinyin_username_then_a_failing_record_is_an_item() {
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start(dingtalk_org());
    {
        let mut w = fake.world.lock().unwrap();
        w.users[0]["name"] = json!("张三");
        w.users[1]["name"] = json!("李 四");
        w.users[2]["work_place"] = json!("Hangzhou");
    }
    let mapping = "[mapping.users]\nemail = \"email\"\n\
                   username = \"name | pinyin | replace(' ', '') | lower\"\n\
                   employee_no = \"work_place or job_number\"\nnickname = \"record.nick\"\n";
    env.scim_config_with_source(&scim, &dingtalk_source(&fake), mapping);
    let r = env.orgsync(&["check-config"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.users().len(), 270);
    let zhang = scim.user_by_name("zhangsan").expect("张三 is zhangsan");
    assert_eq!(zhang["emails"][0]["value"], "private0@example.test", "the email from `email`, not `org_email`: {zhang}");
    assert!(scim.user_by_name("lisi").is_some(), "李 四 is lisi");
    let u2 = scim.user_by_name("user2").unwrap();
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert_eq!(u2[enterprise]["employeeNumber"], "Hangzhou", "a field the fixed mapping does not read: {u2}");
    assert_eq!(scim.user_by_name("user3").unwrap()[enterprise]["employeeNumber"], "J3", "an empty work_place falls back");
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"), "mapped values are stable");

    // One record the expression fails on: an invalid item naming the field; nobody else changes.
    fake.world.lock().unwrap().users[9]["nick"] = json!(["a", "b"]);
    let writes = scim.writes().len();
    let r = env.sync(&[]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let items = invalid(&env, "2");
    assert!(items.iter().any(|e| e.contains("dt9") && e.contains("mapping.users.nickname") && e.contains("is a list")), "{items:?}");
    assert_eq!(scim.writes().len(), writes, "nothing written");
    assert_eq!(scim.user_by_name("user9").unwrap()["active"], true, "the record that did not map is not taken as gone");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// Each source's fixed mapping written out as expressions changes nothing.
#[test]
fn the_default_mapping_written_out_changes_nothing() {
    // The file source: its fields are the model's.
    let env = Env::new();
    let scim = Scim::in_process();
    let mut o = org(7, 30);
    o["users"][2]["attributes"] = json!({"cost_center": "CC-7"});
    o["users"][3]["mobile"] = json!("+86 13800000000");
    o["users"][4]["title"] = json!("Boss");
    env.write_org(&o);
    env.scim_config(&scim, "");
    assert_eq!(env.sync(&[]).code, 0);
    let explicit = "[mapping.users]\nusername = \"username\"\nname = \"name\"\nemail = \"email\"\nmobile = \"mobile\"\n\
                    employee_no = \"employee_no\"\nnickname = \"nickname\"\ntitle = \"title\"\n\
                    [mapping.departments]\nname = \"name\"\n";
    env.scim_config(&scim, explicit);
    let r = env.sync(&["--dry-run"]);
    assert!(r.stdout.contains("Nothing to do"), "{}\n{}", r.stdout, r.stderr);
    // A field of the HR system's own, from `attributes`.
    env.scim_config(&scim, "[mapping.users]\nemployee_no = \"attributes.cost_center\"\n");
    assert_eq!(env.sync(&[]).code, 0);
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert_eq!(scim.user_by_name("user2").unwrap()[enterprise]["employeeNumber"], "CC-7");

    // DingTalk: userid, org_email before email, the state code before the mobile.
    let env = Env::new();
    let scim = Scim::in_process();
    let fake = FakeDingTalk::start(dingtalk_org());
    fake.world.lock().unwrap().users[5]["org_email"] = json!("");
    env.scim_config_with_source(&scim, &dingtalk_source(&fake), "");
    assert_eq!(env.sync(&[]).code, 0);
    let explicit = "[mapping.users]\nusername = \"userid\"\nname = \"name\"\nemail = \"org_email or email\"\n\
                    mobile = \"('+' ~ state_code ~ ' ' ~ mobile) if mobile and state_code and mobile is not startingwith('+') else mobile\"\n\
                    employee_no = \"job_number\"\ntitle = \"title\"\n[mapping.departments]\nname = \"name\"\n";
    env.scim_config_with_source(&scim, &dingtalk_source(&fake), explicit);
    let r = env.sync(&["--dry-run"]);
    assert!(r.stdout.contains("Nothing to do"), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.user_by_name("dt5").unwrap()["emails"][0]["value"], "private5@example.test");
}

#[test]
fn an_expression_that_does_not_compile_names_the_key_line_and_column() {
    let env = Env::new();
    let scim = Scim::in_process();
    env.write_org(&org(1, 1));
    env.scim_config(
        &scim,
        "[mapping.users]\nusername = \"email | | lower\"\ntitle = \"title | no_such_filter\"\n[mapping.departments]\nnom = \"x\"\n\
         [mapping.attributes]\ncostCenter = \"attributes.cc | | x\"\ntitle = \"attributes.cc\"\n\"bad name\" = \"x\"\n",
    );
    let r = env.orgsync(&["check-config"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("mapping.users.username") && out.contains("line 1, column 9"), "{out}");
    assert!(out.contains("mapping.users.title") && out.contains("no_such_filter"), "{out}");
    assert!(out.contains("mapping.departments.nom"), "an unknown key is named: {out}");
    assert!(out.contains("mapping.attributes.costCenter") && out.contains("line 1"), "{out}");
    assert!(out.contains("mapping.attributes.title") && out.contains("one of orgsync's own fields"), "{out}");
    assert!(out.contains("mapping.attributes.bad name") && out.contains("not an attribute name"), "{out}");
    assert_eq!(env.sync(&[]).code, 2, "nothing runs on an invalid mapping");
}

/// Two users named 张三: `zhangsan` and `zhangsan2`, stable when the source
/// lists them the other way round, and the leaver's name not given to the
/// next 张三 while the leaver's account exists.
#[test]
fn two_zhang_sans_get_zhangsan_and_zhangsan2_and_keep_them() {
    let env = Env::new();
    let scim = Scim::in_process();
    let person = |id: &str, name: &str| json!({"id": id, "name": name, "email": format!("{id}@example.test"), "department_ids": ["d0"]});
    let mut o =
        json!({"departments": [{"id": "d0", "name": "HQ"}], "users": [person("u2", "张三"), person("u1", "张三"), person("u3", "李四")]});
    env.write_org(&o);
    env.scim_config(
        &scim,
        "[mapping.users]\nusername = \"name | pinyin\"\nunique = [\"username\"]\n[policy.users]\ntarget_only = \"disable\"\n",
    );
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let email_of = |name: &str| scim.user_by_name(name).map(|u| u["emails"][0]["value"].as_str().unwrap().to_owned());
    assert_eq!(email_of("zhangsan").as_deref(), Some("u1@example.test"), "the first by source id keeps the name");
    assert_eq!(email_of("zhangsan2").as_deref(), Some("u2@example.test"));
    assert_eq!(email_of("lisi").as_deref(), Some("u3@example.test"));
    let shown: serde_json::Value = serde_json::from_str(&env.orgsync(&["runs", "show", "1", "--output", "json"]).stdout).unwrap();
    let made: Vec<&serde_json::Value> = shown["items"].as_array().unwrap().iter().filter(|i| i["outcome"] == "made_unique").collect();
    assert_eq!(made.len(), 1, "{shown:#}");
    assert_eq!(made[0]["source_id"], "u2");
    assert!(made[0]["error"].as_str().unwrap().contains("zhangsan2"), "{:?}", made[0]);

    // The source lists them the other way round: nothing moves.
    o["users"].as_array_mut().unwrap().reverse();
    env.write_org(&o);
    let r = env.sync(&["--dry-run"]);
    assert!(r.stdout.contains("Nothing to do"), "{}\n{}", r.stdout, r.stderr);

    // u1 (zhangsan) leaves; a new 张三 joins: not zhangsan while u1's account exists.
    o["users"].as_array_mut().unwrap().retain(|u| u["id"] != "u1");
    o["users"].as_array_mut().unwrap().push(person("u0", "张三"));
    env.write_org(&o);
    let r = env.sync(&["--allow-deletes", "1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(scim.user_by_name("zhangsan").unwrap()["active"], false, "the leaver's account, disabled, keeps its name");
    assert_eq!(email_of("zhangsan").as_deref(), Some("u1@example.test"));
    assert_eq!(email_of("zhangsan2").as_deref(), Some("u2@example.test"), "u2 keeps its number");
    assert_eq!(email_of("zhangsan3").as_deref(), Some("u0@example.test"), "the newcomer takes the next free one");
    let r = env.sync(&["--dry-run"]);
    assert!(r.stdout.contains("Nothing to do"), "{}\n{}", r.stdout, r.stderr);
}

/// One sync with the fixed mapping, then a dry run with `explicit`: nothing to do.
fn explicit_plans_nothing(source: &str, explicit: &str, tweak: impl FnOnce()) {
    let env = Env::new();
    let scim = Scim::in_process();
    tweak();
    env.scim_config_with_source(&scim, source, "");
    let r = env.sync(&[]);
    assert!(r.code == 0 || r.code == 3, "{}\n{}", r.stdout, r.stderr);
    env.scim_config_with_source(&scim, source, explicit);
    assert_eq!(env.orgsync(&["check-config"]).code, 0);
    let r = env.sync(&["--dry-run"]);
    assert!(r.stdout.contains("Nothing to do"), "{explicit}\n{}\n{}", r.stdout, r.stderr);
}

#[test]
fn the_default_mapping_of_feishu_wecom_and_welink_written_out_changes_nothing() {
    use crate::{fake_feishu, fake_wecom, fake_welink};
    let feishu = fake_feishu::FakeFeishu::start(fake_feishu::org());
    let source = format!(
        "kind = \"feishu\"\nbase_url = \"{}\"\napp_id = \"{}\"\napp_secret = \"{}\"\n",
        feishu.base,
        fake_feishu::APP_ID,
        fake_feishu::APP_SECRET
    );
    let explicit = "[mapping.users]\nusername = \"user_id or email\"\nname = \"name\"\nemail = \"email or enterprise_email\"\n\
                    mobile = \"mobile if mobile_visible != false else none\"\nemployee_no = \"employee_no\"\n\
                    nickname = \"nickname or en_name\"\ntitle = \"job_title\"\n[mapping.departments]\nname = \"name\"\n";
    explicit_plans_nothing(&source, explicit, || {
        let mut w = feishu.world.lock().unwrap();
        w.users[1]["en_name"] = json!("Lei");
        w.users[2]["mobile_visible"] = json!(false);
    });

    let wecom = fake_wecom::FakeWeCom::start(fake_wecom::org());
    let source = format!(
        "kind = \"wecom\"\nbase_url = \"{}\"\ncorp_id = \"{}\"\ncorp_secret = \"{}\"\n",
        wecom.base,
        fake_wecom::CORP_ID,
        fake_wecom::CORP_SECRET
    );
    let explicit = "[mapping.users]\nusername = \"userid\"\nname = \"name\"\nemail = \"email or biz_mail\"\nmobile = \"mobile\"\n\
                    nickname = \"alias or english_name\"\ntitle = \"position\"\n[mapping.departments]\nname = \"name\"\n";
    explicit_plans_nothing(&source, explicit, || ());

    let welink = fake_welink::FakeWeLink::start(fake_welink::org());
    let source = format!(
        "kind = \"welink\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        welink.base,
        fake_welink::CLIENT_ID,
        fake_welink::CLIENT_SECRET
    );
    let explicit = "[mapping.users]\nusername = \"userId\"\nname = \"userNameCn or userNameEn\"\nemail = \"userEmail\"\n\
                    mobile = \"(('+' if mobileNumber | trim is startingwith('+') else '') ~ (mobileNumber | regex_replace('[^0-9]', ''))) if mobileNumber else none\"\n\
                    employee_no = \"corpUserId\"\nnickname = \"userNameEn\"\ntitle = \"position\"\n\
                    [mapping.departments]\nname = \"deptNameCn or deptNameEn\"\n";
    explicit_plans_nothing(&source, explicit, || ());
}

/// Entra: a property beyond orgsync's own `$select` (`user_properties`),
/// kept through delta rounds: a change to it arrives by delta.
#[test]
fn entra_user_properties_reach_expressions_and_delta_rounds_keep_them() {
    use crate::fake_graph::{CLIENT_ID, CLIENT_SECRET, FakeGraph, TENANT, org, user};
    let env = Env::new();
    let scim = Scim::in_process();
    let mut world = org(30);
    for u in &mut world.users {
        let i: usize = u["surname"].as_str().unwrap().parse().unwrap();
        u["givenName"] = json!(format!("Office {}", i % 3));
    }
    let fake = FakeGraph::start(world);
    let source = format!(
        "kind = \"entra\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         authority_host = \"{0}\"\ngraph_host = \"{0}\"\nuser_properties = [\"givenName\"]\n",
        fake.base
    );
    env.scim_config_with_source(
        &scim,
        &source,
        "[mapping.users]\nemployee_no = \"givenName | lower\"\nusername = \"mail | email_local\"\n",
    );
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert_eq!(scim.user_by_name("user4").unwrap()[enterprise]["employeeNumber"], "office 1");
    assert!(fake.world.lock().unwrap().selects.iter().all(|s| s.ends_with(",givenName")), "the property is selected");

    // A delta round carries the changed property only: the others are kept.
    let id = user(4)["id"].as_str().unwrap().to_owned();
    fake.world.lock().unwrap().change(&id, json!({"givenName": "Remote"}));
    let r = env.sync(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let u4 = scim.user_by_name("user4").unwrap();
    assert_eq!(u4[enterprise]["employeeNumber"], "remote", "{u4}");
    assert_eq!(u4["emails"][0]["value"], "user4@contoso.com");
    assert_eq!(scim.user_by_name("user5").unwrap()[enterprise]["employeeNumber"], "office 2");
    assert!(env.sync(&["--dry-run"]).stdout.contains("Nothing to do"));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}
