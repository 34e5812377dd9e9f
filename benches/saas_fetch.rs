//! A full fetch of 20,000 users in 2,000 departments from each SaaS
//! source's fake server (the test fakes, `tests/it/fake_*.rs`) on
//! loopback: wall time and requests sent, next to the fewest requests the
//! vendor's API allows for the same data.
//!
//!     cargo bench --bench saas_fetch               # every vendor
//!     cargo bench --bench saas_fetch -- wecom      # one (feishu, dingtalk, wecom, wecom-list, welink, entra)
//!
//! Entra reads 20,000 users in 1,000 security groups, then makes an idle
//! delta run from what the full fetch kept.
//!
//! Each vendor runs twice: at the highest `source.rate_limit` the config
//! accepts (the vendor's documented limit; this is what bounds a real
//! fetch), and unthrottled, which shows the client's and the fake's own
//! cost. The fakes answer from one thread and scan their user list per
//! request, so the unthrottled figure is an upper bound on orgsync's cost.

#[allow(dead_code)]
#[path = "../tests/it/fake.rs"]
mod fake;
#[allow(dead_code)]
#[path = "../tests/it/fake_dingtalk.rs"]
mod fake_dingtalk;
#[allow(dead_code)]
#[path = "../tests/it/fake_feishu.rs"]
mod fake_feishu;
#[allow(dead_code)]
#[path = "../tests/it/fake_graph.rs"]
mod fake_graph;
#[allow(dead_code)]
#[path = "../tests/it/fake_wecom.rs"]
mod fake_wecom;
#[allow(dead_code)]
#[path = "../tests/it/fake_welink.rs"]
mod fake_welink;

use orgsync::sources::SourceConfig;
use std::time::Instant;

const DEPTS: usize = 2_000;
const USERS: usize = 20_000;
/// Entra's departments are security groups: 1,000 of them.
const GROUPS: usize = 1_000;

struct Vendor {
    name: &'static str,
    /// The `[source]` keys, given the fake's base URL.
    source: fn(&str) -> String,
    /// The rate measured besides unthrottled: the highest the config
    /// accepts (the vendor's documented limit), or the default where the
    /// limit counts per minute too.
    max_rate: u32,
    /// The fewest requests (token included) the API allows for this org.
    minimum: fn(&Org) -> usize,
    /// How the minimum is made up.
    minimum_is: &'static str,
}

/// Department sizes of the generated org.
struct Org {
    /// Direct members per department.
    members: Vec<usize>,
    /// User-department rows (WeCom `user/list_id`).
    rows: usize,
    /// Departments under each top-level department.
    subtrees: Vec<usize>,
}

fn pages(n: usize, size: usize) -> usize {
    n.div_ceil(size).max(1)
}

