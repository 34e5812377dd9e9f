//! LDAP entries -> model, pure (no connection), so recorded entries test it.
//!
//! Ids are never DNs: OpenLDAP's `entryUUID` (RFC 4530) or AD's `objectGUID`
//! (16 bytes; the text form has its first three fields little-endian), so
//! a renamed or moved entry keeps its binding.

use crate::model::{Department, Snapshot, SourceId, User};
use std::collections::{BTreeSet, HashMap};

/// Which directory: sets the attribute defaults, the id and what "inactive" means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    OpenLdap,
    ActiveDirectory,
    /// 389 Directory Server (Red Hat Directory Server, FreeIPA's directory):
    /// OpenLDAP's schema, `nsUniqueId` as the id, `nsAccountLock` for locked accounts.
    Ds389,
}

/// `source.attributes.*`: the LDAP attribute behind each user field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub username: String,
    pub name: String,
    pub email: String,
    pub mobile: String,
    pub employee_no: String,
    pub nickname: String,
    pub title: String,
    /// The manager's DN (`manager` in every flavor).
    pub manager: String,
}

impl Flavor {
    pub fn default_attributes(self) -> Attributes {
        let s = |v: &str| v.to_owned();
        match self {
            Flavor::OpenLdap | Flavor::Ds389 => Attributes {
                username: s("uid"),
                name: s("cn"),
                email: s("mail"),
                mobile: s("mobile"),
                employee_no: s("employeeNumber"),
                nickname: s("displayName"),
                title: s("title"),
                manager: s("manager"),
            },
            Flavor::ActiveDirectory => Attributes {
                username: s("sAMAccountName"),
                name: s("displayName"),
                email: s("mail"),
                mobile: s("mobile"),
                employee_no: s("employeeID"),
                nickname: s("givenName"),
                title: s("title"),
                manager: s("manager"),
            },
        }
    }

    pub fn default_user_filter(self) -> &'static str {
        match self {
            Flavor::OpenLdap | Flavor::Ds389 => "(objectClass=inetOrgPerson)",
            Flavor::ActiveDirectory => "(&(objectCategory=person)(objectClass=user))",
        }
    }

    /// The stable-id attribute (operational on OpenLDAP: asked for by name).
    pub fn id_attribute(self) -> &'static str {
        match self {
            Flavor::OpenLdap => "entryUUID",
            Flavor::ActiveDirectory => "objectGUID",
            // Always there; entryUUID only with its plugin enabled.
            Flavor::Ds389 => "nsUniqueId",
        }
    }

    /// The default `departments.filter` with `from = "groups"`.
    pub fn default_group_filter(self) -> &'static str {
        match self {
            Flavor::OpenLdap | Flavor::Ds389 => "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
            Flavor::ActiveDirectory => "(objectClass=group)",
        }
    }

    /// Attributes of a group entry that hold member DNs.
    pub fn member_attributes(self) -> &'static [&'static str] {
        match self {
            Flavor::OpenLdap | Flavor::Ds389 => &["member", "uniqueMember"],
            Flavor::ActiveDirectory => &["member"],
        }
    }

    /// Attributes that decide "inactive".
    pub fn status_attributes(self) -> &'static [&'static str] {
        match self {
            Flavor::OpenLdap => &["pwdAccountLockedTime"],
            Flavor::ActiveDirectory => &["userAccountControl", "accountExpires"],
            Flavor::Ds389 => &["nsAccountLock", "pwdAccountLockedTime"],
        }
    }
}

/// One search result entry, attribute names as the server spelled them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<String>>,
    pub bin_attrs: HashMap<String, Vec<Vec<u8>>>,
}

/// Attributes that hold credentials: never in a record `explain` shows or
/// an expression reads, whatever a search returned (`*` with a privileged bind).
const CREDENTIALS: &[&str] = &[
    "userpassword",
    "authpassword",
    "unicodepwd",
    "dbcspwd",
    "ntpwdhistory",
    "lmpwdhistory",
    "pwdhistory",
    "supplementalcredentials",
    "sambantpassword",
    "sambalmpassword",
    "sambapasswordhistory",
    "krbprincipalkey",
    "krbextradata",
    "ipanthash",
    "userpkcs12",
    "ms-mcs-admpwd",
    "msds-keycredentiallink",
    "msds-managedpassword",
];

fn is_credential(attribute: &str) -> bool {
    let a = attribute.split(';').next().unwrap_or(attribute).to_ascii_lowercase();
    CREDENTIALS.contains(&a.as_str())
}

