//! The page's words in English and Korean (both sides).
//!
//! Every user-visible string of the UI lives in one table, [`Strings`], with
//! one constant per language ([`EN`], [`KO`]). Strings that carry numbers or
//! a title are small functions in the same table.
//!
//! The server picks the locale per request ([`from_request`]: the `lang`
//! cookie, else `Accept-Language`) and puts it into the page config, so that
//! hydration starts from the same value. Components read the words through
//! [`use_i18n`]: `move || i18n.t().send` re-renders when the user switches
//! languages, which [`I18n::switch`] does at once, without a reload.
//!
//! To add a string: add a field to [`Strings`], then its text to [`EN`] and
//! [`KO`] (the compiler refuses a table that misses it).
//!
//! Messages that come from the server's API (errors) stay as it sends them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

// Which language a request asks for: its headers, read on the server.
#[cfg(feature = "ssr")]
mod negotiate;
#[cfg(feature = "ssr")]
pub use negotiate::{from_request, request_locale};

// Switching retags the browser's document and sets the cookie, from an event
// handler (which never runs on the server).
mod document;

/// A language of the UI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Ko,
}

/// The name of the cookie that remembers the user's choice.
pub const COOKIE_NAME: &str = "lang";
/// How long the choice is remembered: one year.
pub const COOKIE_MAX_AGE_SECS: u32 = 365 * 24 * 60 * 60;

impl Locale {
    /// Every locale, in the order the switch offers them.
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Ko];

    /// The BCP 47 code: `<html lang>`, the cookie's value.
    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ko => "ko",
        }
    }

    /// A language tag (`ko`, `ko-KR`, `EN-us`) to the locale it names, if
    /// it is one the UI speaks.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("ko") {
            Some(Locale::Ko)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Locale::En)
        } else {
            None
        }
    }

    /// The language's own name, as the switch shows it.
    pub fn native_name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::Ko => "한국어",
        }
    }

    /// The words of the UI in this language.
    pub fn strings(self) -> &'static Strings {
        match self {
            Locale::En => &EN,
            Locale::Ko => &KO,
        }
    }

    /// The `Set-Cookie`/`document.cookie` value that remembers this choice.
    pub fn cookie(self) -> String {
        format!(
            "{COOKIE_NAME}={}; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}; SameSite=Lax",
            self.code()
        )
    }
}

