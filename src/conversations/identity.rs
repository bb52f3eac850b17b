//! Who owns a request's conversations.
//!
//! By default every browser is an anonymous owner, named by a random id in a
//! signed cookie (HMAC-SHA256; HttpOnly, SameSite=Lax) created on its first
//! visit. Behind a company's auth proxy, `[identity] trusted_user_header`
//! names a header the proxy sets to the signed-in user; the cookie is then
//! not used, and a request without that header is refused.
//!
//! The middleware puts an [`Owner`] into the request's extensions, where the
//! API handlers and server rendering find it.

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::{path::Path, sync::Arc};

/// The owner of a request: `anon:<uuid>` for a cookie, `user:<name>` for a
/// trusted header, so the two can never name the same owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(pub String);

impl Owner {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const COOKIE_NAME: &str = "bc_owner";
/// Browsers keep a cookie at most 400 days.
const COOKIE_MAX_AGE_SECS: u64 = 400 * 24 * 3600;
const MAX_HEADER_USER_CHARS: usize = 256;

/// How owners are recognised; built once at start.
#[derive(Clone)]
pub struct Identity {
    key: Arc<[u8]>,
    /// The header's name as configured, and parsed.
    trusted_header: Option<(String, header::HeaderName)>,
    secure_cookie: bool,
}

/// Why a request has no owner.
#[derive(Debug)]
pub struct MissingUser {
    pub header: String,
}

impl Identity {
    /// `secret` signs the cookies; when empty, a random secret is created in
    /// `data_dir` (and reused on the next start, so cookies stay valid).
    pub fn new(
        secret: &str,
        data_dir: &Path,
        trusted_header: &str,
        secure_cookie: bool,
    ) -> std::io::Result<Self> {
        let key: Vec<u8> = if secret.is_empty() {
            load_or_create_secret(&data_dir.join("cookie-secret"))?
        } else {
            secret.as_bytes().to_vec()
        };
        let trusted_header = match trusted_header.trim() {
            "" => None,
            name => Some((
                name.to_owned(),
                header::HeaderName::try_from(name).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("identity.trusted_user_header {name:?}: {e}"),
                    )
                })?,
            )),
        };
        Ok(Self {
            key: key.into(),
            trusted_header,
            secure_cookie,
        })
    }

    fn sign(&self, id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{id}.{hex}")
    }

    /// The id in a cookie value, if its signature is ours.
    fn verify(&self, value: &str) -> Option<String> {
        let (id, tag_hex) = value.split_once('.')?;
        if !super::is_valid_id(id) || tag_hex.len() != 64 {
            return None;
        }
        let tag: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(tag_hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&tag).ok()?;
        Some(id.to_owned())
    }

    fn set_cookie(&self, id: &str) -> HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE_NAME}={}; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Lax{secure}",
            self.sign(id)
        ))
        .expect("cookie is ASCII")
    }

    /// The owner named by the request, and the cookie to set when a new
    /// anonymous owner was made.
    pub fn resolve(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<(Owner, Option<HeaderValue>), MissingUser> {
        if let Some((label, name)) = &self.trusted_header {
            let user = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|u| !u.is_empty() && u.chars().count() <= MAX_HEADER_USER_CHARS);
            return match user {
                Some(user) => Ok((Owner(format!("user:{user}")), None)),
                None => Err(MissingUser {
                    header: label.clone(),
                }),
            };
        }
        let existing = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE_NAME)
            .find_map(|(_, value)| self.verify(value));
        Ok(match existing {
            Some(id) => (Owner(format!("anon:{id}")), None),
            None => {
                let id = super::store::new_id();
                let cookie = self.set_cookie(&id);
                (Owner(format!("anon:{id}")), Some(cookie))
            }
        })
    }
}

/// Middleware: resolves the owner, stores it in the request's extensions,
/// and sets the cookie of a new anonymous owner on the response.
pub async fn attach_owner(State(identity): State<Identity>, mut request: Request, next: Next) -> Response {
    match identity.resolve(request.headers()) {
        Ok((owner, cookie)) => {
            request.extensions_mut().insert(owner);
            let mut response = next.run(request).await;
            if let Some(cookie) = cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(missing) => crate::server::ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "not_signed_in",
            format!(
                "This server expects you to sign in through its proxy, and the request did not say who you are (no {} header). Reload the page or sign in again.",
                missing.header
            ),
            false,
        )
        .into_response(),
    }
}

fn load_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => return Ok(bytes),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut secret = [0_u8; 32];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private(path, &secret)?;
    Ok(secret.to_vec())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn identity(header: &str) -> Identity {
        Identity::new("test secret", Path::new("/nonexistent"), header, false).unwrap()
    }

    fn cookie_value(set_cookie: &HeaderValue) -> String {
        let s = set_cookie.to_str().unwrap();
        let first = s.split(';').next().unwrap();
        first.split_once('=').unwrap().1.to_owned()
    }

    #[test]
    fn a_new_browser_gets_a_signed_cookie_that_names_it_again() {
        let id = identity("");
        let (owner, cookie) = id.resolve(&HeaderMap::new()).unwrap();
        let cookie = cookie.expect("a new owner gets a cookie");
        let text = cookie.to_str().unwrap();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax"),
            "{text}"
        );

        let mut headers = HeaderMap::new();
        let value = format!("other=1; {COOKIE_NAME}={}", cookie_value(&cookie));
        headers.insert(header::COOKIE, value.parse().unwrap());
        let (again, none) = id.resolve(&headers).unwrap();
        assert_eq!(again, owner);
        assert!(none.is_none());
    }

    #[test]
    fn a_forged_or_foreign_cookie_is_a_new_owner() {
        let id = identity("");
        let (owner, cookie) = id.resolve(&HeaderMap::new()).unwrap();
        let value = cookie_value(&cookie.unwrap());
        let (uuid, _) = value.split_once('.').unwrap();
        let forged = format!("{uuid}.{}", "0".repeat(64));
        let other_key = Identity::new("another secret", Path::new("/x"), "", false).unwrap();
        for bad in [forged, other_key.sign(uuid), uuid.to_owned(), "garbage".into()] {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, format!("{COOKIE_NAME}={bad}").parse().unwrap());
            let (someone, cookie) = id.resolve(&headers).unwrap();
            assert_ne!(someone, owner, "{bad}");
            assert!(cookie.is_some());
        }
    }

    #[test]
    fn a_trusted_header_names_the_user_and_is_required() {
        let id = identity("X-Forwarded-User");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", "alice".parse().unwrap());
        let (owner, cookie) = id.resolve(&headers).unwrap();
        assert_eq!(owner.as_str(), "user:alice");
        assert!(cookie.is_none());
        assert!(id.resolve(&HeaderMap::new()).is_err());
    }

    #[test]
    fn the_generated_secret_is_kept_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::new("", dir.path(), "", false).unwrap();
        let b = Identity::new("", dir.path(), "", false).unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(a.key.len(), 32);
    }
}
