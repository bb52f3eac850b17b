//! The chat page: a transcript that grows as the answer streams, and a composer.
//!
//! Rendering cost is kept proportional to what changed: the transcript is a
//! keyed list, so adding a turn never re-renders earlier ones, and an answer's
//! text grows by appending each delta to its element as a new text node
//! (work per delta is proportional to the delta, not to the answer or the
//! transcript). Text is always inserted as text, never parsed as HTML.

use super::{stream_client, ChatMessage, ChatRequest, ErrorInfo, Role, StreamEnd, StreamEvent, Usage};
use crate::app::PageConfig;
use leptos::{ev, html, prelude::*};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Streaming,
    Complete,
    Stopped,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Streaming => "streaming",
            Status::Complete => "complete",
            Status::Stopped => "stopped",
            Status::Failed => "error",
        }
    }
}

/// One message of the transcript. Every field is a reactive handle, so a
/// `Turn` is `Copy` and the stream callbacks can hold it.
#[derive(Clone, Copy)]
struct Turn {
    id: u64,
    role: Role,
    text: StoredValue<String>,
    status: RwSignal<Status>,
    error: RwSignal<Option<ErrorInfo>>,
    usage: RwSignal<Option<Usage>>,
    body: NodeRef<html::Div>,
}

impl Turn {
    fn new(id: u64, role: Role, text: String, status: Status) -> Self {
        Self {
            id,
            role,
            text: StoredValue::new(text),
            status: RwSignal::new(status),
            error: RwSignal::new(None),
            usage: RwSignal::new(None),
            body: NodeRef::new(),
        }
    }

    fn apply(self, event: StreamEvent) {
        match event {
            StreamEvent::Delta(delta) => {
                if let Some(body) = self.body.get_untracked() {
                    // A new text node: the browser does not copy what is there.
                    let _ = body.append_with_str_1(&delta.text);
                }
                self.text.update_value(|text| text.push_str(&delta.text));
            }
            StreamEvent::Usage(usage) => self.usage.set(Some(usage)),
            StreamEvent::Error(info) => self.fail(info),
            StreamEvent::Done(_) => self.status.set(Status::Complete),
        }
    }

    fn finish(self, end: StreamEnd) {
        match end {
            StreamEnd::Finished => {}
            StreamEnd::Stopped => self.status.set(Status::Stopped),
            StreamEnd::Failed(info) => self.fail(info),
        }
    }

    fn fail(self, info: ErrorInfo) {
        self.error.set(Some(info));
        self.status.set(Status::Failed);
    }
}

/// The conversation as the model should see it: every exchange whose answer
/// has text. An exchange that failed before any text is left out, so user
/// and assistant still take turns.
fn history(turns: &[Turn]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(turns.len() + 1);
    for pair in turns.chunks_exact(2) {
        let answer = pair[1].text.get_value();
        if answer.trim().is_empty() {
            continue;
        }
        messages.push(ChatMessage {
            role: Role::User,
            content: pair[0].text.get_value(),
        });
        messages.push(ChatMessage {
            role: Role::Assistant,
            content: answer,
        });
    }
    messages
}