/// Every user-visible string of the page, in one language.
pub struct Strings {
    // Sidebar.
    pub conversations_label: &'static str,
    /// The phone layout's menu button, which opens the conversation drawer.
    pub open_menu: &'static str,
    pub close_menu: &'static str,
    pub new_chat: &'static str,
    pub loading_conversations: &'static str,
    pub no_conversations: &'static str,
    pub rename: &'static str,
    pub rename_label: fn(&str) -> String,
    pub delete: &'static str,
    pub delete_label: fn(&str) -> String,
    pub conversation_title_label: &'static str,
    pub save: &'static str,
    pub cancel: &'static str,
    pub delete_dialog_label: &'static str,
    pub delete_confirm: fn(&str) -> String,
    // Preferences.
    pub language_label: &'static str,
    pub theme_label: &'static str,
    pub theme_system: &'static str,
    pub theme_light: &'static str,
    pub theme_dark: &'static str,
    // Top bar.
    pub model_label: &'static str,
    pub demo_badge: &'static str,
    pub demo_title: &'static str,
    // Transcript.
    pub transcript_label: &'static str,
    pub loading_conversation: &'static str,
    pub jump_to_latest: &'static str,
    /// The button above a long conversation's first loaded turn.
    pub show_earlier: fn(usize) -> String,
    pub loading_earlier: &'static str,
    pub earlier_failed: &'static str,
    pub start_new_chat: &'static str,
    pub empty_state: &'static str,
    pub you: &'static str,
    pub assistant: &'static str,
    pub not_sent: &'static str,
    pub retry: &'static str,
    pub reconnecting: &'static str,
    pub generating: &'static str,
    pub stopped: &'static str,
    pub interrupted: &'static str,
    pub answer_failed: &'static str,
    /// A new answer to the last message, after a complete one.
    pub regenerate: &'static str,
    pub edit: &'static str,
    pub edit_label: &'static str,
    pub edit_note: &'static str,
    // Conversation settings.
    pub settings: &'static str,
    pub settings_title: &'static str,
    pub system_prompt: &'static str,
    pub temperature: &'static str,
    pub temperature_hint: &'static str,
    pub max_tokens: &'static str,
    /// `(default)`: placeholder of a field left to the server's default.
    pub default_value: fn(&str) -> String,
    pub settings_save: &'static str,
    pub settings_reset: &'static str,
    pub settings_close: &'static str,
    pub settings_saved: &'static str,
    pub settings_saved_new_chat: &'static str,
    pub settings_bad_number: &'static str,
    // Composer.
    pub message_label: &'static str,
    pub message_placeholder: &'static str,
    pub send: &'static str,
    pub stop: &'static str,
    /// `(typed, max)`: the message is too long to send.
    pub too_long: fn(usize, usize) -> String,
    // Screen-reader announcements.
    pub announce_writing: &'static str,
    pub announce_complete: &'static str,
    pub announce_stopped: &'static str,
    pub announce_interrupted: &'static str,
    /// With the error's message.
    pub announce_failed: fn(&str) -> String,
    // The usage line of an answer, in parts joined by " · ".
    pub usage_in: fn(u32) -> String,
    pub usage_out: fn(u32) -> String,
    /// Seconds to the first token.
    pub usage_first_token: fn(f64) -> String,
    /// Tokens per second.
    pub usage_rate: fn(f64) -> String,
    /// Total seconds.
    pub usage_total: fn(f64) -> String,
    /// Input tokens read from / written to the prompt cache.
    pub usage_cache_read: fn(u32) -> String,
    pub usage_cache_write: fn(u32) -> String,
    /// A conversation's answers: their tokens and, when priced, cost.
    pub conversation_total: fn(u64, Option<&str>) -> String,
    /// The accessible name of a code block's Copy button.
    pub copy_code: &'static str,
    /// The Markdown renderer could not be loaded.
    pub formatting_unavailable: &'static str,
    /// A part of the page (settings, the editor) whose code could not be fetched.
    pub part_unavailable: &'static str,
    /// ... and while it is being fetched.
    pub loading_part: &'static str,
    // The usage page.
    pub usage_link: &'static str,
    pub usage_title: &'static str,
    pub usage_back: &'static str,
    /// The usage page's code could not be fetched.
    pub usage_unavailable: &'static str,
    pub usage_today: &'static str,
    pub usage_month: &'static str,
    pub usage_by_model: &'static str,
    pub usage_answers: &'static str,
    pub usage_input: &'static str,
    pub usage_output: &'static str,
    pub usage_cache_read_col: &'static str,
    pub usage_cache_write_col: &'static str,
    pub usage_cost: &'static str,
    pub usage_model: &'static str,
    pub usage_none: &'static str,
    pub usage_failed: &'static str,
    /// How costs are computed.
    pub usage_note: &'static str,
    // Thinking and tool calls in an answer.
    pub thinking: &'static str,
    pub thought: &'static str,
    /// Seconds the model thought.
    pub thought_for: fn(f64) -> String,
    pub thinking_redacted: &'static str,
    /// A tool's name as shown (the built-in ones translated).
    pub tool_name: fn(&str) -> String,
    pub tool_writing: &'static str,
    /// Seconds it has run.
    pub tool_running: fn(u64) -> String,
    /// Milliseconds it took.
    pub tool_done: fn(u64) -> String,
    pub tool_failed: &'static str,
    pub tool_awaiting: &'static str,
    pub tool_approve: &'static str,
    pub tool_deny: &'static str,
    pub tool_stopped: &'static str,
    pub tool_arguments: &'static str,
    pub tool_result: &'static str,
    /// `(shown, total)` characters: show the whole result.
    pub tool_show_all: fn(usize, usize) -> String,
    // Settings: tools and thinking.
    pub tools_label: &'static str,
    pub thinking_switch: &'static str,
    pub thinking_budget: &'static str,
    pub thinking_hint: &'static str,
    // Other pages.
    pub not_found: &'static str,
}

