//! "Show earlier messages": a long conversation opens at its newest page
//! ([`crate::conversations::TRANSCRIPT_PAGE`] messages); the page before it
//! comes on screen when the user scrolls up to the oldest turn shown, or
//! presses this button above it (which keyboards and screen readers use, and
//! which stays as the way to try again after a failure).
//!
//! The view stays where it was: the turns the user was reading keep their
//! place on screen, and the older ones are above them, to scroll up to.

use super::ChatSession;
use crate::{conversations::client, i18n::use_i18n};
use leptos::{html, prelude::*, task::spawn_local};
use send_wrapper::SendWrapper;
use wasm_bindgen::{closure::Closure, JsCast};

/// How close (CSS pixels) the button may come to the top of the view
/// before the page above it loads: soon enough that a user scrolling up
/// rarely waits at the top.
const PRELOAD_MARGIN: &str = "600px 0px 0px 0px";

#[component]
pub fn EarlierMessages(
    /// The user scrolled up from the newest text. Only then does the button
    /// coming near load the page above: a conversation short enough to show
    /// the button at once does not load everything on opening.
    scrolled_up: Signal<bool>,
) -> impl IntoView {
    let session = expect_context::<ChatSession>();
    let i18n = use_i18n();
    let loading = RwSignal::new(false);
    let failed = RwSignal::new(false);
    let load = move |asked: bool| {
        // After a failure, only the button tries again; a press that lands
        // as the last page arrives asks for nothing.
        if loading.get_untracked()
            || (failed.get_untracked() && !asked)
            || session.earlier.with_untracked(|e| e.is_empty())
        {
            return;
        }
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
    let button = NodeRef::<html::Button>::new();
    // Each page shown sets `earlier` and so makes a new observer, which
    // reports at once whether the button is near: after a page too short to
    // push it away, the next one loads too.
    Effect::new(move |_| {
        session.earlier.track();
        let user_scrolled = scrolled_up.get();
        if let Some(button) = button.get() {
            if user_scrolled {
                load_when_near(&button, move || load(false));
            }
        }
    });
    view! {
        <Show when=move || !session.earlier.with(|e| e.is_empty())>
            <div class="earlier">
                <button
                    type="button"
                    class="load-earlier"
                    node_ref=button
                    on:click=move |_| load(true)
                    disabled=move || loading.get()
                >
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

/// Calls `near` whenever `button` comes within [`PRELOAD_MARGIN`] of the top
/// of the transcript's view (and once at the start if it is already), until
/// the reactive scope this runs in is cleaned up. An `IntersectionObserver`
/// rather than a scroll handler: the browser reports it off the scrolling
/// path, once per crossing. (`leptos-use` has one too; it would be the
/// client's only use of that crate.)
fn load_when_near(button: &web_sys::HtmlButtonElement, near: impl Fn() + 'static) {
    let Some(scroller) = button.closest("section.transcript").ok().flatten() else {
        return;
    };
    let on_change = Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
        let is_near = entries
            .iter()
            .filter_map(|entry| entry.dyn_into::<web_sys::IntersectionObserverEntry>().ok())
            .any(|entry| entry.is_intersecting());
        if is_near {
            near();
        }
    });
    let options = web_sys::IntersectionObserverInit::new();
    options.set_root(Some(&scroller));
    options.set_root_margin(PRELOAD_MARGIN);
    let Ok(observer) =
        web_sys::IntersectionObserver::new_with_options(on_change.as_ref().unchecked_ref(), &options)
    else {
        return;
    };
    observer.observe(button);
    // The callback lives exactly as long as its observer.
    let owned = SendWrapper::new((observer, on_change));
    on_cleanup(move || owned.take().0.disconnect());
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

/// Frames during which the first turn is held in place: about 0.2 s. The
/// turns put above may take their real size several frames late on a busy
/// machine (4 frames were too few: the turn read moved 490 px in 1 run of
/// 12 of the long-conversation spec, with two at once).
#[cfg(feature = "hydrate")]
const HOLD_FRAMES: u32 = 12;

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
            let focus_target = scroller.clone();
            request_animation_frame(move || {
                // The button it was on is gone (nothing left to load): the
                // focus would fall to the page's body. Anywhere else, as
                // when scrolling loaded the page, it stays.
                let dropped = document()
                    .active_element()
                    .is_none_or(|active| active.tag_name() == "BODY");
                if dropped {
                    let _ = focus_target.focus();
                }
            });
            hold(scroller, first, top, HOLD_FRAMES, super::transcript::jumps());
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
fn hold(scroller: web_sys::HtmlElement, first: web_sys::HtmlElement, top: i32, frames: u32, jumps: u32) {
    request_animation_frame(move || {
        // A message sent meanwhile took the view to the newest text: that
        // is where the user is now.
        if super::transcript::jumps() != jumps {
            return;
        }
        let moved = on_screen(&scroller, &first) - top;
        if moved != 0 {
            scroller.set_scroll_top(scroller.scroll_top() + moved);
        }
        if frames > 1 {
            hold(scroller, first, top, frames - 1, jumps);
        }
    });
}
