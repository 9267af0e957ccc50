//! Browser sessions in Redis. A session id is 32 random bytes, new at every
//! login (no fixation), carried in an HttpOnly, SameSite=Strict cookie,
//! Secure when browsers reach the gateway over https (`PAAS_PUBLIC_URL`).
//! A session ends after its idle timeout without use or its absolute timeout
//! after login (defaults [`IDLE`] and [`ABSOLUTE`]), whichever comes first; "log out everywhere" ends all of a subject's
//! sessions. Writes made with the cookie must carry the session's CSRF token
//! in `X-CSRF-Token`.

use std::time::Duration;

use base64::Engine as _;
use kernel::caller::Caller;
use kernel::{Error, Result};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// The cookie's name.
pub const COOKIE: &str = "paas_session";
/// The header carrying the CSRF token on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// By default a session ends after this long unused.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// By default a session ends this long after login, however busy.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);

/// What a session holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Who logged in, with the roles resolved at login.
    pub caller: Caller,
    /// The token writes must echo in `X-CSRF-Token`.
    pub csrf: String,
    /// Login time, seconds since the epoch.
    pub created_at: i64,
    /// The OIDC provider that vouched for the caller, and its ID token (the
    /// hint for logging out at the provider too).
    #[serde(default)]
    pub origin: Option<Origin>,
}

/// Where an OIDC session came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Origin {
    /// The provider's name.
    pub provider: String,
    /// The ID token it issued at login.
    pub id_token: String,
}

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Unused this long, a session ends.
    pub idle: Duration,
    /// This long after login, a session ends.
    pub absolute: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            idle: IDLE,
            absolute: ABSOLUTE,
        }
    }
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unavailable(e: redis::RedisError) -> Error {
    Error::Unavailable(format!("the session store is unavailable: {e}"))
}

/// Sessions (and login attempt counters) in Redis, under a key prefix.
#[derive(Clone)]
pub struct Sessions {
    redis: ConnectionManager,
    prefix: String,
    timeouts: Timeouts,
}