fn tool_name_en(name: &str) -> String {
    match name {
        crate::tools::CURRENT_TIME => "Current time".to_owned(),
        crate::tools::CALCULATOR => "Calculator".to_owned(),
        crate::tools::SEARCH_CONVERSATIONS => "Search my conversations".to_owned(),
        crate::tools::FETCH_URL => "Fetch a web page".to_owned(),
        other => mcp_tool_name(other),
    }
}

/// An MCP server's tool (`SERVER__TOOL`) as `TOOL · SERVER`; a server's own
/// name (in the settings) as it is.
fn mcp_tool_name(name: &str) -> String {
    match name.split_once("__") {
        Some((server, tool)) => format!("{tool} · {server}"),
        None => name.to_owned(),
    }
}

fn tool_name_ko(name: &str) -> String {
    match name {
        crate::tools::CURRENT_TIME => "현재 시각".to_owned(),
        crate::tools::CALCULATOR => "계산기".to_owned(),
        crate::tools::SEARCH_CONVERSATIONS => "내 대화 검색".to_owned(),
        crate::tools::FETCH_URL => "웹 페이지 가져오기".to_owned(),
        other => mcp_tool_name(other),
    }
}

pub const EN: Strings = Strings {
    conversations_label: "Conversations",
    open_menu: "Open the menu",
    close_menu: "Close the menu",
    new_chat: "New chat",
    loading_conversations: "Loading conversations…",
    no_conversations: "Your conversations will appear here.",
    rename: "Rename",
    rename_label: |title| format!("Rename “{title}”"),
    delete: "Delete",
    delete_label: |title| format!("Delete “{title}”"),
    conversation_title_label: "Conversation title",
    save: "Save",
    cancel: "Cancel",
    delete_dialog_label: "Delete conversation",
    delete_confirm: |title| format!("Delete “{title}”? This cannot be undone."),
    language_label: "Language",
    theme_label: "Theme",
    theme_system: "System",
    theme_light: "Light",
    theme_dark: "Dark",
    model_label: "Model",
    demo_badge: "demo model (offline)",
    demo_title: "No AWS credentials were found, so answers come from the built-in Bedrock simulator.",
    transcript_label: "Conversation",
    loading_conversation: "Loading the conversation…",
    jump_to_latest: "↓ Jump to latest",
    show_earlier: |n| {
        if n == 1 {
            "Show 1 earlier message".to_owned()
        } else {
            format!("Show {n} earlier messages")
        }
    },
    loading_earlier: "Loading earlier messages…",
    earlier_failed: "Earlier messages could not be loaded. Try again.",
    start_new_chat: "Start a new chat",
    empty_state: "Ask anything. Answers appear as they are written.",
    you: "You",
    assistant: "Assistant",
    not_sent: "Not sent: your text is back in the message box.",
    retry: "Retry",
    reconnecting: "Connection lost. Reconnecting…",
    generating: "Generating…",
    stopped: "Stopped",
    interrupted:
        "Interrupted before it finished: the server restarted, or nobody was connected to receive it.",
    answer_failed: "This answer failed.",
    regenerate: "Regenerate",
    edit: "Edit",
    edit_label: "Edit message",
    edit_note: "Sending replaces this message and everything after it.",
    settings: "Settings",
    settings_title: "Settings of this conversation",
    system_prompt: "System prompt",
    temperature: "Temperature",
    temperature_hint: "0 is the most predictable, 1 the most varied.",
    max_tokens: "Max tokens per answer",
    default_value: |value| format!("Default: {value}"),
    settings_save: "Save settings",
    settings_reset: "Use defaults",
    settings_close: "Close",
    settings_saved: "Saved. The next answer uses these settings.",
    settings_saved_new_chat: "Saved. They apply from the first message of this chat.",
    settings_bad_number: "Temperature and max tokens must be numbers (or left empty for the default).",
    message_label: "Message",
    message_placeholder: "Message (Enter to send, Shift+Enter for a new line)",
    send: "Send",
    stop: "Stop",
    too_long: |typed, max| format!("{typed} / {max} characters: shorten your message to send it."),
    announce_writing: "Writing the answer…",
    announce_complete: "The answer is complete.",
    announce_stopped: "The answer was stopped.",
    announce_interrupted: "The answer was interrupted.",
    announce_failed: |message| format!("The answer failed: {message}"),
    usage_in: |n| format!("{n} tokens in"),
    usage_out: |n| format!("{n} out"),
    usage_first_token: |s| format!("first token {s:.1} s"),
    usage_rate: |r| format!("{r:.0} tokens/s"),
    usage_total: |s| format!("{s:.1} s"),
    usage_cache_read: |n| format!("{n} from cache"),
    usage_cache_write: |n| format!("{n} cached"),
    conversation_total: |tokens, cost| match cost {
        Some(cost) => format!("{tokens} tokens · {cost}"),
        None => format!("{tokens} tokens"),
    },
    copy_code: "Copy code",
    formatting_unavailable: "Formatting could not be loaded, so answers are shown as plain text. Reload the page to try again.",
    part_unavailable: "This could not be loaded. Check your connection, then close it and open it again.",
    loading_part: "Loading…",
    usage_link: "Usage",
    usage_title: "Usage",
    usage_back: "Back to chat",
    usage_unavailable: "The usage page could not be loaded. Check your connection, then reload the page.",
    usage_today: "Today",
    usage_month: "This month",
    usage_by_model: "This month by model",
    usage_answers: "Answers",
    usage_input: "Tokens in",
    usage_output: "Tokens out",
    usage_cache_read_col: "From cache",
    usage_cache_write_col: "Written to cache",
    usage_cost: "Cost",
    usage_model: "Model",
    usage_none: "No answers yet.",
    usage_failed: "Usage cannot be shown right now.",
    usage_note: "Days and months are UTC. Costs use this server's price list; answers of models without a price count their tokens only.",
    thinking: "Thinking…",
    thought: "Thought",
    thought_for: |s| format!("Thought for {s:.1} s"),
    thinking_redacted: "Part of the thinking was encrypted by the provider and is not shown.",
    tool_name: tool_name_en,
    tool_writing: "Preparing…",
    tool_running: |s| format!("Running… {s} s"),
    tool_done: |ms| format!("Done in {ms} ms"),
    tool_failed: "Failed",
    tool_awaiting: "Waiting for your approval",
    tool_approve: "Approve",
    tool_deny: "Deny",
    tool_stopped: "Stopped",
    tool_arguments: "Arguments",
    tool_result: "Result",
    tool_show_all: |shown, total| format!("Show all ({shown} of {total} characters shown)"),
    tools_label: "Tools the model may use",
    thinking_switch: "Think before answering",
    thinking_budget: "Thinking budget (tokens)",
    thinking_hint: "For models that can think. At least 1024, and less than max tokens; temperature is not used while thinking.",
    not_found: "Page not found.",
};

