//! Who owns a request's conversations.
//!
//! By default every browser is an anonymous owner, named by a random id in a
//! signed cookie (HMAC-SHA256; HttpOnly, SameSite=Lax) created on its first
//! visit. Behind a company's auth proxy, `[identity] trusted_user_header`
//! names a header the proxy sets to the signed-in user; the cookie is then
//! not used, and a request without that header is refused.
//!
//! The middleware puts an [`Owner`] and a [`Requester`] (the client's
//! address, whether the owner is new) into the request's extensions, where
//! the API handlers and server rendering find them.
//!
//! * The trusted header must occur once: a proxy that appends to it instead
//!   of replacing it would otherwise let a client name anyone (400).
//! * With `trusted_proxies` set, only those peers may name the user (401
//!   for others) or the client's address (`X-Forwarded-For`, read from the
//!   right, skipping the proxies themselves).
//! * With `secure_cookie`, the cookie is `__Host-bc_owner`: a sibling
//!   subdomain cannot plant one.

use super::ApiError;
use crate::{conversations::Owner, errors::ErrorCode};
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::{path::Path, sync::Arc};

pub const COOKIE_NAME: &str = "bc_owner";
/// The cookie's name when it is Secure: the browser then refuses one set by
/// another host or for another path.
pub const SECURE_COOKIE_NAME: &str = "__Host-bc_owner";

/// Who sent a request, beyond its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requester {
    /// The client's address: the peer, or what a trusted proxy says.
    pub address: std::net::IpAddr,
}
/// Browsers keep a cookie at most 400 days.
const COOKIE_MAX_AGE_SECS: u64 = 400 * 24 * 3600;
const MAX_HEADER_USER_CHARS: usize = 256;

/// How owners are recognised; built once at start.
#[derive(Clone)]
pub struct Identity {
    key: Arc<[u8]>,
    /// The header's name as configured, and parsed.
    trusted_header: Option<(String, header::HeaderName)>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    secure_cookie: bool,
}

/// Why a request has no owner.
#[derive(Debug)]
pub enum MissingUser {
    /// The trusted header is absent (or empty, or too long).
    Absent { header: String },
    /// The trusted header occurs more than once.
    Repeated { header: String },
    /// The request did not come through a trusted proxy.
    Untrusted,
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
            trusted_proxies: Arc::from([]),
            secure_cookie,
        })
    }

    /// Peers allowed to name the user and the client's address.
    pub fn with_trusted_proxies(mut self, proxies: Vec<ipnet::IpNet>) -> Self {
        self.trusted_proxies = proxies.into();
        self
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure_cookie {
            SECURE_COOKIE_NAME
        } else {
            COOKIE_NAME
        }
    }

    fn is_trusted(&self, peer: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }

    /// A one-way fingerprint of the cookie secret: instances that share a
    /// database compare theirs, since a cookie signed by one must be valid
    /// on every other.
    pub fn secret_tag(&self) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"bedrock-chat instances share this secret");
        mac.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A stable, short, one-way name for an owner, for logs: the owner
    /// cannot be read back from it without the secret.
    pub fn owner_tag(&self, owner: &Owner) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"owner-tag:");
        mac.update(owner.as_str().as_bytes());
        mac.finalize().into_bytes()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy
    /// that names it in `X-Forwarded-For` (the rightmost address that is
    /// not itself a trusted proxy).
    pub fn client_address(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded: Vec<std::net::IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        forwarded
            .iter()
            .rev()
            .find(|a| !self.is_trusted(**a))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer)
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
        if !crate::conversations::is_valid_id(id) || tag_hex.len() != 64 {
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
            "{}={}; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Lax{secure}",
            self.cookie_name(),
            self.sign(id)
        ))
        .expect("cookie is ASCII")
    }

    /// The owner named by the request (sent by `peer`, when known), and the
    /// cookie to set when a new anonymous owner was made.
    pub fn resolve(
        &self,
        headers: &axum::http::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<(Owner, Option<HeaderValue>), MissingUser> {
        if let Some((label, name)) = &self.trusted_header {
            if !self.trusted_proxies.is_empty() && !peer.is_some_and(|p| self.is_trusted(p)) {
                return Err(MissingUser::Untrusted);
            }
            let mut values = headers.get_all(name).iter();
            let first = values.next();
            if values.next().is_some() {
                return Err(MissingUser::Repeated {
                    header: label.clone(),
                });
            }
            let user = first
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|u| !u.is_empty() && u.chars().count() <= MAX_HEADER_USER_CHARS);
            return match user {
                Some(user) => Ok((Owner(format!("user:{user}")), None)),
                None => Err(MissingUser::Absent {
                    header: label.clone(),
                }),
            };
        }
        let cookie_name = self.cookie_name();
        let existing = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == cookie_name)
            .find_map(|(_, value)| self.verify(value));
        Ok(match existing {
            Some(id) => (Owner(format!("anon:{id}")), None),
            None => {
                let id = crate::conversations::store::new_id();
                let cookie = self.set_cookie(&id);
                (Owner(format!("anon:{id}")), Some(cookie))
            }
        })
    }
}

/// The owner's tag, on the response, for the access log.
#[derive(Debug, Clone)]
pub struct OwnerTag(pub String);

