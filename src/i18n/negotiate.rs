//! The locale a request asks for: the `lang` cookie, else `Accept-Language`.

use super::{Locale, COOKIE_NAME};
use leptos::prelude::use_context;

/// The locale for a request: the `lang` cookie when it names a supported
/// language, otherwise the first supported language of `Accept-Language` in
/// order of preference (`q`), otherwise English.
pub fn from_request(cookie_header: Option<&str>, accept_language: Option<&str>) -> Locale {
    cookie_header
        .and_then(from_cookie)
        .or_else(|| accept_language.and_then(from_accept_language))
        .unwrap_or_default()
}

/// The locale for the request being rendered (its headers are in the
/// rendering's context, put there by `leptos_axum`).
pub fn request_locale() -> Locale {
    use axum::http::{header, request::Parts};
    let Some(parts) = use_context::<Parts>() else {
        return Locale::default();
    };
    let value = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    from_request(value(header::COOKIE), value(header::ACCEPT_LANGUAGE))
}

fn from_cookie(header: &str) -> Option<Locale> {
    header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == COOKIE_NAME)
        .find_map(|(_, value)| Locale::from_tag(value.trim().trim_matches('"')))
}

fn from_accept_language(header: &str) -> Option<Locale> {
    let mut ranges: Vec<(&str, f32)> = header
        .split(',')
        .filter_map(|item| {
            let mut params = item.split(';');
            let tag = params.next()?.trim();
            let mut q = 1.0_f32;
            for param in params {
                if let Some((name, value)) = param.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("q") {
                        q = value
                            .trim()
                            .parse()
                            .ok()
                            .filter(|q: &f32| (0.0..=1.0).contains(q))?;
                    }
                }
            }
            (!tag.is_empty() && q > 0.0).then_some((tag, q))
        })
        .collect();
    // Stable: equal weights keep the order they were listed in.
    ranges.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranges.into_iter().find_map(|(tag, _)| Locale::from_tag(tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Locale;

    #[test]
    fn accept_language_picks_the_first_supported_language_by_weight() {
        let pick = |header| from_request(None, Some(header));
        assert_eq!(pick("ko"), Locale::Ko);
        assert_eq!(pick("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7"), Locale::Ko);
        assert_eq!(pick("KO-kr"), Locale::Ko);
        assert_eq!(pick("en-US,en;q=0.9"), Locale::En);
        assert_eq!(pick("en-US,ko;q=0.9"), Locale::En);
        assert_eq!(pick("en;q=0.5, ko;q=0.8"), Locale::Ko);
        assert_eq!(pick("ko;q=0.5, en"), Locale::En);
        // Unsupported languages are skipped, not taken as English.
        assert_eq!(pick("fr-FR, ko;q=0.5"), Locale::Ko);
        assert_eq!(pick("ja, de;q=0.9"), Locale::En);
        // q=0 means "not this one"; a broken weight drops its entry.
        assert_eq!(pick("ko;q=0, en;q=0.1"), Locale::En);
        assert_eq!(pick("ko;q=abc, en;q=0.1"), Locale::En);
        assert_eq!(pick("ko;q=2"), Locale::En);
        // Equal weights keep their order.
        assert_eq!(pick("ko;q=0.8, en;q=0.8"), Locale::Ko);
        assert_eq!(pick("*"), Locale::En);
        assert_eq!(pick(""), Locale::En);
    }

    #[test]
    fn the_cookie_wins_over_accept_language() {
        assert_eq!(from_request(Some("lang=en"), Some("ko-KR")), Locale::En);
        assert_eq!(
            from_request(Some("bc_owner=abc; lang=ko"), Some("en-US")),
            Locale::Ko
        );
        assert_eq!(from_request(Some("lang=ko"), None), Locale::Ko);
        // A cookie naming no supported language is ignored.
        assert_eq!(from_request(Some("lang=fr"), Some("ko")), Locale::Ko);
        assert_eq!(from_request(Some("xlang=en; other=1"), Some("ko")), Locale::Ko);
        assert_eq!(from_request(None, None), Locale::En);
    }

    #[test]
    fn the_cookie_remembers_a_choice_for_a_year_site_wide() {
        assert_eq!(
            Locale::Ko.cookie(),
            "lang=ko; Path=/; Max-Age=31536000; SameSite=Lax"
        );
        for locale in Locale::ALL {
            assert_eq!(from_request(Some(&locale.cookie()), None), locale);
        }
    }

    #[test]
    fn the_locale_serialises_as_its_code() {
        assert_eq!(serde_json::to_string(&Locale::Ko).unwrap(), "\"ko\"");
        let back: Locale = serde_json::from_str("\"en\"").unwrap();
        assert_eq!(back, Locale::En);
    }
}