pub const KO: Strings = Strings {
    conversations_label: "대화 목록",
    open_menu: "메뉴 열기",
    close_menu: "메뉴 닫기",
    new_chat: "새 채팅",
    loading_conversations: "대화 목록을 불러오는 중…",
    no_conversations: "대화를 시작하면 여기에 표시돼요.",
    rename: "이름 바꾸기",
    rename_label: |title| format!("“{title}” 이름 바꾸기"),
    delete: "삭제",
    delete_label: |title| format!("“{title}” 삭제"),
    conversation_title_label: "대화 제목",
    save: "저장",
    cancel: "취소",
    delete_dialog_label: "대화 삭제",
    delete_confirm: |title| format!("“{title}” 대화를 삭제할까요? 삭제하면 되돌릴 수 없어요."),
    language_label: "언어",
    theme_label: "테마",
    theme_system: "시스템 설정",
    theme_light: "라이트",
    theme_dark: "다크",
    model_label: "모델",
    demo_badge: "데모 모델 (오프라인)",
    demo_title: "AWS 자격 증명을 찾지 못해서 내장 Bedrock 시뮬레이터가 답변하고 있어요.",
    transcript_label: "대화",
    loading_conversation: "대화를 불러오는 중…",
    jump_to_latest: "↓ 최신 답변으로 이동",
    show_earlier: |n| format!("이전 메시지 {n}개 보기"),
    loading_earlier: "이전 메시지를 불러오는 중…",
    earlier_failed: "이전 메시지를 불러오지 못했습니다. 다시 시도해 주세요.",
    start_new_chat: "새 채팅 시작하기",
    empty_state: "무엇이든 물어보세요. 답변은 작성되는 대로 바로 보여 드려요.",
    you: "나",
    assistant: "어시스턴트",
    not_sent: "보내지 못했어요. 입력한 내용은 메시지 입력란에 다시 넣어 두었어요.",
    retry: "다시 시도",
    reconnecting: "연결이 끊겼어요. 다시 연결하는 중…",
    generating: "답변을 작성하는 중…",
    stopped: "중지됨",
    interrupted: "답변이 끝나기 전에 중단됐어요. 서버가 다시 시작됐거나, 답변을 받을 연결이 없었어요.",
    answer_failed: "답변을 생성하지 못했어요.",
    regenerate: "다시 생성",
    edit: "수정",
    edit_label: "메시지 수정",
    edit_note: "보내면 이 메시지와 그 뒤의 대화가 모두 바뀌어요.",
    settings: "설정",
    settings_title: "이 대화의 설정",
    system_prompt: "시스템 프롬프트",
    temperature: "온도",
    temperature_hint: "0에 가까울수록 일관되고, 1에 가까울수록 다양해요.",
    max_tokens: "답변당 최대 토큰 수",
    default_value: |value| format!("기본값: {value}"),
    settings_save: "설정 저장",
    settings_reset: "기본값 사용",
    settings_close: "닫기",
    settings_saved: "저장했어요. 다음 답변부터 이 설정을 사용해요.",
    settings_saved_new_chat: "저장했어요. 이 채팅의 첫 메시지부터 적용돼요.",
    settings_bad_number: "온도와 최대 토큰 수는 숫자로 입력해 주세요. 비워 두면 기본값을 써요.",
    message_label: "메시지",
    message_placeholder: "메시지를 입력하세요 (Enter로 보내기, Shift+Enter로 줄바꿈)",
    send: "보내기",
    stop: "중지",
    too_long: |typed, max| format!("{typed} / {max}자: 보내려면 메시지를 줄여 주세요."),
    announce_writing: "답변을 작성하는 중…",
    announce_complete: "답변이 완료됐어요.",
    announce_stopped: "답변을 중지했어요.",
    announce_interrupted: "답변이 중단됐어요.",
    announce_failed: |message| format!("답변을 생성하지 못했어요: {message}"),
    usage_in: |n| format!("입력 {n}토큰"),
    usage_out: |n| format!("출력 {n}토큰"),
    usage_first_token: |s| format!("첫 토큰 {s:.1}초"),
    usage_rate: |r| format!("초당 {r:.0}토큰"),
    usage_total: |s| format!("총 {s:.1}초"),
    usage_cache_read: |n| format!("캐시에서 {n}토큰"),
    usage_cache_write: |n| format!("캐시에 {n}토큰 저장"),
    conversation_total: |tokens, cost| match cost {
        Some(cost) => format!("{tokens}토큰 · {cost}"),
        None => format!("{tokens}토큰"),
    },
    copy_code: "코드 복사",
    formatting_unavailable: "서식 기능을 불러오지 못해 답변을 일반 텍스트로 표시합니다. 다시 시도하려면 페이지를 새로 고치세요.",
    part_unavailable: "이 부분을 불러오지 못했습니다. 연결을 확인한 뒤 닫았다가 다시 여세요.",
    loading_part: "불러오는 중…",
    usage_link: "사용량",
    usage_title: "사용량",
    usage_back: "채팅으로 돌아가기",
    usage_unavailable: "사용량 페이지를 불러오지 못했습니다. 연결을 확인한 뒤 페이지를 새로 고치세요.",
    usage_today: "오늘",
    usage_month: "이번 달",
    usage_by_model: "이번 달 모델별",
    usage_answers: "답변",
    usage_input: "입력 토큰",
    usage_output: "출력 토큰",
    usage_cache_read_col: "캐시에서 읽음",
    usage_cache_write_col: "캐시에 저장",
    usage_cost: "비용",
    usage_model: "모델",
    usage_none: "아직 답변이 없어요.",
    usage_failed: "지금은 사용량을 보여 줄 수 없어요.",
    usage_note: "날짜와 달은 UTC 기준이에요. 비용은 이 서버의 가격표로 계산하며, 가격이 없는 모델의 답변은 토큰만 셉니다.",
    thinking: "생각하는 중…",
    thought: "생각함",
    thought_for: |s| format!("{s:.1}초 동안 생각함"),
    thinking_redacted: "생각의 일부는 제공자가 암호화해서 보여 줄 수 없어요.",
    tool_name: tool_name_ko,
    tool_writing: "준비하는 중…",
    tool_running: |s| format!("실행하는 중… {s}초"),
    tool_done: |ms| format!("{ms}ms 만에 완료"),
    tool_failed: "실패",
    tool_awaiting: "승인을 기다리는 중",
    tool_approve: "승인",
    tool_deny: "거부",
    tool_stopped: "중지됨",
    tool_arguments: "인수",
    tool_result: "결과",
    tool_show_all: |shown, total| format!("모두 보기 ({total}자 중 {shown}자 표시)"),
    tools_label: "모델이 쓸 수 있는 도구",
    thinking_switch: "답하기 전에 생각하기",
    thinking_budget: "생각 예산 (토큰)",
    thinking_hint: "생각할 수 있는 모델만 해당돼요. 1024 이상, 최대 토큰보다 작아야 하며 생각하는 동안 온도는 쓰이지 않아요.",
    not_found: "페이지를 찾을 수 없어요.",
};

