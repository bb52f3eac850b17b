//! The parts of an answer in the order they were written: text (Markdown,
//! drawn block by block as it streams), thinking, and tool calls.
//!
//! An answer of plain text has one text part, so the work per delta is what
//! it was before parts existed: the text part's unfinished last block.
//! Parts are a keyed list: a new part is added without redrawing the others,
//! and a tool card redraws only the signal that changed (its arguments, its
//! state, its result).

use super::markdown_loader::{self, MarkdownStream};
use crate::{
    chat::ToolFinished,
    conversations::{AnswerBlock, StoredMessage, ToolCall},
    markdown::{self, TailUpdate, Update as MarkdownUpdate},
};
use leptos::{html, prelude::*};

/// The tail of a part shown as plain text: before the renderer is loaded,
/// or when it could not be.
const UNFORMATTED_TAIL: &str = "md-tail unformatted";

/// Deltas are drawn at most this often (ms): every other frame at 60 Hz.
/// Each frame that changes the answer costs the browser its style, layout
/// and paint, whatever the number of deltas in it; text arriving in steps
/// of 33 ms instead of 17 ms is not seen as less smooth.
const MIN_DRAW_INTERVAL_MS: f64 = 30.0;

/// How many finished blocks of a streaming answer share one `.md-group`.
const BLOCKS_PER_GROUP: u32 = 16;

/// One part of an answer. Every field is a reactive handle, so parts are `Copy`.
#[derive(Clone, Copy)]
pub enum Part {
    Text(TextPart),
    Thinking(ThinkingPart),
    Tool(ToolPart),
}

impl Part {
    pub fn key(&self) -> u64 {
        match self {
            Part::Text(p) => p.key,
            Part::Thinking(p) => p.key,
            Part::Tool(p) => p.key,
        }
    }
}

/// The deltas of a streaming text part until a frame draws them: every
/// delta that arrives before that frame is drawn with one Markdown pass and
/// one DOM update, and frames are drawn at most every
/// [`MIN_DRAW_INTERVAL_MS`].
struct FramePacer {
    /// Deltas received since the last draw.
    pending: String,
    /// A frame has been asked for to draw `pending`.
    frame_requested: bool,
    /// When (ms, browser clock) deltas were last drawn.
    drawn_at_ms: f64,
}

impl Default for FramePacer {
    fn default() -> Self {
        Self {
            pending: String::new(),
            frame_requested: false,
            drawn_at_ms: f64::NEG_INFINITY,
        }
    }
}

impl FramePacer {
    /// Holds a delta; true when a frame must be asked for to draw it.
    fn hold(&mut self, delta: &str) -> bool {
        self.pending.push_str(delta);
        !std::mem::replace(&mut self.frame_requested, true)
    }

    /// Whether a frame at `now_ms` may draw.
    fn due(&self, now_ms: f64) -> bool {
        now_ms - self.drawn_at_ms >= MIN_DRAW_INTERVAL_MS
    }

    /// What to draw now (the next delta asks for a frame again).
    fn take(&mut self, now_ms: f64) -> String {
        self.frame_requested = false;
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.drawn_at_ms = now_ms;
        }
        pending
    }
}

/// Answer text, rendered as Markdown while it streams.
#[derive(Clone, Copy)]
pub struct TextPart {
    key: u64,
    pub text: StoredValue<String>,
    /// Made at the first delta drawn once the renderer is loaded.
    markdown: StoredValue<Option<Box<dyn MarkdownStream>>>,
    /// It waits for the renderer to load before it draws.
    waiting_for_renderer: StoredValue<bool>,
    /// Whether the text is complete (stored, or its stream moved on).
    finished: StoredValue<bool>,
    /// Finished, and shown by the server's HTML that this part was
    /// hydrated from; its text was left out of the page's data and is
    /// never drawn here (see `hydration_data`).
    on_page: bool,
    /// The deltas waiting for a frame to draw them.
    pacer: StoredValue<FramePacer>,
    body: NodeRef<html::Div>,
}

impl TextPart {
    pub fn new(key: u64, text: String, finished: bool) -> Self {
        Self {
            key,
            text: StoredValue::new(text),
            markdown: StoredValue::new(None),
            waiting_for_renderer: StoredValue::new(false),
            finished: StoredValue::new(finished),
            on_page: false,
            pacer: StoredValue::new(FramePacer::default()),
            body: NodeRef::new(),
        }
    }

    /// Finished text that the page being hydrated already shows.
    fn on_page(key: u64) -> Self {
        Self {
            on_page: true,
            ..Self::new(key, String::new(), true)
        }
    }

