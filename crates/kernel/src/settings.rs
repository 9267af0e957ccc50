//! Settings from environment variables, optionally overlaid on a file.
//!
//! Every variable is a named constant with its default beside it. A missing or
//! malformed value stops the process with one line naming the variable and what
//! was expected ([`SettingError`]'s `Display`).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Names a file of `KEY=VALUE` lines read before the environment; the
/// environment wins where both set a variable.
pub const CONFIG_FILE: &str = "PAAS_CONFIG_FILE";
/// PostgreSQL URL. Default: the local trust-authenticated server that `paas up`
/// expects on a developer machine.
pub const DATABASE_URL: &str = "PAAS_DATABASE_URL";
const DATABASE_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/paas";
/// NATS URL (JetStream must be enabled on the server).
pub const NATS_URL: &str = "PAAS_NATS_URL";
const NATS_URL_DEFAULT: &str = "nats://127.0.0.1:4222";
/// Redis URL, for sessions and rate limits.
pub const REDIS_URL: &str = "PAAS_REDIS_URL";
const REDIS_URL_DEFAULT: &str = "redis://127.0.0.1:6379";
/// First token of every event subject, and the base of the stream name. Tests
/// set a unique one per run so runs never see each other's events.
pub const EVENT_PREFIX: &str = "PAAS_EVENT_PREFIX";
const EVENT_PREFIX_DEFAULT: &str = "paas";
/// Key that signs and verifies caller tokens between the gateway and services;
/// every process of one platform must share it. At least 32 bytes.
pub const CALLER_KEY: &str = "PAAS_CALLER_KEY";
/// Where OpenTelemetry traces go (OTLP/gRPC); unset means traces stay local.
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `json` (default, for machines) or `text` (for people at a terminal).
pub const LOG_FORMAT: &str = "PAAS_LOG_FORMAT";
/// Database connections per service. Small by default: six services share one
/// PostgreSQL in `paas up`, and most work is short transactions.
pub const DB_POOL_SIZE: &str = "PAAS_DB_POOL_SIZE";
const DB_POOL_SIZE_DEFAULT: u32 = 8;

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A setting that is missing or malformed. Its `Display` is the one line the
/// process prints before it stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {variable}: expected {expected}{}", found.as_ref().map_or_else(|| ", but it is not set".into(), |v| format!(", got {v:?}")))]
pub struct SettingError {
    /// The variable's name.
    pub variable: String,
    /// What a valid value looks like.
    pub expected: String,
    /// What was there, if anything (never shown for secrets).
    pub found: Option<String>,
}

/// Parses one setting's text. Implemented for the value types settings use.
pub trait FromSetting: Sized {
    /// What a valid value looks like, for the error line.
    const EXPECTED: &'static str;
    /// Parses the raw text, or says nothing (the caller names the variable).
    fn from_setting(raw: &str) -> Option<Self>;
}

macro_rules! from_str_setting {
    ($($t:ty => $expected:literal),* $(,)?) => {$(
        impl FromSetting for $t {
            const EXPECTED: &'static str = $expected;
            fn from_setting(raw: &str) -> Option<Self> { <$t>::from_str(raw.trim()).ok() }
        }
    )*};
}
from_str_setting! {
    u16 => "a whole number from 0 to 65535",
    u32 => "a whole number",
    u64 => "a whole number",
    usize => "a whole number",
    SocketAddr => "an address such as 127.0.0.1:8080",
}

impl FromSetting for String {
    const EXPECTED: &'static str = "a value";
    fn from_setting(raw: &str) -> Option<Self> {
        Some(raw.to_string())
    }
}

impl FromSetting for bool {
    const EXPECTED: &'static str = "true or false";
    fn from_setting(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        }
    }
}

impl FromSetting for Duration {
    const EXPECTED: &'static str = "a duration such as 500ms, 2s, 5m or 1h";
    fn from_setting(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let split = raw.find(|c: char| !c.is_ascii_digit())?;
        let (number, unit) = raw.split_at(split);
        let n: u64 = number.parse().ok()?;
        match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => Some(Duration::from_secs(n * 60)),
            "h" => Some(Duration::from_secs(n * 3600)),
            _ => None,
        }
    }
}

