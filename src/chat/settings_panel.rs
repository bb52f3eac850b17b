//! The settings of one conversation: system prompt, temperature, max
//! tokens, the tools the model may call and thinking (the model has its
//! picker in the top bar).
//!
//! A field left empty means the server's default, which the field shows as
//! its placeholder. An existing conversation stores its settings at once
//! (`PUT /api/conversations/{id}/settings`); a new chat keeps them here and
//! sends them with its first message, so a chat can start with its own
//! system prompt.

use crate::{app::PageConfig, conversations::client, conversations::ConversationSettings, i18n::use_i18n};
use leptos::{ev, prelude::*, task::spawn_local};
use wasm_bindgen::JsCast;

/// What the form says after Save.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Saved(&'static str),
    Refused(String),
}

#[component]
pub fn SettingsPanel(
    page: PageConfig,
    /// The conversation's settings as stored (or, for a new chat, as chosen).
    settings: RwSignal<ConversationSettings>,
    /// The conversation on screen; `None` for a new chat.
    conversation: Signal<Option<String>>,
    /// The model chosen in the top bar, stored along with the rest.
    model: RwSignal<String>,
    /// Whether the panel is shown: Close and Esc set it to false.
    open: RwSignal<bool>,
) -> impl IntoView {
    let i18n = use_i18n();
    let prompt = RwSignal::new(String::new());
    let temperature = RwSignal::new(String::new());
    let max_tokens = RwSignal::new(String::new());
    let tools_on = RwSignal::new(Vec::<String>::new());
    let thinking = RwSignal::new(false);
    let budget = RwSignal::new(String::new());
    let outcome = RwSignal::new(None::<Outcome>);
    let default_tools = page.tools_on_by_default.clone();
    let default_tools_for_form = StoredValue::new(page.tools_on_by_default.clone());
    // The form shows the settings as they are whenever they change: another
    // conversation loaded, or a save answered.
    Effect::new(move |_| {
        settings.with(|s| {
            prompt.set(s.system_prompt.clone().unwrap_or_default());
            temperature.set(s.temperature.map(|t| t.to_string()).unwrap_or_default());
            max_tokens.set(s.max_tokens.map(|n| n.to_string()).unwrap_or_default());
            tools_on.set(s.tools.clone().unwrap_or_else(|| default_tools.clone()));
            thinking.set(s.thinking_budget.is_some());
            budget.set(s.thinking_budget.map(|n| n.to_string()).unwrap_or_default());
        })
    });
    // Thinking is offered for models that can think.
    let models = page.models.clone();
    let can_think = Memo::new(move |_| model.with(|id| models.iter().any(|m| &m.id == id && m.reasoning)));
    let default_budget = page.default_thinking_budget;

    let max_output_tokens = page.max_output_tokens;
    let max_prompt_chars = page.max_system_prompt_chars;
    // The form's values, checked as the server would check them, so a new
    // chat's first message is not refused for them.
    let read_form = move || -> Option<ConversationSettings> {
        let temperature = match temperature.get_untracked().trim() {
            "" => None,
            t => Some(t.parse::<f32>().ok().filter(|t| (0.0..=1.0).contains(t))?),
        };
        let max_tokens = match max_tokens.get_untracked().trim() {
            "" => None,
            n => Some(
                n.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max_output_tokens).contains(n))?,
            ),
        };
        let prompt = prompt.get_untracked();
        let prompt = prompt.trim();
        if prompt.chars().count() > max_prompt_chars {
            return None;
        }
        let thinking_budget = match (thinking.get_untracked(), budget.get_untracked().trim()) {
            (false, _) => None,
            (true, "") => Some(default_budget),
            (true, n) => Some(n.parse::<u32>().ok()?),
        };
        Some(ConversationSettings {
            model_id: Some(model.get_untracked()),
            system_prompt: (!prompt.is_empty()).then(|| prompt.to_owned()),
            temperature,
            max_tokens,
            // Left to the server's defaults unless the user changed them.
            tools: tools_on.with_untracked(|on| {
                let same = default_tools_for_form.with_value(|defaults| {
                    on.len() == defaults.len() && on.iter().all(|name| defaults.contains(name))
                });
                (!same).then(|| on.clone())
            }),
            thinking_budget,
        })
    };
    let store = move |wanted: ConversationSettings| {
        let t = i18n.t_untracked();
        match conversation.get_untracked() {
            Some(id) => spawn_local(async move {
                outcome.set(Some(match client::save_settings(id, wanted).await {
                    Ok(stored) => {
                        settings.set(stored);
                        Outcome::Saved(t.settings_saved)
                    }
                    Err(info) => Outcome::Refused(info.message),
                }))
            }),
            None => {
                settings.set(wanted);
                outcome.set(Some(Outcome::Saved(t.settings_saved_new_chat)));
            }
        }
    };
    let save = move || match read_form() {
        Some(wanted) => store(wanted),
        None => outcome.set(Some(Outcome::Refused(
            i18n.t_untracked().settings_bad_number.to_owned(),
        ))),
    };
    let reset = move || {
        store(ConversationSettings {
            model_id: Some(model.get_untracked()),
            ..Default::default()
        })
    };

    let default_prompt = page.default_system_prompt.clone();
    let default_temperature = page.default_temperature.to_string();
    let default_max_tokens = page.default_max_tokens.to_string();
    view! {
        <section
            class="settings-panel"
            id="conversation-settings"
            aria-label=move || i18n.t().settings_title
            // Esc closes the panel (and, handled, does not also stop the answer).
            on:keydown=move |ev: ev::KeyboardEvent| {
                if ev.key() == "Escape" {
                    ev.prevent_default();
                    close_panel(open);
                }
            }
        >
            <form novalidate on:submit=move |ev| {
                ev.prevent_default();
                save();
            }>
                <label class="field">
                    <span>{move || i18n.t().system_prompt}</span>
                    <textarea
                        name="system_prompt"
                        rows="3"
                        placeholder=move || (i18n.t().default_value)(&default_prompt)
                        prop:value=move || prompt.get()
                        on:input=move |ev| prompt.set(event_target_value(&ev))
                    ></textarea>
                </label>
                <div class="field-row">
                    <label class="field">
                        <span>{move || i18n.t().temperature}</span>
                        <input
                            name="temperature"
                            type="number"
                            min="0"
                            max="1"
                            step="0.05"
                            inputmode="decimal"
                            placeholder=move || (i18n.t().default_value)(&default_temperature)
                            prop:value=move || temperature.get()
                            on:input=move |ev| temperature.set(event_target_value(&ev))
                        />
                        <small>{move || i18n.t().temperature_hint}</small>
                    </label>
                    <label class="field">
                        <span>{move || i18n.t().max_tokens}</span>
                        <input
                            name="max_tokens"
                            type="number"
                            min="1"
                            max=max_output_tokens.to_string()
                            step="1"
                            inputmode="numeric"
                            placeholder=move || (i18n.t().default_value)(&default_max_tokens)
                            prop:value=move || max_tokens.get()
                            on:input=move |ev| max_tokens.set(event_target_value(&ev))
                        />
                    </label>
                </div>
                <ToolChoices offered=page.tools.clone() tools_on/>
                <Show when=move || can_think.get()>
                    <ThinkingFields thinking budget default_budget/>
                </Show>
                <SettingsActions outcome on_reset=Callback::new(move |()| reset()) open/>
            </form>
        </section>
    }
}

