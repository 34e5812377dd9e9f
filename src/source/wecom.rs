//! Source `wecom` (企业微信): the contact APIs under `/cgi-bin/` with
//! `?access_token=` (docs/sources.md section 3).
//!
//! `source.api` picks one of two paths:
//! - `simplelist` (default; the only one open to contact-sync IPs added
//!   since 2022-08-15): `department/simplelist` per root, `department/get`
//!   per department for its name, `user/list_id` (cursor, up to 10,000
//!   rows a page) and `user/get` per user;
//! - `list` (tenants that still allow it): `department/list` per root and
//!   `user/list` per department (direct members; `fetch_child` is not used).
//!
//! A user in several departments is one user; `main_department` is the
//! primary. `status` 1 is active; 2 (disabled), 4 (not activated) and 5
//! (left) are inactive. WeCom orders larger-first; orgsync's order is
//! smaller-first, so the order is negated.

use super::saas::pager::{Page, all_pages};
use super::saas::{
    Client, HttpSettings, Record, Token, Vendor, Verdict, absent_fields, by_status, json_body, query_token, request_token, split, text,
    without_id,
};
use super::{IdentitySource, SourceError};
use crate::config::Secret;
use crate::model::{Department, Kind, Snapshot, SourceId, Unreadable, User, UserField};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashSet;

pub const WECOM_BASE: &str = "https://qyapi.weixin.qq.com";
const TOKEN_PATH: &str = "/cgi-bin/gettoken";
const DEPT_SIMPLELIST: &str = "/cgi-bin/department/simplelist";
const DEPT_GET: &str = "/cgi-bin/department/get";
const DEPT_LIST: &str = "/cgi-bin/department/list";
const USER_LIST_ID: &str = "/cgi-bin/user/list_id";
const USER_GET: &str = "/cgi-bin/user/get";
const USER_LIST: &str = "/cgi-bin/user/list";

/// `source.api`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Simplelist,
    List,
}

impl std::str::FromStr for Api {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "simplelist" => Ok(Api::Simplelist),
            "list" => Ok(Api::List),
            _ => Err(()),
        }
    }
}

/// `kind = "wecom"`.
#[derive(Clone, Debug)]
pub struct WeComConfig {
    /// `corp_id`: the company id (My Company → Company Information).
    pub corp_id: String,
    /// `corp_secret` / `corp_secret_file`: the Contact Sync secret.
    pub corp_secret: Secret,
    pub http: HttpSettings,
    pub api: Api,
    /// Department ids whose subtrees are read; `1` is the whole company.
    pub roots: Vec<i64>,
    /// `page_size`: rows per `user/list_id` page (1..=10000, default 10000).
    pub page_size: u32,
    pub concurrency: usize,
}

pub struct WeComSource {
    config: WeComConfig,
}

impl std::fmt::Debug for WeComSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeComSource").field("corp_id", &self.config.corp_id).field("api", &self.config.api).finish()
    }
}