/// The raw variables a process was started with: the optional file's, then the
/// environment's on top.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads [`CONFIG_FILE`] if set, then the process environment.
    ///
    /// # Errors
    /// The file is named but unreadable, or a line is not `KEY=VALUE`.
    pub fn load() -> Result<Self, SettingError> {
        let mut vars = HashMap::new();
        if let Ok(path) = std::env::var(CONFIG_FILE) {
            let text = std::fs::read_to_string(&path).map_err(|e| SettingError {
                variable: CONFIG_FILE.into(),
                expected: format!("a readable file of KEY=VALUE lines ({e})"),
                found: Some(path.clone()),
            })?;
            vars.extend(parse_file(&text).map_err(|line| SettingError {
                variable: CONFIG_FILE.into(),
                expected: "KEY=VALUE lines (# starts a comment)".into(),
                found: Some(line),
            })?);
        }
        vars.extend(std::env::vars());
        Ok(Self { vars })
    }

    /// An environment made of the given pairs only (tests, `paas up`).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// Sets one variable, replacing what was there.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// The raw text of a variable, if set and not empty.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A variable that must be set.
    ///
    /// # Errors
    /// Missing or malformed.
    pub fn required<T: FromSetting>(&self, name: &str) -> Result<T, SettingError> {
        let raw = self.raw(name).ok_or_else(|| missing(name, T::EXPECTED))?;
        T::from_setting(raw).ok_or_else(|| malformed(name, T::EXPECTED, raw))
    }

    /// A variable with a default.
    ///
    /// # Errors
    /// Set but malformed.
    pub fn or<T: FromSetting>(&self, name: &str, default: T) -> Result<T, SettingError> {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => T::from_setting(raw).ok_or_else(|| malformed(name, T::EXPECTED, raw)),
        }
    }

    /// A variable that may be absent.
    ///
    /// # Errors
    /// Set but malformed.
    pub fn optional<T: FromSetting>(&self, name: &str) -> Result<Option<T>, SettingError> {
        self.raw(name)
            .map(|raw| T::from_setting(raw).ok_or_else(|| malformed(name, T::EXPECTED, raw)))
            .transpose()
    }

    /// A secret that must be set and at least `min_len` bytes; its value never
    /// appears in the error.
    ///
    /// # Errors
    /// Missing or too short.
    pub fn secret(&self, name: &str, min_len: usize) -> Result<Secret, SettingError> {
        let expected = format!("a secret of at least {min_len} bytes");
        let raw = self.raw(name).ok_or_else(|| missing(name, &expected))?;
        if raw.len() < min_len {
            return Err(SettingError {
                variable: name.into(),
                expected,
                found: Some(format!("{} bytes", raw.len())),
            });
        }
        Ok(Secret::new(raw))
    }
}

fn missing(name: &str, expected: &str) -> SettingError {
    SettingError {
        variable: name.into(),
        expected: expected.into(),
        found: None,
    }
}

fn malformed(name: &str, expected: &str, raw: &str) -> SettingError {
    SettingError {
        variable: name.into(),
        expected: expected.into(),
        found: Some(raw.into()),
    }
}

fn parse_file(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().trim_matches('"').to_string())),
            _ => Err(line.to_string()),
        })
        .collect()
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl FromSetting for LogFormat {
    const EXPECTED: &'static str = "json or text";
    fn from_setting(raw: &str) -> Option<Self> {
        match raw.trim() {
            "json" => Some(Self::Json),
            "text" => Some(Self::Text),
            _ => None,
        }
    }
}

/// A PostgreSQL connection URL.
#[derive(Clone)]
pub struct DatabaseUrl(url::Url);

impl DatabaseUrl {
    /// The URL text, password included: hand it to the driver, never to a log.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
    /// The same server with another database name.
    pub fn with_database(&self, name: &str) -> Self {
        let mut url = self.0.clone();
        url.set_path(&format!("/{name}"));
        Self(url)
    }
    /// Parses URL text (same rules as the setting).
    pub fn from_url_text(raw: &str) -> Option<Self> {
        <Self as FromSetting>::from_setting(raw)
    }
    /// The database name in the URL.
    pub fn database(&self) -> &str {
        self.0.path().trim_start_matches('/')
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        write!(f, "{shown}")
    }
}

impl FromSetting for DatabaseUrl {
    const EXPECTED: &'static str = "a URL such as postgres://user@127.0.0.1:5432/paas";
    fn from_setting(raw: &str) -> Option<Self> {
        let url = url::Url::parse(raw.trim()).ok()?;
        let ok = matches!(url.scheme(), "postgres" | "postgresql") && url.host().is_some() && url.path().len() > 1;
        ok.then_some(Self(url))
    }
}

/// A NATS or Redis style URL: a scheme from an allowed list and a host.
#[derive(Debug, Clone)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// The URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first token of event subjects: lower-case letters, digits, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPrefix(String);

impl EventPrefix {
    /// Parses a prefix.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        ok.then(|| Self(raw.to_string()))
    }
    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromSetting for EventPrefix {
    const EXPECTED: &'static str = "lower-case letters, digits, _ or - (at most 32)";
    fn from_setting(raw: &str) -> Option<Self> {
        Self::parse(raw.trim())
    }
}

