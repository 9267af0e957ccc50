//! LDAP login: bind with the service account, find the user with a
//! configurable filter (the login is escaped, so it cannot widen the search),
//! refuse disabled accounts, bind as the user to check the password, and read
//! its groups (groupOfNames by member DN, posixGroup by memberUid). The
//! person is who the directory says: their subject is the entry's login
//! attribute (`uid`, or `sAMAccountName` in Active Directory), however the
//! login was typed. Every exchange with the directory has a deadline
//! ([`DirectorySettings::timeout`]), so a hung directory fails the login fast.
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
    /// The attribute holding the login the directory knows a person by
    /// (`uid`; `sAMAccountName` in Active Directory): their subject, and
    /// what posixGroup `memberUid` lists.
    pub login_attribute: String,
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
    /// The longest any one exchange with the directory (connect, bind,
    /// search) may take before the login fails as unavailable.
    pub timeout: Duration,
}

/// By default an exchange with the directory fails after this long.
pub const TIMEOUT: Duration = Duration::from_secs(5);

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
            login_attribute: text("PAAS_LDAP_LOGIN_ATTRIBUTE", "uid")?,
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
            timeout: env.or("PAAS_LDAP_TIMEOUT", TIMEOUT)?,
        }))
    }
}

/// A directory entry found for a login, before its password is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The login the directory knows them by (the entry's login attribute).
    pub login: String,
    /// Their entry's DN.
    pub dn: String,
    /// Their name.
    pub name: String,
    /// Their e-mail.
    pub mail: String,
    /// DNs of their groups, normalized ([`kernel::dn::normalize`]) so they
    /// match bindings however either is spelled.
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
            .any(|g| self.settings.admin_groups.iter().any(|a| kernel::dn::same(a, g)))
    }

    /// Runs one exchange with the directory within the timeout.
    async fn answer<T, E: std::fmt::Display>(
        &self,
        what: &str,
        exchange: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.settings.timeout, exchange).await {
            Ok(answer) => answer.map_err(unavailable),
            Err(_) => Err(Error::Unavailable(format!(
                "the directory did not answer within {} s ({what})",
                self.settings.timeout.as_secs_f32()
            ))),
        }
    }

    async fn connect(&self) -> Result<ldap3::Ldap> {
        let mut settings = LdapConnSettings::new()
            .set_starttls(self.settings.starttls)
            .set_conn_timeout(self.settings.timeout);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = self
            .answer("connect", LdapConnAsync::with_settings(settings, &self.settings.url))
            .await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// The person the directory knows by `login` (trimmed, and matched as
    /// the directory matches it, so `J.Doe` finds `j.doe`), or `None` when
    /// it knows nobody by it (unknown, disabled, ambiguous).
    ///
    /// # Errors
    /// The directory is unreachable, does not answer in time, or refuses the
    /// service account.
    pub async fn find(&self, login: &str) -> Result<Option<Person>> {
        let login = login.trim();
        if login.is_empty() || login.len() > 256 || login.chars().any(char::is_control) {
            return Ok(None);
        }
        let s = &self.settings;
        let mut ldap = self.connect().await?;
        self.answer("bind", ldap.simple_bind(&s.bind_dn, s.bind_password.expose()))
            .await?
            .success()
            .map_err(unavailable)?;
        let filter = s.user_filter.replace("{login}", &ldap_escape(login));
        let attributes = vec![
            s.login_attribute.as_str(),
            s.name_attribute.as_str(),
            s.mail_attribute.as_str(),
        ];
        let (entries, _) = self
            .answer("search", ldap.search(&s.user_base, Scope::Subtree, &filter, attributes))
            .await?
            .success()
            .map_err(unavailable)?;
        let [entry] = entries.as_slice() else {
            let _ = ldap.unbind().await;
            return Ok(None);
        };
        let entry = SearchEntry::construct(entry.clone());
        let first = |attr: &str| {
            entry
                .attrs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(attr))
                .and_then(|(_, v)| v.first())
                .cloned()
                .unwrap_or_default()
        };
        // Without its login attribute an entry has no subject to log in as.
        let uid = first(&s.login_attribute);
        if uid.is_empty() {
            let _ = ldap.unbind().await;
            return Ok(None);
        }
        if let Some(disabled) = &s.disabled_filter {
            let (hits, _) = self
                .answer("search", ldap.search(&entry.dn, Scope::Base, disabled, vec!["1.1"]))
                .await?
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
            ldap_escape(&uid)
        );
        let (groups, _) = self
            .answer(
                "search",
                ldap.search(&s.group_base, Scope::Subtree, &groups_filter, vec!["1.1"]),
            )
            .await?
            .success()
            .map_err(unavailable)?;
        let _ = ldap.unbind().await;
        Ok(Some(Person {
            name: first(&s.name_attribute),
            mail: first(&s.mail_attribute),
            login: uid,
            groups: groups
                .into_iter()
                .map(|g| {
                    let dn = SearchEntry::construct(g).dn;
                    kernel::dn::normalize(&dn).unwrap_or(dn)
                })
                .collect(),
            dn: entry.dn,
        }))
    }

    /// Whether `password` is the person's, checked by binding as them on a
    /// connection of its own.
    ///
    /// # Errors
    /// The directory is unreachable or does not answer in time.
    pub async fn check_password(&self, person: &Person, password: &str) -> Result<bool> {
        // An empty password would be an unauthenticated bind, which LDAP
        // servers accept as anonymous: never let it through.
        if password.is_empty() {
            return Ok(false);
        }
        let mut user = self.connect().await?;
        let verdict = self.answer("bind", user.simple_bind(&person.dn, password)).await?;
        let _ = user.unbind().await;
        Ok(verdict.rc == 0)
    }
}