fn vendors() -> Vec<Vendor> {
    vec![
        Vendor {
            name: "feishu",
            source: |base| {
                format!(
                    "kind = \"feishu\"\nbase_url = \"{base}\"\napp_id = \"{}\"\napp_secret = \"{}\"\n",
                    fake_feishu::APP_ID,
                    fake_feishu::APP_SECRET
                )
            },
            max_rate: 50,
            // The root's children (fetch_child) in pages of 50, and every
            // department's (and the root's) direct members in pages of 50.
            minimum: |o| 1 + pages(o.members.len(), 50) + 1 + o.members.iter().map(|&n| pages(n, 50)).sum::<usize>(),
            minimum_is: "token + ceil(D/50) + root + sum ceil(n/50)",
        },
        Vendor {
            name: "dingtalk",
            source: |base| {
                format!(
                    "kind = \"dingtalk\"\nbase_url = \"{base}\"\napp_key = \"{}\"\napp_secret = \"{}\"\n",
                    fake_dingtalk::APP_KEY,
                    fake_dingtalk::APP_SECRET
                )
            },
            max_rate: 20,
            // listsubid for every department and the root (no recursion in
            // the API), department/get for each name and order, and every
            // department's (and the root's) members in pages of 100.
            minimum: |o| 1 + (o.members.len() + 1) + o.members.len() + 1 + o.members.iter().map(|&n| pages(n, 100)).sum::<usize>(),
            minimum_is: "token + (D+1) listsubid + D get + root + sum ceil(n/100)",
        },
        Vendor {
            name: "wecom",
            source: |base| {
                format!(
                    "kind = \"wecom\"\nbase_url = \"{base}\"\ncorp_id = \"{}\"\ncorp_secret = \"{}\"\n",
                    fake_wecom::CORP_ID,
                    fake_wecom::CORP_SECRET
                )
            },
            max_rate: 150,
            // simplelist once, department/get per name, user/list_id in
            // pages of 10,000 rows, user/get per user.
            minimum: |o| 1 + 1 + o.members.len() + pages(o.rows, 10_000) + USERS,
            minimum_is: "token + simplelist + D get + ceil(rows/10000) + U get",
        },
        Vendor {
            name: "wecom-list",
            source: |base| {
                format!(
                    "kind = \"wecom\"\napi = \"list\"\nbase_url = \"{base}\"\ncorp_id = \"{}\"\ncorp_secret = \"{}\"\n",
                    fake_wecom::CORP_ID,
                    fake_wecom::CORP_SECRET
                )
            },
            max_rate: 150,
            // department/list once, user/list per department and the root.
            minimum: |o| 1 + 1 + o.members.len() + 1,
            minimum_is: "token + department/list + (D+1) user/list",
        },
        Vendor {
            name: "welink",
            source: |base| {
                format!(
                    "kind = \"welink\"\nbase_url = \"{base}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
                    fake_welink::CLIENT_ID,
                    fake_welink::CLIENT_SECRET
                )
            },
            // The default: WeLink allows 40/s but also 1,500/min per API.
            max_rate: 20,
            // The root's children in pages of 100 (it cannot be recursed),
            // each top department's subtree in pages of 100, and every
            // department's (and the root's) members in pages of 50.
            minimum: |o| {
                1 + pages(o.subtrees.len(), 100)
                    + o.subtrees.iter().map(|&n| pages(n, 100)).sum::<usize>()
                    + 1
                    + o.members.iter().map(|&n| pages(n, 50)).sum::<usize>()
            },
            minimum_is: "token + ceil(top/100) + sum ceil(subtree/100) + root + sum ceil(n/50)",
        },
        Vendor {
            name: "entra",
            source: |base| {
                format!(
                    "kind = \"entra\"\ntenant = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority_host = \"{base}\"\ngraph_host = \"{base}\"\n",
                    fake_graph::TENANT,
                    fake_graph::CLIENT_ID,
                    fake_graph::CLIENT_SECRET
                )
            },
            max_rate: 20,
            // Two delta links that start now (users, groups), the users in
            // pages of 999, the groups in pages of 999, each group's members.
            minimum: |_| 1 + 2 + pages(USERS, 999) + pages(GROUPS, 999) + GROUPS * pages(USERS / GROUPS, 999),
            minimum_is: "token + 2 latest delta links + ceil(U/999) + ceil(G/999) + G members",
        },
    ]
}

/// Start the vendor's fake with the generated org; its base URL and a
/// function counting the requests it has seen.
fn start(name: &str) -> (String, Box<dyn Fn() -> usize>) {
    match name {
        "feishu" => {
            let f = fake_feishu::FakeFeishu::start(fake_feishu::sized(DEPTS, USERS));
            (f.base.clone(), Box::new(move || f.count("")))
        }
        "dingtalk" => {
            let f = fake_dingtalk::FakeDingTalk::start(fake_dingtalk::sized(DEPTS, USERS));
            (f.base.clone(), Box::new(move || f.count("")))
        }
        "entra" => {
            let f = fake_graph::FakeGraph::start(fake_graph::sized(GROUPS, USERS));
            (f.base.clone(), Box::new(move || f.count("")))
        }
        "welink" => {
            let f = fake_welink::FakeWeLink::start(fake_welink::sized(DEPTS, USERS));
            (f.base.clone(), Box::new(move || f.count("")))
        }
        _ => {
            let f = fake_wecom::FakeWeCom::start(fake_wecom::sized(DEPTS, USERS));
            (f.base.clone(), Box::new(move || f.count("")))
        }
    }
}

