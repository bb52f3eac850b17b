//! The browser's side of a language switch.

use super::Locale;
use leptos::prelude::document;
use wasm_bindgen::JsCast;

/// Retags `<html lang>` (screen readers, fonts, the Copy button's label) and
/// remembers the choice in the cookie, so the server renders the next page
/// in it.
pub fn show_language(locale: Locale) {
    let doc = document();
    if let Some(root) = doc.document_element() {
        let _ = root.set_attribute("lang", locale.code());
    }
    if let Ok(html) = doc.dyn_into::<web_sys::HtmlDocument>() {
        let _ = html.set_cookie(&locale.cookie());
    }
}