/// The page's current locale, provided by [`App`](crate::app::App) as
/// context. `Copy`: components and callbacks hold it freely.
#[derive(Clone, Copy)]
pub struct I18n {
    locale: RwSignal<Locale>,
}

impl I18n {
    /// Provides the locale the server chose to everything under the current
    /// owner.
    pub fn provide(initial: Locale) -> Self {
        let i18n = Self {
            locale: RwSignal::new(initial),
        };
        provide_context(i18n);
        i18n
    }

    /// The locale, as a reactive signal.
    pub fn locale(self) -> Signal<Locale> {
        self.locale.into()
    }

    /// The words in the current locale; read inside a reactive closure, it
    /// re-runs when the user switches.
    pub fn t(self) -> &'static Strings {
        self.locale.get().strings()
    }

    /// [`I18n::t`] without subscribing (for event handlers).
    pub fn t_untracked(self) -> &'static Strings {
        self.locale.get_untracked().strings()
    }

    /// Switches the page to `locale` at once, remembers the choice in the
    /// cookie (the server renders the next page in it) and retags `<html>`.
    pub fn switch(self, locale: Locale) {
        self.locale.set(locale);
        document::show_language(locale);
    }
}

/// The page's [`I18n`]. Outside the app (which always provides one) it is
/// English.
pub fn use_i18n() -> I18n {
    use_context::<I18n>().unwrap_or_else(|| I18n::provide(Locale::En))
}
