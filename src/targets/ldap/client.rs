//! The LDAP target's wire: one connection (`crate::ldap`), each operation
//! retried on a transient failure, its result code judged, and the reads.

use super::*;

impl LdapTarget {
    /// The open connection, or a new one.
    pub(super) async fn ldap(&self) -> Result<Ldap, LdapError> {
        let mut conn = self.conn.lock().await;
        if let Some(l) = conn.as_ref() {
            return Ok(l.clone());
        }
        let l = self.c.connection.connect("target").await?;
        *conn = Some(l.clone());
        Ok(l)
    }

    /// One exchange, retried on busy/unavailable/timeouts (a lost
    /// connection is opened again). `rc` turns a result code into success.
    pub(super) async fn exchange<F, Fut>(&self, what: String, ok: &[u32], f: F) -> Result<u32, LdapError>
    where
        F: Fn(Ldap) -> Fut,
        Fut: std::future::Future<Output = ldap3::result::Result<ldap3::LdapResult>>,
    {
        let attempt = || async {
            let ldap = self.ldap().await?;
            let r = f(ldap).await;
            crate::telemetry::target_request(match &r {
                Ok(res) if res.rc == 0 || ok.contains(&res.rc) => "ok",
                _ => "ldap",
            });
            match r {
                Ok(res) if res.rc == 0 || ok.contains(&res.rc) => Ok(res.rc),
                Ok(res) => Err(LdapError::Result { what: what.clone(), rc: res.rc, text: res.text.trim().to_owned() }),
                Err(source) => {
                    *self.conn.lock().await = None;
                    Err(LdapError::Protocol { what: what.clone(), source: Box::new(source) })
                }
            }
        };
        attempt
            .retry(crate::targets::backoff(self.c.max_retries))
            .when(LdapError::is_transient)
            .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "LDAP operation failed; retrying"))
            .await
    }

    pub(super) async fn add(&self, dn: &str, attrs: Attrs) -> Result<u32, LdapError> {
        let t = self.c.connection.timeout;
        self.exchange(format!("add {dn}"), &[68], |mut l| {
            let attrs = attrs.clone();
            async move { l.with_timeout(t).add(dn, attrs).await }
        })
        .await
    }

    pub(super) async fn modify(&self, dn: &str, mods: Vec<Mod<String>>, ok: &[u32]) -> Result<(), LdapError> {
        if mods.is_empty() {
            return Ok(());
        }
        let t = self.c.connection.timeout;
        self.exchange(format!("modify {dn}"), ok, |mut l| {
            let mods = mods.clone();
            async move { l.with_timeout(t).modify(dn, mods).await }
        })
        .await
        .map(drop)
    }

    /// `modrdn`, then the kept DN follows (with `subtree`, every DN under it too).
    pub(super) async fn modrdn(
        &self,
        id: &TargetId,
        dn: &str,
        new_rdn: &str,
        superior: Option<&str>,
        subtree: bool,
    ) -> Result<String, LdapError> {
        let t = self.c.connection.timeout;
        self.exchange(
            format!("modrdn {dn} to {new_rdn}{}", superior.map(|s| format!(" under {s}")).unwrap_or_default()),
            &[],
            |mut l| async move { l.with_timeout(t).modifydn(dn, new_rdn, true, superior).await },
        )
        .await?;
        let new = format!("{new_rdn},{}", superior.map_or_else(|| dn_parent(dn).to_owned(), str::to_owned));
        self.index(|i| i.renamed(id, dn, &new, subtree));
        Ok(new)
    }

    /// Delete; an entry already gone is done.
    pub(super) async fn delete(&self, dn: &str) -> Result<(), LdapError> {
        let t = self.c.connection.timeout;
        self.exchange(format!("delete {dn}"), &[32], |mut l| async move { l.with_timeout(t).delete(dn).await }).await.map(drop)
    }

    /// Entries under `base` (one level or the subtree).
    pub(super) async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<ldap3::SearchEntry>, LdapError> {
        let mut ldap = self.ldap().await?;
        let r = self.c.connection.search(&mut ldap, base, scope, filter, attrs).await;
        crate::telemetry::target_request(if r.is_ok() { "ok" } else { "ldap" });
        r
    }

    /// The id of the entry at `dn`, read back after an add.
    pub(super) async fn read_id(&self, dn: &str) -> Result<TargetId, TargetError> {
        let id = self.id_attr();
        let e = self.search(dn, Scope::Base, "(objectClass=*)", &[id]).await?;
        e.first()
            .and_then(|e| entries::first(&e.attrs, id))
            .map(|v| TargetId(v.to_owned()))
            .ok_or_else(|| TargetError::Unexpected(format!("{dn} was added but has no {id}")))
    }
}
