//! The chat page's state and what can be done with it, in one `Copy` type
//! that the page provides through context ([`ChatSession`]).
//!
//! Every operation that streams an answer (send, retry, resend an edit,
//! follow an answer already being written) opens it through
//! [`ChatSession::open_reply`], so a stream begins, is kept, is stopped and
//! ends the same way whichever button started it. Only one stream is
//! followed at a time; its number (`stream_generation`) keeps a stream ended
//! by switching conversations from resetting a newer one.

use super::{hydration_data::WithoutTextOnPage, turn::Turn};
use crate::{
    app::PageConfig,
    chat::{
        stream_client::{self, ActiveStream, Opening},
        ErrorInfo, Role, SendRequest, Started, StreamEnd, StreamEvent,
    },
    conversations::{
        client, id_from_path, page_path, usage, Conversation, ConversationSettings, ConversationSummary,
        EditRequest, LeftOut, MessageStatus, StoredMessage,
    },
    i18n::{use_i18n, I18n},
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{
    hooks::{use_location, use_navigate},
    NavigateOptions,
};
use std::{cell::Cell, rc::Rc};

/// A conversation as loaded for the transcript: `None` is a new chat.
pub type Loaded = Result<Option<Conversation>, ErrorInfo>;
type Listed = Result<Vec<ConversationSummary>, ErrorInfo>;
/// The router's `navigate`, kept for streams that name a new conversation.
type Navigate = Box<dyn Fn(&str, NavigateOptions) + Send + Sync>;

/// What the transcript should show: the conversation named by the URL, or a
/// new chat. `nonce` changes whenever the transcript must be (re)loaded; it
/// does not when the URL changes to the conversation already on screen (the
/// one just created by sending a message).
#[derive(Debug, Clone, PartialEq)]
struct LoadKey {
    id: Option<String>,
    nonce: u64,
}

/// What a stream that ended before the server stored its message leaves on screen.
enum Unstored {
    /// The reply turn shows how it ended (a refused message).
    ShowInReply,
    /// Nothing changed on screen (a refused edit): the reply is dropped.
    Nothing,
}

#[derive(Clone, Copy)]
pub struct ChatSession {
    /// The conversation named by the URL (highlighted in the list at once).
    pub route_id: Memo<Option<String>>,
    /// The conversation whose transcript is on screen; `None` for a new chat.
    pub on_screen: RwSignal<Option<String>>,
    pub title: RwSignal<Option<String>>,
    /// The conversation being shown, loaded on each switch. The page
    /// carries it without the text its HTML shows ([`WithoutTextOnPage`]).
    pub conversation: Resource<Loaded, WithoutTextOnPage>,
    /// The list of conversations.
    pub conversations: Resource<Listed>,
    /// Bumped to reload the list of conversations after a change.
    pub list_version: RwSignal<u64>,
    /// The conversation whose rename form or delete confirmation is open in
    /// the list. Reloading the list renders its items anew, which would close
    /// it (and lose what was typed), so reloads wait until it is closed.
    pub list_editing: RwSignal<Option<String>>,
    pub turns: RwSignal<Vec<Turn>>,
    /// The messages older than the first turn, not loaded yet.
    pub earlier: RwSignal<LeftOut>,
    /// The composer's text.
    pub draft: RwSignal<String>,
    pub model: RwSignal<String>,
    /// The settings of the conversation on screen (or of the new chat).
    pub settings: RwSignal<ConversationSettings>,
    /// The user message whose editor is open, by turn id.
    pub editing_turn: RwSignal<Option<u64>>,
    /// Why the last edit was refused.
    pub edit_error: RwSignal<Option<String>>,
    /// An answer is being written on this page.
    pub streaming: RwSignal<bool>,
    /// What a screen reader is told: when an answer starts and how it
    /// ended, never each token.
    pub announcement: RwSignal<String>,
    /// The answer that Retry or Regenerate would replace: the last turn,
    /// when it is an answer that is not being written.
    pub retryable: Memo<Option<u64>>,
    /// The composer's length in characters (as the server counts them).
    pub draft_chars: Memo<usize>,
    pub max_chars: usize,
    /// The currency of answers' costs (`[pricing]`).
    pub currency: StoredValue<String>,
    next_turn_id: StoredValue<u64>,
    active: StoredValue<Option<ActiveStream>>,
    stream_generation: StoredValue<u64>,
    /// Turns are made under the page, not under the button that asked for
    /// them (Retry and the editor go away while their answer streams).
    page_owner: StoredValue<Owner>,
    navigate: StoredValue<Navigate>,
    offered_models: StoredValue<Vec<String>>,
    i18n: I18n,
}

impl ChatSession {
    /// The conversation's answers so far: their tokens, and their cost when
    /// any was priced (the answers not loaded yet included).
    pub fn totals(&self) -> Option<(u64, Option<u64>)> {
        let earlier = self.earlier.with(LeftOut::totals);
        self.turns.with(|turns| {
            let on_screen = turns
                .iter()
                .filter_map(|t| t.usage.get())
                .map(|u| u.tokens_and_cost());
            usage::totals(on_screen.chain(earlier))
        })
    }

    /// The session of the page being built; call once, in the page component.
    pub fn new(page: &PageConfig) -> Self {
        let location = use_location();
        let route_id = Memo::new(move |_| location.pathname.with(|p| id_from_path(p).map(str::to_owned)));
        let on_screen = RwSignal::new(None::<String>);
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
        let conversation = Resource::new_with_options(
            move || load_key.get(),
            |key| async move {
                match key.id {
                    None => Ok(None),
                    Some(id) => client::get_conversation(id).await.map(Some),
                }
            },
            false,
        );
        let list_version = RwSignal::new(0_u64);
        let list_editing = RwSignal::new(None::<String>);
        let list_source = Memo::new(move |held: Option<&u64>| match held {
            Some(held) if list_editing.with(Option::is_some) => *held,
            _ => list_version.get(),
        });
        let conversations = Resource::new(move || list_source.get(), |_| client::list_conversations());

        let turns = RwSignal::new(Vec::<Turn>::new());
        let streaming = RwSignal::new(false);
        let retryable = Memo::new(move |_| {
            if streaming.get() {
                return None;
            }
            turns.with(|t| {
                t.last()
                    .filter(|turn| {
                        turn.role == Role::Assistant && turn.status.get() != MessageStatus::Streaming
                    })
                    .map(|turn| turn.id)
            })
        });
        let draft = RwSignal::new(typed_before_hydration());
        let session = Self {
            route_id,
            on_screen,
            title: RwSignal::new(None),
            conversation,
            conversations,
            list_version,
            list_editing,
            turns,
            earlier: RwSignal::new(LeftOut::default()),
            draft,
            model: RwSignal::new(page.default_model.clone()),
            currency: StoredValue::new(page.currency.clone()),
            settings: RwSignal::new(ConversationSettings::default()),
            editing_turn: RwSignal::new(None),
            edit_error: RwSignal::new(None),
            streaming,
            announcement: RwSignal::new(String::new()),
            retryable,
            draft_chars: Memo::new(move |_| draft.with(|d| d.chars().count())),
            max_chars: page.max_message_chars,
            next_turn_id: StoredValue::new(0),
            active: StoredValue::new(None),
            stream_generation: StoredValue::new(0),
            page_owner: StoredValue::new(Owner::current().expect("components run under an owner")),
            navigate: StoredValue::new(Box::new(use_navigate())),
            offered_models: StoredValue::new(page.models.iter().map(|m| m.id.clone()).collect()),
            i18n: use_i18n(),
        };
        // Switching conversations only stops following this page's stream:
        // the server goes on writing the answer and stores it, and coming
        // back follows it again.
        Effect::new(move |previous: Option<()>| {
            load_key.track();
            if previous.is_some() {
                session.detach();
            }
        });
        session
    }

    pub fn too_long(self) -> bool {
        self.draft_chars.get() > self.max_chars
    }

    pub fn can_send(self) -> bool {
        !self.streaming.get() && !self.too_long() && self.draft.with(|d| !d.trim().is_empty())
    }

    pub fn refresh_list(self) {
        self.list_version.update(|v| *v += 1);
    }

    /// Puts a loaded conversation on screen (on the server, and again on
    /// each switch in the browser); answers with why it could not be loaded.
    pub fn show(self, loaded: Loaded) -> Option<ErrorInfo> {
        let (found, error) = match loaded {
            Ok(found) => (found, None),
            Err(info) => (None, Some(info)),
        };
        self.editing_turn.set(None);
        let Some(found) = found else {
            self.on_screen.set(None);
            self.title.set(None);
            self.turns.set(Vec::new());
            self.earlier.set(LeftOut::default());
            self.settings.set(ConversationSettings::default());
            return error;
        };
        let list = self.turns_of(&found.messages);
        mark_superseded(&list);
        if let (Some(&turn), Some(stored)) = (list.last(), found.messages.last()) {
            if stored.role == Role::Assistant && stored.status == MessageStatus::Streaming {
                // Following opens a connection, which only the browser does:
                // effects never run on the server.
                let answer_id = stored.id.clone();
                Effect::new(move |_| self.follow(turn, answer_id.clone()));
            }
        }
        // The conversation's own model, else the one it was last answered by.
        let chosen = self.offered_models.with_value(|offered| {
            found
                .settings
                .model_id
                .clone()
                .into_iter()
                .chain(found.messages.iter().rev().filter_map(|m| m.model_id.clone()))
                .find(|id| offered.contains(id))
        });
        if let Some(chosen) = chosen {
            self.model.set(chosen);
        }
        self.settings.set(found.settings.clone());
        self.on_screen.set(Some(found.summary.id));
        self.title.set(Some(found.summary.title));
        self.earlier.set(found.earlier);
        self.turns.set(list);
        None
    }

    /// Puts an earlier page of the conversation on screen, above the turns
    /// already there (unless another conversation is on screen by now).
    pub fn show_earlier(self, page: Conversation) {
        if self.on_screen.get_untracked().as_deref() != Some(page.summary.id.as_str()) {
            return;
        }
        let older = self.turns_of(&page.messages);
        self.turns.update(|turns| {
            turns.splice(0..0, older);
            mark_superseded(turns);
        });
        self.earlier.set(page.earlier);
    }

    /// The first turn's stored message: where the earlier page ends.
    pub fn first_message_id(self) -> Option<String> {
        self.turns
            .with_untracked(|turns| turns.first().and_then(|turn| turn.message_id.get_value()))
    }

    /// Turns for stored messages.
    fn turns_of(self, messages: &[StoredMessage]) -> Vec<Turn> {
        messages
            .iter()
            .map(|m| {
                // An answer still being written is followed from its first
                // event, which rebuilds it: it starts empty, not with its
                // last checkpoint.
                let turn = if m.status == MessageStatus::Streaming {
                    self.new_turn(m.role, String::new(), MessageStatus::Streaming)
                } else {
                    self.stored_turn(m)
                };
                turn.message_id.set_value(Some(m.id.clone()));
                turn.usage.set(m.usage);
                turn.error.set(m.error.clone());
                turn.timing.set((m.first_token_ms, m.duration_ms));
                turn
            })
            .collect()
    }

    /// Sends the composer's text as a new message and streams its answer.
    pub fn send(self) {
        if !self.can_send() {
            return;
        }
        let text = self.draft.get_untracked();
        let question = self.new_turn(Role::User, text.clone(), MessageStatus::Complete);
        let reply = self.new_turn(Role::Assistant, String::new(), MessageStatus::Streaming);
        self.turns.update(|t| t.extend([question, reply]));
        self.draft.set(String::new());
        let request = SendRequest {
            conversation_id: self.on_screen.get_untracked(),
            content: text.clone(),
            model_id: Some(self.model.get_untracked()),
            // A new chat's settings are stored with its first message.
            settings: self
                .on_screen
                .with_untracked(Option::is_none)
                .then(|| self.settings.get_untracked())
                .filter(|chosen| *chosen != ConversationSettings::default()),
            time_zone: stream_client::browser_time_zone(),
        };
        self.open_reply(
            reply,
            Opening::Send(request),
            move |started| {
                question
                    .message_id
                    .set_value(Some(started.user_message_id.clone()));
                self.started(started);
            },
            move |_| {
                // Refused before it was stored: give the text back so
                // nothing the user typed is lost.
                if self.draft.with_untracked(String::is_empty) {
                    self.draft.set(text);
                }
                question.status.set(MessageStatus::Error);
                Unstored::ShowInReply
            },
        );
    }

    /// Retry (after the last answer failed, was stopped or was interrupted)
    /// and Regenerate (after it completed): a new answer to the last
    /// message. The earlier answer stays, shown above the new one.
    pub fn retry(self) {
        let Some(conversation_id) = self.on_screen.get_untracked() else {
            return;
        };
        if self.streaming.get_untracked() {
            return;
        }
        let reply = self.new_turn(Role::Assistant, String::new(), MessageStatus::Streaming);
        self.turns.update(|t| {
            if let Some(last) = t.last().filter(|last| last.role == Role::Assistant) {
                last.superseded.set(true);
            }
            t.push(reply)
        });
        let opening = Opening::Regenerate {
            conversation_id,
            model_id: Some(self.model.get_untracked()),
        };
        self.open_reply(reply, opening, |_| {}, |_| Unstored::ShowInReply);
    }

    /// Edit and resend: an earlier user message gets new text; the server
    /// replaces it and every turn after it, and the page does the same once
    /// the server has stored the edit (until then the transcript is as it
    /// was, and a refusal is shown in the open editor).
    pub fn resend(self, edited: Turn, text: String) {
        let (Some(conversation_id), Some(message_id)) =
            (self.on_screen.get_untracked(), edited.message_id.get_value())
        else {
            return;
        };
        if self.streaming.get_untracked() || text.trim().is_empty() {
            return;
        }
        self.edit_error.set(None);
        let question = self.new_turn(Role::User, text.clone(), MessageStatus::Complete);
        let reply = self.new_turn(Role::Assistant, String::new(), MessageStatus::Streaming);
        let opening = Opening::Edit {
            conversation_id,
            request: EditRequest {
                message_id,
                content: text,
                model_id: Some(self.model.get_untracked()),
                time_zone: stream_client::browser_time_zone(),
            },
        };
        self.open_reply(
            reply,
            opening,
            move |started| {
                question.message_id.set_value(Some(started.user_message_id));
                self.editing_turn.set(None);
                self.turns.update(|t| {
                    if let Some(at) = t.iter().position(|turn| turn.id == edited.id) {
                        t.truncate(at);
                    }
                    t.extend([question, reply]);
                });
            },
            move |end| {
                if let StreamEnd::Failed(info) = end {
                    self.edit_error.set(Some(info.message.clone()));
                }
                Unstored::Nothing
            },
        );
    }

    /// Follows an answer that is being written (by another tab, or before a
    /// reload) into `reply`, from its first event.
    pub fn follow(self, reply: Turn, answer_id: String) {
        self.open_reply(
            reply,
            Opening::Follow { answer_id },
            |_| {},
            |_| Unstored::ShowInReply,
        );
    }

    /// Asks the server to stop the answer being written.
    pub fn stop(self) {
        self.active.with_value(|a| a.iter().for_each(ActiveStream::stop));
    }

    /// A model picked for a conversation is stored with it at once, so it
    /// is still chosen when the conversation is opened again.
    pub fn pick_model(self, picked: String) {
        self.model.set(picked.clone());
        if let Some(id) = self.on_screen.get_untracked() {
            let wanted = ConversationSettings {
                model_id: Some(picked),
                ..self.settings.get_untracked()
            };
            spawn_local(async move {
                if let Ok(stored) = client::save_settings(id, wanted).await {
                    self.settings.set(stored);
                }
            });
        }
    }

    /// The list renamed a conversation: retitle it if it is on screen.
    pub fn renamed(self, summary: ConversationSummary) {
        if self
            .on_screen
            .with_untracked(|id| id.as_deref() == Some(summary.id.as_str()))
        {
            self.title.set(Some(summary.title));
        }
    }

    /// The one way an answer stream into `reply` is opened. `on_stored`
    /// runs when the server has stored the message (the `start` event);
    /// `unstored` decides what stays on screen when the stream ended before
    /// that (a refusal).
    fn open_reply(
        self,
        reply: Turn,
        opening: Opening,
        on_stored: impl FnOnce(Started) + 'static,
        unstored: impl FnOnce(&StreamEnd) -> Unstored + 'static,
    ) {
        self.streaming.set(true);
        self.announcement
            .set(self.i18n.t_untracked().announce_writing.to_owned());
        let generation = self.stream_generation.get_value() + 1;
        self.stream_generation.set_value(generation);
        // Plain shared state, not a reactive one: the caller's owner (an
        // editor) may be gone by the time the stream ends.
        let stored = Rc::new(Cell::new(false));
        let stored_on_start = Rc::clone(&stored);
        let mut on_stored = Some(on_stored);
        let handle = stream_client::open(
            opening,
            move |event| match event {
                StreamEvent::Start(started) => {
                    stored_on_start.set(true);
                    reply.message_id.set_value(Some(started.answer_id.clone()));
                    if let Some(on_stored) = on_stored.take() {
                        on_stored(started);
                    }
                }
                other => reply.apply(other),
            },
            move |end| {
                if !stored.get() {
                    if let Unstored::Nothing = unstored(&end) {
                        self.announcement.set(String::new());
                        self.release(generation);
                        return;
                    }
                }
                reply.finish(end);
                self.announce_end(reply);
                self.release(generation);
                self.refresh_list();
            },
        );
        handle.on_reconnecting(move |now| reply.reconnecting.set(now));
        self.active.set_value(Some(handle));
    }

    /// The page is free again, unless a newer stream has begun since.
    fn release(self, generation: u64) {
        if self.stream_generation.get_value() == generation {
            self.active.set_value(None);
            self.streaming.set(false);
        }
    }

    /// Stops following this page's stream (the server goes on).
    fn detach(self) {
        self.active
            .with_value(|a| a.iter().for_each(ActiveStream::detach));
        self.active.set_value(None);
        self.streaming.set(false);
    }

    /// The server stored the first message of a stream sent from here.
    fn started(self, started: Started) {
        let id = started.conversation_id;
        self.on_screen.set(Some(id.clone()));
        self.title.set(Some(started.title));
        if started.created {
            // The URL names the new conversation; replacing (not pushing)
            // keeps Back from returning to an empty "new chat".
            let options = NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            };
            self.navigate
                .with_value(|navigate| navigate(&page_path(&id), options));
            self.refresh_list();
        }
    }

    fn announce_end(self, reply: Turn) {
        let t = self.i18n.t_untracked();
        self.announcement.set(match reply.status.get_untracked() {
            MessageStatus::Complete => t.announce_complete.to_owned(),
            MessageStatus::Stopped => t.announce_stopped.to_owned(),
            MessageStatus::Interrupted => t.announce_interrupted.to_owned(),
            MessageStatus::Error => {
                (t.announce_failed)(&reply.error.get_untracked().map(|e| e.message).unwrap_or_default())
            }
            MessageStatus::Streaming => return,
        })
    }

    fn new_turn(self, role: Role, text: String, status: MessageStatus) -> Turn {
        let id = self.next_turn_id.get_value();
        self.next_turn_id.set_value(id + 1);
        self.page_owner
            .with_value(|owner| owner.with(|| Turn::new(id, role, text, status)))
    }

    /// A stored message's turn, with an answer's parts.
    fn stored_turn(self, m: &StoredMessage) -> Turn {
        let id = self.next_turn_id.get_value();
        self.next_turn_id.set_value(id + 1);
        self.page_owner
            .with_value(|owner| owner.with(|| Turn::stored(id, m)))
    }
}

/// Text typed into the server-rendered composer while the app was loading:
/// hydration would otherwise replace it with an empty draft.
fn typed_before_hydration() -> String {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(text) = document()
            .query_selector("form.composer textarea")
            .ok()
            .flatten()
            .and_then(|el| el.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
        {
            return text.value();
        }
    }
    String::new()
}

/// An answer followed by another answer (Retry, Regenerate) is superseded.
fn mark_superseded(turns: &[Turn]) {
    for pair in turns.windows(2) {
        if pair[0].role == Role::Assistant && pair[1].role == Role::Assistant {
            pair[0].superseded.set(true);
        }
    }
}
