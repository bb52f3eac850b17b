//! "Show earlier messages": a long conversation opens at its newest page
//! ([`crate::conversations::TRANSCRIPT_PAGE`] messages); this button, above
//! the first turn, puts the page before it on screen.
//!
//! The view stays where it was: the turns the user was reading keep their
//! place on screen, and the older ones are above them, to scroll up to.

use super::ChatSession;
use crate::{conversations::client, i18n::use_i18n};
use leptos::{prelude::*, task::spawn_local};

#[component]
pub fn EarlierMessages() -> impl IntoView {
    let session = expect_context::<ChatSession>();
    let i18n = use_i18n();
    let loading = RwSignal::new(false);
    let failed = RwSignal::new(false);
    let load = move |_| {
        let (Some(id), Some(before)) = (session.on_screen.get_untracked(), session.first_message_id()) else {
            return;
        };
        loading.set(true);
        failed.set(false);
        spawn_local(async move {
            match client::earlier_messages(id, before).await {
                Ok(page) => {
                    let keep = KeptView::measure();
                    session.show_earlier(page);
                    keep.restore_after_render();
                }
                Err(_) => failed.set(true),
            }
            loading.set(false);
        });
    };
    view! {
        <Show when=move || !session.earlier.with(|e| e.is_empty())>
            <div class="earlier">
                <button type="button" class="load-earlier" on:click=load disabled=move || loading.get()>
                    {move || {
                        if loading.get() {
                            i18n.t().loading_earlier.to_owned()
                        } else {
                            (i18n.t().show_earlier)(session.earlier.with(|e| e.messages))
                        }
                    }}
                </button>
                <Show when=move || failed.get()>
                    <p class="earlier-failed" role="alert">{move || i18n.t().earlier_failed}</p>
                </Show>
            </div>
        </Show>
    }
}

/// Where the first turn on screen was, kept while turns are added above it:
/// the text being read stays where it was. The browser's own scroll
/// anchoring does not manage: it may hold the button in place, and the
/// turns put above are only laid out (`content-visibility`) a frame later,
/// changing their height again.
struct KeptView {
    #[cfg(feature = "hydrate")]
    kept: Option<(web_sys::HtmlElement, web_sys::HtmlElement, i32)>,
}

/// Frames during which the first turn is held in place.
#[cfg(feature = "hydrate")]
const HOLD_FRAMES: u32 = 4;

impl KeptView {
    fn measure() -> Self {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let find = |selector: &str| document().query_selector(selector).ok().flatten();
            let html = |el: web_sys::Element| el.dyn_into::<web_sys::HtmlElement>().ok();
            let kept = find("section.transcript")
                .and_then(html)
                .zip(find("section.transcript article.turn").and_then(html))
                .map(|(scroller, first)| {
                    let top = on_screen(&scroller, &first);
                    (scroller, first, top)
                });
            Self { kept }
        }
        #[cfg(not(feature = "hydrate"))]
        Self {}
    }

    /// From the frame that shows the new turns on, puts the first turn back
    /// where it was; then the focus, if it was on the button now gone, goes
    /// to the transcript.
    fn restore_after_render(self) {
        #[cfg(feature = "hydrate")]
        if let Some((scroller, first, top)) = self.kept {
            let focus_lost = document()
                .active_element()
                .is_none_or(|active| !scroller.contains(Some(&active)));
            if focus_lost {
                let _ = scroller.focus();
            }
            hold(scroller, first, top, HOLD_FRAMES);
        }
    }
}

/// Where `turn` is in `scroller`'s view: its place in the transcript (the
/// transcript's box is its offset parent's child, so that place does not
/// move with scrolling) less how far the transcript is scrolled.
#[cfg(feature = "hydrate")]
fn on_screen(scroller: &web_sys::HtmlElement, turn: &web_sys::HtmlElement) -> i32 {
    turn.offset_top() - scroller.scroll_top()
}

#[cfg(feature = "hydrate")]
fn hold(scroller: web_sys::HtmlElement, first: web_sys::HtmlElement, top: i32, frames: u32) {
    request_animation_frame(move || {
        let moved = on_screen(&scroller, &first) - top;
        if moved != 0 {
            scroller.set_scroll_top(scroller.scroll_top() + moved);
        }
        if frames > 1 {
            hold(scroller, first, top, frames - 1);
        }
    });
}
