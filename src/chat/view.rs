//! The chat page: the list of conversations, a transcript that grows as the
//! answer streams, and a composer.
//!
//! The page stays mounted while the URL moves between `/` (a new chat) and
//! `/c/{id}`: the routes are children of this component, so switching
//! conversations swaps the transcript without reloading the page, and a new
//! conversation's URL is set the moment the server names it, without
//! interrupting its answer.
//!
//! Rendering cost is kept proportional to what changed: the transcript is a
//! keyed list, so adding a turn never re-renders earlier ones, and an answer's
//! text grows by appending each delta to its element as a new text node
//! (work per delta is proportional to the delta, not to the answer or the
//! transcript). Text is always inserted as text, never parsed as HTML.

use super::{
    stream_client, ErrorInfo, Role, SendRequest, Started, StreamEnd, StreamEvent, Usage, STOPPED_REASON,
};
use crate::{
    app::PageConfig,
    conversations::{
        client, id_from_path, page_path, sidebar::Sidebar, Conversation, ConversationSummary, MessageStatus,
    },
};
use leptos::{ev, html, prelude::*};
use leptos_router::{
    hooks::{use_location, use_navigate},
    NavigateOptions,
};

/// One message of the transcript. Every field is a reactive handle, so a
/// `Turn` is `Copy` and the stream callbacks can hold it.
#[derive(Clone, Copy)]
struct Turn {
    id: u64,
    role: Role,
    text: StoredValue<String>,
    status: RwSignal<MessageStatus>,
    error: RwSignal<Option<ErrorInfo>>,
    usage: RwSignal<Option<Usage>>,
    /// The connection broke and the page is resuming the answer.
    reconnecting: RwSignal<bool>,
    /// Time to the first token and total time, in ms, as the server measured.
    timing: RwSignal<(Option<u64>, Option<u64>)>,
    body: NodeRef<html::Div>,
}

impl Turn {
    fn new(id: u64, role: Role, text: String, status: MessageStatus) -> Self {
        Self {
            id,
            role,
            text: StoredValue::new(text),
            status: RwSignal::new(status),
            error: RwSignal::new(None),
            usage: RwSignal::new(None),
            reconnecting: RwSignal::new(false),
            timing: RwSignal::new((None, None)),
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
            StreamEvent::Done(done) => {
                self.timing.set((done.first_token_ms, done.duration_ms));
                self.status.set(if done.stop_reason == STOPPED_REASON {
                    MessageStatus::Stopped
                } else {
                    MessageStatus::Complete
                });
            }
            StreamEvent::Start(_) => {}
        }
    }

    fn finish(self, end: StreamEnd) {
        match end {
            StreamEnd::Finished => {}
            StreamEnd::Stopped => self.status.set(MessageStatus::Stopped),
            StreamEnd::Failed(info) => self.fail(info),
        }
    }

    fn fail(self, info: ErrorInfo) {
        self.error.set(Some(info));
        self.status.set(MessageStatus::Error);
    }
}

/// What the transcript should show: the conversation named by the URL, or a
/// new chat. `nonce` changes whenever the transcript must be (re)loaded; it
/// does not when the URL changes to the conversation already on screen (the
/// one just created by sending a message).
#[derive(Debug, Clone, PartialEq)]
struct LoadKey {
    id: Option<String>,
    nonce: u64,
}

type Loaded = Result<Option<Conversation>, ErrorInfo>;

/// How far above the newest text (in CSS pixels) counts as "scrolled up".
const JUMP_THRESHOLD_PX: i32 = 80;