impl Entry {
    /// The entry as the directory sent it (for `explain`): its DN and text
    /// attributes; binary ones in hex; never a credential attribute.
    pub fn as_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("dn".into(), self.dn.clone().into());
        for (k, v) in self.attrs.iter().filter(|(k, _)| !is_credential(k)) {
            m.insert(k.clone(), v.clone().into());
        }
        for (k, v) in self.bin_attrs.iter().filter(|(k, _)| !is_credential(k)) {
            m.insert(k.clone(), v.iter().map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>()).collect::<Vec<_>>().into());
        }
        serde_json::Value::Object(m)
    }

    /// The entry for `[mapping]`'s expressions: its DN, and each text
    /// attribute as its value, or its list of values when it has several.
    pub fn as_record(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("dn".into(), self.dn.clone().into());
        for (k, v) in self.attrs.iter().filter(|(k, _)| !is_credential(k)) {
            let value = match v.as_slice() {
                [one] => one.clone().into(),
                many => many.to_vec().into(),
            };
            m.insert(k.clone(), value);
        }
        serde_json::Value::Object(m)
    }

    /// First value of an attribute, names compared case-insensitively.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn first_bin(&self, name: &str) -> Option<&[u8]> {
        self.bin_attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first()).map(Vec::as_slice)
    }

    /// The stable id, or why there is none.
    pub fn stable_id(&self, flavor: Flavor) -> Result<SourceId, MappingError> {
        let dn = || self.dn.clone();
        match flavor {
            Flavor::OpenLdap | Flavor::Ds389 => {
                let attr = flavor.id_attribute();
                self.first(attr).map(|u| SourceId(u.to_ascii_lowercase())).ok_or_else(|| MappingError::NoId { dn: dn(), attr })
            }
            Flavor::ActiveDirectory => match self.first_bin("objectGUID") {
                Some(b) => guid(b).map(SourceId).ok_or_else(|| MappingError::BadGuid { dn: dn(), len: b.len() }),
                None => Err(MappingError::NoId { dn: dn(), attr: "objectGUID" }),
            },
        }
    }
}

/// An entry that cannot be mapped, by its DN.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{dn}: no {attr} (is the attribute readable by the bind DN?)")]
    NoId { dn: String, attr: &'static str },
    #[error("{dn}: objectGUID is {len} bytes, not 16")]
    BadGuid { dn: String, len: usize },
    #[error("{dn}: unreadable range in attribute {attr}")]
    UnreadableRange { dn: String, attr: String },
    #[error("{dn}: the server returned no {attr} values from {start} on")]
    EmptyRange { dn: String, attr: String, start: u64 },
}

/// AD objectGUID bytes -> canonical text: the first three fields are little-endian.
pub fn guid(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    let hex = |s: &[u8]| s.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let rev = |s: &[u8]| hex(&s.iter().rev().copied().collect::<Vec<_>>());
    Some(format!("{}-{}-{}-{}-{}", rev(&b[0..4]), rev(&b[4..6]), rev(&b[6..8]), hex(&b[8..10]), hex(&b[10..16])))
}

/// The filter that finds the entry whose stable id is `id` (AD: the GUID's
/// bytes, escaped; none when `id` is not a GUID).
pub fn id_filter(flavor: Flavor, id: &str) -> Option<String> {
    let value = match flavor {
        Flavor::OpenLdap | Flavor::Ds389 => ldap3::ldap_escape(id).into_owned(),
        Flavor::ActiveDirectory => {
            let hex: String = id.chars().filter(|c| *c != '-').collect();
            if hex.len() != 32 || !hex.is_ascii() {
                return None;
            }
            let bytes: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect::<Option<_>>()?;
            let mut b = bytes;
            b[0..4].reverse();
            b[4..6].reverse();
            b[6..8].reverse();
            b.iter().map(|x| format!("\\{x:02x}")).collect()
        }
    };
    Some(format!("({}={value})", flavor.id_attribute()))
}

/// AD `accountExpires`: 100-ns ticks since 1601-01-01; 0 and i64::MAX mean never.
pub fn account_expired(value: &str, now_unix: i64) -> bool {
    const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
    match value.trim().parse::<i64>() {
        Ok(0) | Ok(i64::MAX) | Err(_) => false,
        Ok(ticks) => ticks / 10_000_000 - EPOCH_DIFF_SECS <= now_unix,
    }
}

