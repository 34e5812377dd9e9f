//! Source `ldap`: OpenLDAP or Active Directory over one connection per
//! fetch. Every search uses the paged-results control (RFC 2696; AD caps
//! unpaged searches at 1,000 entries), and a failure on any page fails the
//! whole fetch: no partial snapshot ever reaches reconcile.
//!
//! Referrals and continuation references are ignored (ldap3 hands only
//! entries through `EntriesOnly`).

mod config;

mod mapping;

pub use mapping::{Attributes, Departments, Entry, Flavor, MappingError, RangedValues, account_expired, guid};

use super::{IdentitySource, Objects, SourceError};
use crate::model::{Kind, Snapshot};
use crate::reconcile::only::Only;
pub use config::{LdapConfig, parse};
use futures::future::BoxFuture;
use ldap3::{Ldap, Scope};

#[derive(Debug)]
pub struct LdapSource {
    config: LdapConfig,
    /// `[scope] include_departments` (OU ids): with OUs as departments the
    /// fetch searches only under them.
    include: Vec<String>,
    /// `[mapping]`: fields set by expressions over the records.
    mapping: crate::mapping::Mapping,
}

impl LdapSource {
    pub fn new(config: LdapConfig) -> Self {
        Self { config, include: Vec::new(), mapping: Default::default() }
    }

