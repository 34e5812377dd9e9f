//! Reading the target directory: DNs, the in-memory index of entries by
//! id, and the load that turns entries into the model's target snapshot.

use super::{Disable, Layout, LdapTarget, is_under, normalize};
use crate::ldap::LdapError;
use crate::model::{TargetDepartment, TargetId, TargetSnapshot, TargetUser};
use ldap3::Scope;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What the target knows of the entries it manages.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Every entry by id (users, departments, groups), DN as last known.
    pub dn: HashMap<TargetId, String>,
    /// `groups`: the groups a user or a child group is a member of.
    pub groups_of: HashMap<TargetId, BTreeSet<TargetId>>,
    /// The users among them.
    pub users: HashSet<TargetId>,
    /// Ids present at the load (an add that meets one of these is a conflict).
    pub loaded: HashSet<TargetId>,
    /// Each user's manager and the DN written for it: a manager renamed or
    /// moved since (its OU too) is written anew at the end of the run, as
    /// refint would.
    pub managers: HashMap<TargetId, (TargetId, String)>,
}

impl Index {
    /// `old` is now `new`; with `subtree`, so is everything under it.
    pub fn renamed(&mut self, id: &TargetId, old: &str, new: &str, subtree: bool) {
        self.dn.insert(id.clone(), new.to_owned());
        if !subtree {
            return;
        }
        let suffix = format!(",{}", normalize(old));
        for dn in self.dn.values_mut() {
            let n = normalize(dn);
            if let Some(head) = n.strip_suffix(&suffix) {
                // Keep the entry's own RDNs as the server spelled them.
                let own = dn.split(',').take(head.split(',').count()).collect::<Vec<_>>().join(",");
                *dn = format!("{own},{new}");
            }
        }
    }

    pub fn forget(&mut self, id: &TargetId) {
        self.dn.remove(id);
        self.groups_of.remove(id);
        self.users.remove(id);
        self.managers.remove(id);
        for g in self.groups_of.values_mut() {
            g.remove(id);
        }
    }
}

/// `attr=value` with the value escaped (RFC 4514).
pub(super) fn rdn(attr: &str, value: &str) -> String {
    format!("{attr}={}", ldap3::dn_escape(value))
}

/// Where the first RDN ends: the first comma not escaped.
fn first_comma(dn: &str) -> Option<usize> {
    let b = dn.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b',' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The DN above `dn` ("" for a top entry).
pub(super) fn dn_parent(dn: &str) -> &str {
    first_comma(dn).map_or("", |i| dn[i + 1..].trim_start())
}

/// The first RDN of `dn` (`ou=Sales`).
pub(super) fn first_rdn(dn: &str) -> &str {
    first_comma(dn).map_or(dn, |i| &dn[..i])
}

/// The value of the first RDN, unescaped (`ou=R\2cD` -> `R,D`).
pub(super) fn rdn_value(dn: &str) -> String {
    let r = first_rdn(dn);
    let v = r.split_once('=').map_or(r, |(_, v)| v);
    String::from_utf8_lossy(&crate::ldap::unescape(v).0).into_owned()
}

/// The first value of an attribute, its name compared without case.
pub(super) fn first<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first()).map(String::as_str)
}

pub(super) fn all<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> &'a [String] {
    attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or(&[], |(_, v)| v.as_slice())
}

pub(super) struct Loaded {
    pub index: Index,
    pub snapshot: TargetSnapshot,
}

/// The bases to search for users, none inside another.
fn user_bases(t: &LdapTarget) -> Vec<&str> {
    let c = &t.c;
    let mut bases = vec![c.users_dn.as_str()];
    if c.layout == Layout::OuTree {
        bases.push(&c.departments_dn);
    }
    if let Disable::Move { disabled_dn } = &c.disable {
        bases.push(disabled_dn);
    }
    crate::ldap::outermost(bases)
}

