//! The usage page (`/usage`, both sides): what the owner used today and
//! this month, by model, and what it cost, from the figures stored with
//! each answer ([`super::client::usage_report`]).

use super::{
    client, format_cost,
    usage::{ModelUsage, UsageTotals},
};
use crate::{
    app::PageConfig,
    i18n::{use_i18n, Strings},
};
use leptos::prelude::*;
use leptos_router::LazyRoute;

/// The usage page's route. Few people open it, so its code is in the
/// WebAssembly module of such parts (`chat::page::on_demand`, with the
/// `split` feature), fetched when it is opened; hydrating `/usage` waits for
/// it (`hydrate` in `lib.rs` is asynchronous for this). If it cannot be
/// fetched, a page opened from the chat says so; a page loaded at `/usage`
/// is not hydrated ([`hydrating_can_start`]) and says so too, keeping what
/// the server wrote (its figures, and its Back link, a plain link). As
/// there, only the split function may name [`UsagePage`].
pub struct UsageRoute(PageConfig);

/// Where the usage page is (its route in `app.rs` is `path!("usage")`).
pub const USAGE_PATH: &str = "/usage";

impl LazyRoute for UsageRoute {
    fn data() -> Self {
        Self(expect_context::<PageConfig>())
    }

    /// Fetched before the page is hydrated or drawn, so that `view` is ready
    /// at once: hydration cannot wait inside a view.
    async fn preload() {
        // (A failure shows in `view`, which tries again.)
        #[cfg(all(feature = "hydrate", feature = "split"))]
        let _ = preload_usage_page().await;
    }

    async fn view(this: Self) -> AnyView {
        match load(this.0).await {
            Some(page) => page,
            None => {
                let i18n = use_i18n();
                view! {
                    <main class="usage-page">
                        <p class="state error" role="alert">{move || i18n.t().usage_unavailable}</p>
                        <a href="/" class="back-link">{move || i18n.t().usage_back}</a>
                    </main>
                }
                .into_any()
            }
        }
    }
}

/// Whether the page in the browser can be hydrated. A page loaded at
/// `/usage` cannot be without the usage page's code: its route would draw
/// the sentence of a failed fetch where the server wrote the figures, and
/// hydrating the one against the other is an unrecoverable mismatch. So the
/// code is fetched first; if it cannot be, the page the server wrote stays
/// (its links work without script) and the sentence is added to it.
#[cfg(feature = "hydrate")]
pub async fn hydrating_can_start(page: &PageConfig) -> bool {
    #[cfg(feature = "split")]
    {
        let on_usage_page = window()
            .location()
            .pathname()
            .is_ok_and(|path| path == USAGE_PATH);
        if on_usage_page && preload_usage_page().await.is_err() {
            say_unavailable_on_the_served_page(page.locale.strings());
            return false;
        }
    }
    #[cfg(not(feature = "split"))]
    let _ = page;
    true
}

/// Adds the sentence of [`UsageRoute::view`]'s failure under the page's
/// heading, as text (never markup).
#[cfg(all(feature = "hydrate", feature = "split"))]
fn say_unavailable_on_the_served_page(t: &Strings) {
    let document = document();
    let (Some(header), Ok(sentence)) = (
        document
            .query_selector("main.usage-page > .usage-header")
            .ok()
            .flatten(),
        document.create_element("p"),
    ) else {
        return;
    };
    sentence.set_class_name("state error");
    let _ = sentence.set_attribute("role", "alert");
    sentence.set_text_content(Some(t.usage_unavailable));
    let _ = header.after_with_node_1(&sentence);
}

/// The page, once its code is here; `None` if it could not be fetched.
async fn load(page: PageConfig) -> Option<AnyView> {
    #[cfg(all(feature = "hydrate", feature = "split"))]
    return split_usage_page(page).await.ok();
    #[cfg(not(all(feature = "hydrate", feature = "split")))]
    Some(UsagePage(UsagePageProps { page }).into_any())
}

