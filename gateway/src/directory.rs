//! LDAP login: bind with the service account, find the user with a
//! configurable filter (the login is escaped, so it cannot widen the search),
//! refuse disabled accounts, bind as the user to check the password, and read
//! its groups (groupOfNames by member DN, posixGroup by memberUid).
//! StartTLS or ldaps:// are used when configured, trusting the system's
//! certificate authorities or only the company CA named by
//! `PAAS_LDAP_CA_FILE`.

use std::time::Duration;

use kernel::settings::{Env, Secret, SettingError};
use kernel::{Error, Result};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};

/// The directory's URL (`ldap://` or `ldaps://`); unset disables LDAP login.
pub const URL: &str = "PAAS_LDAP_URL";

/// How to reach and read the company directory.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    pub starttls: bool,
    /// PEM file of the certificate authorities to trust for the directory's
    /// certificate instead of the system's (a company CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// The service account that searches.
    pub bind_dn: String,
    /// Its password.
    pub bind_password: Secret,
    /// Where users are.
    pub user_base: String,
    /// Finds one user; `{login}` is replaced by the escaped login.
    pub user_filter: String,
    /// Where groups are.
    pub group_base: String,
    /// The attribute holding a person's name.
    pub name_attribute: String,
    /// The attribute holding a person's e-mail.
    pub mail_attribute: String,
    /// A user entry matching this filter is disabled (e.g. AD's
    /// `(userAccountControl:1.2.840.113556.1.4.803:=2)`).
    pub disabled_filter: Option<String>,
    /// Group DNs whose members are platform administrators.
    pub admin_groups: Vec<String>,
}