#[component]
pub fn ChatPage(page: PageConfig) -> impl IntoView {
    let location = use_location();
    let navigate = use_navigate();
    let route_id = Memo::new(move |_| location.pathname.with(|p| id_from_path(p).map(str::to_owned)));
    // The conversation whose transcript is on screen; `None` for a new chat.
    let on_screen = RwSignal::new(None::<String>);
    let title = RwSignal::new(None::<String>);
    let load_key = Memo::new(move |prev: Option<&LoadKey>| {
        let id = route_id.get();
        match prev {
            // Only a conversation can already be on screen: a new chat
            // (`None`) always loads, so that leaving a conversation that
            // failed to load (nothing on screen either) clears its error.
            Some(prev) if id.is_some() && id == on_screen.get_untracked() => prev.clone(),
            Some(prev) => LoadKey {
                id,
                nonce: prev.nonce + 1,
            },
            None => LoadKey { id, nonce: 0 },
        }
    });
    let conversation = Resource::new(
        move || load_key.get(),
        |key| async move {
            match key.id {
                None => Ok(None),
                Some(id) => client::get(id).await.map(Some),
            }
        },
    );
    // Bumped to reload the list of conversations after a change.
    let list_version = RwSignal::new(0_u64);
    // The conversation whose rename form or delete confirmation is open in
    // the list. Reloading the list renders its items anew, which would close
    // it (and lose what was typed), so reloads wait until it is closed.
    let editing = RwSignal::new(None::<String>);
    let list_source = Memo::new(move |held: Option<&u64>| match held {
        Some(held) if editing.with(Option::is_some) => *held,
        _ => list_version.get(),
    });
    let conversations = Resource::new(move || list_source.get(), |_| client::list());
    let refresh_list = move || list_version.update(|v| *v += 1);

    let turns = RwSignal::new(Vec::<Turn>::new());
    let next_id = StoredValue::new(0_u64);
    let draft = RwSignal::new(String::new());
    let model = RwSignal::new(page.default_model.clone());
    let active = StoredValue::new(None::<stream_client::ActiveStream>);
    // Which send the active stream belongs to, so a stream ended by
    // switching conversations cannot reset the state of a newer one.
    let stream_generation = StoredValue::new(0_u64);
    let streaming = RwSignal::new(false);
    // The transcript box, and whether the user has scrolled away from the
    // newest text (then the view stays put and a button brings it back).
    let transcript = NodeRef::<html::Section>::new();
    let scrolled_up = RwSignal::new(false);
    // What a screen reader is told: when an answer starts and how it ended,
    // never each token.
    let announcement = RwSignal::new(String::new());
    let announce_end = move |reply: Turn| {
        announcement.set(match reply.status.get_untracked() {
            MessageStatus::Complete => "The answer is complete.".to_owned(),
            MessageStatus::Stopped => "The answer was stopped.".to_owned(),
            MessageStatus::Interrupted => "The answer was interrupted.".to_owned(),
            MessageStatus::Error => format!(
                "The answer failed: {}",
                reply.error.get_untracked().map(|e| e.message).unwrap_or_default()
            ),
            MessageStatus::Streaming => return,
        })
    };
    // Set once the page is interactive; end-to-end tests wait for it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    let new_turn = move |role, text, status| {
        let id = next_id.get_value();
        next_id.set_value(id + 1);
        Turn::new(id, role, text, status)
    };
    let stop = move || active.with_value(|a| a.iter().for_each(|a| a.stop()));

    // Switching conversations only stops following this page's stream: the
    // server goes on writing the answer and stores it, and coming back
    // follows it again.
    Effect::new(move |previous: Option<()>| {
        load_key.track();
        if previous.is_some() {
            active.with_value(|a| a.iter().for_each(|a| a.detach()));
            active.set_value(None);
            streaming.set(false);
        }
    });

    // Every stream into a reply turn (send, follow, retry) begins, ends and
    // is kept the same way.
    // Marks the page busy and returns this stream's number, so that a
    // stream ended by switching conversations cannot reset a newer one.
    let begin_stream = move || {
        streaming.set(true);
        announcement.set("Writing the answer…".to_owned());
        let generation = stream_generation.get_value() + 1;
        stream_generation.set_value(generation);
        generation
    };
    let end_stream = move |reply: Turn, generation: u64, end: StreamEnd| {
        reply.finish(end);
        announce_end(reply);
        if stream_generation.get_value() == generation {
            active.set_value(None);
            streaming.set(false);
        }
        refresh_list();
    };
    let keep_stream = move |reply: Turn, handle: stream_client::ActiveStream| {
        handle.on_reconnecting(move |now| reply.reconnecting.set(now));
        active.set_value(Some(handle));
    };

    // Follows an answer that is being written (by another tab, or before a
    // reload) into `reply`, from its first event.
    let follow = move |reply: Turn, answer_id: String| {
        let generation = begin_stream();
        let handle = stream_client::attach(
            answer_id,
            move |event| reply.apply(event),
            move |end| end_stream(reply, generation, end),
        );
        keep_stream(reply, handle);
    };

    // Retry: a new answer to the last message, after the last one failed,
    // was stopped or was interrupted. The earlier answer stays.
    // The button lives in the footer of the answer it replaces, which goes
    // away on click: the new turn's signals must belong to this page instead.
    let page_owner = Owner::current().expect("components run under an owner");
    let retry = Callback::new(move |()| {
        let Some(conversation_id) = on_screen.get_untracked() else {
            return;
        };
        if streaming.get_untracked() {
            return;
        }
        let reply = page_owner.with(|| new_turn(Role::Assistant, String::new(), MessageStatus::Streaming));
        turns.update(|t| t.push(reply));
        let generation = begin_stream();
        let handle = stream_client::regenerate(
            conversation_id,
            Some(model.get_untracked()),
            move |event| reply.apply(event),
            move |end| end_stream(reply, generation, end),
        );
        keep_stream(reply, handle);
    });
    // The answer that Retry would replace: the last turn, when it is an
    // answer that did not complete.
    let retryable = Memo::new(move |_| {
        if streaming.get() {
            return None;
        }
        turns.with(|t| {
            t.last()
                .filter(|turn| {
                    turn.role == Role::Assistant
                        && matches!(
                            turn.status.get(),
                            MessageStatus::Error | MessageStatus::Stopped | MessageStatus::Interrupted
                        )
                })
                .map(|turn| turn.id)
        })
    });
    provide_context(RetryAction { retry, retryable });

    // Puts a loaded conversation on screen. Runs when the transcript loads
    // (on the server, and again on each switch in the browser).
    let show = {
        let offered: Vec<String> = page.models.iter().map(|m| m.id.clone()).collect();
        move |loaded: Loaded| -> Option<ErrorInfo> {
            let (found, error) = match loaded {
                Ok(found) => (found, None),
                Err(info) => (None, Some(info)),
            };
            let Some(found) = found else {
                on_screen.set(None);
                title.set(None);
                turns.set(Vec::new());
                return error;
            };
            let list: Vec<Turn> = found
                .messages
                .iter()
                .map(|m| {
                    let turn = new_turn(m.role, m.content.clone(), m.status);
                    turn.usage.set(m.usage);
                    turn.error.set(m.error.clone());
                    turn.timing.set((m.first_token_ms, m.duration_ms));
                    turn
                })
                .collect();
            if let (Some(&turn), Some(stored)) = (list.last(), found.messages.last()) {
                if stored.role == Role::Assistant && stored.status == MessageStatus::Streaming {
                    follow(turn, stored.id.clone());
                }
            }
            if let Some(last_model) = found.messages.iter().rev().find_map(|m| m.model_id.clone()) {
                if offered.contains(&last_model) {
                    model.set(last_model);
                }
            }
            on_screen.set(Some(found.summary.id));
            title.set(Some(found.summary.title));
            turns.set(list);
            None
        }
    };

    let max_chars = page.max_message_chars;
    let draft_chars = Memo::new(move |_| draft.with(|d| d.chars().count()));
    let too_long = move || draft_chars.get() > max_chars;
    let can_send = move || !streaming.get() && !too_long() && draft.with(|d| !d.trim().is_empty());

    let on_started = move |started: Started| {
        let id = started.conversation_id;
        on_screen.set(Some(id.clone()));
        title.set(Some(started.title));
        if started.created {
            // The URL names the new conversation; replacing (not pushing)
            // keeps Back from returning to an empty "new chat".
            navigate(
                &page_path(&id),
                NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..Default::default()
                },
            );
            refresh_list();
        }
    };

    let send = move || {
        if !can_send() {
            return;
        }
        let text = draft.get_untracked();
        let question = new_turn(Role::User, text.clone(), MessageStatus::Complete);
        let reply = new_turn(Role::Assistant, String::new(), MessageStatus::Streaming);
        turns.update(|t| t.extend([question, reply]));
        draft.set(String::new());
        let generation = begin_stream();
        let request = SendRequest {
            conversation_id: on_screen.get_untracked(),
            content: text.clone(),
            model_id: Some(model.get_untracked()),
        };
        let stored = StoredValue::new(false);
        let on_started = on_started.clone();
        let handle = stream_client::start(
            request,
            move |event| match event {
                StreamEvent::Start(started) => {
                    stored.set_value(true);
                    on_started(started);
                }
                other => reply.apply(other),
            },
            move |end| {
                if !stored.get_value() {
                    // Refused before it was stored: give the text back so
                    // nothing the user typed is lost.
                    if draft.with_untracked(String::is_empty) {
                        draft.set(text);
                    }
                    question.status.set(MessageStatus::Error);
                }
                end_stream(reply, generation, end);
            },
        );
        keep_stream(reply, handle);
    };

    let send_on_submit = send.clone();
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
    let on_renamed = Callback::new(move |summary: ConversationSummary| {
        if on_screen.with_untracked(|id| id.as_deref() == Some(summary.id.as_str())) {
            title.set(Some(summary.title));
        }
    });
    let page_title = move || match title.get() {
        Some(t) => format!("{t} · bedrock-chat"),
        None => "bedrock-chat".to_owned(),
    };
    // The tab shows the conversation's title. Set from the browser only:
    // server rendering would put the user's text into <head> unescaped.
    Effect::new(move |_| document().set_title(&page_title()));
    view! {
        <div class="layout">
            // Highlighted by URL, which the server knows before anything loads.
            <Sidebar
                conversations
                active=route_id.into()
                list_version
                editing
                on_renamed
                max_title_chars=page.max_title_chars
            />
            <main class="chat" data-hydrated=move || hydrated.get().to_string()>
                <p class="visually-hidden" role="status" aria-live="polite" data-testid="announcer">
                    {move || announcement.get()}
                </p>
                <header class="topbar">
                    <h1 class="conversation-title">
                        // `show` sets `title` when the transcript renders, after
                        // this header: until then (on the server, while
                        // hydrating) the header names the conversation as loaded.
                        <Transition fallback=|| "New chat">
                            {move || Suspend::new(async move {
                                let loaded = match &*conversation.by_ref().await {
                                    Ok(Some(found)) => Some(found.summary.title.clone()),
                                    _ => None,
                                };
                                move || {
                                    title.get().or_else(|| loaded.clone()).unwrap_or_else(|| "New chat".to_owned())
                                }
                            })}
                        </Transition>
                    </h1>
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
                <div class="transcript-wrap">
                    <section
                        class="transcript"
                        aria-label="Conversation"
                        node_ref=transcript
                        on:scroll=move |_| {
                            // In a column-reverse box, 0 is the bottom and
                            // scrolling up goes negative.
                            if let Some(el) = transcript.get_untracked() {
                                scrolled_up.set(el.scroll_top() < -JUMP_THRESHOLD_PX);
                            }
                        }
                    >
                        <div class="transcript-inner">
                            <Transition fallback=|| view! { <p class="loading">"Loading the conversation…"</p> }>
                                {move || {
                                    let show = show.clone();
                                    Suspend::new(async move {
                                        let error = show(conversation.await);
                                        view! { <Transcript turns error/> }
                                    })
                                }}
                            </Transition>
                        </div>
                    </section>
                    <Show when=move || scrolled_up.get()>
                        <button
                            type="button"
                            class="jump-to-latest"
                            on:click=move |_| {
                                if let Some(el) = transcript.get_untracked() {
                                    el.set_scroll_top(0);
                                }
                                scrolled_up.set(false);
                            }
                        >
                            "↓ Jump to latest"
                        </button>
                    </Show>
                </div>

                <form class="composer" on:submit=move |ev: ev::SubmitEvent| {
                    ev.prevent_default();
                    send_on_submit();
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
        </div>
    }
}

