//! The page's two switches, language and colour theme (both sides).
//!
//! The language comes from the page config (the server chose it), so both
//! sides render the same markup; switching it is [`I18n::switch`].
//!
//! The theme is the browser's alone: a choice stored in `localStorage`
//! (`theme`: `light` or `dark`; none follows the system), applied as
//! `data-theme` on `<html>`. [`THEME_SCRIPT`] applies it in `<head>` before
//! the first paint; Leptos never renders that attribute, and the switch
//! learns the stored choice only after hydration, so the server's markup
//! (which cannot know it) is what hydration finds.

use crate::i18n::{use_i18n, I18n, Locale};
use leptos::prelude::*;

// The stored theme lives in the browser's localStorage; it is read and
// applied from effects and event handlers only, which never run on the server.
mod theme_store;

/// The colour theme the user chose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Theme {
    /// Follow the system's light or dark preference.
    #[default]
    System,
    Light,
    Dark,
}

/// The `localStorage` key of the stored theme.
pub const THEME_STORAGE_KEY: &str = "theme";

/// Runs in `<head>`, before the body paints: applies the stored theme to
/// `<html>` and to `<meta name="color-scheme">` (which must come before it).
/// Keep in step with [`Theme::apply`].
pub const THEME_SCRIPT: &str = r#"try{var t=localStorage.getItem("theme");if(t==="light"||t==="dark"){var r=document.documentElement;r.setAttribute("data-theme",t);var m=document.querySelector('meta[name="color-scheme"]');if(m)m.setAttribute("content",t)}}catch(e){}"#;

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Light, Theme::Dark];

    /// The value stored and set as `data-theme`; none for the system's.
    pub fn code(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    pub fn from_code(code: &str) -> Option<Theme> {
        Theme::ALL.into_iter().find(|t| t.code() == code)
    }

    fn label(self, i18n: I18n) -> &'static str {
        let t = i18n.t();
        match self {
            Theme::System => t.theme_system,
            Theme::Light => t.theme_light,
            Theme::Dark => t.theme_dark,
        }
    }

    /// The content of `<meta name="color-scheme">` for this theme.
    pub fn color_scheme(self) -> &'static str {
        match self {
            Theme::System => "light dark",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

/// The language and theme switches.
#[component]
pub fn Preferences() -> impl IntoView {
    let i18n = use_i18n();
    let initial_locale = i18n.locale().get_untracked();
    let theme = RwSignal::new(Theme::System);
    // After hydration: the switch shows the theme the head script applied.
    Effect::new(move |_| theme.set(theme_store::stored()));

    let on_language = move |ev| {
        if let Some(locale) = Locale::from_tag(&event_target_value(&ev)) {
            i18n.switch(locale);
        }
    };
    let on_theme = move |ev| {
        if let Some(chosen) = Theme::from_code(&event_target_value(&ev)) {
            theme.set(chosen);
            theme_store::apply(chosen);
        }
    };
    view! {
        <div class="preferences">
            <label class="preference">
                <span class="preference-icon" aria-hidden="true">"文A"</span>
                <select
                    name="language"
                    aria-label=move || i18n.t().language_label
                    title=move || i18n.t().language_label
                    on:change=on_language
                    prop:value=move || i18n.locale().get().code()
                >
                    {Locale::ALL
                        .into_iter()
                        .map(|locale| {
                            view! {
                                <option value=locale.code() lang=locale.code() selected={locale == initial_locale}>
                                    {locale.native_name()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label class="preference">
                <span class="preference-icon" aria-hidden="true">"◐"</span>
                <select
                    name="theme"
                    aria-label=move || i18n.t().theme_label
                    title=move || i18n.t().theme_label
                    on:change=on_theme
                    prop:value=move || theme.get().code()
                >
                    {Theme::ALL
                        .into_iter()
                        .map(|choice| {
                            view! {
                                <option value=choice.code() selected={choice == Theme::System}>
                                    {move || choice.label(i18n)}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
        </div>
    }
}
