//! One LDAP connection as orgsync opens it, for the `ldap` source and the
//! `ldap` target alike: TLS trusting a CA file (or the system's roots),
//! StartTLS, a simple bind whose failures say what to check, and the paged
//! search (RFC 2696) that reads every page or fails.

use crate::config::Secret;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to reach and bind to a directory.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: url::Url,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// PEM CA certificates to trust; the system's roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate checks (warned about on every connect).
    pub tls_insecure: bool,
    /// Connect and per-operation.
    pub timeout: Duration,
    /// Anonymous when absent.
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    /// Paged-results page size.
    pub page_size: u32,
}

/// Why an LDAP exchange failed. Never holds a password.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// No connection, TLS refused, or the bind failed.
    #[error("{0}")]
    Connect(String),
    /// The server answered with a result code other than success.
    #[error("{what}: LDAP result {rc} {text}")]
    Result { what: String, rc: u32, text: String },
    /// The exchange itself failed (timeout, connection closed, protocol).
    #[error("{what}: {source}")]
    Protocol {
        what: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
}

impl LdapError {
    /// The server's result code, where it gave one.
    pub fn rc(&self) -> Option<u32> {
        match self {
            LdapError::Result { rc, .. } => Some(*rc),
            _ => None,
        }
    }

    /// Worth retrying: `busy` (51), `unavailable` (52), timeouts and lost
    /// connections.
    pub fn is_transient(&self) -> bool {
        match self {
            LdapError::Result { rc, .. } => matches!(rc, 51 | 52),
            LdapError::Protocol { .. } => true,
            LdapError::Connect(_) => false,
        }
    }
}

impl Connection {
    fn tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, LdapError> {
        let Some(path) = &self.ca_file else { return Ok(None) };
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let err = |m: String| LdapError::Connect(m);
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| err(format!("cannot read ca_file {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| err(format!("ca_file {} is not PEM: {e}", path.display())))?;
            roots.add(cert).map_err(|e| err(format!("ca_file {}: {e}", path.display())))?;
        }
        if roots.is_empty() {
            return Err(err(format!("ca_file {} holds no certificate", path.display())));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }

    /// Connect and bind. `section` names the config table in hints
    /// (`source`, `target`).
    pub async fn connect(&self, section: &str) -> Result<Ldap, LdapError> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.timeout).set_starttls(self.starttls);
        if self.tls_insecure {
            tracing::warn!(url = %self.url, "{section}.tls_insecure = true: the LDAP server's certificate is NOT checked");
            settings = settings.set_no_tls_verify(true);
        } else if let Some(tls) = self.tls()? {
            settings = settings.set_config(tls);
        }
        let (conn, mut ldap) = LdapConnAsync::from_url_with_settings(settings, &self.url).await.map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("not valid for name") {
                "; the certificate does not list this host in its subjectAltName (Samba's self-generated \
                     certificate lists none): use a URL with a name the certificate lists, or give the server a \
                     certificate that names it"
                    .to_owned()
            } else if text.contains("certificate") {
                match &self.ca_file {
                    Some(f) => format!("; the server's certificate is not signed by a CA in ca_file {}", f.display()),
                    None => {
                        format!("; the server's certificate is not signed by a system CA: set {section}.ca_file to the CA that issued it")
                    }
                }
            } else {
                String::new()
            };
            LdapError::Connect(format!("cannot connect: {e}{hint}"))
        })?;
        ldap3::drive!(conn);
        if let (Some(dn), Some(pw)) = (&self.bind_dn, &self.bind_password) {
            let res = ldap
                .with_timeout(self.timeout)
                .simple_bind(dn, pw.expose())
                .await
                .map_err(|e| LdapError::Connect(format!("bind as {dn} failed: {e}")))?;
            if res.rc != 0 {
                let hint = match res.rc {
                    49 => ": invalid credentials, check bind_dn and bind_password",
                    8 | 13 => ": the server requires an encrypted connection, use ldaps:// or starttls = true",
                    _ => "",
                };
                return Err(LdapError::Connect(format!("bind as {dn} failed: LDAP result {} {}{hint}", res.rc, res.text.trim())));
            }
        }
        Ok(ldap)
    }

    /// One paged search: every page, or an error naming the filter and base.
    pub async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, LdapError> {
        let adapters: Vec<Box<dyn Adapter<'_, &str, &[&str]>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.page_size as i32))];
        let what = || format!("search {filter} under {base}");
        let mut stream = ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, base, scope, filter, attrs)
            .await
            .map_err(|source| LdapError::Protocol { what: what(), source: Box::new(source) })?;
        let mut out = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(raw)) => out.push(SearchEntry::construct(raw)),
                Ok(None) => break,
                Err(source) => return Err(LdapError::Protocol { what: what(), source: Box::new(source) }),
            }
        }
        let res = stream.finish().await;
        if res.rc != 0 {
            return Err(LdapError::Result { what: what(), rc: res.rc, text: res.text.trim().to_owned() });
        }
        Ok(out)
    }
}

