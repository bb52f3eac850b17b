//! The transcript: the turns of the conversation on screen, kept pinned to
//! the newest text while it grows, with a button back to it once the user
//! has scrolled away.
//!
//! Pinning: the server-rendered page is a `column-reverse` box, which opens
//! at the newest text with no script. Once hydrated, the box is an ordinary
//! column whose scroll position the page keeps at the bottom while the user
//! follows: with `column-reverse`, each line added at the bottom moves
//! everything above it, and the browser's paint work per frame grew with
//! the length of the conversation; in normal flow only the scroll offset
//! changes. A `ResizeObserver` scrolls after the layout and before the paint
//! of the frame that grew, so nothing jumps. With turns in it, the box is
//! plain block flow rather than a flex column (`with-turns`): a flex column
//! measured its content again on every frame the answer grew.
//!
//! It is a keyed list, so adding a turn never re-renders earlier ones. User
//! messages are inserted as text; model output only as the markdown
//! module's escaped, sanitised HTML.

use super::{
    answer_footer::AnswerFooter,
    answer_parts::AnswerParts,
    earlier::EarlierMessages,
    turn::Turn,
    user_turn::{UserFooter, UserText},
    ChatSession,
};
use crate::{
    chat::{clipboard, ErrorInfo, Role},
    i18n::{use_i18n, Strings},
};
use leptos::{html, prelude::*};
use wasm_bindgen::{closure::Closure, JsCast};

/// How far above the newest text (in CSS pixels) counts as "scrolled up".
const JUMP_THRESHOLD_PX: i32 = 80;

/// The scrolling box around the transcript, which loads the conversation
/// named by the URL.
#[component]
pub fn TranscriptPane() -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<ChatSession>();
    let conversation = session.conversation;
    let turns = session.turns;
    let transcript = NodeRef::<html::Section>::new();
    let inner = NodeRef::<html::Div>::new();
    let scrolled_up = RwSignal::new(false);
    // Whether the view follows the newest text; the user leaves it by
    // scrolling up, and comes back by scrolling down or Jump to latest.
    let following = StoredValue::new(true);
    // The last scroll: the user leaves the newest text by scrolling up, not
    // when text grows below the view or turns near it are laid out.
    let last_scroll = StoredValue::new(ScrollPosition::default());
    // When the user last scrolled the box (wheel, touch, keys, scrollbar).
    let input = StoredValue::new(UserInput::default());
    let to_bottom = move || {
        if let Some(el) = transcript.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    };
    // To the newest text, following it from now on. What the user did
    // before no longer explains a scroll: only what they do next.
    let jump_to_newest = move || {
        following.set_value(true);
        scrolled_up.set(false);
        input.update_value(UserInput::forget);
        jumped();
        to_bottom();
    };
    Effect::new(move |_| {
        let (Some(section), Some(inner)) = (transcript.get(), inner.get()) else {
            return;
        };
        pin_to_bottom(&section, &inner, following, last_scroll);
    });
    // A new turn (a message sent, a conversation opened) brings the view to
    // it; earlier turns put above do not.
    let newest = Memo::new(move |_| turns.with(|t| t.last().map(|turn| turn.id)));
    Effect::new(move |_| {
        // Read, not only tracked: a memo computes (and follows the turns)
        // once it is read.
        let _newest = newest.get();
        jump_to_newest();
    });
    view! {
        <div class="transcript-wrap">
            <section
                class="transcript"
                // Block flow rather than a flex column once it has turns (see style/main.css).
                class:with-turns=move || turns.with(|t| !t.is_empty())
                // Focus goes here when the button it was on goes away.
                tabindex="-1"
                aria-label=move || i18n.t().transcript_label
                node_ref=transcript
                on:click=move |ev| clipboard::copy_code_on_click(&ev)
                on:wheel=move |_| input.update_value(UserInput::now)
                on:touchmove=move |_| input.update_value(UserInput::now)
                on:keydown=move |ev| {
                    if SCROLLING_KEYS.contains(&ev.key().as_str()) {
                        input.update_value(UserInput::now);
                    }
                }
                on:pointerdown=move |_| input.update_value(UserInput::pressed)
                on:pointerup=move |_| input.update_value(UserInput::released)
                on:pointercancel=move |_| input.update_value(UserInput::released)
                on:scroll=move |_| {
                    let Some(el) = transcript.get_untracked() else { return };
                    let now = ScrollPosition::of(&el);
                    let last = last_scroll.get_value();
                    last_scroll.set_value(now);
                    if now.below <= JUMP_THRESHOLD_PX {
                        following.set_value(true);
                        scrolled_up.set(false);
                    } else if now.went_up_from(last) && input.with_value(|i| i.explains(now, last)) {
                        following.set_value(false);
                        scrolled_up.set(true);
                    } else if following.get_value() {
                        // Only the text grew below a view that follows it,
                        // or turns near it took their real size: keep up.
                        to_bottom();
                    }
                }
            >
                <div class="transcript-inner" node_ref=inner>
                    <Transition fallback=move || view! { <p class="loading">{move || i18n.t().loading_conversation}</p> }>
                        {move || Suspend::new(async move {
                            let error = session.show(conversation.await);
                            view! { <Transcript turns error scrolled_up=scrolled_up.into()/> }
                        })}
                    </Transition>
                </div>
            </section>
            <Show when=move || scrolled_up.get()>
                <button
                    type="button"
                    class="jump-to-latest"
                    on:click=move |_| jump_to_newest()
                >
                    {move || i18n.t().jump_to_latest}
                </button>
            </Show>
        </div>
    }
}