    /// Adds a delta. It is drawn at an animation frame, together with every
    /// other delta that arrives before it: one Markdown pass and one DOM
    /// update per frame cost what one per delta did (a fast model sends
    /// several per frame). Frames are drawn at most every
    /// [`MIN_DRAW_INTERVAL_MS`]; the first delta is drawn at the next frame.
    pub fn push(self, delta: &str) {
        self.text.update_value(|text| text.push_str(delta));
        if self.body.get_untracked().is_none() {
            return;
        }
        if self.pacer.try_update_value(|pacer| pacer.hold(delta)) == Some(true) {
            request_animation_frame(move || self.on_frame());
        }
    }

    /// An animation frame with deltas waiting: drawn now, or at a later
    /// frame (with what arrives meanwhile) if the last draw was too recent.
    fn on_frame(self) {
        match self.pacer.try_with_value(|pacer| pacer.due(js_sys::Date::now())) {
            Some(true) => self.draw_pending(),
            Some(false) => request_animation_frame(move || self.on_frame()),
            None => {} // the part is gone
        }
    }

    /// Draws the deltas held for this frame. The part may be gone by then
    /// (the user switched conversations): then there is nothing to draw.
    fn draw_pending(self) {
        let now = js_sys::Date::now();
        if let Some(pending) = self.pacer.try_update_value(|pacer| pacer.take(now)) {
            if !pending.is_empty() {
                self.render_delta(&pending);
            }
        }
    }

    /// Renders a delta into the element. Until the element exists (the page
    /// is still hydrating, or the part was just added) or the renderer is
    /// loaded, the text only accumulates: the renderer then starts from all
    /// of it.
    fn render_delta(self, delta: &str) {
        if self.body.get_untracked().is_none() {
            return;
        }
        let update = self.markdown.try_update_value(|md| match md {
            Some(renderer) => Some(renderer.push(delta)),
            None => {
                let renderer = markdown_loader::loaded()?;
                Some(
                    self.text
                        .with_value(|text| md.insert((renderer.stream)()).push(text)),
                )
            }
        });
        match update {
            Some(Some(update)) => self.paint(Some(update)),
            Some(None) => {
                self.show_unformatted(delta);
                self.wait_for_renderer();
            }
            None => {} // the part is gone
        }
    }

    /// Draws the part once the renderer is loaded: everything so far, and
    /// the end if it came. If the load failed, the text stays unformatted.
    fn wait_for_renderer(self) {
        let already_waiting = self
            .waiting_for_renderer
            .try_update_value(|waiting| std::mem::replace(waiting, true));
        if already_waiting != Some(false) {
            return;
        }
        markdown_loader::with_renderer(move |result| {
            if self.waiting_for_renderer.try_set_value(false).is_some() || result.is_err() {
                return; // the part is gone, or stays unformatted
            }
            self.clear_unformatted();
            if self.finished.get_value() {
                self.finish();
            } else {
                self.render_delta("");
            }
        });
    }

    /// Until the renderer is loaded (or if it cannot be), the text so far
    /// is shown as plain text in the tail: all of it at first, then each
    /// delta added to its text node (not the whole text again per frame).
    fn show_unformatted(self, delta: &str) {
        use wasm_bindgen::JsCast;
        let Some(tail) = self.tail() else { return };
        if tail.class_name() == UNFORMATTED_TAIL {
            if let Some(shown) = tail
                .first_child()
                .and_then(|node| node.dyn_into::<web_sys::Text>().ok())
            {
                let _ = shown.append_data(delta);
                return;
            }
        }
        tail.set_class_name(UNFORMATTED_TAIL);
        self.text.with_value(|text| tail.set_text_content(Some(text)));
    }

    fn clear_unformatted(self) {
        if let Some(tail) = self.tail().filter(|tail| tail.class_name() == UNFORMATTED_TAIL) {
            tail.set_class_name("md-tail");
            tail.set_text_content(None);
        }
    }

    fn tail(self) -> Option<web_sys::Element> {
        self.body.try_get_untracked().flatten()?.last_element_child()
    }

    /// The text is complete: its last block is final.
    pub fn finish(self) {
        self.finished.set_value(true);
        if self.body.get_untracked().is_none() {
            return;
        }
        // What waits for the next frame comes before the end.
        self.draw_pending();
        if self.markdown.with_value(Option::is_none) {
            self.render_delta("");
        }
        let update = self
            .markdown
            .try_update_value(|md| md.as_mut().map(|md| md.finish()));
        self.paint(update.flatten());
    }

