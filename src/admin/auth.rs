//! Admin authentication: the bearer token (compared in constant time over fixed-length
//! digests, so neither content nor length leaks), browser sessions held in memory (a
//! random id in an `HttpOnly; SameSite=Strict` cookie, never the token), and the CSRF
//! value every cookie-authenticated mutation must echo in `X-Stowage-CSRF`.
//!
//! No token configured means every request is refused: the admin surface fails closed.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Method, header};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::SecretKey;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "stowage_admin_session";
/// The header a cookie-authenticated mutation must carry.
pub const CSRF_HEADER: &str = "x-stowage-csrf";
/// How long a browser session lives after login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// At most this many live sessions; the one closest to expiry makes room.
pub const MAX_SESSIONS: usize = 1024;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `Authorization: Bearer <token>`: scripts; no CSRF exposure (browsers never add it).
    Bearer,
    /// A browser session; `csrf` is the value its mutations must echo.
    Session { csrf: String },
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the admin surface is disabled: no admin token is configured")]
    Disabled,
    #[error("authentication required: send Authorization: Bearer <admin token>")]
    Missing,
    #[error("the admin token or session is not valid")]
    Invalid,
    #[error("cookie-authenticated changes must send the X-Stowage-CSRF header of the session")]
    Csrf,
    #[error("too many failed attempts from this address; wait a minute")]
    Throttled,
}

struct Session {
    csrf: String,
    expires: Instant,
    /// Login order: breaks ties between equal expiry instants when evicting.
    seq: u64,
}

/// The admin token and the live sessions.
pub struct AdminAuth {
    /// SHA-256 of the token; the token itself is not kept.
    token_digest: Option<[u8; 32]>,
    /// Keyed by SHA-256 of the session id, so a lookup never compares raw ids.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    logins: std::sync::atomic::AtomicU64,
    /// Failed attempts per address (token guessing).
    failures: super::failures::FailureGate,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl AdminAuth {
    #[must_use]
    pub fn new(token: Option<&SecretKey>) -> Self {
        Self {
            token_digest: token.map(|t| digest(t.expose())),
            sessions: Mutex::new(HashMap::new()),
            logins: std::sync::atomic::AtomicU64::new(0),
            failures: super::failures::FailureGate::default(),
        }
    }

    /// [`Self::authorize`] for a request from `peer`: refused unchecked while the
    /// address is over its failure budget, and a wrong token or session counts.
    ///
    /// # Errors
    /// As `authorize`, or [`AuthError::Throttled`].
    pub fn authorize_from(
        &self,
        peer: std::net::IpAddr,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        self.guarded(peer, || self.authorize(method, headers))
    }

    /// [`Self::authenticate`] for a request from `peer` (see [`Self::authorize_from`]).
    ///
    /// # Errors
    /// As `authenticate`, or [`AuthError::Throttled`].
    pub fn authenticate_from(
        &self,
        peer: std::net::IpAddr,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        self.guarded(peer, || self.authenticate(headers))
    }

    /// [`Self::token_matches`] for the login form, from `peer`.
    ///
    /// # Errors
    /// [`AuthError::Throttled`] or [`AuthError::Invalid`].
    pub fn login_attempt(&self, peer: std::net::IpAddr, token: &str) -> Result<(), AuthError> {
        self.guarded(peer, || {
            if self.token_matches(token) {
                Ok(())
            } else {
                Err(AuthError::Invalid)
            }
        })
    }

    fn guarded<T>(
        &self,
        peer: std::net::IpAddr,
        check: impl FnOnce() -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        let now = Instant::now();
        if self.failures.blocked(peer, now) {
            return Err(AuthError::Throttled);
        }
        let r = check();
        if matches!(r, Err(AuthError::Invalid)) {
            self.failures.failed(peer, now);
        }
        r
    }

    /// Whether a token is configured at all.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.token_digest.is_some()
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `presented` is the admin token: a constant-time comparison of two
    /// SHA-256 digests (equal length whatever was sent).
    #[must_use]
    pub fn token_matches(&self, presented: &str) -> bool {
        let Some(want) = &self.token_digest else {
            return false;
        };
        digest(presented).ct_eq(want).into()
    }

    /// Authenticate a request by bearer token or session cookie. A present but wrong
    /// bearer token fails even when a valid cookie is sent too.
    ///
    /// # Errors
    /// [`AuthError`] saying why; never echoes what was sent.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        if !self.enabled() {
            return Err(AuthError::Disabled);
        }
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(bearer_token)
                .ok_or(AuthError::Invalid)?;
            return if self.token_matches(token) {
                Ok(Principal::Bearer)
            } else {
                Err(AuthError::Invalid)
            };
        }
        let id = session_cookie(headers).ok_or(AuthError::Missing)?;
        self.session(id)
            .map(|csrf| Principal::Session { csrf })
            .ok_or(AuthError::Invalid)
    }

    /// [`Self::authenticate`], plus the CSRF check for cookie-authenticated mutations.
    ///
    /// # Errors
    /// As `authenticate`, or [`AuthError::Csrf`].
    pub fn authorize(&self, method: &Method, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let principal = self.authenticate(headers)?;
        if let Principal::Session { csrf } = &principal
            && is_mutation(method)
        {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !sent.is_some_and(|s| csrf_matches(csrf, s)) {
                return Err(AuthError::Csrf);
            }
        }
        Ok(principal)
    }

    /// The CSRF value of a live session.
    fn session(&self, id: &str) -> Option<String> {
        let now = Instant::now();
        let mut sessions = self.sessions();
        let key = digest(id);
        match sessions.get(&key) {
            Some(s) if s.expires > now => Some(s.csrf.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Start a session; returns (session id for the cookie, CSRF value for the page).
    #[must_use]
    pub fn login(&self) -> (String, String) {
        let (id, csrf) = (random_token(), random_token());
        let now = Instant::now();
        let mut sessions = self.sessions();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| (s.expires, s.seq))
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            digest(&id),
            Session {
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
                seq: self
                    .logins
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            },
        );
        (id, csrf)
    }

    /// End the session named by the request's cookie, if any.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.sessions().remove(&digest(id));
        }
    }

    /// Live sessions (for tests and a future metric).
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }
}

/// Constant-time equality of two CSRF values.
#[must_use]
pub fn csrf_matches(expected: &str, sent: &str) -> bool {
    digest(expected).ct_eq(&digest(sent)).into()
}

/// Methods that change state and so need the CSRF header under cookie auth.
#[must_use]
pub fn is_mutation(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `Bearer <token>` (scheme case-insensitive, per RFC 6750).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The session id from the `Cookie` header(s).
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .take(8)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The `Set-Cookie` value that starts a session. `Secure` is added when the request
/// came through a TLS-terminating proxy (the listener itself speaks plain HTTP).
#[must_use]
pub fn session_set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
#[must_use]
pub fn session_clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
