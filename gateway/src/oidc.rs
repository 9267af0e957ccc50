//! OpenID Connect login: the authorization code flow with PKCE against any
//! number of providers configured side by side. The provider is discovered
//! from its issuer (and rediscovered every [`REDISCOVER_AFTER`]; an ID token
//! signed with a key it does not know yet makes it fetch the keys again at
//! once, at most every [`REFRESH_KEYS_EVERY`], so a rotated signing key works
//! from its first use); the ID token's signature, issuer, audience, expiry and
//! nonce are checked. The user's name, e-mail and groups (under a
//! configurable claim) come from the ID token, or from the userinfo answer
//! when the ID token does not carry them.
//!
//! What a started login must remember (PKCE verifier, nonce, where to return)
//! is kept in Redis under its `state` and taken exactly once; the browser
//! that started it carries the same `state` in a cookie, so a callback with a
//! changed state, a replayed one, or one started in another browser (login
//! CSRF) is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kernel::settings::{Env, Secret, SettingError};
use kernel::{Error, Result};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// Comma-separated names of the configured providers (e.g. `corp,partner`);
/// each is configured by `PAAS_OIDC_<NAME>_*`. Unset: no OIDC login.
pub const PROVIDERS: &str = "PAAS_OIDC_PROVIDERS";

/// How long a started login may take at the provider.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);

/// How long a discovered configuration (and its signing keys) is trusted.
pub const REDISCOVER_AFTER: Duration = Duration::from_secs(10 * 60);

/// An ID token signed with an unknown key refetches the provider's keys at
/// most this often (a stream of forged tokens cannot make the gateway hammer
/// the provider).
pub const REFRESH_KEYS_EVERY: Duration = Duration::from_secs(30);

/// The cookie binding a started login to the browser that started it.
pub const FLOW_COOKIE: &str = "paas_oidc_state";

/// One provider's settings.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The name in URLs and subjects (`oidc:<name>:<sub>`).
    pub name: String,
    /// What the login page shows.
    pub display_name: String,
    /// The issuer, exactly as the provider's ID tokens name it.
    pub issuer: String,
    /// This platform's client id at the provider.
    pub client_id: String,
    /// Its secret (none for a public client: PKCE alone).
    pub client_secret: Option<Secret>,
    /// Scopes asked for (`openid` is always asked).
    pub scopes: Vec<String>,
    /// The claim holding the user's groups.
    pub groups_claim: String,
    /// Groups whose members are platform administrators.
    pub admin_groups: Vec<String>,
    /// Where the provider sends the browser after logging out; default the
    /// platform's root.
    pub post_logout_url: Option<String>,
}

fn list(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl ProviderSettings {
    /// Reads [`PROVIDERS`] and each provider's `PAAS_OIDC_<NAME>_ISSUER`,
    /// `_CLIENT_ID`, `_CLIENT_SECRET`, `_SCOPES`, `_GROUPS_CLAIM`,
    /// `_ADMIN_GROUPS`, `_DISPLAY_NAME` and `_POST_LOGOUT_URL`.
    ///
    /// # Errors
    /// A malformed name, a missing issuer or client id, a non-HTTP issuer.
    pub fn from_env(env: &Env) -> Result<Vec<Self>, SettingError> {
        let Some(names) = env.raw(PROVIDERS) else {
            return Ok(Vec::new());
        };
        let mut providers: Vec<Self> = Vec::new();
        for name in list(names) {
            if !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                || providers.iter().any(|p| p.name == name)
            {
                return Err(SettingError {
                    variable: PROVIDERS.into(),
                    expected: "distinct names of lowercase letters, digits and '-'".into(),
                    found: Some(names.into()),
                });
            }
            let var = |suffix: &str| format!("PAAS_OIDC_{}_{suffix}", name.to_uppercase().replace('-', "_"));
            let issuer: String = env.required(&var("ISSUER"))?;
            if url::Url::parse(&issuer).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
                return Err(SettingError {
                    variable: var("ISSUER"),
                    expected: "an http(s) URL".into(),
                    found: Some(issuer),
                });
            }
            providers.push(Self {
                display_name: env.or(&var("DISPLAY_NAME"), name.clone())?,
                issuer,
                client_id: env.required(&var("CLIENT_ID"))?,
                client_secret: match env.raw(&var("CLIENT_SECRET")) {
                    None => None,
                    Some(_) => Some(env.secret(&var("CLIENT_SECRET"), 1)?),
                },
                scopes: list(&env.or(&var("SCOPES"), "openid profile email".to_string())?),
                groups_claim: env.or(&var("GROUPS_CLAIM"), "groups".to_string())?,
                admin_groups: list(&env.or(&var("ADMIN_GROUPS"), String::new())?),
                post_logout_url: env.raw(&var("POST_LOGOUT_URL")).map(str::to_string),
                name,
            });
        }
        Ok(providers)
    }
}

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;
type CoreIdToken =
    IdToken<EmptyAdditionalClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

