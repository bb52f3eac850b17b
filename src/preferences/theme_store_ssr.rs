//! Server twin of `theme_store.rs`: the server never knows the stored theme
//! (it renders the system's), and applies none.

use super::Theme;

pub fn stored() -> Theme {
    Theme::System
}

pub fn apply(_theme: Theme) {}