/// The turns on screen, or why the conversation could not be shown.
#[component]
fn Transcript(turns: RwSignal<Vec<Turn>>, error: Option<ErrorInfo>) -> impl IntoView {
    let has_error = error.is_some();
    view! {
        // Until a message sent from here starts a new conversation.
        <Show when=move || turns.with(Vec::is_empty)>
            {error.clone().map(|info| view! {
                <div class="load-error" role="alert">
                    <p>{info.message}</p>
                    <a href="/">"Start a new chat"</a>
                </div>
            })}
        </Show>
        <Show when=move || !has_error && turns.with(Vec::is_empty)>
            <p class="empty-state">"Ask anything. Answers appear as they are written."</p>
        </Show>
        <For each=move || turns.get() key=|turn| turn.id children=move |turn| view! { <TurnView turn/> }/>
    }
}

#[component]
fn TurnView(turn: Turn) -> impl IntoView {
    let (class, who) = match turn.role {
        Role::User => ("turn user", "You"),
        Role::Assistant => ("turn assistant", "Assistant"),
    };
    // The text at creation; an answer then grows by appended text nodes.
    // An empty text is left out rather than rendered: server rendering
    // writes an empty text node as a space, which the answer would keep.
    let initial = Some(turn.text.get_value()).filter(|text| !text.is_empty());
    view! {
        <article class=class data-status=move || turn.status.get().as_str()>
            <div class="who">{who}</div>
            <div class="text" node_ref=turn.body>{initial}</div>
            {match turn.role {
                Role::Assistant => view! { <TurnFooter turn/> }.into_any(),
                Role::User => view! { <UserFooter turn/> }.into_any(),
            }}
        </article>
    }
}