struct Discovered {
    client: Client,
    end_session: Option<openidconnect::EndSessionUrl>,
    at: Instant,
}

struct Provider {
    settings: ProviderSettings,
    redirect: RedirectUrl,
    post_logout: PostLogoutRedirectUrl,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// When an unknown signing key last made the keys be fetched again.
    keys_refreshed: std::sync::Mutex<Option<Instant>>,
}

/// What a started login remembers until its callback.
#[derive(Debug, Serialize, Deserialize)]
pub struct Flow {
    provider: String,
    verifier: String,
    nonce: String,
    /// Where the browser goes once logged in.
    pub return_to: String,
}

/// A user the provider vouched for.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `oidc:<provider>:<sub>`.
    pub subject: String,
    /// The `name` claim (of the ID token, else of userinfo).
    pub name: String,
    /// The `email` claim (of the ID token, else of userinfo).
    pub email: String,
    /// The groups claim.
    pub groups: Vec<String>,
    /// Member of one of the provider's admin groups.
    pub platform_admin: bool,
    /// The raw ID token, kept for RP-initiated logout.
    pub id_token: String,
}

/// What a provider's login page needs to list it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderSummary {
    /// The name in URLs.
    pub name: String,
    /// What to show.
    pub display_name: String,
    /// Where to send the browser to log in.
    pub login_url: String,
}

/// Why a callback was refused: the user is not logged in.
#[derive(Debug)]
pub struct Refusal(pub String);

/// The configured providers.
#[derive(Clone)]
pub struct Providers {
    by_name: Arc<HashMap<String, Provider>>,
    order: Arc<Vec<String>>,
    http: reqwest::Client,
}

impl Providers {
    /// Prepares `settings`; `public_url` is where browsers reach the gateway
    /// (redirect URIs are built from it). Nothing is fetched yet: a provider
    /// is discovered at its first use, so the gateway starts while a
    /// provider is down.
    ///
    /// # Errors
    /// A redirect URL cannot be built from `public_url`.
    pub fn new(settings: &[ProviderSettings], public_url: &str) -> Result<Self> {
        let base = public_url.trim_end_matches('/');
        let mut by_name = HashMap::new();
        for p in settings {
            let redirect = RedirectUrl::new(format!("{base}/api/v1/login/oidc/{}/callback", p.name))
                .map_err(|e| Error::invalid("PAAS_PUBLIC_URL", e.to_string()))?;
            let post_logout = PostLogoutRedirectUrl::new(
                p.post_logout_url.clone().unwrap_or_else(|| format!("{base}/")),
            )
            .map_err(|e| {
                Error::invalid(
                    format!("PAAS_OIDC_{}_POST_LOGOUT_URL", p.name.to_uppercase()),
                    e.to_string(),
                )
            })?;
            by_name.insert(
                p.name.clone(),
                Provider {
                    settings: p.clone(),
                    redirect,
                    post_logout,
                    discovered: RwLock::new(None),
                    keys_refreshed: std::sync::Mutex::new(None),
                },
            );
        }
        // The provider's endpoints must not redirect the gateway elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(Error::internal)?;
        Ok(Self {
            by_name: Arc::new(by_name),
            order: Arc::new(settings.iter().map(|p| p.name.clone()).collect()),
            http,
        })
    }

    /// The providers, in configured order.
    pub fn summaries(&self) -> Vec<ProviderSummary> {
        self.order
            .iter()
            .filter_map(|n| self.by_name.get(n))
            .map(|p| ProviderSummary {
                name: p.settings.name.clone(),
                display_name: p.settings.display_name.clone(),
                login_url: format!("/api/v1/login/oidc/{}", p.settings.name),
            })
            .collect()
    }

    fn provider(&self, name: &str) -> Result<&Provider> {
        self.by_name
            .get(name)
            .ok_or_else(|| Error::not_found("OIDC provider", name))
    }

    async fn discovered(&self, p: &Provider) -> Result<Arc<Discovered>> {
        if let Some(d) = p
            .discovered
            .read()
            .await
            .as_ref()
            .filter(|d| d.at.elapsed() < REDISCOVER_AFTER)
        {
            return Ok(d.clone());
        }
        let mut slot = p.discovered.write().await;
        if let Some(d) = slot.as_ref().filter(|d| d.at.elapsed() < REDISCOVER_AFTER) {
            return Ok(d.clone());
        }
        let d = self.discover(p).await?;
        *slot = Some(d.clone());
        Ok(d)
    }