fn set_rate(source: &mut SourceConfig, rate: u32) {
    match source {
        SourceConfig::Feishu(c) => c.http.rate_limit = rate,
        SourceConfig::DingTalk(c) => c.http.rate_limit = rate,
        SourceConfig::WeCom(c) => c.http.rate_limit = rate,
        SourceConfig::WeLink(c) => c.http.rate_limit = rate,
        SourceConfig::Entra(c) => c.http.rate_limit = rate,
        other => panic!("not a SaaS source: {}", other.kind()),
    }
}

fn main() {
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let (parents, members) = fake::shape(DEPTS, USERS);
    let top_of = |mut k: usize| {
        while let Some(p) = parents[k] {
            k = p;
        }
        k
    };
    let tops: Vec<usize> = (0..DEPTS).filter(|&k| parents[k].is_none()).collect();
    let subtrees = tops.iter().map(|&t| (0..DEPTS).filter(|&k| k != t && top_of(k) == t).count()).collect();
    let mut org = Org { members: vec![0; DEPTS], rows: 0, subtrees };
    for ds in &members {
        org.rows += ds.len();
        for &d in ds {
            org.members[d] += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("{USERS} users ({} user-department rows) in {DEPTS} departments, fakes on loopback, concurrency 4", org.rows);
    println!("{:<11} {:>9} {:>10} {:>9} {:>9}  minimum is", "vendor", "rate/s", "wall", "requests", "minimum");
    for v in vendors().into_iter().filter(|v| only.is_empty() || only.iter().any(|o| o == v.name)) {
        for rate in [Some(v.max_rate), None] {
            let (base, requests) = start(v.name);
            let path = dir.path().join("orgsync.toml");
            std::fs::write(
                &path,
                format!("state_dir = \"state\"\n[source]\n{}[target]\nkind = \"file\"\npath = \"out.json\"\n", (v.source)(&base)),
            )
            .unwrap();
            let mut config = orgsync::settings::load(&path).unwrap();
            set_rate(&mut config.source, rate.unwrap_or(1_000_000));
            let source = orgsync::sources::build(&config.source, &config.scope, &config.mapping);
            let t = Instant::now();
            let fetched = runtime.block_on(source.fetch_since(None)).unwrap();
            let wall = t.elapsed();
            let depts = if v.name == "entra" { GROUPS } else { DEPTS };
            assert_eq!((fetched.snapshot.departments.len(), fetched.snapshot.users.len()), (depts, USERS), "{}: a complete fetch", v.name);
            let rate = rate.map_or("none".to_owned(), |r| r.to_string());
            println!("{:<11} {rate:>9} {:>8.1} s {:>9} {:>9}  {}", v.name, wall.as_secs_f64(), requests(), (v.minimum)(&org), v.minimum_is);
            if let Some(kept) = fetched.state {
                // An idle delta run from what the full fetch kept.
                let before = requests();
                let t = Instant::now();
                let idle = runtime.block_on(source.fetch_since(Some(kept))).unwrap();
                assert_eq!(idle.snapshot.users.len(), USERS);
                let name = format!("{} idle", v.name);
                println!(
                    "{name:<11} {rate:>9} {:>8.1} s {:>9} {:>9}  token + users delta + groups delta",
                    t.elapsed().as_secs_f64(),
                    requests() - before,
                    3
                );
            }
        }
    }
}
