//! Input made before the page is interactive is kept, not lost.
//!
//! The server-rendered page is on screen well before its WebAssembly has
//! downloaded and hydrated it (seconds on a slow phone). Links and the
//! conversation drawer work without script; buttons, Enter in the composer
//! and the pickers need the app. [`EARLY_INPUT_SCRIPT`] runs in `<head>`,
//! holds those inputs while the app loads, and [`release`] replays them, in
//! order, once hydration has attached the app's handlers:
//!
//! * a click on a button is held (the button is marked `data-queued`, so it
//!   looks pressed) and clicked again after hydration;
//! * Enter in the composer is held and becomes a submit of its form (the
//!   Send button follows the text meanwhile, as it will once hydrated);
//! * a picker's new value is set again and announced with `change`, since
//!   hydration puts back the value the server rendered.
//!
//! If the app fails to load (its script or WASM cannot be fetched or
//! started), nothing is held any more: the queued marks go and a sentence
//! (`.load-failed`, in the page's language) says to reload.
//!
//! Text typed into the composer needs no replay: the page's session reads
//! it from the box when it starts (see `ChatSession::new`).
//!
//! The script is inline so that it runs before the first paint; the page's
//! Content-Security-Policy allows it by its hash, like the theme script.

/// The name of the event [`release`] dispatches on `document`.
pub const HYDRATED_EVENT: &str = "bedrock-chat:hydrated";

/// Holds clicks, Enter and picker changes until [`HYDRATED_EVENT`].
pub const EARLY_INPUT_SCRIPT: &str = r#"(function(){var d=document,ready=false,broken=false,held=[];
function hold(ev,replay){ev.preventDefault();ev.stopImmediatePropagation();held.push(replay)}
function failed(){if(ready||broken)return;broken=true;held=[];
d.querySelectorAll("[data-queued]").forEach(function(b){b.removeAttribute("data-queued")});
var p=d.createElement("p");p.className="load-failed";p.setAttribute("role","alert");
p.textContent=d.documentElement.lang==="ko"?"페이지를 끝까지 불러오지 못했습니다. 새로 고침해 다시 시도해 주세요.":"The page could not finish loading. Reload it to try again.";
d.body.appendChild(p)}
window.addEventListener("error",function(ev){if(ev.target&&ev.target.tagName==="SCRIPT")failed()},true);
window.addEventListener("unhandledrejection",failed);
d.addEventListener("click",function(ev){if(ready||broken||!ev.target.closest)return;var b=ev.target.closest("button");
if(!b||b.disabled||b.hasAttribute("popovertarget"))return;b.setAttribute("data-queued","");
hold(ev,function(){b.removeAttribute("data-queued");if(b.isConnected&&!b.disabled)b.click()})},true);
d.addEventListener("keydown",function(ev){if(ready||broken||ev.key!=="Enter"||ev.shiftKey||ev.isComposing||ev.keyCode===229)return;
var t=ev.target,f=t.closest&&t.tagName==="TEXTAREA"&&t.closest("form.composer");if(!f)return;
hold(ev,function(){if(f.isConnected)f.requestSubmit()})},true);
d.addEventListener("input",function(ev){var t=ev.target,f=!ready&&t.closest&&t.closest("form.composer"),s=f&&f.querySelector("button.send");
if(s)s.disabled=!t.value.trim()},true);
d.addEventListener("change",function(ev){var s=ev.target;if(ready||broken||s.tagName!=="SELECT")return;var v=s.value;
held.push(function(){if(s.isConnected&&s.value!==v){s.value=v;s.dispatchEvent(new Event("change",{bubbles:true}))}})},true);
d.addEventListener("bedrock-chat:hydrated",function(){ready=true;var q=held;held=[];q.forEach(function(f){f()})},{once:true})})();"#;

/// Replays what [`EARLY_INPUT_SCRIPT`] held. Called once, after
/// `hydrate_body`; deferred by a task so that parts hydrated asynchronously
/// (those under `Suspense`, whose data came with the page and resolves in
/// microtasks) are done too.
#[cfg(feature = "hydrate")]
pub fn release() {
    leptos::prelude::set_timeout(
        || {
            if let Ok(event) = web_sys::Event::new(HYDRATED_EVENT) {
                let _ = leptos::prelude::document().dispatch_event(&event);
            }
        },
        std::time::Duration::ZERO,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_listens_for_the_event_release_dispatches() {
        assert!(EARLY_INPUT_SCRIPT.contains(&format!("\"{HYDRATED_EVENT}\"")));
        // Inline in an HTML <script>: nothing may close it.
        assert!(!EARLY_INPUT_SCRIPT.contains("</"));
    }
}