pub(super) fn active(e: &Entry, flavor: Flavor, now_unix: i64) -> bool {
    match flavor {
        // ppolicy: a locked account carries pwdAccountLockedTime.
        Flavor::OpenLdap => e.first("pwdAccountLockedTime").is_none(),
        // 389-DS: `nsAccountLock: true` (any case) locks an account; ppolicy may lock it too.
        Flavor::Ds389 => {
            !e.first("nsAccountLock").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) && e.first("pwdAccountLockedTime").is_none()
        }
        Flavor::ActiveDirectory => {
            let disabled = e.first("userAccountControl").and_then(|v| v.trim().parse::<u32>().ok()).is_some_and(|u| u & 0x2 != 0);
            let expired = e.first("accountExpires").is_some_and(|v| account_expired(v, now_unix));
            !disabled && !expired
        }
    }
}

/// A DN with the first RDN removed, normalised for comparison.
pub fn parent_dn(dn: &str) -> Option<String> {
    // Skip escaped commas (`\,`) inside the first RDN.
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return Some(norm_dn(&dn[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// A DN in its RFC 4514 normal form (escapes, hex pairs, case, spaces,
/// multi-valued RDN order): see [`crate::ldap::normalize`].
pub fn norm_dn(dn: &str) -> String {
    crate::ldap::normalize(dn)
}

/// How departments are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Departments {
    /// `organizationalUnit` entries; parent from the DN.
    OuTree,
    /// Distinct values of a user attribute; flat.
    Attribute(String),
    /// Group entries under `base_dn` (default: the source's) matching
    /// `filter`; a group listed as a member of another is its child, a user
    /// listed as a member belongs to it.
    Groups { base_dn: Option<String>, filter: String },
}

/// Values of `attr`, which AD hands out in ranges when there are more than
/// its MaxValRange (1,500): `member;range=0-1499`, then ask for
/// `member;range=1500-*` until the returned name ends in `-*`. Returns the
/// values in this entry and where the next range starts, if any.
pub fn ranged_values(e: &Entry, attr: &str) -> Result<(Vec<String>, Option<u64>), MappingError> {
    let attr = attr.to_ascii_lowercase();
    let prefix = format!("{attr};range=");
    let mut values = Vec::new();
    let mut next = None;
    for (k, v) in &e.attrs {
        let lower = k.to_ascii_lowercase();
        if lower == attr {
            values.extend(v.iter().cloned());
        } else if let Some(range) = lower.strip_prefix(&prefix) {
            values.extend(v.iter().cloned());
            let bad = || MappingError::UnreadableRange { dn: e.dn.clone(), attr: k.clone() };
            let (_, hi) = range.split_once('-').ok_or_else(bad)?;
            if hi != "*" {
                next = Some(hi.parse::<u64>().map_err(|_| bad())? + 1);
            }
        }
    }
    Ok((values, next))
}

/// Every value of a ranged attribute, read over several requests:
/// `next_request` names the attribute to ask for next (`member;range=1500-*`)
/// and `absorb` takes the entry that came back. A range that brings nothing
/// new is an error, not a loop.
#[derive(Debug)]
pub struct RangedValues {
    attr: String,
    dn: String,
    values: Vec<String>,
    next: Option<u64>,
}

impl RangedValues {
    pub fn new(first: &Entry, attr: &str) -> Result<Self, MappingError> {
        let (values, next) = ranged_values(first, attr)?;
        Ok(Self { attr: attr.to_owned(), dn: first.dn.clone(), values, next })
    }

    pub fn next_request(&self) -> Option<String> {
        self.next.map(|start| format!("{};range={start}-*", self.attr))
    }

    pub fn absorb(&mut self, e: &Entry) -> Result<(), MappingError> {
        let (v, n) = ranged_values(e, &self.attr)?;
        if let (true, Some(start)) = (v.is_empty(), self.next) {
            return Err(MappingError::EmptyRange { dn: self.dn.clone(), attr: self.attr.clone(), start });
        }
        self.values.extend(v);
        self.next = n;
        Ok(())
    }

    pub fn finish(self) -> Vec<String> {
        self.values
    }
}

/// Department entries (OUs or groups, as `departments` says) + users ->
/// snapshot. A department entry without a stable id fails the fetch (its
/// members and children could not be placed); a user entry without one is
/// an unreadable record, reported, and holds back every disable and
/// delete of the run: dropping it would read as "this person left".
pub fn snapshot(
    dept_entries: &[Entry],
    users: &[Entry],
    flavor: Flavor,
    attrs: &Attributes,
    departments: &Departments,
    now_unix: i64,
    mapping: &crate::mapping::Mapping,
) -> Result<Snapshot, MappingError> {
    let mut depts: Vec<Department> = Vec::new();
    let mut unreadable = Vec::new();
    let mut by_dn: HashMap<String, SourceId> = HashMap::new();
    for e in dept_entries {
        by_dn.insert(norm_dn(&e.dn), e.stable_id(flavor)?);
    }
    // Groups: user DN -> its groups, group DN -> the groups listing it.
    let mut member_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    if matches!(departments, Departments::Groups { .. }) {
        for g in dept_entries {
            let group = norm_dn(&g.dn);
            for a in flavor.member_attributes() {
                for m in g.attrs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(a)).flat_map(|(_, v)| v) {
                    // uniqueMember may carry an optional `#'0101'B` uid.
                    let m = norm_dn(m.split_once('#').map_or(m.as_str(), |(dn, _)| dn));
                    // groupOfNames needs a member; some list the group itself.
                    if m != group {
                        member_of.entry(m).or_default().insert(group.clone());
                    }
                }
            }
        }
    }
    let groups_of =
        |dn: &str| -> Vec<SourceId> { member_of.get(&norm_dn(dn)).into_iter().flatten().filter_map(|g| by_dn.get(g).cloned()).collect() };
    for e in dept_entries {
        let Some(id) = by_dn.get(&norm_dn(&e.dn)).cloned() else { continue };
        let (parent, name_attr) = match departments {
            // A group in several parents goes under the first by DN.
            Departments::Groups { .. } => (groups_of(&e.dn).into_iter().next(), "cn"),
            _ => (parent_dn(&e.dn).and_then(|p| by_dn.get(&p).cloned()), "ou"),
        };
        let name = e.first(name_attr).map(str::to_owned).unwrap_or_else(|| e.dn.clone());
        let department = Department { source_id: id, parent_id: parent, name, order: 0, leader_ids: Vec::new() };
        let record = if mapping.is_empty() { serde_json::Value::Null } else { e.as_record() };
        match crate::sources::mapped_department(mapping, record, Ok(department)) {
            Ok(d) => depts.push(d),
            Err(u) => unreadable.push(u),
        }
    }
    let mut flat: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(users.len());
    for e in users {
        let source_id = match e.stable_id(flavor) {
            Ok(id) => id,
            Err(why) => {
                unreadable.push(crate::model::Unreadable { kind: crate::model::Kind::User, source_id: None, message: why.to_string() });
                continue;
            }
        };
        let field = |a: &str| e.first(a).map(str::to_owned);
        let department_ids = match departments {
            Departments::OuTree => parent_dn(&e.dn).and_then(|p| by_dn.get(&p).cloned()).into_iter().collect(),
            Departments::Groups { .. } => groups_of(&e.dn),
            Departments::Attribute(a) => match e.first(a) {
                Some(v) => {
                    flat.insert(v.to_owned());
                    vec![SourceId(v.to_owned())]
                }
                None => Vec::new(),
            },
        };
        let user = User {
            source_id,
            username: field(&attrs.username),
            name: field(&attrs.name),
            email: field(&attrs.email),
            mobile: field(&attrs.mobile),
            employee_no: field(&attrs.employee_no),
            nickname: field(&attrs.nickname),
            title: field(&attrs.title),
            department_ids,
            active: active(e, flavor, now_unix),
            // An attribute missing from one entry is empty (the directory
            // says there is none); missing from all: see `sources::mark_withheld`.
            // A DN here, made the manager's id once every user is read.
            manager_id: field(&attrs.manager).filter(|_| !attrs.manager.is_empty()).map(SourceId),
            attributes: Default::default(),
            absent: Vec::new(),
        };
        let record = if mapping.is_empty() { serde_json::Value::Null } else { e.as_record() };
        match crate::sources::mapped(mapping, record, Ok(user)) {
            Ok(u) => out.push(u),
            Err(u) => unreadable.push(u),
        }
    }
    // A manager DN of a user read is that user's id; another stays a DN
    // (outside the bases or the filter: no account orgsync knows).
    let ids: HashMap<String, SourceId> = users.iter().filter_map(|e| Some((norm_dn(&e.dn), e.stable_id(flavor).ok()?))).collect();
    for u in &mut out {
        if let Some(id) = u.manager_id.as_ref().and_then(|m| ids.get(&norm_dn(m.as_str()))) {
            u.manager_id = Some(id.clone());
        }
    }
    for name in flat {
        depts.push(Department { source_id: SourceId(name.clone()), parent_id: None, name, order: 0, leader_ids: Vec::new() });
    }
    Ok(Snapshot { departments: depts, users: out, scoped: true, unreadable, ..Snapshot::default() })
}
