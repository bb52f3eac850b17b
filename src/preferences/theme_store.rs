//! The theme in the browser: stored in `localStorage`, applied to `<html>`.

use super::{Theme, THEME_STORAGE_KEY};
use leptos::prelude::{document, window};

/// The stored choice (the system's when none, or storage is blocked).
pub fn stored() -> Theme {
    window()
        .local_storage()
        .ok()
        .flatten()
        .and_then(|s| s.get_item(THEME_STORAGE_KEY).ok().flatten())
        .and_then(|code| Theme::from_code(&code))
        .unwrap_or_default()
}

/// Stores the choice and applies it to the page, as [`super::THEME_SCRIPT`]
/// does on load.
pub fn apply(theme: Theme) {
    let doc = document();
    if let Some(root) = doc.document_element() {
        let _ = match theme {
            Theme::System => root.remove_attribute("data-theme"),
            chosen => root.set_attribute("data-theme", chosen.code()),
        };
    }
    if let Ok(Some(meta)) = doc.query_selector(r#"meta[name="color-scheme"]"#) {
        let _ = meta.set_attribute("content", theme.color_scheme());
    }
    if let Ok(Some(storage)) = window().local_storage() {
        let _ = match theme {
            Theme::System => storage.remove_item(THEME_STORAGE_KEY),
            chosen => storage.set_item(THEME_STORAGE_KEY, chosen.code()),
        };
    }
}
