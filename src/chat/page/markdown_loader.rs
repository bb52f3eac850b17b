//! The Markdown renderer in the browser, loaded when first needed.
//!
//! Hydrating a page does not need the renderer: the server rendered every
//! stored answer, and hydration leaves that HTML in place. Only an answer
//! that streams, or one shown after the page loaded (another conversation,
//! earlier messages), needs pulldown-cmark, our safe writer and the
//! highlighter. So with the `split` feature (`./dev` builds with it and
//! `cargo leptos --split`) they are a WebAssembly module of their own, fetched
//! after hydration ([`preload`]) or when an answer first needs them.
//! Without the feature (a plain `cargo leptos watch`) they are in the main
//! module, and "loading" them is immediate.
//!
//! The split tool moves a function to the lazy module only when nothing in
//! the main module reaches it. So the page reaches the renderer only through
//! [`Renderer`]'s function pointers and [`MarkdownStream`] trait objects,
//! which only the split function creates: nothing else in the browser's
//! code may call `markdown::render` or `StreamRenderer` directly (small
//! helpers such as `markdown::escape` may stay in the main module).
//!
//! A load that fails (the network dropped) is final for the page: parts then
//! show their text unformatted with a sentence saying so, and a reload
//! tries again.

use crate::markdown::Update;
use std::cell::RefCell;

/// An answer being rendered as it streams (a `markdown::StreamRenderer`).
pub trait MarkdownStream: Send + Sync {
    fn push(&mut self, delta: &str) -> Update;
    fn finish(&mut self) -> Update;
}

impl MarkdownStream for crate::markdown::StreamRenderer {
    fn push(&mut self, delta: &str) -> Update {
        crate::markdown::StreamRenderer::push(self, delta)
    }
    fn finish(&mut self) -> Update {
        crate::markdown::StreamRenderer::finish(self)
    }
}

/// The renderer's entry points.
#[derive(Clone, Copy)]
pub struct Renderer {
    /// A whole answer's HTML (`markdown::render`).
    pub render: fn(&str) -> String,
    /// A renderer for an answer that streams.
    pub stream: fn() -> Box<dyn MarkdownStream>,
}

/// A module loaded on demand (the renderer, or `on_demand`'s) could not be
/// fetched.
#[derive(Clone, Copy, Debug)]
pub struct LoadFailed;

/// Only the split function (or the server) names the renderer's code.
fn entry_points() -> Renderer {
    Renderer {
        render: crate::markdown::render,
        stream: || Box::new(crate::markdown::StreamRenderer::new()),
    }
}

#[cfg(all(feature = "hydrate", feature = "split"))]
#[wasm_split_helpers::wasm_split(markdown, fallible)]
fn load_split() -> Result<Renderer, wasm_split_helpers::SplitLoaderError> {
    Ok(entry_points())
}

#[cfg(all(feature = "hydrate", feature = "split"))]
async fn load() -> Result<Renderer, LoadFailed> {
    load_split().await.map_err(|_| LoadFailed)
}

#[cfg(not(all(feature = "hydrate", feature = "split")))]
async fn load() -> Result<Renderer, LoadFailed> {
    Ok(entry_points())
}

type Waiter = Box<dyn FnOnce(Result<Renderer, LoadFailed>)>;

enum State {
    NotLoaded,
    Loading(Vec<Waiter>),
    Done(Result<Renderer, LoadFailed>),
}

thread_local! {
    static STATE: RefCell<State> = const { RefCell::new(State::NotLoaded) };
}

/// The renderer, if it is loaded. On the server it always is.
pub fn loaded() -> Option<Renderer> {
    if cfg!(not(feature = "hydrate")) {
        return Some(entry_points());
    }
    STATE.with_borrow(|state| match state {
        State::Done(Ok(renderer)) => Some(*renderer),
        _ => None,
    })
}

/// Runs `then` with the renderer: at once if it is loaded (or failed to),
/// otherwise when its load ends, which this starts if nobody has.
pub fn with_renderer(then: impl FnOnce(Result<Renderer, LoadFailed>) + 'static) {
    if cfg!(not(feature = "hydrate")) {
        return then(Ok(entry_points()));
    }
    let done = STATE.with_borrow_mut(|state| match state {
        State::Done(result) => Some(*result),
        State::Loading(_) | State::NotLoaded => {
            if matches!(state, State::NotLoaded) {
                *state = State::Loading(Vec::new());
                leptos::task::spawn_local(finish_loading());
            }
            None
        }
    });
    match done {
        // Called outside the borrow: `then` may ask for the renderer again.
        Some(result) => then(result),
        None => STATE.with_borrow_mut(|state| {
            if let State::Loading(waiters) = state {
                waiters.push(Box::new(then));
            }
        }),
    }
}

async fn finish_loading() {
    let result = load().await;
    let waiters = STATE.with_borrow_mut(|state| match std::mem::replace(state, State::Done(result)) {
        State::Loading(waiters) => waiters,
        _ => Vec::new(),
    });
    if result.is_err() {
        use leptos::prelude::Set;
        FAILED.with(|failed| failed.set(true));
    }
    for waiter in waiters {
        waiter(result);
    }
}

thread_local! {
    /// Whether the load failed, for the page's notice. Browser only.
    static FAILED: leptos::prelude::ArcRwSignal<bool> = leptos::prelude::ArcRwSignal::new(false);
}

/// Whether the renderer failed to load (the page then says so once).
/// Tracked: a view that reads it redraws when the load fails.
pub fn failed() -> bool {
    use leptos::prelude::Get;
    cfg!(feature = "hydrate") && FAILED.with(|failed| failed.get())
}

/// Starts loading the renderer, so that the first answer does not wait for
/// it. Called once the page is hydrated.
pub fn preload() {
    with_renderer(|_| {});
}