impl DirectorySettings {
    /// Reads `PAAS_LDAP_*`; `None` when [`URL`] is unset.
    ///
    /// # Errors
    /// A required variable is missing or malformed.
    pub fn from_env(env: &Env) -> Result<Option<Self>, SettingError> {
        let Some(url) = env.raw(URL) else { return Ok(None) };
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return Err(SettingError {
                variable: URL.into(),
                expected: "an ldap:// or ldaps:// URL".into(),
                found: Some(url.into()),
            });
        }
        let text = |name: &str, default: &str| env.or(name, default.to_string());
        Ok(Some(Self {
            url: url.to_string(),
            starttls: env.or("PAAS_LDAP_STARTTLS", false)?,
            ca_file: env
                .optional::<String>("PAAS_LDAP_CA_FILE")?
                .map(std::path::PathBuf::from),
            bind_dn: env.required("PAAS_LDAP_BIND_DN")?,
            bind_password: env.secret("PAAS_LDAP_BIND_PASSWORD", 1)?,
            user_base: env.required("PAAS_LDAP_USER_BASE")?,
            user_filter: text("PAAS_LDAP_USER_FILTER", "(uid={login})")?,
            group_base: env.required("PAAS_LDAP_GROUP_BASE")?,
            name_attribute: text("PAAS_LDAP_NAME_ATTRIBUTE", "cn")?,
            mail_attribute: text("PAAS_LDAP_MAIL_ATTRIBUTE", "mail")?,
            disabled_filter: env.optional("PAAS_LDAP_DISABLED_FILTER")?,
            admin_groups: env
                .optional::<String>("PAAS_LDAP_ADMIN_GROUPS")?
                .map(|g| {
                    g.split(';')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }
}

/// A person the directory vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The login as typed.
    pub login: String,
    /// Their entry's DN.
    pub dn: String,
    /// Their name.
    pub name: String,
    /// Their e-mail.
    pub mail: String,
    /// DNs of their groups.
    pub groups: Vec<String>,
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("the directory is unavailable: {e}"))
}

/// The company directory.
#[derive(Debug, Clone)]
pub struct Directory {
    settings: DirectorySettings,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// A TLS client trusting only the authorities in `ca_file`.
fn tls_trusting(ca_file: &std::path::Path) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |detail: String| Error::invalid("PAAS_LDAP_CA_FILE", detail);
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca_file).map_err(|e| bad(format!("cannot read {}: {e}", ca_file.display())))?
    {
        roots
            .add(cert.map_err(|e| bad(format!("{}: {e}", ca_file.display())))?)
            .map_err(|e| bad(format!("{}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!("{} holds no certificate", ca_file.display())));
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(Error::internal)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

impl Directory {
    /// A directory reached with `settings`.
    ///
    /// # Errors
    /// The CA file cannot be read or holds no certificate.
    pub fn new(settings: DirectorySettings) -> Result<Self> {
        let tls = settings.ca_file.as_deref().map(tls_trusting).transpose()?;
        Ok(Self { settings, tls })
    }

    /// Whether a person's groups make them a platform administrator.
    pub fn is_admin(&self, person: &Person) -> bool {
        person
            .groups
            .iter()
            .any(|g| self.settings.admin_groups.iter().any(|a| a.eq_ignore_ascii_case(g)))
    }

    async fn connect(&self) -> Result<ldap3::Ldap> {
        let mut settings = LdapConnSettings::new()
            .set_starttls(self.settings.starttls)
            .set_conn_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.settings.url)
            .await
            .map_err(unavailable)?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// The person behind `login` and `password`, or `None` when the
    /// directory does not vouch for them (unknown, wrong password,
    /// disabled, ambiguous).
    ///
    /// # Errors
    /// The directory is unreachable or the service account is refused.
    pub async fn authenticate(&self, login: &str, password: &str) -> Result<Option<Person>> {
        // An empty password would be an unauthenticated bind, which LDAP
        // servers accept as anonymous: never let it through.
        if login.is_empty() || password.is_empty() || login.len() > 256 || login.chars().any(char::is_control) {
            return Ok(None);
        }
        let s = &self.settings;
        let mut ldap = self.connect().await?;
        ldap.simple_bind(&s.bind_dn, s.bind_password.expose())
            .await
            .map_err(unavailable)?
            .success()
            .map_err(unavailable)?;
        let filter = s.user_filter.replace("{login}", &ldap_escape(login));
        let (entries, _) = ldap
            .search(
                &s.user_base,
                Scope::Subtree,
                &filter,
                vec![s.name_attribute.as_str(), s.mail_attribute.as_str()],
            )
            .await
            .map_err(unavailable)?
            .success()
            .map_err(unavailable)?;
        let [entry] = entries.as_slice() else {
            let _ = ldap.unbind().await;
            return Ok(None);
        };
        let entry = SearchEntry::construct(entry.clone());
        if let Some(disabled) = &s.disabled_filter {
            let (hits, _) = ldap
                .search(&entry.dn, Scope::Base, disabled, vec!["1.1"])
                .await
                .map_err(unavailable)?
                .success()
                .map_err(unavailable)?;
            if !hits.is_empty() {
                let _ = ldap.unbind().await;
                return Ok(None);
            }
        }
        let groups_filter = format!(
            "(|(&(objectClass=groupOfNames)(member={}))(&(objectClass=posixGroup)(memberUid={})))",
            ldap_escape(&entry.dn),
            ldap_escape(login)
        );
        let (groups, _) = ldap
            .search(&s.group_base, Scope::Subtree, &groups_filter, vec!["1.1"])
            .await
            .map_err(unavailable)?
            .success()
            .map_err(unavailable)?;
        let _ = ldap.unbind().await;

        // The password is checked by binding as the user, on its own connection.
        let mut user = self.connect().await?;
        let verdict = user.simple_bind(&entry.dn, password).await.map_err(unavailable)?;
        let _ = user.unbind().await;
        if verdict.rc != 0 {
            return Ok(None);
        }
        let first = |attr: &str| {
            entry
                .attrs
                .get(attr)
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or_default()
        };
        Ok(Some(Person {
            login: login.to_string(),
            name: first(&s.name_attribute),
            mail: first(&s.mail_attribute),
            groups: groups.into_iter().map(|g| SearchEntry::construct(g).dn).collect(),
            dn: entry.dn,
        }))
    }
}