#[cfg(all(feature = "hydrate", feature = "split"))]
#[wasm_split_helpers::wasm_split(on_demand, fallible, preload(preload_usage_page))]
fn split_usage_page(page: PageConfig) -> Result<AnyView, wasm_split_helpers::SplitLoaderError> {
    Ok(UsagePage(UsagePageProps { page }).into_any())
}

#[component]
pub fn UsagePage(page: PageConfig) -> impl IntoView {
    let i18n = use_i18n();
    let report = Resource::new(|| (), |()| client::usage_report());
    let currency = StoredValue::new(page.currency.clone());
    let models = StoredValue::new(page.models.clone());
    // A model's label when it is still offered, else its id.
    let label = move |id: &str| {
        models.with_value(|m| {
            m.iter()
                .find(|m| m.id == id)
                .map_or_else(|| id.to_owned(), |m| m.label.clone())
        })
    };
    view! {
        <main class="usage-page">
            <header class="usage-header">
                <a href="/" class="back-link">{move || i18n.t().usage_back}</a>
                <h1>{move || i18n.t().usage_title}</h1>
            </header>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let t = i18n.t();
                    match report.await {
                        Err(_) => view! { <p class="state error" role="alert">{t.usage_failed}</p> }.into_any(),
                        Ok(report) if report.month.answers == 0 && report.today.answers == 0 => {
                            view! { <p class="usage-empty">{t.usage_none}</p> }.into_any()
                        }
                        Ok(report) => {
                            let cost = move |nanos: u64| currency.with_value(|c| format_cost(nanos, c));
                            view! {
                                <section class="usage-periods">
                                    <Period title=t.usage_today totals=report.today.clone() cost/>
                                    <Period title=t.usage_month totals=report.month.clone() cost/>
                                </section>
                                <ByModel rows=report.by_model.clone() cost label/>
                            }
                            .into_any()
                        }
                    }
                })}
            </Suspense>
            <p class="usage-note">{move || i18n.t().usage_note}</p>
        </main>
    }
}

/// The numbers of `totals`, labelled, in the order of the table's columns.
fn figures(t: &Strings, totals: &UsageTotals) -> [(&'static str, u64); 5] {
    [
        (t.usage_answers, totals.answers),
        (t.usage_input, totals.input_tokens),
        (t.usage_output, totals.output_tokens),
        (t.usage_cache_read_col, totals.cache_read_tokens),
        (t.usage_cache_write_col, totals.cache_write_tokens),
    ]
}

/// One period's totals as a description list.
#[component]
fn Period(
    title: &'static str,
    totals: UsageTotals,
    cost: impl Fn(u64) -> String + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let i18n = use_i18n();
    let t = i18n.t();
    view! {
        <div class="usage-period">
            <h2>{title}</h2>
            <dl>
                {figures(t, &totals)
                    .into_iter()
                    .map(|(name, value)| view! { <dt>{name}</dt><dd>{value}</dd> })
                    .collect_view()}
                <dt>{t.usage_cost}</dt>
                <dd class="cost">{cost(totals.cost_nanos)}</dd>
            </dl>
        </div>
    }
}

/// This month by model, most expensive first.
#[component]
fn ByModel(
    rows: Vec<ModelUsage>,
    cost: impl Fn(u64) -> String + Copy + Send + Sync + 'static,
    label: impl Fn(&str) -> String + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let i18n = use_i18n();
    let t = i18n.t();
    view! {
        <section class="usage-by-model">
            <h2>{t.usage_by_model}</h2>
            <table>
                <thead>
                    <tr>
                        <th scope="col">{t.usage_model}</th>
                        {figures(t, &UsageTotals::default())
                            .into_iter()
                            .map(|(name, _)| view! { <th scope="col">{name}</th> })
                            .collect_view()}
                        <th scope="col">{t.usage_cost}</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|row| {
                            view! {
                                <tr>
                                    <th scope="row">{label(&row.model_id)}</th>
                                    {figures(t, &row.totals)
                                        .into_iter()
                                        .map(|(_, value)| view! { <td>{value}</td> })
                                        .collect_view()}
                                    <td class="cost">{cost(row.totals.cost_nanos)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
    }
}