#[component]
pub fn ChatPage(page: PageConfig) -> impl IntoView {
    let turns = RwSignal::new(Vec::<Turn>::new());
    let next_id = StoredValue::new(0_u64);
    let draft = RwSignal::new(String::new());
    let model = RwSignal::new(page.default_model.clone());
    let active = StoredValue::new_local(None::<stream_client::ActiveStream>);
    let streaming = RwSignal::new(false);
    // Set once the page is interactive; end-to-end tests wait for it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    let max_chars = page.max_message_chars;
    let draft_chars = Memo::new(move |_| draft.with(|d| d.chars().count()));
    let too_long = move || draft_chars.get() > max_chars;
    let can_send = move || !streaming.get() && !too_long() && draft.with(|d| !d.trim().is_empty());

    let new_turn = move |role, text, status| {
        let id = next_id.get_value();
        next_id.set_value(id + 1);
        Turn::new(id, role, text, status)
    };

    let send = move || {
        if !can_send() {
            return;
        }
        let text = draft.get_untracked();
        let mut messages = turns.with_untracked(|t| history(t));
        messages.push(ChatMessage {
            role: Role::User,
            content: text.clone(),
        });
        let question = new_turn(Role::User, text, Status::Complete);
        let reply = new_turn(Role::Assistant, String::new(), Status::Streaming);
        turns.update(|t| t.extend([question, reply]));
        draft.set(String::new());
        streaming.set(true);
        let request = ChatRequest {
            model_id: Some(model.get_untracked()),
            messages,
        };
        let handle = stream_client::start(
            request,
            move |event| reply.apply(event),
            move |end| {
                reply.finish(end);
                active.set_value(None);
                streaming.set(false);
            },
        );
        active.set_value(Some(handle));
    };
    let stop = move || active.with_value(|a| a.iter().for_each(|a| a.stop()));

    let on_keydown = move |ev: ev::KeyboardEvent| {
        // Enter sends; Shift+Enter is a new line; Enter that confirms an IME
        // composition (Korean, Japanese, Chinese) must never send.
        let composing = ev.is_composing() || ev.key_code() == 229;
        if ev.key() == "Enter" && !ev.shift_key() && !composing {
            ev.prevent_default();
            send();
        } else if ev.key() == "Escape" && streaming.get_untracked() {
            stop();
        }
    };

    let models = page.models.clone();
    let default_model = page.default_model.clone();
    view! {
        <main class="chat" data-hydrated=move || hydrated.get().to_string()>
            <header class="topbar">
                <h1>"bedrock-chat"</h1>
                <label class="model-picker">
                    <span class="visually-hidden">"Model"</span>
                    <select
                        aria-label="Model"
                        on:change=move |ev| model.set(event_target_value(&ev))
                        prop:value=move || model.get()
                    >
                        {models
                            .into_iter()
                            .map(|m| {
                                let selected = m.id == default_model;
                                view! { <option value=m.id selected=selected>{m.label}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                {page.demo.then(|| view! {
                    <span class="badge demo" title="No AWS credentials were found, so answers come from the built-in Bedrock simulator.">
                        "demo model (offline)"
                    </span>
                })}
            </header>

            // column-reverse keeps the view pinned to the newest text while it
            // grows, with no script, and leaves it alone once the user scrolls up.
            <section class="transcript" aria-label="Conversation">
                <div class="transcript-inner">
                    <Show when=move || turns.with(Vec::is_empty)>
                        <p class="empty-state">"Ask anything. Answers appear as they are written."</p>
                    </Show>
                    <For each=move || turns.get() key=|turn| turn.id children=move |turn| view! { <TurnView turn/> }/>
                </div>
            </section>

            <form class="composer" on:submit=move |ev: ev::SubmitEvent| {
                ev.prevent_default();
                send();
            }>
                <textarea
                    name="message"
                    aria-label="Message"
                    placeholder="Message (Enter to send, Shift+Enter for a new line)"
                    rows="2"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=on_keydown
                ></textarea>
                <Show
                    when=move || streaming.get()
                    fallback=move || view! {
                        <button type="submit" class="send" disabled=move || !can_send()>"Send"</button>
                    }
                >
                    <button type="button" class="stop" on:click=move |_| stop()>"Stop"</button>
                </Show>
                <Show when=too_long>
                    <p class="limit" role="alert">
                        {move || format!("{} / {max_chars} characters: shorten your message to send it.", draft_chars.get())}
                    </p>
                </Show>
            </form>
        </main>
    }
}

#[component]
fn TurnView(turn: Turn) -> impl IntoView {
    let (class, who) = match turn.role {
        Role::User => ("turn user", "You"),
        Role::Assistant => ("turn assistant", "Assistant"),
    };
    // The text at creation; an answer then grows by appended text nodes.
    let initial = turn.text.get_value();
    view! {
        <article class=class data-status=move || turn.status.get().as_str()>
            <div class="who">{who}</div>
            <div class="text" node_ref=turn.body>{initial}</div>
            {(turn.role == Role::Assistant).then(|| view! { <TurnFooter turn/> })}
        </article>
    }
}

#[component]
fn TurnFooter(turn: Turn) -> impl IntoView {
    move || match turn.status.get() {
        Status::Streaming => view! { <p class="state streaming">"Generating…"</p> }.into_any(),
        Status::Stopped => view! { <p class="state stopped">"Stopped"</p> }.into_any(),
        Status::Failed => {
            let message = turn.error.get().map(|e| e.message).unwrap_or_default();
            view! { <p class="state error" role="alert">{message}</p> }.into_any()
        }
        Status::Complete => turn
            .usage
            .get()
            .map(|u| {
                let text = format!(
                    "{} tokens in · {} out · {:.1} s",
                    u.input_tokens,
                    u.output_tokens,
                    u.latency_ms as f64 / 1000.0
                );
                view! { <p class="state usage">{text}</p> }
            })
            .into_any(),
    }
}