pub(super) async fn load(t: &LdapTarget, id_attr: &'static str) -> Result<Loaded, LdapError> {
    let mut index = Index::default();
    let tree = departments(t, id_attr, &mut index).await?;
    let users = users(t, id_attr, &tree, &mut index).await?;
    index.loaded = index.dn.keys().cloned().collect();
    let mut departments = tree.departments;
    // Leaders as user ids; a DN no user has is none orgsync knows. Not
    // held (the schema refuses the attribute): none.
    let user_by_dn: HashMap<String, TargetId> =
        users.iter().filter_map(|u| Some((normalize(index.dn.get(&u.id)?), u.id.clone()))).collect();
    let held = !t.no_leader.load(std::sync::atomic::Ordering::Relaxed);
    for d in &mut departments {
        d.leaders =
            d.leaders.take().filter(|_| held).map(|dns| dns.iter().filter_map(|dn| user_by_dn.get(&normalize(&dn.0)).cloned()).collect());
    }
    let snapshot = TargetSnapshot { departments, users };
    tracing::debug!(departments = snapshot.departments.len(), users = snapshot.users.len(), "LDAP target read");
    Ok(Loaded { index, snapshot })
}

/// The departments read, and how to find them: by DN, and (groups) the
/// groups holding each member DN.
struct Tree {
    departments: Vec<TargetDepartment>,
    by_dn: HashMap<String, TargetId>,
    member_of: HashMap<String, Vec<TargetId>>,
}

/// The id of an entry (its `id_attr`).
fn id_of(attrs: &HashMap<String, Vec<String>>, id_attr: &str) -> Option<TargetId> {
    first(attrs, id_attr).map(|v| TargetId(v.to_owned()))
}

/// Departments, and (groups) who is a member of which.
async fn departments(t: &LdapTarget, id_attr: &'static str, index: &mut Index) -> Result<Tree, LdapError> {
    let c = &t.c;
    let ext = c.attributes.external_id.as_str();
    let id_of = |attrs: &HashMap<String, Vec<String>>| id_of(attrs, id_attr);
    let mut departments = Vec::new();
    let (filter, naming) = match c.layout {
        Layout::OuTree => ("(objectClass=organizationalUnit)", "ou"),
        Layout::Groups => ("(objectClass=groupOfNames)", "cn"),
    };
    // `groups`: a department's name is its group's `ou` when it has one
    // (its `cn` may have had to differ from the name: `Team (Sales)`).
    let mut attrs = vec![naming, id_attr, "member", "ou"];
    if !c.attributes.leader.is_empty() {
        attrs.push(&c.attributes.leader);
    }
    if !ext.is_empty() {
        attrs.push(ext);
    }
    let depts = t.search(&c.departments_dn, Scope::Subtree, filter, &attrs).await?;
    let skip = |dn: &str| {
        let n = normalize(dn);
        n == normalize(&c.departments_dn)
            || n == normalize(&c.users_dn)
            || matches!(&c.disable, Disable::Move { disabled_dn } if is_under(dn, disabled_dn))
            || t.protected(dn, None)
    };
    let mut dept_by_dn: HashMap<String, TargetId> = HashMap::new();
    // member DN -> the groups holding it.
    let mut member_of: HashMap<String, Vec<TargetId>> = HashMap::new();
    for e in depts.iter().filter(|e| !skip(&e.dn)) {
        let Some(id) = id_of(&e.attrs) else { continue };
        dept_by_dn.insert(normalize(&e.dn), id.clone());
        index.dn.insert(id.clone(), e.dn.clone());
        for m in all(&e.attrs, "member").iter().filter(|m| !m.is_empty()) {
            member_of.entry(normalize(m)).or_default().push(id.clone());
        }
    }
    for e in depts.iter().filter(|e| !skip(&e.dn)) {
        let Some(id) = id_of(&e.attrs) else { continue };
        let parent = match c.layout {
            Layout::OuTree => dept_by_dn.get(&normalize(dn_parent(&e.dn))).cloned(),
            Layout::Groups => {
                let mut holders = member_of.get(&normalize(&e.dn)).cloned().unwrap_or_default();
                holders.sort();
                if holders.len() > 1 {
                    tracing::warn!(dn = %e.dn, "group is a member of more than one department group; the first is taken as its parent");
                }
                index.groups_of.insert(id.clone(), holders.iter().take(1).cloned().collect());
                holders.into_iter().next()
            }
        };
        // The leaders' DNs, made ids once the users are read.
        let leaders = (!c.attributes.leader.is_empty())
            .then(|| all(&e.attrs, &c.attributes.leader).iter().map(|dn| TargetId(dn.clone())).collect::<Vec<_>>());
        departments.push(TargetDepartment {
            id,
            external_id: first(&e.attrs, ext).map(str::to_owned),
            name: match c.layout {
                Layout::Groups => first(&e.attrs, "ou").map_or_else(|| rdn_value(&e.dn), str::to_owned),
                Layout::OuTree => rdn_value(&e.dn),
            },
            parent,
            leaders,
        });
    }

    Ok(Tree { departments, by_dn: dept_by_dn, member_of })
}