impl Vendor for WeComSource {
    fn name(&self) -> &'static str {
        "WeCom"
    }

    fn fetch_token<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<Token, SourceError>> {
        Box::pin(async move {
            let q = [("corpid", self.config.corp_id.as_str()), ("corpsecret", self.config.corp_secret.expose())];
            let req = client.raw(Method::GET, TOKEN_PATH).query(&q);
            request_token(client, self, TOKEN_PATH, req, "access_token", "expires_in").await
        })
    }

    fn authorize(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        query_token(req, token)
    }

    fn check(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Verdict {
        let v = match json_body(status, body) {
            Ok(v) => v,
            Err(verdict) => return verdict,
        };
        let code = v.get("errcode").and_then(text).unwrap_or_else(|| format!("HTTP {status}"));
        let message = v.get("errmsg").and_then(Value::as_str).unwrap_or("no errcode in the answer").to_owned();
        match code.as_str() {
            "0" if (200..300).contains(&status) => Verdict::Ok(v),
            "40014" | "42001" | "41001" => Verdict::TokenInvalid { code, message },
            "45009" | "45033" => Verdict::Throttled { code, message, wait: None },
            "-1" => Verdict::Transient { code, message },
            _ => by_status(status, code, message),
        }
    }

    fn hint(&self, code: &str) -> Option<&'static str> {
        Some(match code {
            "40001" => {
                "the secret is wrong: check source.corp_secret (the Contact Sync secret: Security and Management → Management Tools → Contact Sync)"
            }
            "40013" => "the corp id is wrong: check source.corp_id (My Company → Company Information → Company ID)",
            "60020" => "this server's IP is not trusted by the app: add it to the trusted IPs of Contact Sync (or of the app)",
            "60011" => "the secret may not read this department or user: use the Contact Sync secret, or widen the app's visibility scope",
            "48002" => {
                "the API is closed to this secret or IP (WeCom closed department/list and user/list to new contact-sync IPs in 2022): set source.api = \"simplelist\""
            }
            "48009" => "this API needs the Contact Sync secret, not an app secret: check source.corp_secret",
            _ => return None,
        })
    }
}

impl WeComSource {
    pub fn new(config: WeComConfig) -> Self {
        Self { config }
    }