impl Sessions {
    /// Connects to Redis; `prefix` keeps platforms (and test runs) apart.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn connect(url: &str, prefix: &str, timeouts: Timeouts) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| Error::invalid("PAAS_REDIS_URL", e.to_string()))?;
        let redis = ConnectionManager::new(client).await.map_err(unavailable)?;
        Ok(Self {
            redis,
            prefix: prefix.to_string(),
            timeouts,
        })
    }

    /// How long sessions live.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn key(&self, id: &str) -> String {
        format!("{}:session:{id}", self.prefix)
    }

    fn index(&self, subject: &str) -> String {
        format!("{}:sessions:{subject}", self.prefix)
    }

    /// Starts a session for `caller`; returns its id and CSRF token.
    ///
    /// # Errors
    /// Redis fails.
    pub async fn start(&self, caller: Caller, origin: Option<Origin>) -> Result<(String, String)> {
        let id = random_token();
        let session = Session {
            csrf: random_token(),
            created_at: chrono::Utc::now().timestamp(),
            caller,
            origin,
        };
        let json = serde_json::to_string(&session).map_err(Error::internal)?;
        let mut redis = self.redis.clone();
        let _: () = redis
            .set_ex(self.key(&id), json, self.timeouts.idle.as_secs())
            .await
            .map_err(unavailable)?;
        let _: () = redis
            .sadd(self.index(&session.caller.subject), &id)
            .await
            .map_err(unavailable)?;
        let _: () = redis
            .expire(
                self.index(&session.caller.subject),
                self.timeouts.absolute.as_secs() as i64,
            )
            .await
            .map_err(unavailable)?;
        Ok((id, session.csrf))
    }

    /// The live session with this id, refreshing its idle timeout.
    ///
    /// # Errors
    /// Redis fails.
    pub async fn find(&self, id: &str) -> Result<Option<Session>> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        let mut redis = self.redis.clone();
        // Read and refresh the idle timeout in one round trip.
        let json: Option<String> = redis
            .get_ex(self.key(id), redis::Expiry::EX(self.timeouts.idle.as_secs()))
            .await
            .map_err(unavailable)?;
        let Some(session) = json.and_then(|j| serde_json::from_str::<Session>(&j).ok()) else {
            return Ok(None);
        };
        if chrono::Utc::now().timestamp() - session.created_at >= self.timeouts.absolute.as_secs() as i64 {
            self.end(id).await?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// Ends one session.
    ///
    /// # Errors
    /// Redis fails.
    pub async fn end(&self, id: &str) -> Result<()> {
        let mut redis = self.redis.clone();
        let _: () = redis.del(self.key(id)).await.map_err(unavailable)?;
        Ok(())
    }

    /// Ends every session of a subject ("log out everywhere").
    ///
    /// # Errors
    /// Redis fails.
    pub async fn end_all(&self, subject: &str) -> Result<usize> {
        let mut redis = self.redis.clone();
        let ids: Vec<String> = redis.smembers(self.index(subject)).await.map_err(unavailable)?;
        for id in &ids {
            let _: () = redis.del(self.key(id)).await.map_err(unavailable)?;
        }
        let _: () = redis.del(self.index(subject)).await.map_err(unavailable)?;
        Ok(ids.len())
    }

    /// Counts a login attempt for `who` (a user or an address) before its
    /// credentials are checked, and returns the attempts in the current
    /// window and the seconds until it ends. The increment and the window's
    /// start are one script, so concurrent attempts each see their own count
    /// and none escapes the limit.
    ///
    /// # Errors
    /// Redis fails.
    pub async fn count_attempt(&self, who: &str, window: Duration) -> Result<(u64, i64)> {
        let script = redis::Script::new(
            r"local n = redis.call('INCR', KEYS[1])
              if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
              return {n, redis.call('TTL', KEYS[1])}",
        );
        let mut redis = self.redis.clone();
        let (n, ttl): (u64, i64) = script
            .key(format!("{}:login-failures:{who}", self.prefix))
            .arg(window.as_secs())
            .invoke_async(&mut redis)
            .await
            .map_err(unavailable)?;
        Ok((n, ttl.max(0)))
    }

    /// Takes back one attempt [`Self::count_attempt`] counted for `who`
    /// (it succeeded, or the check could not be made), never below zero.
    ///
    /// # Errors
    /// Redis fails.
    pub async fn uncount_attempt(&self, who: &str) -> Result<()> {
        let script = redis::Script::new(
            r"if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end",
        );
        let mut redis = self.redis.clone();
        let _: () = script
            .key(format!("{}:login-failures:{who}", self.prefix))
            .invoke_async(&mut redis)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Forgets the failures of `who` (after a successful login).
    ///
    /// # Errors
    /// Redis fails.
    pub async fn clear_failures(&self, who: &str) -> Result<()> {
        let mut redis = self.redis.clone();
        let _: () = redis
            .del(format!("{}:login-failures:{who}", self.prefix))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Keeps `value` under `key` for `ttl`, to be taken once with
    /// [`Self::take`] (a started OIDC login).
    ///
    /// # Errors
    /// Redis fails.
    pub async fn stash(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        let mut redis = self.redis.clone();
        let _: () = redis
            .set_ex(format!("{}:stash:{key}", self.prefix), value, ttl.as_secs())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Takes what [`Self::stash`] kept under `key`; a second take finds
    /// nothing (GETDEL is atomic, so two racing callbacks cannot both win).
    ///
    /// # Errors
    /// Redis fails.
    pub async fn take(&self, key: &str) -> Result<Option<String>> {
        if key.is_empty() || key.len() > 128 {
            return Ok(None);
        }
        let mut redis = self.redis.clone();
        redis
            .get_del(format!("{}:stash:{key}", self.prefix))
            .await
            .map_err(unavailable)
    }
}