/// A user message refused before it was stored says so.
#[component]
fn UserFooter(turn: Turn) -> impl IntoView {
    move || {
        (turn.status.get() == MessageStatus::Error).then(|| {
            view! { <p class="state error">"Not sent: your text is back in the message box."</p> }
        })
    }
}

/// Lets the last unfinished answer offer Retry.
#[derive(Clone, Copy)]
struct RetryAction {
    retry: Callback<()>,
    /// The id of the turn that shows the Retry button, if any.
    retryable: Memo<Option<u64>>,
}

#[component]
fn TurnFooter(turn: Turn) -> impl IntoView {
    let action = use_context::<RetryAction>();
    let retry_button = move || {
        let action = action?;
        (action.retryable.get() == Some(turn.id)).then(|| {
            view! {
                <button type="button" class="small retry" on:click=move |_| action.retry.run(())>
                    "Retry"
                </button>
            }
        })
    };
    let state = move || {
        match turn.status.get() {
            MessageStatus::Streaming if turn.reconnecting.get() => view! {
                <p class="state streaming reconnecting">"Connection lost. Reconnecting…"</p>
            }
            .into_any(),
            MessageStatus::Streaming => view! { <p class="state streaming">"Generating…"</p> }.into_any(),
            MessageStatus::Stopped => view! { <p class="state stopped">"Stopped"</p> }.into_any(),
            MessageStatus::Interrupted => view! {
                <p class="state stopped">"Interrupted before it finished: the server restarted, or nobody was connected to receive it."</p>
            }
            .into_any(),
            MessageStatus::Error => {
                let message = turn
                    .error
                    .get()
                    .map(|e| e.message)
                    .unwrap_or_else(|| "This answer failed.".to_owned());
                view! { <p class="state error" role="alert">{message}</p> }.into_any()
            }
            MessageStatus::Complete => turn
                .usage
                .get()
                .map(|u| {
                    let text = usage_line(u, turn.timing.get());
                    view! { <p class="state usage">{text}</p> }
                })
                .into_any(),
        }
    };
    view! {
        {state}
        {retry_button}
    }
}

