//! The gateway's settings.

use std::net::SocketAddr;

use kernel::settings::{Env, Secret, SettingError};

/// Where the gateway listens. Default 127.0.0.1:8080: the URL `paas up` prints.
pub const ADDR: &str = "PAAS_GATEWAY_ADDR";
/// The bootstrap administrator's bearer token (at least 32 bytes). Unset means
/// no bootstrap access; `paas up` generates one and prints it.
pub const ADMIN_TOKEN: &str = "PAAS_ADMIN_TOKEN";

/// The break-glass administrator's password (at least 12 characters), used
/// to create the local `admin` account at first start. Unset: no account is
/// created (an existing one keeps its password).
pub const LOCAL_ADMIN_PASSWORD: &str = "PAAS_LOCAL_ADMIN_PASSWORD";
/// `true` disables the local administrator (the normal state once LDAP or
/// OIDC works).
pub const LOCAL_ADMIN_DISABLED: &str = "PAAS_LOCAL_ADMIN_DISABLED";

/// The gateway's address as browsers reach it (scheme, host, port), used
/// for OIDC redirect URIs; its scheme decides whether cookies are `Secure`
/// ([`over_https`]). Default `http://` + the bound address.
pub const PUBLIC_URL: &str = "PAAS_PUBLIC_URL";
/// A browser session ends after this long unused (default 30m).
pub const SESSION_IDLE: &str = "PAAS_SESSION_IDLE";
/// A browser session ends this long after login (default 12h).
pub const SESSION_ABSOLUTE: &str = "PAAS_SESSION_ABSOLUTE";

/// Where each service's gRPC API is.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// `http://host:port` of tenancy.
    pub tenancy: String,
    /// `http://host:port` of federation.
    pub federation: String,
    /// `http://host:port` of apps.
    pub apps: String,
    /// `http://host:port` of configs.
    pub configs: String,
    /// `http://host:port` of images.
    pub images: String,
    /// `http://host:port` of devops.
    pub devops: String,
}

impl Upstreams {
    /// Reads `PAAS_<SERVICE>_URL`, defaulting to each service's fixed port on
    /// loopback (how `paas serve` runs them on one host).
    ///
    /// # Errors
    /// Never today; kept fallible like every settings reader.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        let url = |name: &str, port: u16| env.or(&format!("PAAS_{name}_URL"), format!("http://127.0.0.1:{port}"));
        Ok(Self {
            tenancy: url("TENANCY", 7101)?,
            federation: url("FEDERATION", 7102)?,
            apps: url("APPS", 7103)?,
            configs: url("CONFIGS", 7104)?,
            images: url("IMAGES", 7105)?,
            devops: url("DEVOPS", 7106)?,
        })
    }
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub addr: SocketAddr,
    /// Bootstrap admin token, if enabled.
    pub admin_token: Option<Secret>,
    /// The services.
    pub upstream: Upstreams,
    /// Creates the local administrator at first start.
    pub local_admin_password: Option<Secret>,
    /// Whether the local administrator may log in.
    pub local_admin_disabled: bool,
    /// The company directory, if LDAP login is on.
    pub directory: Option<crate::directory::DirectorySettings>,
    /// OIDC providers, side by side (none: no OIDC login).
    pub oidc: Vec<crate::oidc::ProviderSettings>,
    /// Where browsers reach the gateway, if not at its bound address.
    pub public_url: Option<String>,
    /// How long browser sessions live.
    pub sessions: crate::session::Timeouts,
}

impl Settings {
    /// Reads the gateway's settings.
    ///
    /// # Errors
    /// A malformed address, or an admin token shorter than 32 bytes.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        let admin_token = match env.raw(ADMIN_TOKEN) {
            None => None,
            Some(_) => Some(env.secret(ADMIN_TOKEN, 32)?),
        };
        Ok(Self {
            addr: env.or(ADDR, SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            admin_token,
            upstream: Upstreams::from_env(env)?,
            local_admin_password: match env.raw(LOCAL_ADMIN_PASSWORD) {
                None => None,
                Some(_) => Some(env.secret(LOCAL_ADMIN_PASSWORD, 12)?),
            },
            local_admin_disabled: env.or(LOCAL_ADMIN_DISABLED, false)?,
            directory: crate::directory::DirectorySettings::from_env(env)?,
            oidc: crate::oidc::ProviderSettings::from_env(env)?,
            public_url: env.raw(PUBLIC_URL).map(|u| u.trim_end_matches('/').to_string()),
            sessions: crate::session::Timeouts {
                idle: env.or(SESSION_IDLE, crate::session::IDLE)?,
                absolute: env.or(SESSION_ABSOLUTE, crate::session::ABSOLUTE)?,
            },
        })
    }
}

/// Whether browsers reach the gateway at `public_url` over https (so its
/// cookies are `Secure`).
pub fn over_https(public_url: &str) -> bool {
    public_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// Whether `public_url`'s host is this machine (`localhost` or a loopback
/// address), where plain http does not cross a network.
pub fn on_loopback(public_url: &str) -> bool {
    let Some(host) = public_url
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_string))
    else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_over_https_and_plain_http_off_loopback_is_told() {
        assert!(over_https("https://paas.corp.example"));
        assert!(over_https("HTTPS://paas.corp.example:8443"));
        assert!(!over_https("http://paas.corp.example"));
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
            "http://app.localhost",
        ] {
            assert!(on_loopback(local), "{local}");
        }
        for remote in [
            "http://10.0.0.5:8080",
            "http://paas.corp.example",
            "http://0.0.0.0:8080",
            "not a url",
        ] {
            assert!(!on_loopback(remote), "{remote}");
        }
    }
}