    /// A finished part shown after the page loaded, before the renderer
    /// was (it shows as plain text meanwhile): rendered whole once it is.
    fn render_finished_when_loaded(self) {
        markdown_loader::with_renderer(move |result| {
            let Ok(renderer) = result else { return };
            let Some(done) = self
                .body
                .try_get_untracked()
                .flatten()
                .and_then(|b| b.first_element_child())
            else {
                return;
            };
            self.clear_unformatted();
            self.text
                .with_value(|text| done.set_inner_html(&(renderer.render)(text)));
        });
    }

    /// Applies a Markdown update: finished blocks are appended to
    /// `.md-done`, the unfinished one redrawn in `.md-tail`.
    ///
    /// Finished blocks go into groups of [`BLOCKS_PER_GROUP`]
    /// (`.md-done > .md-group`), each skipped by layout and paint while out
    /// of view: a frame that adds a block then visits a group's blocks and
    /// the groups, not every block of a long answer.
    fn paint(self, update: Option<MarkdownUpdate>) {
        let (Some(update), Some(body)) = (update, self.body.get_untracked()) else {
            return;
        };
        let (Some(done), Some(tail)) = (body.first_element_child(), body.last_element_child()) else {
            return;
        };
        if !update.done.is_empty() {
            let group = done
                .last_element_child()
                .filter(|group| group.child_element_count() < BLOCKS_PER_GROUP)
                .or_else(|| {
                    let group = document().create_element("div").ok()?;
                    group.set_class_name("md-group");
                    done.append_child(&group).ok()?;
                    Some(group)
                });
            if let Some(group) = group {
                let _ = group.insert_adjacent_html("beforeend", &update.done);
            }
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
}

/// What the model thought before (or between) the parts of its answer.
#[derive(Clone, Copy)]
pub struct ThinkingPart {
    key: u64,
    pub text: RwSignal<String>,
    /// Some of it came encrypted.
    pub redacted: RwSignal<bool>,
    /// The answer moved on (its section collapses).
    pub done: RwSignal<bool>,
    /// When it began (ms, browser clock) and how long it took, when watched live.
    started_ms: StoredValue<Option<f64>>,
    pub took_ms: RwSignal<Option<u64>>,
}

impl ThinkingPart {
    pub fn new(key: u64, live: bool) -> Self {
        Self {
            key,
            text: RwSignal::new(String::new()),
            redacted: RwSignal::new(false),
            done: RwSignal::new(!live),
            started_ms: StoredValue::new(live.then(js_sys::Date::now)),
            took_ms: RwSignal::new(None),
        }
    }

    pub fn end(self) {
        if self.done.get_untracked() {
            return;
        }
        if let Some(started) = self.started_ms.get_value() {
            self.took_ms
                .set(Some((js_sys::Date::now() - started).max(0.0) as u64));
        }
        self.done.set(true);
    }
}

/// How a tool call is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolState {
    /// The model is writing its arguments.
    Writing,
    /// It waits for the user's Approve or Deny.
    Awaiting,
    /// It runs, since this time (ms, browser clock).
    Running {
        since_ms: u64,
    },
    Finished(ToolFinished),
    /// The answer ended before the call did.
    Stopped,
}

/// One tool call, as its card shows it.
#[derive(Clone, Copy)]
pub struct ToolPart {
    key: u64,
    /// The answer it belongs to (to decide on it), once the server named it.
    pub answer: StoredValue<Option<String>>,
    pub id: StoredValue<String>,
    pub name: StoredValue<String>,
    pub input: RwSignal<String>,
    pub state: RwSignal<ToolState>,
}

impl ToolPart {
    pub fn new(key: u64, answer: Option<String>, id: String, name: String) -> Self {
        Self {
            key,
            answer: StoredValue::new(answer),
            id: StoredValue::new(id),
            name: StoredValue::new(name),
            input: RwSignal::new(String::new()),
            state: RwSignal::new(ToolState::Writing),
        }
    }