    async fn get(&self, client: &Client, path: &'static str, query: [(&'static str, String); 1]) -> Result<Value, SourceError> {
        let build = |c: &Client| c.raw(Method::GET, path).query(&query);
        client.call(self, path, &build).await
    }

    fn malformed(&self, path: &str, what: &str) -> SourceError {
        SourceError::Api { vendor: "WeCom", path: path.to_owned(), message: format!("unexpected answer: {what}") }
    }

    /// The departments under the roots (the roots themselves left out:
    /// their children are top level). With `simplelist`, names come from
    /// `department/get`, one request per department.
    async fn departments(&self, client: &Client) -> Result<(Vec<Department>, Vec<Unreadable>), SourceError> {
        let roots: HashSet<i64> = self.config.roots.iter().copied().collect();
        let (path, key) = match self.config.api {
            Api::Simplelist => (DEPT_SIMPLELIST, "department_id"),
            Api::List => (DEPT_LIST, "department"),
        };
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        for root in &self.config.roots {
            let v = self.get(client, path, [("id", root.to_string())]).await?;
            let list = v[key].as_array().ok_or_else(|| self.malformed(path, &format!("no {key}")))?;
            for d in list {
                let id = d["id"].as_i64().ok_or_else(|| self.malformed(path, "a department id that is not an integer"))?;
                if !roots.contains(&id) && seen.insert(id) {
                    rows.push(d.clone());
                }
            }
        }
        if self.config.api == Api::Simplelist {
            rows = futures::stream::iter(rows)
                .map(|d| async move {
                    let v = self.get(client, DEPT_GET, [("id", d["id"].to_string())]).await?;
                    match &v["department"] {
                        dept if dept["id"] == d["id"] => Ok(dept.clone()),
                        _ => Err(self.malformed(DEPT_GET, "no department with the id asked for")),
                    }
                })
                .buffered(self.config.concurrency.max(1))
                .try_collect()
                .await?;
        }
        Ok(split(rows.iter().map(|d| {
            let r = Record::new(d);
            let dept = Department {
                source_id: SourceId(d["id"].to_string()),
                parent_id: d["parentid"].as_i64().filter(|p| !roots.contains(p) && *p != 0).map(|p| SourceId(p.to_string())),
                name: r.required("name").unwrap_or_default(),
                order: -d["order"].as_i64().unwrap_or(0),
                leader_ids: Vec::new(),
            };
            r.finish(Kind::Department, &dept.source_id).map(|()| dept)
        })))
    }

    /// Users by `user/list_id` (every page) then `user/get` for each one
    /// in a department in scope.
    async fn users_by_id(&self, client: &Client, scope: &HashSet<String>) -> Result<Vec<Value>, SourceError> {
        let rows = all_pages("WeCom", USER_LIST_ID, String::new(), |cursor| async move {
            let body = json!({"cursor": cursor, "limit": self.config.page_size});
            let build = |c: &Client| c.raw(Method::POST, USER_LIST_ID).json(&body);
            let v = client.call(self, USER_LIST_ID, &build).await?;
            let items = v["dept_user"].as_array().ok_or_else(|| self.malformed(USER_LIST_ID, "no dept_user"))?.clone();
            // An empty next_cursor ends the list.
            let next = v["next_cursor"].as_str().filter(|c| !c.is_empty()).map(str::to_owned);
            Ok(Page { items, next })
        })
        .await?;
        let mut ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        // A row without a userid is kept as it is: mapped, it is reported
        // as a user without an id (and holds back disables and deletes).
        let mut anonymous: Vec<Value> = Vec::new();
        for row in rows {
            let Some(user) = row["userid"].as_str().filter(|u| !u.is_empty()) else {
                anonymous.push(row);
                continue;
            };
            // A row without a department is read: user/get says where it is.
            let in_scope = row.get("department").and_then(text).is_none_or(|d| scope.contains(&d));
            if in_scope && seen.insert(user.to_owned()) {
                ids.push(user.to_owned());
            }
        }
        let mut users: Vec<Value> = futures::stream::iter(ids)
            .map(|id| self.get(client, USER_GET, [("userid", id)]))
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        users.extend(anonymous);
        Ok(users)
    }

    /// Users by `user/list`, one request per department.
    async fn users_by_department(&self, client: &Client, scope: &HashSet<String>) -> Result<Vec<Value>, SourceError> {
        let mut listed: Vec<String> = scope.iter().cloned().collect();
        listed.sort();
        let lists: Vec<Value> = futures::stream::iter(listed)
            .map(|d| self.get(client, USER_LIST, [("department_id", d)]))
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(lists.into_iter().flat_map(|v| v["userlist"].as_array().cloned().unwrap_or_default()).collect())
    }

    async fn fetch_all(&self) -> Result<Snapshot, SourceError> {
        let c = &self.config;
        let client = Client::new("WeCom", &c.http)?;
        let (departments, unreadable_departments) = self.departments(&client).await?;
        let mut scope: HashSet<String> = c.roots.iter().map(i64::to_string).collect();
        scope.extend(departments.iter().map(|d| d.source_id.0.clone()));
        // Members of a department that did not map are still read.
        scope.extend(unreadable_departments.iter().filter_map(|u| u.source_id.as_ref()).map(|s| s.0.clone()));
        let items = match c.api {
            Api::Simplelist => self.users_by_id(&client, &scope).await?,
            Api::List => self.users_by_department(&client, &scope).await?,
        };
        let (users, mut unreadable) = split(items.iter().map(user));
        unreadable.extend(unreadable_departments);
        let mut users = super::merge_by_id(users);
        super::drop_root_memberships(&mut users, &self.config.roots.iter().map(i64::to_string).collect::<Vec<_>>());
        tracing::debug!(requests = client.requests(), tokens = client.token_fetches(), "WeCom fetch done");
        Ok(Snapshot { departments, users, scoped: true, unreadable })
    }
}

/// One user from `user/get` or `user/list`: `main_department` first.
fn user(u: &Value) -> Result<User, Unreadable> {
    let r = Record::new(u);
    let Some(id) = r.text("userid") else { return Err(without_id(Kind::User, u, "userid", &["name", "open_userid", "alias"])) };
    let s = |k: &str| r.text(k);
    let mut depts: Vec<String> = u["department"].as_array().into_iter().flatten().filter_map(text).collect();
    if let Some(main) = u.get("main_department").and_then(text).filter(|m| depts.contains(m)) {
        depts.retain(|d| *d != main);
        depts.insert(0, main);
    }
    let user = User {
        source_id: SourceId(id.clone()),
        username: Some(id),
        name: s("name"),
        email: s("email").or_else(|| s("biz_mail")),
        mobile: s("mobile"),
        employee_no: None,
        nickname: s("alias").or_else(|| s("english_name")),
        title: s("position"),
        department_ids: depts.into_iter().map(SourceId).collect(),
        active: u["status"].as_i64() == Some(1),
        // Apps created after 2022-06-20 receive no email, biz_mail or
        // mobile; WeCom has no employee number field.
        absent: absent_fields(
            u,
            &[
                (UserField::Name, &["name"]),
                (UserField::Email, &["email", "biz_mail"]),
                (UserField::Mobile, &["mobile"]),
                (UserField::EmployeeNo, &[]),
                (UserField::Nickname, &["alias", "english_name"]),
                (UserField::Title, &["position"]),
            ],
        ),
    };
    r.finish(Kind::User, &user.source_id)?;
    Ok(user)
}

