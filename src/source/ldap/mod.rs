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

use super::{IdentitySource, SourceError};
use crate::model::Snapshot;
pub use config::{LdapConfig, parse};
use futures::future::BoxFuture;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::sync::Arc;

#[derive(Debug)]
pub struct LdapSource {
    config: LdapConfig,
}

impl LdapSource {
    pub fn new(config: LdapConfig) -> Self {
        Self { config }
    }

    fn err(&self, message: impl Into<String>) -> SourceError {
        SourceError::Ldap { url: self.config.url.to_string(), message: message.into() }
    }

    fn entry_err(&self, source: MappingError) -> SourceError {
        SourceError::LdapEntry { url: self.config.url.to_string(), source }
    }

    fn tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, SourceError> {
        let Some(path) = &self.config.ca_file else { return Ok(None) };
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| self.err(format!("cannot read ca_file {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| self.err(format!("ca_file {} is not PEM: {e}", path.display())))?;
            roots.add(cert).map_err(|e| self.err(format!("ca_file {}: {e}", path.display())))?;
        }
        if roots.is_empty() {
            return Err(self.err(format!("ca_file {} holds no certificate", path.display())));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.err(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }

    async fn connect(&self) -> Result<Ldap, SourceError> {
        let c = &self.config;
        let mut settings = LdapConnSettings::new().set_conn_timeout(c.timeout).set_starttls(c.starttls);
        if c.tls_insecure {
            tracing::warn!(url = %c.url, "source.tls_insecure = true: the LDAP server's certificate is NOT checked");
            settings = settings.set_no_tls_verify(true);
        } else if let Some(tls) = self.tls()? {
            settings = settings.set_config(tls);
        }
        let (conn, mut ldap) = LdapConnAsync::from_url_with_settings(settings, &c.url).await.map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("not valid for name") {
                "; the certificate does not list this host in its subjectAltName (Samba's self-generated \
                     certificate lists none): use a URL with a name the certificate lists, or give the server a \
                     certificate that names it"
                    .to_owned()
            } else if text.contains("certificate") {
                match &c.ca_file {
                    Some(f) => format!("; the server's certificate is not signed by a CA in ca_file {}", f.display()),
                    None => "; the server's certificate is not signed by a system CA: set source.ca_file to the CA that issued it".into(),
                }
            } else {
                String::new()
            };
            self.err(format!("cannot connect: {e}{hint}"))
        })?;
        ldap3::drive!(conn);
        if let (Some(dn), Some(pw)) = (&c.bind_dn, &c.bind_password) {
            let res = ldap
                .with_timeout(c.timeout)
                .simple_bind(dn, pw.expose())
                .await
                .map_err(|e| self.err(format!("bind as {dn} failed: {e}")))?;
            if res.rc != 0 {
                let hint = match res.rc {
                    49 => ": invalid credentials, check bind_dn and bind_password",
                    8 | 13 => ": the server requires an encrypted connection, use ldaps:// or starttls = true",
                    _ => "",
                };
                return Err(self.err(format!("bind as {dn} failed: LDAP result {} {}{hint}", res.rc, res.text.trim())));
            }
        }
        Ok(ldap)
    }

    /// One paged search; every page or an error.
    async fn search(&self, ldap: &mut Ldap, base: &str, scope: Scope, filter: &str, attrs: &[&str]) -> Result<Vec<Entry>, SourceError> {
        let c = &self.config;
        let adapters: Vec<Box<dyn Adapter<'_, &str, &[&str]>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(c.page_size as i32))];
        let fail = |e: &dyn std::fmt::Display| self.err(format!("search {filter} under {base}: {e}"));
        let mut stream =
            ldap.with_timeout(c.timeout).streaming_search_with(adapters, base, scope, filter, attrs).await.map_err(|e| fail(&e))?;
        let mut out = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(raw)) => {
                    let e = SearchEntry::construct(raw);
                    out.push(Entry { dn: e.dn, attrs: e.attrs, bin_attrs: e.bin_attrs });
                }
                Ok(None) => break,
                Err(e) => return Err(fail(&e)),
            }
        }
        let res = stream.finish().await;
        if res.rc != 0 {
            return Err(fail(&format_args!("LDAP result {} {}", res.rc, res.text.trim())));
        }
        Ok(out)
    }

    /// Group entries with every member value, reading AD's ranged
    /// `member;range=…` values until the last range.
    async fn groups(&self, ldap: &mut Ldap, base: &str, filter: &str) -> Result<Vec<Entry>, SourceError> {
        let flavor = self.config.flavor;
        let mut attrs = vec!["cn", flavor.id_attribute()];
        attrs.extend(flavor.member_attributes());
        let mut groups = self.search(ldap, base, Scope::Subtree, filter, &attrs).await?;
        for g in &mut groups {
            for a in flavor.member_attributes() {
                let mut values = RangedValues::new(g, a).map_err(|m| self.entry_err(m))?;
                while let Some(range) = values.next_request() {
                    let e = self.search(ldap, &g.dn, Scope::Base, "(objectClass=*)", &[range.as_str()]).await?;
                    let e = e.first().ok_or_else(|| self.err(format!("{} vanished while its {a} values were read", g.dn)))?;
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

    async fn fetch_all(&self) -> Result<Snapshot, SourceError> {
        let c = &self.config;
        let mut ldap = self.connect().await?;
        let id = c.flavor.id_attribute();
        let depts = match &c.departments {
            Departments::OuTree => {
                self.search(&mut ldap, &c.base_dn, Scope::Subtree, "(objectClass=organizationalUnit)", &["ou", id]).await?
            }
            Departments::Groups { base_dn, filter } => self.groups(&mut ldap, base_dn.as_deref().unwrap_or(&c.base_dn), filter).await?,
            Departments::Attribute(_) => Vec::new(),
        };
        let a = &c.attributes;
        let mut attrs: Vec<&str> = vec![id, &a.username, &a.name, &a.email, &a.mobile, &a.employee_no, &a.nickname, &a.title];
        attrs.extend(c.flavor.status_attributes());
        if let Departments::Attribute(d) = &c.departments {
            attrs.push(d);
        }
        let users = self.search(&mut ldap, &c.base_dn, Scope::Subtree, &c.user_filter, &attrs).await?;
        let _ = ldap.unbind().await;
        tracing::debug!(departments = depts.len(), users = users.len(), "LDAP entries read");
        mapping::snapshot(&depts, &users, c.flavor, a, &c.departments, chrono::Utc::now().timestamp()).map_err(|m| self.entry_err(m))
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
}

#[cfg(test)]
mod tests;