    /// A stored call, as it ended.
    fn stored(key: u64, call: &ToolCall) -> Self {
        let part = Self::new(key, None, call.id.clone(), call.name.clone());
        part.input.set(call.input.clone());
        part.state.set(match &call.result {
            Some(result) => ToolState::Finished(ToolFinished {
                id: call.id.clone(),
                ok: result.ok,
                content: result.content.clone(),
                duration_ms: result.duration_ms,
            }),
            None => ToolState::Stopped,
        });
        part
    }
}

/// The parts of a stored answer: its blocks, or its text. An answer whose
/// text was left out (the page being hydrated shows it) still gets its text
/// parts, without their text, so that they adopt the server's elements.
pub fn stored_parts(answer: &StoredMessage, mut key: impl FnMut() -> u64) -> Vec<Part> {
    let text_part = |text: &str, key: u64| match (answer.text_left_out, text.is_empty()) {
        (true, _) => Some(Part::Text(TextPart::on_page(key))),
        // An answer that failed before any text shows no empty box.
        (false, true) => None,
        (false, false) => Some(Part::Text(TextPart::new(key, text.to_owned(), true))),
    };
    if answer.blocks.is_empty() {
        return text_part(&answer.content, key()).into_iter().collect();
    }
    let mut parts: Vec<Part> = Vec::with_capacity(answer.blocks.len());
    for block in &answer.blocks {
        match block {
            AnswerBlock::Text { text } => parts.extend(text_part(text, key())),
            AnswerBlock::Reasoning { text, redacted } => {
                // Readable and encrypted thinking in a row share a section.
                let thinking = match parts.last() {
                    Some(Part::Thinking(last)) => *last,
                    _ => {
                        let new = ThinkingPart::new(key(), false);
                        parts.push(Part::Thinking(new));
                        new
                    }
                };
                thinking.text.update(|t| t.push_str(text));
                if *redacted {
                    thinking.redacted.set(true);
                }
            }
            AnswerBlock::Tool(call) => parts.push(Part::Tool(ToolPart::stored(key(), call))),
        }
    }
    parts
}

/// The time now on the browser's clock, in ms.
pub fn now_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

/// An answer's parts, in order.
#[component]
pub fn AnswerParts(parts: RwSignal<Vec<Part>>) -> impl IntoView {
    view! {
        <For each=move || parts.get() key=Part::key children=move |part| match part {
            Part::Text(text) => view! { <TextPartView part=text/> }.into_any(),
            Part::Thinking(thinking) => view! { <super::tool_card::ThinkingView part=thinking/> }.into_any(),
            Part::Tool(tool) => view! { <super::tool_card::ToolCard part=tool/> }.into_any(),
        }/>
    }
}

/// Text: a finished part rendered whole (by the server, or here when shown
/// after the page loaded); one being written starts empty and is drawn from
/// all its text so far at its next delta.
#[component]
fn TextPartView(part: TextPart) -> impl IntoView {
    // A part hydrated from the server's page already holds its rendering,
    // which `inner_html` leaves in place (and the page's data does not
    // carry its text: see `hydration_data`).
    let (rendered, unformatted) = if part.finished.get_value() && !part.on_page {
        match markdown_loader::loaded() {
            Some(renderer) => (part.text.with_value(|text| (renderer.render)(text)), None),
            None => {
                part.render_finished_when_loaded();
                (
                    String::new(),
                    Some(part.text.with_value(|text| markdown::escape(text))),
                )
            }
        }
    } else {
        (String::new(), None)
    };
    let tail_class = if unformatted.is_some() {
        UNFORMATTED_TAIL
    } else {
        "md-tail"
    };
    view! {
        <div class="text markdown" node_ref=part.body>
            <div class="md-done" inner_html=rendered></div>
            <div class=tail_class inner_html=unformatted.unwrap_or_default()></div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_before_a_frame_are_drawn_together_and_ask_for_one_frame() {
        let mut pacer = FramePacer::default();
        assert!(pacer.hold("Hel"), "the first delta asks for a frame");
        assert!(!pacer.hold("lo"), "the next ones wait for the same frame");
        assert!(pacer.due(0.0), "nothing was drawn yet");
        assert_eq!(pacer.take(0.0), "Hello");
        assert!(
            pacer.hold(", world"),
            "after a draw, a delta asks for a frame again"
        );
    }

    #[test]
    fn frames_are_drawn_at_most_every_interval() {
        let mut pacer = FramePacer::default();
        pacer.hold("a");
        assert_eq!(pacer.take(1_000.0), "a");
        pacer.hold("b");
        assert!(!pacer.due(1_000.0 + MIN_DRAW_INTERVAL_MS - 1.0));
        assert!(pacer.due(1_000.0 + MIN_DRAW_INTERVAL_MS));
        // A frame that found nothing to draw does not count as a draw.
        assert_eq!(pacer.take(1_040.0), "b");
        assert_eq!(pacer.take(1_050.0), "");
        assert!(pacer.due(1_040.0 + MIN_DRAW_INTERVAL_MS));
    }
}
