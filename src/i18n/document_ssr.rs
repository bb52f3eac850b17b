//! Server twin of `document.rs`: languages are only switched in the browser.

use super::Locale;

pub fn show_language(_locale: Locale) {}