/// The tools the model may call in this conversation, one switch each.
#[component]
fn ToolChoices(offered: Vec<String>, tools_on: RwSignal<Vec<String>>) -> impl IntoView {
    let i18n = use_i18n();
    (!offered.is_empty()).then(|| {
        view! {
            <fieldset class="field tools-field">
                <legend>{move || i18n.t().tools_label}</legend>
                {offered
                    .into_iter()
                    .map(|name| {
                        let checked_name = name.clone();
                        let toggled_name = name.clone();
                        view! {
                            <label class="check">
                                <input
                                    type="checkbox"
                                    name="tools"
                                    value=name.clone()
                                    prop:checked=move || tools_on.with(|on| on.contains(&checked_name))
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        tools_on.update(|list| {
                                            list.retain(|n| n != &toggled_name);
                                            if on {
                                                list.push(toggled_name.clone());
                                            }
                                        });
                                    }
                                />
                                <span>{move || (i18n.t().tool_name)(&name)}</span>
                            </label>
                        }
                    })
                    .collect_view()}
            </fieldset>
        }
    })
}

/// Thinking on or off, and its token budget (for models that can think).
#[component]
fn ThinkingFields(thinking: RwSignal<bool>, budget: RwSignal<String>, default_budget: u32) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <div class="field-row thinking-field">
            <label class="check">
                <input
                    type="checkbox"
                    name="thinking"
                    prop:checked=move || thinking.get()
                    on:change=move |ev| thinking.set(event_target_checked(&ev))
                />
                <span>{move || i18n.t().thinking_switch}</span>
            </label>
            <label class="field">
                <span>{move || i18n.t().thinking_budget}</span>
                <input
                    name="thinking_budget"
                    type="number"
                    min="1024"
                    step="256"
                    inputmode="numeric"
                    placeholder=default_budget.to_string()
                    prop:disabled=move || !thinking.get()
                    prop:value=move || budget.get()
                    on:input=move |ev| budget.set(event_target_value(&ev))
                />
                <small>{move || i18n.t().thinking_hint}</small>
            </label>
        </div>
    }
}

/// Save, Use defaults, Close, and what the last save came to.
#[component]
fn SettingsActions(
    outcome: RwSignal<Option<Outcome>>,
    on_reset: Callback<()>,
    open: RwSignal<bool>,
) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <div class="settings-actions">
            <button type="submit" class="save-settings">{move || i18n.t().settings_save}</button>
            <button type="button" class="small reset-settings" on:click=move |_| on_reset.run(())>
                {move || i18n.t().settings_reset}
            </button>
            <button type="button" class="small secondary close-settings" on:click=move |_| close_panel(open)>
                {move || i18n.t().settings_close}
            </button>
            <p class="settings-status" role="status">
                {move || match outcome.get() {
                    Some(Outcome::Saved(text)) => view! { <span class="ok">{text}</span> }.into_any(),
                    Some(Outcome::Refused(text)) => view! { <span class="error">{text}</span> }.into_any(),
                    None => ().into_any(),
                }}
            </p>
        </div>
    }
}

/// Closes the panel and gives the focus back to the switch that leads to it:
/// the top bar's Settings on wide screens, the menu button on phones (where
/// the top bar's is hidden and the drawer holds one).
fn close_panel(open: RwSignal<bool>) {
    open.set(false);
    let visible_switch = [".topbar .settings-toggle", ".topbar .menu-toggle"]
        .into_iter()
        .filter_map(|selector| document().query_selector(selector).ok().flatten())
        .filter_map(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
        .find(|el| el.offset_parent().is_some());
    if let Some(switch) = visible_switch {
        let _ = switch.focus();
    }
}