    /// Fields set by `[mapping]`'s expressions over each record.
    pub fn mapped(mut self, mapping: crate::mapping::Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Search only under these OUs (by id) where departments are the OU
    /// tree: what `[scope] include_departments` keeps anyway, read without
    /// reading the rest. Not for Active Directory (its binary objectGUID).
    pub fn narrowed_to(mut self, include: &[String]) -> Self {
        self.include = include.to_vec();
        self
    }

    /// The bases to search: `base_dn`, or the included OUs (none inside another).
    async fn bases(&self, ldap: &mut Ldap) -> Result<Vec<String>, SourceError> {
        let c = &self.config;
        if self.include.is_empty() || !matches!(c.departments, Departments::OuTree) || c.flavor == Flavor::ActiveDirectory {
            return Ok(vec![c.base_dn.clone()]);
        }
        let id = c.flavor.id_attribute();
        let mut dns: Vec<String> = Vec::new();
        for ou in &self.include {
            let filter = format!("(&(objectClass=organizationalUnit)({id}={}))", ldap3::ldap_escape(ou.as_str()));
            match self.search(ldap, &c.base_dn, Scope::Subtree, &filter, &["1.1"]).await?.into_iter().next() {
                Some(e) => dns.push(e.dn),
                None => tracing::warn!(ou = %ou, base = %c.base_dn, "scope.include_departments names an OU not found under base_dn"),
            }
        }
        let dns = crate::ldap::outermost(dns);
        tracing::debug!(bases = ?dns, "LDAP fetch narrowed to the included OUs");
        Ok(dns)
    }

    fn err(&self, source: crate::ldap::LdapError) -> SourceError {
        SourceError::Ldap { url: self.config.url.to_string(), source }
    }

    fn changed(&self, message: String) -> SourceError {
        SourceError::LdapChanged { url: self.config.url.to_string(), message }
    }

    fn entry_err(&self, source: MappingError) -> SourceError {
        SourceError::LdapEntry { url: self.config.url.to_string(), source }
    }

    fn connection(&self) -> crate::ldap::Connection {
        let c = &self.config;
        crate::ldap::Connection {
            url: c.url.clone(),
            starttls: c.starttls,
            ca_file: c.ca_file.clone(),
            tls_insecure: c.tls_insecure,
            timeout: c.timeout,
            bind_dn: c.bind_dn.clone(),
            bind_password: c.bind_password.clone(),
            page_size: c.page_size,
        }
    }

    async fn connect(&self) -> Result<Ldap, SourceError> {
        self.connection().connect("source").await.map_err(|e| self.err(e))
    }

    /// The attributes `[mapping.departments]` reads (all where it reads `record`).
    fn department_attributes(&self) -> Vec<&str> {
        match self.mapping.department_fields() {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => vec!["*"],
        }
    }

    /// One paged search; every page or an error.
    async fn search(&self, ldap: &mut Ldap, base: &str, scope: Scope, filter: &str, attrs: &[&str]) -> Result<Vec<Entry>, SourceError> {
        let entries = self.connection().search(ldap, base, scope, filter, attrs).await.map_err(|e| self.err(e))?;
        Ok(entries.into_iter().map(|e| Entry { dn: e.dn, attrs: e.attrs, bin_attrs: e.bin_attrs }).collect())
    }

    /// Group entries with every member value, reading AD's ranged
    /// `member;range=…` values until the last range.
    async fn groups(&self, ldap: &mut Ldap, base: &str, filter: &str) -> Result<Vec<Entry>, SourceError> {
        let flavor = self.config.flavor;
        let mut attrs = vec!["cn", flavor.id_attribute()];
        attrs.extend(flavor.member_attributes());
        attrs.extend(self.department_attributes());
        let mut groups = self.search(ldap, base, Scope::Subtree, filter, &attrs).await?;
        for g in &mut groups {
            for a in flavor.member_attributes() {
                let mut values = RangedValues::new(g, a).map_err(|m| self.entry_err(m))?;
                while let Some(range) = values.next_request() {
                    let e = self.search(ldap, &g.dn, Scope::Base, "(objectClass=*)", &[range.as_str()]).await?;
                    let e = e.first().ok_or_else(|| self.changed(format!("{} vanished while its {a} values were read", g.dn)))?;
                    values.absorb(e).map_err(|m| self.entry_err(m))?;
                }
                let values = values.finish();
                let prefix = format!("{};", a.to_ascii_lowercase());
                g.attrs.retain(|k, _| !k.eq_ignore_ascii_case(a) && !k.to_ascii_lowercase().starts_with(&prefix));
                if !values.is_empty() {
                    g.attrs.insert((*a).to_owned(), values);
                }
            }
        }
        Ok(groups)
    }

    /// The department entries under `bases` (none where departments are an attribute).
    async fn department_entries(&self, ldap: &mut Ldap, bases: &[String]) -> Result<Vec<Entry>, SourceError> {
        let c = &self.config;
        Ok(match &c.departments {
            Departments::OuTree => {
                let mut all = Vec::new();
                for base in bases {
                    all.extend(
                        self.search(ldap, base, Scope::Subtree, "(objectClass=organizationalUnit)", &{
                            let mut attrs = vec!["ou", c.flavor.id_attribute()];
                            attrs.extend(self.department_attributes());
                            attrs
                        })
                        .await?,
                    );
                }
                all
            }
            Departments::Groups { base_dn, filter } => self.groups(ldap, base_dn.as_deref().unwrap_or(&c.base_dn), filter).await?,
            Departments::Attribute(_) => Vec::new(),
        })
    }

    /// The user entries under `bases` that `filter` (with `user_filter`) finds.
    async fn user_entries(&self, ldap: &mut Ldap, bases: &[String], filter: &str) -> Result<Vec<Entry>, SourceError> {
        let c = &self.config;
        let a = &c.attributes;
        let mut attrs: Vec<&str> =
            vec![c.flavor.id_attribute(), &a.username, &a.name, &a.email, &a.mobile, &a.employee_no, &a.nickname, &a.title, &a.manager];
        attrs.extend(c.flavor.status_attributes());
        if let Departments::Attribute(d) = &c.departments {
            attrs.push(d);
        }
        // The attributes the expressions read (all user attributes where one reads `record`).
        let read = self.mapping.user_fields();
        if !self.mapping.is_empty() {
            match read {
                Some(names) => attrs.extend(names.iter().map(String::as_str)),
                None => attrs.push("*"),
            }
        }
        let mut users = Vec::new();
        for base in bases {
            users.extend(self.search(ldap, base, Scope::Subtree, filter, &attrs).await?);
        }
        Ok(users)
    }

    async fn fetch_all(&self) -> Result<Snapshot, SourceError> {
        let c = &self.config;
        let mut ldap = self.connect().await?;
        let bases = self.bases(&mut ldap).await?;
        let depts = self.department_entries(&mut ldap, &bases).await?;
        let users = self.user_entries(&mut ldap, &bases, &c.user_filter).await?;
        let _ = ldap.unbind().await;
        tracing::debug!(departments = depts.len(), users = users.len(), "LDAP entries read");
        mapping::snapshot(&depts, &users, c.flavor, &c.attributes, &c.departments, chrono::Utc::now().timestamp(), &self.mapping)
            .map_err(|m| self.entry_err(m))
    }

    /// The users named, one search each by their id attribute; the
    /// departments as a full fetch reads them (one search of the OUs or
    /// groups, no user listing), narrowed to the ones above these objects.
    async fn fetch_by_id(&self, only: &Only) -> Result<Objects, SourceError> {
        let c = &self.config;
        let mut ldap = self.connect().await?;
        let bases = self.bases(&mut ldap).await?;
        let depts = self.department_entries(&mut ldap, &bases).await?;
        let mut users = Vec::new();
        let mut raw = std::collections::BTreeMap::new();
        for id in &only.users {
            // An id that cannot be one (a malformed GUID) finds nobody.
            let Some(by_id) = mapping::id_filter(c.flavor, id.as_str()) else { continue };
            let found = self.user_entries(&mut ldap, &bases, &format!("(&{}{by_id})", c.user_filter)).await?;
            if let Some(e) = found.first() {
                raw.insert((Kind::User, id.clone()), e.as_json());
            }
            users.extend(found);
        }
        for e in &depts {
            if let Ok(id) = e.stable_id(c.flavor)
                && only.departments.contains(&id)
            {
                raw.insert((Kind::Department, id), e.as_json());
            }
        }
        let _ = ldap.unbind().await;
        let snapshot =
            mapping::snapshot(&depts, &users, c.flavor, &c.attributes, &c.departments, chrono::Utc::now().timestamp(), &self.mapping)
                .map_err(|m| self.entry_err(m))?;
        Ok(Objects { snapshot: super::narrow(snapshot, only), raw, requests: None, by_id: true })
    }
}

impl IdentitySource for LdapSource {
    fn kind(&self) -> &'static str {
        "ldap"
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>> {
        Box::pin(async move {
            let r = self.fetch_all().await;
            crate::telemetry::source_request(r.as_ref().map_or_else(SourceError::metric_label, |_| "ok"));
            r
        })
    }

    fn fetch_objects<'a>(&'a self, only: &'a Only) -> BoxFuture<'a, Result<Objects, SourceError>> {
        Box::pin(self.fetch_by_id(only))
    }
}

#[cfg(test)]
mod tests;