/// A DN in its RFC 4514 normal form, for comparing DNs: attribute types
/// lower-cased; values unescaped (`\,` and the hex pair `\2C` alike),
/// case-folded with runs of spaces made one and unescaped outer spaces
/// dropped (the caseIgnore matching of `cn`, `ou`, `dc`, `uid`), then
/// escaped one way (specials as lower-case hex pairs); the values of a
/// multi-valued RDN sorted. `cn=Roe\, Ann,ou=People` and `CN=Roe\2C
/// Ann, ou=people` are one DN, as the server says (and slapd's own
/// `(member=…)` filter agrees). A value given as `#hex` (BER) is kept as
/// its lower-cased hex.
pub fn normalize(dn: &str) -> String {
    split_unescaped(dn, &[',', ';'])
        .iter()
        .map(|rdn| {
            let mut avas: Vec<String> = split_unescaped(rdn, &['+']).iter().map(|ava| normal_ava(ava)).collect();
            avas.sort();
            avas.join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `s` split at each of `seps` that no backslash escapes (a hex pair's
/// digits are never separators).
fn split_unescaped<'a>(s: &'a str, seps: &[char]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if seps.contains(&c) {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// An RDN value's bytes with its escapes undone (`\\,` and the hex pair
/// `\\2C` alike; a hex pair may be one byte of a UTF-8 character), and how
/// many of them come before the unescaped trailing spaces.
pub fn unescape(value: &str) -> (Vec<u8>, usize) {
    let (mut bytes, mut kept) = (Vec::with_capacity(value.len()), 0usize);
    let raw = value.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\\' && i + 1 < raw.len() {
            let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => {
                    bytes.push(byte);
                    i += 3;
                }
                None => {
                    bytes.push(raw[i + 1]);
                    i += 2;
                }
            }
            kept = bytes.len();
        } else {
            bytes.push(b);
            i += 1;
            if b != b' ' {
                kept = bytes.len();
            }
        }
    }
    (bytes, kept)
}

/// One `type=value` in normal form.
fn normal_ava(ava: &str) -> String {
    let Some((ty, value)) = ava.split_once('=') else { return ava.trim().to_lowercase() };
    let ty = ty.trim().to_ascii_lowercase();
    let value = value.trim_start();
    if let Some(hex) = value.strip_prefix('#') {
        return format!("{ty}=#{}", hex.trim().to_ascii_lowercase());
    }
    // Unescaped, without the unescaped trailing spaces (escaped ones count).
    let (mut bytes, kept) = unescape(value);
    bytes.truncate(kept);
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    let folded = text.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(folded.len() + ty.len() + 1);
    out.push_str(&ty);
    out.push('=');
    for (n, c) in folded.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') || (n == 0 && c == '#');
        if special {
            out.push_str(&format!("\\{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `dn` is `base` or under it (compared as [`normalize`]d).
pub fn is_under(dn: &str, base: &str) -> bool {
    let (dn, base) = (normalize(dn), normalize(base));
    dn == base || dn.ends_with(&format!(",{base}"))
}

/// The search bases among `bases` that lie under no other one, each once
/// (in their order): searching those subtrees reads every entry once.
pub fn outermost<S: AsRef<str>>(bases: Vec<S>) -> Vec<S> {
    let norms: Vec<String> = bases.iter().map(|b| normalize(b.as_ref())).collect();
    let keep: Vec<bool> = (0..bases.len())
        .map(|i| {
            let inside = (0..bases.len()).any(|j| norms[j] != norms[i] && is_under(&norms[i], &norms[j]));
            !inside && !norms[..i].contains(&norms[i])
        })
        .collect();
    bases.into_iter().zip(keep).filter_map(|(b, k)| k.then_some(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_in_their_rfc_4514_normal_form() {
        let same = [
            ("cn=Roe\\, Ann,ou=People,dc=example,dc=com", "CN=Roe\\2C Ann, ou=people,DC=Example,dc=COM"),
            ("cn=Roe\\2c  Ann,ou=People", "cn=roe\\, ann,ou=People"),
            ("cn=A+uid=b,ou=X", "UID=B + CN=a,ou=x"),
            ("ou=R\\26D,dc=x", "ou=r&d,dc=x"),
            ("cn=Z\\C3\\BCrich,dc=x", "cn=zürich,dc=x"),
            ("ou=Sales ,dc=x", "ou=Sales,dc=x"),
        ];
        for (a, b) in same {
            assert_eq!(normalize(a), normalize(b), "{a} vs {b}");
        }
        assert_ne!(normalize("cn=Roe\\, Ann,ou=People"), normalize("cn=Roe,cn=Ann,ou=People"), "an escaped comma is no separator");
        assert_ne!(normalize("cn=a\\+b,dc=x"), normalize("cn=a+b=,dc=x"));
        assert!(is_under("cn=Roe\\2C Ann,ou=People,dc=x", "OU=people, dc=X"));
        assert!(!is_under("cn=x,ou=People2,dc=x", "ou=People,dc=x"));
    }

    #[test]
    fn outermost_bases_drop_what_lies_inside_another_and_repeats() {
        let got = outermost(vec!["ou=A,dc=x", "ou=B,OU=A, dc=x", "ou=C,dc=x", "ou=a,dc=x", "ou=XA,dc=x"]);
        assert_eq!(got, vec!["ou=A,dc=x", "ou=C,dc=x", "ou=XA,dc=x"]);
    }
}