    /// The provider discovered again when `stale` does not know the key an
    /// ID token was signed with (the provider rotated its keys); `None` when
    /// the keys were fetched again too recently to try.
    async fn with_fresh_keys(&self, p: &Provider, stale: &Discovered) -> Result<Option<Arc<Discovered>>> {
        let mut slot = p.discovered.write().await;
        // Another login may have fetched them while this one waited.
        if let Some(d) = slot.as_ref().filter(|d| d.at > stale.at) {
            return Ok(Some(d.clone()));
        }
        {
            let mut refreshed = p
                .keys_refreshed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if refreshed.is_some_and(|at| at.elapsed() < REFRESH_KEYS_EVERY) {
                return Ok(None);
            }
            *refreshed = Some(Instant::now());
        }
        tracing::info!(provider = %p.settings.name, "an ID token is signed with an unknown key: fetching the keys again");
        let d = self.discover(p).await?;
        *slot = Some(d.clone());
        Ok(Some(d))
    }

    async fn discover(&self, p: &Provider) -> Result<Arc<Discovered>> {
        let issuer = IssuerUrl::new(p.settings.issuer.clone()).map_err(|e| Error::invalid("issuer", e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                Error::Unavailable(format!(
                    "the identity provider {} cannot be discovered: {e}",
                    p.settings.name
                ))
            })?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(p.settings.client_id.clone()),
            p.settings
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(p.redirect.clone());
        Ok(Arc::new(Discovered {
            client,
            end_session,
            at: Instant::now(),
        }))
    }

    /// Starts a login at `provider`: the URL to send the browser to, the
    /// state to bind to it, and what to remember under that state.
    ///
    /// # Errors
    /// Unknown provider (404), provider unreachable (503).
    pub async fn begin(&self, provider: &str, return_to: String) -> Result<(String, String, Flow)> {
        let p = self.provider(provider)?;
        let d = self.discovered(p).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = d.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in p.settings.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let flow = Flow {
            provider: provider.to_string(),
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            return_to,
        };
        Ok((url.to_string(), state.secret().clone(), flow))
    }

    /// Finishes a login: exchanges `code` (with the flow's PKCE verifier)
    /// and checks the ID token. `Ok(Err(_))` is a refusal to tell the user.
    ///
    /// # Errors
    /// The provider is unreachable.
    pub async fn finish(
        &self,
        provider: &str,
        flow: Flow,
        code: &str,
    ) -> Result<std::result::Result<Identity, Refusal>> {
        let refuse = |why: String| Ok(Err(Refusal(why)));
        if flow.provider != provider {
            return refuse("the login was started at another provider".into());
        }
        let p = self.provider(provider)?;
        let d = self.discovered(p).await?;
        let request = d
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| Error::Unavailable(format!("the provider has no token endpoint: {e}")))?;
        let tokens = match request
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier))
            .request_async(&self.http)
            .await
        {
            Ok(t) => t,
            Err(openidconnect::RequestTokenError::ServerResponse(e)) => {
                return refuse(format!("the provider refused the code: {e}"));
            }
            Err(e) => {
                return Err(Error::Unavailable(format!(
                    "the identity provider {provider} did not answer the token request: {e}"
                )));
            }
        };
        let Some(id_token) = tokens.id_token() else {
            return refuse("the provider sent no ID token".into());
        };
        let nonce = Nonce::new(flow.nonce);
        let mut d = d;
        let mut verified = id_token.claims(&d.client.id_token_verifier(), &nonce);
        if let Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) = verified
            && let Some(fresh) = self.with_fresh_keys(p, &d).await?
        {
            d = fresh;
            verified = id_token.claims(&d.client.id_token_verifier(), &nonce);
        }
        let claims = match verified {
            Ok(c) => c,
            Err(e) => return refuse(format!("the ID token is not valid: {e}")),
        };
        let verifier = d.client.id_token_verifier();
        if let Some(expected) = claims.access_token_hash() {
            let actual = id_token
                .signing_alg()
                .ok()
                .zip(id_token.signing_key(&verifier).ok())
                .and_then(|(alg, key)| AccessTokenHash::from_token(tokens.access_token(), alg, key).ok());
            if actual.as_ref() != Some(expected) {
                return refuse("the access token does not belong to the ID token".into());
            }
        }
        let id_claims = payload(id_token);
        let mut groups = claim_strings(&id_claims, &p.settings.groups_claim);
        let mut name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        let mut email = claims.email().map(|e| e.as_str().to_string()).unwrap_or_default();
        // Many providers put profile claims (and groups) only in userinfo
        // when the code flow is used.
        if (groups.is_none() || name.is_empty() || email.is_empty())
            && let Some(userinfo) = d.client.user_info_url()
        {
            let answer = self
                .http
                .get(userinfo.url().clone())
                .bearer_auth(tokens.access_token().secret())
                .send()
                .await;
            let info = match answer.and_then(reqwest::Response::error_for_status) {
                Ok(answer) => answer.json::<serde_json::Value>().await.ok(),
                Err(_) => None,
            };
            // Userinfo speaks for the ID token's subject only.
            if let Some(info) =
                info.filter(|i| i.get("sub").and_then(|s| s.as_str()) == Some(claims.subject().as_str()))
            {
                if groups.is_none() {
                    groups = claim_strings(&info, &p.settings.groups_claim);
                }
                let text = |claim: &str| info.get(claim).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                if name.is_empty() {
                    name = text("name");
                }
                if email.is_empty() {
                    email = text("email");
                }
            }
        }
        let groups = groups.unwrap_or_default();
        let platform_admin = groups.iter().any(|g| p.settings.admin_groups.contains(g));
        Ok(Ok(Identity {
            subject: format!("oidc:{provider}:{}", claims.subject().as_str()),
            name,
            email,
            groups,
            platform_admin,
            id_token: id_token.to_string(),
        }))
    }

    /// Where to send the browser to end its session at the provider too,
    /// when the provider offers RP-initiated logout.
    ///
    /// # Errors
    /// The provider is unreachable.
    pub async fn end_session_url(&self, provider: &str, id_token: &str) -> Result<Option<String>> {
        let p = self.provider(provider)?;
        let d = self.discovered(p).await?;
        let Some(endpoint) = d.end_session.clone() else {
            return Ok(None);
        };
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(p.settings.client_id.clone()))
            .set_post_logout_redirect_uri(p.post_logout.clone());
        if let Ok(token) = id_token.parse::<CoreIdToken>() {
            request = request.set_id_token_hint(&token);
        }
        Ok(Some(request.http_get_url().to_string()))
    }
}

