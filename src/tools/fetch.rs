//! `fetch_url`: a web page or file by URL, as text, without letting the
//! model reach what only this server can reach (SSRF).
//!
//! * Only `http` and `https`. The host is resolved here, every address it
//!   resolves to must be public (no loopback, private, link-local, unique
//!   local, CGNAT, multicast, unspecified or documentation ranges, IPv4
//!   mapped ones included), and the connection goes to that checked address
//!   (so a second DNS answer cannot point elsewhere).
//! * Redirects are followed by hand, each checked the same way, at most
//!   [`MAX_REDIRECTS`].
//! * At most [`MAX_BYTES`] are read, within [`FETCH_TIME`]; text is passed
//!   on (cut, saying so), other content is described, not shown.
//!
//! `[tools] fetch_allow_private` lifts the address check, for a server whose
//! private network is meant to be read (and for tests on loopback).

use http_client::{redirect::Policy, Client, Url};
use serde_json::Value;
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

const MAX_REDIRECTS: usize = 3;
const MAX_BYTES: usize = 512 * 1024;
const FETCH_TIME: Duration = Duration::from_secs(10);

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
                || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// The checked address to connect to for `url`.
async fn checked_address(url: &Url, allow_private: bool) -> Result<SocketAddr, String> {
    let host = url.host_str().ok_or("The URL names no host.")?;
    let port = url.port_or_known_default().ok_or("The URL names no port.")?;
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|_| format!("The host {host:?} could not be found."))?
        .collect();
    let first = *addresses
        .first()
        .ok_or_else(|| format!("The host {host:?} has no address."))?;
    if !allow_private {
        if let Some(private) = addresses.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "{host} resolves to {}, an address on a private or local network; this server only fetches public addresses.",
                private.ip()
            ));
        }
    }
    Ok(first)
}

/// `fetch_url`: the text at `url`.
pub async fn fetch(input: Value, allow_private: bool) -> Result<String, String> {
    let raw = input
        .get("url")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or("Give the address to fetch as \"url\".")?;
    tokio::time::timeout(FETCH_TIME, fetch_checked(raw, allow_private))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{raw} did not answer within {} seconds.",
                FETCH_TIME.as_secs()
            ))
        })
}

async fn fetch_checked(raw: &str, allow_private: bool) -> Result<String, String> {
    let mut url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL ({e})."))?;
    for _ in 0..=MAX_REDIRECTS {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "Only http and https addresses can be fetched, not {}:.",
                url.scheme()
            ));
        }
        let address = checked_address(&url, allow_private).await?;
        let host = url.host_str().unwrap_or_default().to_owned();
        // Connect to the address checked above, whatever DNS says next.
        let client = Client::builder()
            .redirect(Policy::none())
            .resolve(&host, address)
            .user_agent("bedrock-chat fetch_url tool")
            .build()
            .map_err(|e| format!("The fetch could not be prepared: {e}"))?;
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("{url} could not be fetched: {e}"))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| format!("{url} redirects without saying where."))?;
            url = url
                .join(location)
                .map_err(|_| format!("{url} redirects to an invalid address."))?;
            continue;
        }
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut body: Vec<u8> = Vec::new();
        let mut cut = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("Reading {url} failed: {e}"))?
        {
            let room = MAX_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() > room {
                cut = true;
                break;
            }
        }
        let textual = kind.is_empty()
            || kind.starts_with("text/")
            || ["json", "xml", "javascript", "yaml"]
                .iter()
                .any(|t| kind.contains(t));
        if !textual {
            return Ok(format!(
                "{url} answered {status} with {kind} content ({}{} bytes), which is not text and is not shown.",
                body.len(),
                if cut { "+" } else { "" }
            ));
        }
        let text = String::from_utf8_lossy(&body);
        let note = if cut {
            format!("\n[… cut after {MAX_BYTES} bytes]")
        } else {
            String::new()
        };
        let answer = format!("{url} answered {status} ({kind}):\n{text}{note}");
        return if status.is_success() {
            Ok(answer)
        } else {
            Err(answer)
        };
    }
    Err(format!("{raw} redirects more than {MAX_REDIRECTS} times."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "::ffff:1.1.1.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn local_and_odd_addresses_are_refused() {
        let refused = |url: &str| {
            let url = url.to_owned();
            async move { fetch(serde_json::json!({ "url": url }), false).await.unwrap_err() }
        };
        assert!(refused("http://127.0.0.1:9/")
            .await
            .contains("private or local network"));
        assert!(refused("http://localhost:9/")
            .await
            .contains("private or local network"));
        assert!(refused("http://[::1]:9/")
            .await
            .contains("private or local network"));
        assert!(refused("file:///etc/passwd")
            .await
            .contains("Only http and https"));
        assert!(refused("not a url").await.contains("is not a URL"));
    }
}
