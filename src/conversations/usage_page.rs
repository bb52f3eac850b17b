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