/// The (already verified) ID token's claims as JSON, for claims the typed
/// claims do not carry, such as groups under a configurable name.
fn payload(token: &CoreIdToken) -> serde_json::Value {
    token
        .to_string()
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// A claim that is a string or a list of strings; `None` when absent.
fn claim_strings(claims: &serde_json::Value, name: &str) -> Option<Vec<String>> {
    match claims.get(name)? {
        serde_json::Value::String(s) => Some(vec![s.clone()]),
        serde_json::Value::Array(items) => Some(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
        _ => None,
    }
}

/// A relative path to return to after login; anything else (another site,
/// `//host`, a scheme) becomes `/`, so the login cannot be an open redirect.
pub fn safe_return_to(requested: Option<&str>) -> String {
    match requested {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_return_to(Some("/portal/apps?x=1")), "/portal/apps?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a\nb",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn groups_are_read_from_a_list_or_a_single_string() {
        let claims = serde_json::json!({"groups": ["a", "b", 3], "role": "ops"});
        assert_eq!(
            claim_strings(&claims, "groups"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(claim_strings(&claims, "role"), Some(vec!["ops".to_string()]));
        assert_eq!(claim_strings(&claims, "missing"), None);
    }

    #[test]
    fn providers_are_read_side_by_side() {
        let env = Env::from_pairs([
            (PROVIDERS, "corp, partner"),
            ("PAAS_OIDC_CORP_ISSUER", "https://sso.corp.example"),
            ("PAAS_OIDC_CORP_CLIENT_ID", "paas"),
            ("PAAS_OIDC_CORP_ADMIN_GROUPS", "paas-admins,root"),
            ("PAAS_OIDC_PARTNER_ISSUER", "https://login.partner.example/realms/x"),
            ("PAAS_OIDC_PARTNER_CLIENT_ID", "paas-partner"),
            ("PAAS_OIDC_PARTNER_GROUPS_CLAIM", "roles"),
        ]);
        let providers = ProviderSettings::from_env(&env).unwrap();
        assert_eq!(
            providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["corp", "partner"]
        );
        assert_eq!(providers[0].admin_groups, ["paas-admins", "root"]);
        assert_eq!(providers[1].groups_claim, "roles");
        let missing = Env::from_pairs([(PROVIDERS, "corp")]);
        assert_eq!(
            ProviderSettings::from_env(&missing).unwrap_err().variable,
            "PAAS_OIDC_CORP_ISSUER"
        );
        let bad = Env::from_pairs([(PROVIDERS, "Corp")]);
        assert_eq!(ProviderSettings::from_env(&bad).unwrap_err().variable, PROVIDERS);
    }
}