thread_local! {
    static JUMPS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts the view's jumps to the newest text (a new turn, Jump to latest).
fn jumped() {
    JUMPS.with(|jumps| jumps.set(jumps.get().wrapping_add(1)));
}

/// How many times the view jumped to the newest text: something that holds
/// the view in place (earlier messages put above it) stops at a jump.
#[cfg(feature = "hydrate")]
pub fn jumps() -> u32 {
    JUMPS.with(std::cell::Cell::get)
}

/// Where the box was scrolled to, and how tall its content was.
#[derive(Clone, Copy, Default)]
struct ScrollPosition {
    top: i32,
    /// How far the newest text is below the view.
    below: i32,
    height: i32,
}

impl ScrollPosition {
    fn of(el: &web_sys::HtmlElement) -> Self {
        Self {
            top: el.scroll_top(),
            below: distance_to_bottom(el),
            height: el.scroll_height(),
        }
    }

    /// Up, and further from the bottom. (Turns above laid out smaller move
    /// the view up as much as the bottom: the browser keeping the text in
    /// place.)
    fn went_up_from(self, last: Self) -> bool {
        self.top < last.top && self.below > last.below
    }
}

/// The keys that scroll the box when it (or something in it) has the focus.
/// Enter on a button in it is not one.
const SCROLLING_KEYS: [&str; 7] = ["ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End", " "];

/// What the user last did that scrolls the box.
#[derive(Clone, Copy, Default)]
struct UserInput {
    /// When (ms, browser clock) the wheel, a touch or a key last moved.
    at_ms: f64,
    /// A pointer is down on the box (its scrollbar, perhaps).
    pressed: bool,
}

impl UserInput {
    /// How long after the user's input a scroll may still be its doing
    /// (smooth scrolling runs on after the wheel or key).
    const WINDOW_MS: f64 = 1_000.0;

    fn now(&mut self) {
        self.at_ms = js_sys::Date::now();
    }

    fn pressed(&mut self) {
        self.pressed = true;
        self.now();
    }

    fn released(&mut self) {
        self.pressed = false;
        self.now();
    }

    /// Input before now explains no later scroll (a pointer still down does).
    fn forget(&mut self) {
        self.at_ms = f64::NEG_INFINITY;
    }

    /// Whether a scroll up from `last` to `now` is the user's: they just
    /// scrolled, or nothing was laid out anew since the last scroll (find in
    /// page, a screen reader moving). A scroll up that comes with new
    /// content height and no input is the layout's: turns near the view
    /// taking their real size (`content-visibility`) after a jump.
    fn explains(self, now: ScrollPosition, last: ScrollPosition) -> bool {
        self.pressed || js_sys::Date::now() - self.at_ms < Self::WINDOW_MS || now.height == last.height
    }
}

/// How far the newest text is below the view, in CSS pixels. Before
/// hydration's switch the box is `column-reverse`, where 0 is the bottom and
/// scrolling up goes negative.
fn distance_to_bottom(el: &web_sys::HtmlElement) -> i32 {
    if el.class_list().contains("pinned-by-script") {
        el.scroll_height() - el.scroll_top() - el.client_height()
    } else {
        -el.scroll_top()
    }
}

/// Turns the server's `column-reverse` box into a normal column kept at the
/// bottom by script (see the module's notes), where the view was; then
/// follows the newest text whenever the content or the box changes size.
///
/// Each size change also records where the view is then, as `last_scroll`:
/// content that shrinks moves the view with no scroll event, and the next
/// scroll must be compared with where the view really was, not with the
/// scroll before the change (a scroll down from there looked like one up).
fn pin_to_bottom(
    section: &web_sys::HtmlElement,
    inner: &web_sys::HtmlElement,
    following: StoredValue<bool>,
    last_scroll: StoredValue<ScrollPosition>,
) {
    let below = distance_to_bottom(section);
    let _ = section.class_list().add_1("pinned-by-script");
    section.set_scroll_top(section.scroll_height() - section.client_height() - below);
    let scroller = section.clone();
    let on_resize = Closure::<dyn FnMut()>::new(move || {
        if following.try_get_value().unwrap_or(false) {
            scroller.set_scroll_top(scroller.scroll_height());
        }
        last_scroll.try_set_value(ScrollPosition::of(&scroller));
    });
    let Ok(observer) = web_sys::ResizeObserver::new(on_resize.as_ref().unchecked_ref()) else {
        return;
    };
    // Owned by the observer from now on (a JS function that lives as long as it).
    on_resize.forget();
    observer.observe(inner);
    observer.observe(section);
    let observer = send_wrapper::SendWrapper::new(observer);
    on_cleanup(move || observer.disconnect());
}

/// The turns on screen, or why the conversation could not be shown.
#[component]
fn Transcript(
    turns: RwSignal<Vec<Turn>>,
    error: Option<ErrorInfo>,
    scrolled_up: Signal<bool>,
) -> impl IntoView {
    let i18n = use_i18n();
    let has_error = error.is_some();
    view! {
        // Until a message sent from here starts a new conversation.
        <Show when=move || turns.with(Vec::is_empty)>
            {error.clone().map(|info| view! {
                <div class="load-error" role="alert">
                    <p>{info.message}</p>
                    <a href="/">{move || i18n.t().start_new_chat}</a>
                </div>
            })}
        </Show>
        <Show when=move || !has_error && turns.with(Vec::is_empty)>
            <p class="empty-state">{move || i18n.t().empty_state}</p>
        </Show>
        <EarlierMessages scrolled_up/>
        <For each=move || turns.get() key=|turn| turn.id children=move |turn| view! { <TurnView turn/> }/>
    }
}

#[component]
fn TurnView(turn: Turn) -> impl IntoView {
    let i18n = use_i18n();
    let (class, who): (_, fn(&Strings) -> &'static str) = match turn.role {
        Role::User => ("turn user", |t| t.you),
        Role::Assistant => ("turn assistant", |t| t.assistant),
    };
    let body = match turn.role {
        // The answer's parts: Markdown text, thinking, tool cards.
        Role::Assistant => view! { <AnswerParts parts=turn.parts/> }.into_any(),
        // The user's own words, as text. An empty text is left out rather
        // than rendered: server rendering writes an empty text node as a space.
        // A text the page already shows is hydrated as an empty string, which
        // adopts the server's text node as it is.
        Role::User => {
            let initial = match turn.text_on_page {
                true => Some(String::new()),
                false => Some(turn.text.get_value()).filter(|text| !text.is_empty()),
            };
            view! { <UserText turn initial/> }.into_any()
        }
    };
    view! {
        <article class=class class:superseded=move || turn.superseded.get() data-status=move || turn.status.get().as_str()>
            <div class="who">{move || who(i18n.t())}</div>
            {body}
            {match turn.role {
                Role::Assistant => view! { <AnswerFooter turn/> }.into_any(),
                Role::User => view! { <UserFooter turn/> }.into_any(),
            }}
        </article>
    }
}
