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
//! keyed list, so adding a turn never re-renders earlier ones, and an answer
//! is Markdown rendered block by block as it streams ([`crate::markdown`]):
//! finished blocks are appended once, and only the unfinished last block is
//! redrawn per delta (work per delta is proportional to that block, not to
//! the answer or the transcript). User messages are inserted as text; model
//! output only as the markdown module's escaped, sanitised HTML.

use super::{
    clipboard, settings_panel::SettingsPanel, stream_client, ErrorInfo, Role, SendRequest, Started,
    StreamEnd, StreamEvent, Usage, STOPPED_REASON,
};
use crate::{
    app::PageConfig,
    conversations::{
        client, id_from_path, page_path, sidebar::Sidebar, Conversation, ConversationSettings,
        ConversationSummary, EditRequest, MessageStatus,
    },
    i18n::{use_i18n, Strings},
    markdown::{self, StreamRenderer, TailUpdate, Update as MarkdownUpdate},
};
use leptos::{ev, html, prelude::*, task::spawn_local};
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
    /// The stored message's id, once the server has named it.
    message_id: StoredValue<Option<String>>,
    text: StoredValue<String>,
    /// Renders an answer's Markdown as it streams; made at its first delta.
    markdown: StoredValue<Option<StreamRenderer>>,
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
            message_id: StoredValue::new(None),
            text: StoredValue::new(text),
            markdown: StoredValue::new(None),
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
                self.text.update_value(|text| text.push_str(&delta.text));
                self.render_delta(&delta.text);
            }
            StreamEvent::Usage(usage) => self.usage.set(Some(usage)),
            StreamEvent::Error(info) => self.fail(info),
            StreamEvent::Done(done) => {
                self.finish_markdown();
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

    /// Renders a delta of a streaming answer into its element. Until the
    /// element exists (the page is still hydrating), the text only
    /// accumulates: the renderer then starts from all of it.
    fn render_delta(self, delta: &str) {
        if self.body.get_untracked().is_none() {
            return;
        }
        let update = self.markdown.try_update_value(|md| match md {
            Some(renderer) => renderer.push(delta),
            None => self
                .text
                .with_value(|text| md.insert(StreamRenderer::new()).push(text)),
        });
        self.paint(update);
    }

    /// The answer's text is complete: its last block is final. (A turn
    /// whose element appears only later renders its whole text then.)
    fn finish_markdown(self) {
        if self.body.get_untracked().is_none() {
            return;
        }
        if self.markdown.with_value(Option::is_none) {
            // Every delta came before the element did.
            self.render_delta("");
        }
        let update = self
            .markdown
            .try_update_value(|md| md.as_mut().map(StreamRenderer::finish));
        self.paint(update.flatten());
    }

    /// Applies a Markdown update to the answer's element: finished blocks
    /// are appended to `.md-done`, the unfinished one redrawn in `.md-tail`.
    fn paint(self, update: Option<MarkdownUpdate>) {
        let (Some(update), Some(body)) = (update, self.body.get_untracked()) else {
            return;
        };
        let (Some(done), Some(tail)) = (body.first_element_child(), body.last_element_child()) else {
            return;
        };
        if !update.done.is_empty() {
            let _ = done.insert_adjacent_html("beforeend", &update.done);
        }
        match update.tail {
            TailUpdate::Unchanged => {}
            TailUpdate::Html(html) => tail.set_inner_html(&html),
            TailUpdate::CodeLines { finished, partial } => {
                // The open code block is the tail's only block, and its
                // unfinished line the last element: tail > .code-block > pre
                // > code > .code-partial. Walking last children keeps this
                // constant-time however long the code grows.
                let partial_line = tail
                    .last_element_child()
                    .and_then(|block| block.last_element_child())
                    .and_then(|pre| pre.last_element_child())
                    .and_then(|code| code.last_element_child())
                    .filter(|span| span.class_name() == "code-partial");
                if let Some(span) = partial_line {
                    if !finished.is_empty() {
                        let _ = span.insert_adjacent_html("beforebegin", &finished);
                    }
                    span.set_inner_html(&partial);
                }
            }
        }
    }

    fn finish(self, end: StreamEnd) {
        self.finish_markdown();
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
    let i18n = use_i18n();
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
    // The settings of the conversation on screen (or of the new chat).
    let settings = RwSignal::new(ConversationSettings::default());
    let settings_open = RwSignal::new(false);
    // The user message whose editor is open, by turn id.
    let editing_turn = RwSignal::new(None::<u64>);
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
        let t = i18n.t_untracked();
        announcement.set(match reply.status.get_untracked() {
            MessageStatus::Complete => t.announce_complete.to_owned(),
            MessageStatus::Stopped => t.announce_stopped.to_owned(),
            MessageStatus::Interrupted => t.announce_interrupted.to_owned(),
            MessageStatus::Error => {
                (t.announce_failed)(&reply.error.get_untracked().map(|e| e.message).unwrap_or_default())
            }
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
        announcement.set(i18n.t_untracked().announce_writing.to_owned());
        let generation = stream_generation.get_value() + 1;
        stream_generation.set_value(generation);
        generation
    };
    // The page is free again, unless a newer stream has begun since.
    let release_stream = move |generation: u64| {
        if stream_generation.get_value() == generation {
            active.set_value(None);
            streaming.set(false);
        }
    };
    let end_stream = move |reply: Turn, generation: u64, end: StreamEnd| {
        reply.finish(end);
        announce_end(reply);
        release_stream(generation);
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

    // Retry (after the last answer failed, was stopped or was interrupted)
    // and Regenerate (after it completed): a new answer to the last message.
    // The earlier answer stays, shown above the new one.
    // The button lives in the footer of the answer it replaces, which goes
    // away on click: the new turn's signals must belong to this page instead.
    let page_owner = Owner::current().expect("components run under an owner");
    let retry_owner = page_owner.clone();
    let retry = Callback::new(move |()| {
        let Some(conversation_id) = on_screen.get_untracked() else {
            return;
        };
        if streaming.get_untracked() {
            return;
        }
        let reply = retry_owner.with(|| new_turn(Role::Assistant, String::new(), MessageStatus::Streaming));
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
    // The answer that Retry or Regenerate would follow: the last turn, when
    // it is an answer that is not being written.
    let retryable = Memo::new(move |_| {
        if streaming.get() {
            return None;
        }
        turns.with(|t| {
            t.last()
                .filter(|turn| turn.role == Role::Assistant && turn.status.get() != MessageStatus::Streaming)
                .map(|turn| turn.id)
        })
    });
    provide_context(RetryAction { retry, retryable });

    // Edit and resend: an earlier user message gets new text; the server
    // replaces it and every turn after it, and the page does the same once
    // the server has stored the edit (until then the transcript is as it
    // was, and a refusal is shown in the open editor).
    let edit_error = RwSignal::new(None::<String>);
    let resend = Callback::new(move |(edited, text): (Turn, String)| {
        let (Some(conversation_id), Some(message_id)) =
            (on_screen.get_untracked(), edited.message_id.get_value())
        else {
            return;
        };
        if streaming.get_untracked() || text.trim().is_empty() {
            return;
        }
        edit_error.set(None);
        let (question, reply) = page_owner.with(|| {
            (
                new_turn(Role::User, text.clone(), MessageStatus::Complete),
                new_turn(Role::Assistant, String::new(), MessageStatus::Streaming),
            )
        });
        let generation = begin_stream();
        let request = EditRequest {
            message_id,
            content: text,
            model_id: Some(model.get_untracked()),
        };
        // Made under the page: the editor that calls this goes away on Start.
        let stored = page_owner.with(|| StoredValue::new(false));
        let handle = stream_client::edit(
            conversation_id,
            request,
            move |event| match event {
                StreamEvent::Start(started) => {
                    stored.set_value(true);
                    question.message_id.set_value(Some(started.user_message_id));
                    reply.message_id.set_value(Some(started.answer_id));
                    editing_turn.set(None);
                    turns.update(|t| {
                        if let Some(at) = t.iter().position(|turn| turn.id == edited.id) {
                            t.truncate(at);
                        }
                        t.extend([question, reply]);
                    });
                }
                other => reply.apply(other),
            },
            move |end| {
                if !stored.get_value() {
                    if let StreamEnd::Failed(info) = &end {
                        edit_error.set(Some(info.message.clone()));
                    }
                    // The edit never started: nothing changed on screen.
                    announcement.set(String::new());
                    release_stream(generation);
                    return;
                }
                end_stream(reply, generation, end);
            },
        );
        keep_stream(reply, handle);
    });
    provide_context(EditAction {
        editing: editing_turn,
        resend,
        error: edit_error,
        busy: streaming.into(),
    });

    // Puts a loaded conversation on screen. Runs when the transcript loads
    // (on the server, and again on each switch in the browser).
    let show = {
        let offered: Vec<String> = page.models.iter().map(|m| m.id.clone()).collect();
        move |loaded: Loaded| -> Option<ErrorInfo> {
            let (found, error) = match loaded {
                Ok(found) => (found, None),
                Err(info) => (None, Some(info)),
            };
            editing_turn.set(None);
            let Some(found) = found else {
                on_screen.set(None);
                title.set(None);
                turns.set(Vec::new());
                settings.set(ConversationSettings::default());
                return error;
            };
            let list: Vec<Turn> = found
                .messages
                .iter()
                .map(|m| {
                    let turn = new_turn(m.role, m.content.clone(), m.status);
                    turn.message_id.set_value(Some(m.id.clone()));
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
            // The conversation's own model, else the one it was last answered by.
            let chosen = found
                .settings
                .model_id
                .clone()
                .into_iter()
                .chain(found.messages.iter().rev().filter_map(|m| m.model_id.clone()))
                .find(|id| offered.contains(id));
            if let Some(chosen) = chosen {
                model.set(chosen);
            }
            settings.set(found.settings.clone());
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
            // A new chat's settings are stored with its first message.
            settings: on_screen
                .with_untracked(Option::is_none)
                .then(|| settings.get_untracked())
                .filter(|chosen| *chosen != ConversationSettings::default()),
        };
        let stored = StoredValue::new(false);
        let on_started = on_started.clone();
        let handle = stream_client::start(
            request,
            move |event| match event {
                StreamEvent::Start(started) => {
                    stored.set_value(true);
                    question
                        .message_id
                        .set_value(Some(started.user_message_id.clone()));
                    reply.message_id.set_value(Some(started.answer_id.clone()));
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
        }
    };
    // Esc stops the answer wherever the focus is (the composer, a button
    // just clicked, nothing). An open editor uses Esc to close itself and
    // marks the event handled.
    Effect::new(move |_| {
        let handle = window_event_listener(ev::keydown, move |ev| {
            if ev.key() == "Escape" && !ev.default_prevented() && streaming.get_untracked() {
                stop();
            }
        });
        on_cleanup(move || handle.remove());
    });
    // A model picked for a conversation is stored with it at once, so it
    // is still chosen when the conversation is opened again.
    let pick_model = move |picked: String| {
        model.set(picked.clone());
        if let Some(id) = on_screen.get_untracked() {
            let wanted = ConversationSettings {
                model_id: Some(picked),
                ..settings.get_untracked()
            };
            spawn_local(async move {
                if let Ok(stored) = client::save_settings(id, wanted).await {
                    settings.set(stored);
                }
            });
        }
    };

    let models = page.models.clone();
    let default_model = page.default_model.clone();
    let panel_page = page.clone();
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
                        <Transition fallback=move || i18n.t().new_chat>
                            {move || Suspend::new(async move {
                                let loaded = match &*conversation.by_ref().await {
                                    Ok(Some(found)) => Some(found.summary.title.clone()),
                                    _ => None,
                                };
                                move || {
                                    title
                                        .get()
                                        .or_else(|| loaded.clone())
                                        .unwrap_or_else(|| i18n.t().new_chat.to_owned())
                                }
                            })}
                        </Transition>
                    </h1>
                    <label class="model-picker">
                        <span class="visually-hidden">{move || i18n.t().model_label}</span>
                        <select
                            aria-label=move || i18n.t().model_label
                            on:change=move |ev| pick_model(event_target_value(&ev))
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
                    <button
                        type="button"
                        class="small settings-toggle"
                        aria-expanded=move || settings_open.get().to_string()
                        aria-controls="conversation-settings"
                        on:click=move |_| settings_open.update(|open| *open = !*open)
                    >
                        {move || i18n.t().settings}
                    </button>
                    {page.demo.then(|| view! {
                        <span class="badge demo" title=move || i18n.t().demo_title>
                            {move || i18n.t().demo_badge}
                        </span>
                    })}
                </header>
                <Show when=move || settings_open.get()>
                    <SettingsPanel page=panel_page.clone() settings conversation=on_screen.into() model/>
                </Show>

                // column-reverse keeps the view pinned to the newest text while it
                // grows, with no script, and leaves it alone once the user scrolls up.
                <div class="transcript-wrap">
                    <section
                        class="transcript"
                        aria-label=move || i18n.t().transcript_label
                        node_ref=transcript
                        on:click=move |ev| clipboard::copy_code_on_click(&ev)
                        on:scroll=move |_| {
                            // In a column-reverse box, 0 is the bottom and
                            // scrolling up goes negative.
                            if let Some(el) = transcript.get_untracked() {
                                scrolled_up.set(el.scroll_top() < -JUMP_THRESHOLD_PX);
                            }
                        }
                    >
                        <div class="transcript-inner">
                            <Transition fallback=move || view! { <p class="loading">{move || i18n.t().loading_conversation}</p> }>
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
                            {move || i18n.t().jump_to_latest}
                        </button>
                    </Show>
                </div>

                <form class="composer" on:submit=move |ev: ev::SubmitEvent| {
                    ev.prevent_default();
                    send_on_submit();
                }>
                    <textarea
                        name="message"
                        aria-label=move || i18n.t().message_label
                        placeholder=move || i18n.t().message_placeholder
                        rows="2"
                        prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                        on:keydown=on_keydown
                    ></textarea>
                    <Show
                        when=move || streaming.get()
                        fallback=move || view! {
                            <button type="submit" class="send" disabled=move || !can_send()>{move || i18n.t().send}</button>
                        }
                    >
                        <button type="button" class="stop" on:click=move |_| stop()>{move || i18n.t().stop}</button>
                    </Show>
                    <Show when=too_long>
                        <p class="limit" role="alert">
                            {move || (i18n.t().too_long)(draft_chars.get(), max_chars)}
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
        // Markdown: a stored answer rendered whole. One being written starts
        // empty, and `Turn::render_delta` draws it from all its text so far.
        Role::Assistant => {
            let rendered = match turn.status.get_untracked() {
                MessageStatus::Streaming => String::new(),
                _ => turn.text.with_value(|text| markdown::render(text)),
            };
            view! {
                <div class="text markdown" node_ref=turn.body>
                    <div class="md-done" inner_html=rendered></div>
                    <div class="md-tail"></div>
                </div>
            }
            .into_any()
        }
        // The user's own words, as text. An empty text is left out rather
        // than rendered: server rendering writes an empty text node as a space.
        Role::User => {
            let initial = Some(turn.text.get_value()).filter(|text| !text.is_empty());
            view! { <UserText turn initial/> }.into_any()
        }
    };
    view! {
        <article class=class data-status=move || turn.status.get().as_str()>
            <div class="who">{move || who(i18n.t())}</div>
            {body}
            {match turn.role {
                Role::Assistant => view! { <TurnFooter turn/> }.into_any(),
                Role::User => view! { <UserFooter turn/> }.into_any(),
            }}
        </article>
    }
}

/// Lets user messages be edited and sent again.
#[derive(Clone, Copy)]
struct EditAction {
    /// The turn whose editor is open.
    editing: RwSignal<Option<u64>>,
    /// Sends a turn's new text.
    resend: Callback<(Turn, String)>,
    /// Why the last edit was refused.
    error: RwSignal<Option<String>>,
    /// An answer is being written: nothing can be edited now.
    busy: Signal<bool>,
}

/// A user message: its text, or the editor that rewrites it.
#[component]
fn UserText(turn: Turn, initial: Option<String>) -> impl IntoView {
    let i18n = use_i18n();
    let action = use_context::<EditAction>();
    let open = move || action.is_some_and(|a| a.editing.get() == Some(turn.id));
    let text = view! { <div class="text" node_ref=turn.body>{initial}</div> };
    let editor = move || {
        let action = action?;
        let draft = RwSignal::new(turn.text.get_value());
        // The editor opens with the caret in it, at the end of the text.
        let field = NodeRef::<html::Textarea>::new();
        Effect::new(move |_| {
            if let Some(field) = field.get() {
                let _ = field.focus();
                let end = field.value().encode_utf16().count() as u32;
                let _ = field.set_selection_range(end, end);
            }
        });
        let close = move || {
            action.editing.set(None);
            action.error.set(None);
        };
        let submit = move || action.resend.run((turn, draft.get_untracked()));
        Some(view! {
            <form class="edit-form" on:submit=move |ev: ev::SubmitEvent| {
                ev.prevent_default();
                submit();
            }>
                <textarea
                    node_ref=field
                    aria-label=move || i18n.t().edit_label
                    rows="3"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev: ev::KeyboardEvent| {
                        let composing = ev.is_composing() || ev.key_code() == 229;
                        if ev.key() == "Enter" && !ev.shift_key() && !composing {
                            ev.prevent_default();
                            submit();
                        } else if ev.key() == "Escape" {
                            ev.prevent_default();
                            close();
                        }
                    }
                ></textarea>
                <p class="edit-note">{move || i18n.t().edit_note}</p>
                {move || action.error.get().map(|message| view! { <p class="state error" role="alert">{message}</p> })}
                <div class="edit-actions">
                    <button
                        type="submit"
                        class="small save-edit"
                        disabled=move || action.busy.get() || draft.with(|d| d.trim().is_empty())
                    >
                        {move || i18n.t().send}
                    </button>
                    <button type="button" class="small cancel-edit" on:click=move |_| close()>
                        {move || i18n.t().cancel}
                    </button>
                </div>
            </form>
        })
    };
    view! {
        // The text stays in the page (hidden) while the editor is open, so
        // its node is still there if the edit is cancelled.
        <div class="user-text" class:editing=open>{text}</div>
        <Show when=open>{editor}</Show>
    }
}

/// A user message refused before it was stored says so; a stored one can
/// be edited while no answer is being written.
#[component]
fn UserFooter(turn: Turn) -> impl IntoView {
    let i18n = use_i18n();
    let action = use_context::<EditAction>();
    let edit_button = move || {
        let action = action?;
        // This reacts to page-wide signals too, which can change while the
        // turn is being disposed (another conversation loading): `try_`
        // reads give up quietly then.
        let status = turn.status.try_get()?;
        let can_edit = !action.busy.get()
            && action.editing.get() != Some(turn.id)
            && status != MessageStatus::Error
            && turn.message_id.try_with_value(Option::is_some)?;
        can_edit.then(|| {
            view! {
                <button
                    type="button"
                    class="small edit-message"
                    aria-label=move || i18n.t().edit_label
                    on:click=move |_| {
                        action.error.set(None);
                        action.editing.set(Some(turn.id));
                    }
                >
                    {move || i18n.t().edit}
                </button>
            }
        })
    };
    view! {
        {move || {
            (turn.status.get() == MessageStatus::Error).then(|| {
                view! { <p class="state error">{move || i18n.t().not_sent}</p> }
            })
        }}
        {edit_button}
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
    let i18n = use_i18n();
    let retry_button = move || {
        let action = action?;
        (action.retryable.get() == Some(turn.id)).then(|| {
            // After a complete answer it is Regenerate; otherwise Retry.
            let complete = turn.status.try_get() == Some(MessageStatus::Complete);
            view! {
                <button
                    type="button"
                    class=if complete { "small regenerate" } else { "small retry" }
                    on:click=move |_| action.retry.run(())
                >
                    {move || if complete { i18n.t().regenerate } else { i18n.t().retry }}
                </button>
            }
        })
    };
    let state = move || {
        let t = i18n.t();
        match turn.status.get() {
            MessageStatus::Streaming if turn.reconnecting.get() => view! {
                <p class="state streaming reconnecting">{t.reconnecting}</p>
            }
            .into_any(),
            MessageStatus::Streaming => view! { <p class="state streaming">{t.generating}</p> }.into_any(),
            MessageStatus::Stopped => view! { <p class="state stopped">{t.stopped}</p> }.into_any(),
            MessageStatus::Interrupted => view! { <p class="state stopped">{t.interrupted}</p> }.into_any(),
            MessageStatus::Error => {
                let message = turn
                    .error
                    .get()
                    .map(|e| e.message)
                    .unwrap_or_else(|| t.answer_failed.to_owned());
                view! { <p class="state error" role="alert">{message}</p> }.into_any()
            }
            MessageStatus::Complete => turn
                .usage
                .get()
                .map(|u| {
                    let text = usage_line(t, u, turn.timing.get());
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
fn usage_line(t: &Strings, u: Usage, (first_token_ms, duration_ms): (Option<u64>, Option<u64>)) -> String {
    let mut parts = vec![(t.usage_in)(u.input_tokens), (t.usage_out)(u.output_tokens)];
    if let Some(first) = first_token_ms {
        parts.push((t.usage_first_token)(first as f64 / 1000.0));
    }
    if let (Some(first), Some(total)) = (first_token_ms, duration_ms) {
        // Tokens after the first, over the time they took.
        let writing_ms = total.saturating_sub(first);
        if writing_ms > 0 && u.output_tokens > 1 {
            let rate = f64::from(u.output_tokens - 1) * 1000.0 / writing_ms as f64;
            parts.push((t.usage_rate)(rate));
        }
    }
    let seconds = duration_ms.unwrap_or(u.latency_ms) as f64 / 1000.0;
    parts.push((t.usage_total)(seconds));
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{EN, KO};

    #[test]
    fn the_usage_line_shows_speed_when_timings_are_known() {
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 41,
            total_tokens: 53,
            latency_ms: 900,
        };
        assert_eq!(
            usage_line(&EN, usage, (Some(300), Some(800))),
            "12 tokens in · 41 out · first token 0.3 s · 80 tokens/s · 0.8 s"
        );
        assert_eq!(
            usage_line(&EN, usage, (None, None)),
            "12 tokens in · 41 out · 0.9 s"
        );
        assert_eq!(
            usage_line(&KO, usage, (Some(300), Some(800))),
            "입력 12토큰 · 출력 41토큰 · 첫 토큰 0.3초 · 초당 80토큰 · 총 0.8초"
        );
    }
}