/// Middleware: resolves the owner and the client's address, stores them in
/// the request's extensions, and sets the cookie of a new anonymous owner on
/// the response.
pub async fn attach_owner(State(identity): State<Identity>, mut request: Request, next: Next) -> Response {
    let peer = super::serve::peer_of(&request).map(|addr| addr.ip());
    match identity.resolve(request.headers(), peer) {
        Ok((owner, cookie)) => {
            let tag = identity.owner_tag(&owner);
            let address = peer
                .map(|p| identity.client_address(p, request.headers()))
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            let requester = Requester { address };
            request.extensions_mut().insert(requester);
            request.extensions_mut().insert(owner);
            let mut response = next.run(request).await;
            if let Some(cookie) = cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response.extensions_mut().insert(OwnerTag(tag));
            response.extensions_mut().insert(requester);
            response
        }
        Err(MissingUser::Absent { header }) => ApiError::new(ErrorCode::NotSignedIn,
            format!(
                "This server expects you to sign in through its proxy, and the request did not say who you are (no {header} header). Reload the page or sign in again."
            ),
            false,
        )
        .into_response(),
        Err(MissingUser::Repeated { header }) => ApiError::bad_request(ErrorCode::RepeatedUserHeader,
            format!(
                "The request names its user more than once (several {header} headers), so it cannot be trusted. The proxy in front of this server must replace that header, not add to it."
            ),
        )
        .into_response(),
        Err(MissingUser::Untrusted) => ApiError::new(ErrorCode::UntrustedProxy,
            "This server takes requests only through its sign-in proxy, and this one came from elsewhere. Use the address your administrator gave you.",
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
        let (owner, cookie) = id.resolve(&HeaderMap::new(), None).unwrap();
        let cookie = cookie.expect("a new owner gets a cookie");
        let text = cookie.to_str().unwrap();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax"),
            "{text}"
        );

        let mut headers = HeaderMap::new();
        let value = format!("other=1; {COOKIE_NAME}={}", cookie_value(&cookie));
        headers.insert(header::COOKIE, value.parse().unwrap());
        let (again, none) = id.resolve(&headers, None).unwrap();
        assert_eq!(again, owner);
        assert!(none.is_none());
    }

    #[test]
    fn a_forged_or_foreign_cookie_is_a_new_owner() {
        let id = identity("");
        let (owner, cookie) = id.resolve(&HeaderMap::new(), None).unwrap();
        let value = cookie_value(&cookie.unwrap());
        let (uuid, _) = value.split_once('.').unwrap();
        let forged = format!("{uuid}.{}", "0".repeat(64));
        let other_key = Identity::new("another secret", Path::new("/x"), "", false).unwrap();
        for bad in [forged, other_key.sign(uuid), uuid.to_owned(), "garbage".into()] {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, format!("{COOKIE_NAME}={bad}").parse().unwrap());
            let (someone, cookie) = id.resolve(&headers, None).unwrap();
            assert_ne!(someone, owner, "{bad}");
            assert!(cookie.is_some());
        }
    }

    #[test]
    fn a_trusted_header_names_the_user_and_is_required() {
        let id = identity("X-Forwarded-User");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", "alice".parse().unwrap());
        let (owner, cookie) = id.resolve(&headers, None).unwrap();
        assert_eq!(owner.as_str(), "user:alice");
        assert!(cookie.is_none());
        assert!(id.resolve(&HeaderMap::new(), None).is_err());
    }

    #[test]
    fn a_repeated_user_header_is_refused_whichever_comes_first() {
        let id = identity("X-Forwarded-User");
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-user", "alice".parse().unwrap());
        headers.append("x-forwarded-user", "mallory".parse().unwrap());
        assert!(matches!(
            id.resolve(&headers, None),
            Err(MissingUser::Repeated { .. })
        ));
    }

    #[test]
    fn only_trusted_proxies_name_the_user_or_the_client() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: std::net::IpAddr = "192.0.2.9".parse().unwrap();
        let id = identity("X-Forwarded-User").with_trusted_proxies(vec!["10.0.0.0/8".parse().unwrap()]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", "alice".parse().unwrap());
        assert!(id.resolve(&headers, Some(proxy)).is_ok());
        assert!(matches!(
            id.resolve(&headers, Some(stranger)),
            Err(MissingUser::Untrusted)
        ));

        headers.insert(
            "x-forwarded-for",
            "203.0.113.1, 198.51.100.2, 10.0.0.7".parse().unwrap(),
        );
        // The rightmost address that is not a proxy: the one the proxies saw.
        assert_eq!(
            id.client_address(proxy, &headers),
            "198.51.100.2".parse::<std::net::IpAddr>().unwrap()
        );
        // A client cannot name itself.
        assert_eq!(id.client_address(stranger, &headers), stranger);
    }

    #[test]
    fn a_secure_cookie_is_host_only_by_name() {
        let id = Identity::new("test secret", Path::new("/nonexistent"), "", true).unwrap();
        let (owner, cookie) = id.resolve(&HeaderMap::new(), None).unwrap();
        let cookie = cookie.unwrap();
        let text = cookie.to_str().unwrap().to_owned();
        assert!(
            text.starts_with("__Host-bc_owner=") && text.contains("; Secure") && text.contains("Path=/"),
            "{text}"
        );
        let mut headers = HeaderMap::new();
        // A plain bc_owner (plantable by a sibling subdomain) is not read.
        let value = cookie_value(&cookie);
        headers.insert(header::COOKIE, format!("bc_owner={value}").parse().unwrap());
        assert_ne!(id.resolve(&headers, None).unwrap().0, owner);
        headers.insert(
            header::COOKIE,
            format!("__Host-bc_owner={value}").parse().unwrap(),
        );
        assert_eq!(id.resolve(&headers, None).unwrap().0, owner);
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