/// "12 tokens in · 40 out · first token 0.3 s · 85 tokens/s · 0.8 s".
fn usage_line(u: Usage, (first_token_ms, duration_ms): (Option<u64>, Option<u64>)) -> String {
    let mut parts = vec![
        format!("{} tokens in", u.input_tokens),
        format!("{} out", u.output_tokens),
    ];
    if let Some(first) = first_token_ms {
        parts.push(format!("first token {:.1} s", first as f64 / 1000.0));
    }
    if let (Some(first), Some(total)) = (first_token_ms, duration_ms) {
        // Tokens after the first, over the time they took.
        let writing_ms = total.saturating_sub(first);
        if writing_ms > 0 && u.output_tokens > 1 {
            let rate = f64::from(u.output_tokens - 1) * 1000.0 / writing_ms as f64;
            parts.push(format!("{rate:.0} tokens/s"));
        }
    }
    let seconds = duration_ms.unwrap_or(u.latency_ms) as f64 / 1000.0;
    parts.push(format!("{seconds:.1} s"));
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_line_shows_speed_when_timings_are_known() {
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 41,
            total_tokens: 53,
            latency_ms: 900,
        };
        assert_eq!(
            usage_line(usage, (Some(300), Some(800))),
            "12 tokens in · 41 out · first token 0.3 s · 80 tokens/s · 0.8 s"
        );
        assert_eq!(usage_line(usage, (None, None)), "12 tokens in · 41 out · 0.9 s");
    }
}
