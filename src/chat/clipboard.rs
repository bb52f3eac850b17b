//! The Copy button of code blocks in answers.
//!
//! Answers are HTML made by [`crate::markdown`], so their buttons carry no
//! handlers of their own: one click listener on the transcript catches every
//! `.copy-code` click (event delegation) and copies the text of that block's
//! `<code>` element, exactly the code, with no highlighting markup.

use leptos::ev::MouseEvent;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::Element;

/// How long the button says it copied.
const COPIED_MS: i32 = 1500;

/// Handles a click anywhere in the transcript; only clicks on a Copy button
/// do anything.
pub fn copy_code_on_click(ev: &MouseEvent) {
    let Some(button) = ev
        .target()
        .and_then(|t| t.dyn_into::<Element>().ok())
        .and_then(|el| el.closest(".copy-code").ok().flatten())
    else {
        return;
    };
    let code = button
        .closest(".code-block")
        .ok()
        .flatten()
        .and_then(|block| block.query_selector("code").ok().flatten())
        .and_then(|code| code.text_content())
        .unwrap_or_default();
    let Some(window) = web_sys::window() else {
        return;
    };
    let written = window.navigator().clipboard().write_text(&code);
    leptos::task::spawn_local(async move {
        // The label comes from CSS (`data-copied`), in the page's language.
        let outcome = match JsFuture::from(written).await {
            Ok(_) => "yes",
            Err(_) => "failed",
        };
        let _ = button.set_attribute("data-copied", outcome);
        let reset = wasm_bindgen::closure::Closure::once_into_js(move || {
            let _ = button.remove_attribute("data-copied");
        });
        let _ =
            window.set_timeout_with_callback_and_timeout_and_arguments_0(reset.unchecked_ref(), COPIED_MS);
    });
}