impl IdentitySource for WeComSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>> {
        Box::pin(self.fetch_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> WeComSource {
        let http = HttpSettings {
            base_url: WECOM_BASE.into(),
            timeout: std::time::Duration::from_secs(1),
            rate_limit: 1,
            max_retries: 0,
            token_margin: std::time::Duration::ZERO,
        };
        WeComSource::new(WeComConfig {
            corp_id: "ww1".into(),
            corp_secret: Secret::new("s"),
            http,
            api: Api::Simplelist,
            roots: vec![1],
            page_size: 10000,
            concurrency: 1,
        })
    }

    #[test]
    fn the_envelope_is_checked_before_the_payload() {
        let r = rules();
        let h = HeaderMap::new();
        assert!(matches!(r.check(200, &h, br#"{"errcode":0,"errmsg":"ok","userlist":[]}"#), Verdict::Ok(_)));
        for code in ["40014", "42001"] {
            let body = format!(r#"{{"errcode":{code},"errmsg":"invalid access_token"}}"#);
            assert!(matches!(r.check(200, &h, body.as_bytes()), Verdict::TokenInvalid { .. }), "{code}");
        }
        for code in ["45009", "45033"] {
            let body = format!(r#"{{"errcode":{code},"errmsg":"api freq out of limit"}}"#);
            assert!(matches!(r.check(200, &h, body.as_bytes()), Verdict::Throttled { .. }), "{code}");
        }
        assert!(matches!(r.check(200, &h, br#"{"errcode":-1,"errmsg":"system busy"}"#), Verdict::Transient { .. }));
        let v = r.check(200, &h, br#"{"errcode":60020,"errmsg":"not allow to access from your ip, hint: [x], from ip: 10.0.0.1"}"#);
        assert!(matches!(&v, Verdict::Fatal { code, .. } if code == "60020"), "{v:?}");
        assert!(r.hint("60020").unwrap().contains("IP is not trusted"));
        assert!(matches!(r.check(502, &h, b"<html>bad gateway</html>"), Verdict::Transient { .. }));
    }

    #[test]
    fn a_user_maps_with_the_main_department_first_and_status() {
        let u = json!({"userid": "zhangsan", "name": "李四", "department": [1, 2], "order": [1, 2], "position": "后台工程师",
            "mobile": "13800000000", "gender": "1", "email": "", "biz_mail": "zhangsan@qyycs2.wecom.work", "is_leader_in_dept": [1, 0],
            "alias": "jackzhang", "status": 1, "main_department": 2});
        let got = user(&u).unwrap();
        assert_eq!(got.username.as_deref(), Some("zhangsan"));
        assert_eq!(got.email.as_deref(), Some("zhangsan@qyycs2.wecom.work"), "an empty email falls back to biz_mail");
        let ids: Vec<&str> = got.department_ids.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(ids, ["2", "1"]);
        assert!(got.active);
        for status in [2, 4, 5] {
            let mut u = u.clone();
            u["status"] = status.into();
            assert!(!user(&u).unwrap().active, "status {status}");
        }
        // Apps created after 2022-06-20 get neither email nor mobile.
        let bare = user(&json!({"userid": "u2", "name": "N", "department": [3], "status": 1})).unwrap();
        assert_eq!((bare.email, bare.mobile), (None, None));
    }
}