/// The users under the users' bases (and the disabled DN), once each.
async fn users(t: &LdapTarget, id_attr: &'static str, tree: &Tree, index: &mut Index) -> Result<Vec<TargetUser>, LdapError> {
    let c = &t.c;
    let a = &c.attributes;
    let ext = a.external_id.as_str();
    let id_of = |attrs: &HashMap<String, Vec<String>>| id_of(attrs, id_attr);
    let mut users = Vec::new();
    let class = c.user_object_classes.last().map_or("inetOrgPerson", String::as_str);
    let filter = format!("(objectClass={})", ldap3::ldap_escape(class));
    let mut attrs: Vec<&str> = vec![id_attr, &a.username, &a.name, &a.email, &a.mobile, &a.employee_no, &a.nickname, &a.title];
    attrs.extend([a.department.as_str(), ext, a.manager.as_str()]);
    attrs.extend(t.extras.iter().map(String::as_str));
    if let Disable::Attribute { name, .. } = &c.disable {
        attrs.push(name);
    }
    // Each user's manager DN, resolved once every user is read.
    let mut managers: Vec<(usize, String)> = Vec::new();
    attrs.retain(|a| !a.is_empty());
    for base in user_bases(t) {
        for e in t.search(base, Scope::Subtree, &filter, &attrs).await? {
            let uid = first(&e.attrs, &a.username);
            if t.protected(&e.dn, uid) {
                continue;
            }
            let Some(id) = id_of(&e.attrs) else { continue };
            if index.users.contains(&id) {
                continue;
            }
            let active = match &c.disable {
                Disable::Move { disabled_dn } => !is_under(&e.dn, disabled_dn),
                Disable::Attribute { name, value } => first(&e.attrs, name).is_none_or(|v| !v.eq_ignore_ascii_case(value)),
                Disable::Delete => true,
            };
            let departments: Vec<TargetId> = match c.layout {
                Layout::OuTree => tree.by_dn.get(&normalize(dn_parent(&e.dn))).cloned().into_iter().collect(),
                Layout::Groups => tree.member_of.get(&normalize(&e.dn)).cloned().unwrap_or_default(),
            };
            if c.layout == Layout::Groups {
                index.groups_of.insert(id.clone(), departments.iter().cloned().collect());
            }
            let get = |name: &str| first(&e.attrs, name).map(str::to_owned);
            if let Some(m) = get(&a.manager).filter(|_| !a.manager.is_empty()) {
                managers.push((users.len(), m));
            }
            users.push(TargetUser {
                id: id.clone(),
                external_id: get(ext),
                username: get(&a.username),
                name: get(&a.name),
                email: get(&a.email),
                mobile: get(&a.mobile),
                employee_no: get(&a.employee_no),
                nickname: get(&a.nickname),
                title: get(&a.title),
                department: get(&a.department),
                departments,
                active,
                manager: None,
                attributes: t.extras.iter().filter_map(|x| Some((x.clone(), get(x)?))).collect(),
            });
            index.users.insert(id.clone());
            index.dn.insert(id, e.dn);
        }
    }
    // A DN no user has (a manager outside the users' bases, a stale DN
    // after a rename without refint) is no manager orgsync knows.
    let by_dn: HashMap<String, TargetId> = users.iter().filter_map(|u| Some((normalize(index.dn.get(&u.id)?), u.id.clone()))).collect();
    for (i, dn) in managers {
        users[i].manager = by_dn.get(&normalize(&dn)).cloned();
        if let Some(m) = &users[i].manager {
            index.managers.insert(users[i].id.clone(), (m.clone(), dn));
        }
    }
    Ok(users)
}