/// Settings every platform process needs, whatever services it runs.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Where state lives; each service uses its own schema in this database.
    pub database_url: DatabaseUrl,
    /// The JetStream-enabled NATS server.
    pub nats_url: ServerUrl,
    /// Redis, for sessions and rate limits.
    pub redis_url: ServerUrl,
    /// First token of event subjects.
    pub event_prefix: EventPrefix,
    /// Signs and verifies caller tokens.
    pub caller_key: Secret,
    /// OTLP/gRPC endpoint for traces, if any.
    pub otlp_endpoint: Option<String>,
    /// How logs are written.
    pub log_format: LogFormat,
    /// Database connections per service.
    pub db_pool_size: u32,
}

impl Platform {
    /// Reads and validates the platform settings.
    ///
    /// # Errors
    /// The first missing or malformed variable.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Ok(Self {
            database_url: env.or(
                DATABASE_URL,
                DatabaseUrl::from_setting(DATABASE_URL_DEFAULT).expect("valid default"),
            )?,
            nats_url: server_url(env, NATS_URL, NATS_URL_DEFAULT, &["nats", "tls"])?,
            redis_url: server_url(env, REDIS_URL, REDIS_URL_DEFAULT, &["redis", "rediss"])?,
            event_prefix: env.or(
                EVENT_PREFIX,
                EventPrefix::parse(EVENT_PREFIX_DEFAULT).expect("valid default"),
            )?,
            caller_key: env.secret(CALLER_KEY, 32)?,
            otlp_endpoint: env.optional(OTLP_ENDPOINT)?,
            log_format: env.or(LOG_FORMAT, LogFormat::Json)?,
            db_pool_size: env.or(DB_POOL_SIZE, DB_POOL_SIZE_DEFAULT)?,
        })
    }
}

fn server_url(env: &Env, name: &str, default: &str, schemes: &[&str]) -> Result<ServerUrl, SettingError> {
    let raw = env.raw(name).unwrap_or(default);
    let expected = format!("a URL such as {default}");
    match url::Url::parse(raw.trim()) {
        Ok(url) if schemes.contains(&url.scheme()) && url.host().is_some() => Ok(ServerUrl(raw.trim().to_string())),
        _ => Err(malformed(name, &expected, raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Env {
        Env::from_pairs([(CALLER_KEY, "k".repeat(32))])
    }

    #[test]
    fn defaults_are_valid() {
        let p = Platform::from_env(&base()).unwrap();
        assert_eq!(p.event_prefix.as_str(), "paas");
        assert_eq!(p.database_url.database(), "paas");
    }

    #[test]
    fn a_malformed_database_url_names_the_variable_in_one_line() {
        let mut env = base();
        env.set(DATABASE_URL, "mysql://nope");
        let err = Platform::from_env(&env).unwrap_err().to_string();
        assert_eq!(
            err,
            "setting PAAS_DATABASE_URL: expected a URL such as postgres://user@127.0.0.1:5432/paas, got \"mysql://nope\""
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn a_missing_caller_key_is_reported_without_a_value() {
        let err = Platform::from_env(&Env::default()).unwrap_err();
        assert_eq!(err.variable, CALLER_KEY);
        assert_eq!(
            err.to_string(),
            "setting PAAS_CALLER_KEY: expected a secret of at least 32 bytes, but it is not set"
        );
    }

    #[test]
    fn a_short_secret_is_refused_without_showing_it() {
        let env = Env::from_pairs([(CALLER_KEY, "hunter2")]);
        let err = Platform::from_env(&env).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(Duration::from_setting("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(Duration::from_setting("2s"), Some(Duration::from_secs(2)));
        assert_eq!(Duration::from_setting("5m"), Some(Duration::from_secs(300)));
        assert_eq!(Duration::from_setting("5"), None);
        assert_eq!(Duration::from_setting("s"), None);
    }

    #[test]
    fn the_file_is_read_as_key_value_lines() {
        let vars = parse_file("# comment\nA=1\n B = \"two\" \n").unwrap();
        assert_eq!(vars, vec![("A".into(), "1".into()), ("B".into(), "two".into())]);
        assert_eq!(parse_file("nonsense").unwrap_err(), "nonsense");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(***)");
        let url = DatabaseUrl::from_setting("postgres://u:pw@h:5432/d").unwrap();
        assert!(!format!("{url:?}").contains("pw@"));
    }

    #[test]
    fn event_prefixes_are_subject_tokens() {
        assert!(EventPrefix::parse("t_1a-b").is_some());
        assert!(EventPrefix::parse("a.b").is_none());
        assert!(EventPrefix::parse("A").is_none());
        assert!(EventPrefix::parse("").is_none());
    }
}
