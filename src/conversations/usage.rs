//! What answers used and cost (both sides): an answer's [`Usage`], a
//! model's [`Price`], an owner's [`UsageReport`], and how a cost is written.
//!
//! Costs are whole billionths of the configured currency (`cost_nanos`):
//! exact to add up, small enough for any bill, and integers, so the types
//! that carry them stay `Eq`. A model without a price has no cost (`None`),
//! never a cost of zero.

use serde::{Deserialize, Serialize};

/// What one answer used, as Bedrock counted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens not read from or written to the prompt cache.
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    /// Bedrock's own latency figure for the whole call.
    pub latency_ms: u64,
    /// Input tokens read from Bedrock's prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u32,
    /// Input tokens written to Bedrock's prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u32,
    /// What the answer cost, in billionths of the currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_nanos: Option<u64>,
}

/// A model's prices, in the currency per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

impl Price {
    /// The cost of `usage`, in billionths of the currency: tokens times the
    /// price per million is millionths; a thousand billionths each.
    pub fn cost_nanos(&self, usage: &Usage) -> u64 {
        let millionths = f64::from(usage.input_tokens) * self.input
            + f64::from(usage.output_tokens) * self.output
            + f64::from(usage.cache_read_tokens) * self.cache_read
            + f64::from(usage.cache_write_tokens) * self.cache_write;
        (millionths * 1000.0).round().max(0.0) as u64
    }
}

/// Answers and tokens over a period (or of one model), and what they cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub answers: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Of the answers whose model had a price.
    pub cost_nanos: u64,
}

/// One model's part of a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    pub model_id: String,
    pub totals: UsageTotals,
}

/// An owner's usage: today, this month, and this month by model (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub today: UsageTotals,
    pub month: UsageTotals,
    pub by_model: Vec<ModelUsage>,
}

/// The first day of the month (UTC) of `day`, both in days since the epoch.
pub fn first_day_of_month(day: i64) -> i64 {
    // Howard Hinnant's civil-from-days, enough of it for the day of the month.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day_of_month = day_of_year - (153 * month_index + 2) / 5 + 1;
    day - (day_of_month - 1)
}

/// `nanos` billionths of `currency`, to three significant digits below one
/// unit: "$0.0123", "€1.25", "0.000412 CHF".
pub fn format_cost(nanos: u64, currency: &str) -> String {
    let amount = nanos as f64 / 1e9;
    let decimals = if amount >= 1.0 || amount == 0.0 {
        2
    } else {
        (2 - amount.log10().floor() as i32).clamp(2, 9) as usize
    };
    let number = format!("{amount:.decimals$}");
    match currency {
        "USD" => format!("${number}"),
        "EUR" => format!("€{number}"),
        "GBP" => format!("£{number}"),
        "JPY" => format!("¥{number}"),
        "KRW" => format!("₩{number}"),
        other => format!("{number} {other}"),
    }
}

impl Usage {
    /// Tokens of every kind, and the cost when the model had a price: what
    /// [`totals`] adds up.
    pub fn tokens_and_cost(&self) -> (u64, Option<u64>) {
        let tokens = u64::from(self.input_tokens)
            + u64::from(self.output_tokens)
            + u64::from(self.cache_read_tokens)
            + u64::from(self.cache_write_tokens);
        (tokens, self.cost_nanos)
    }
}

/// Tokens and costs added up, the cost only over what was priced; `None`
/// when there is nothing to add.
pub fn totals(parts: impl Iterator<Item = (u64, Option<u64>)>) -> Option<(u64, Option<u64>)> {
    parts.fold(None, |sum, (tokens, cost)| {
        let (sum_tokens, sum_cost) = sum.unwrap_or((0, None));
        let cost = match (sum_cost, cost) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        Some((sum_tokens + tokens, cost))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_tokens_and_only_the_costs_there_are() {
        assert_eq!(totals(std::iter::empty()), None);
        assert_eq!(totals([(10, None), (5, None)].into_iter()), Some((15, None)));
        assert_eq!(
            totals([(10, None), (5, Some(7)), (1, Some(3))].into_iter()),
            Some((16, Some(10)))
        );
        let usage = Usage {
            input_tokens: 1,
            output_tokens: 2,
            cache_read_tokens: 3,
            cache_write_tokens: 4,
            cost_nanos: Some(9),
            ..Usage::default()
        };
        assert_eq!(usage.tokens_and_cost(), (10, Some(9)));
    }

    #[test]
    fn a_cost_is_tokens_times_the_price_per_million() {
        let haiku = Price {
            input: 0.80,
            output: 4.00,
            cache_read: 0.08,
            cache_write: 1.00,
        };
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_read_tokens: 2_000,
            cache_write_tokens: 100,
            ..Default::default()
        };
        // 1000 × 0.8 + 500 × 4 + 2000 × 0.08 + 100 × 1 = 3060 millionths.
        assert_eq!(haiku.cost_nanos(&usage), 3_060_000);
        assert_eq!(haiku.cost_nanos(&Usage::default()), 0);
    }

    #[test]
    fn the_month_starts_on_its_first_day() {
        // 2026-12-05 is day 20_792; December began on day 20_788.
        assert_eq!(first_day_of_month(20_792), 20_788);
        assert_eq!(first_day_of_month(20_788), 20_788);
        // 2024-02-29 (leap day) is 19_782; February began on 19_754.
        assert_eq!(first_day_of_month(19_782), 19_754);
        // 1970-01-01.
        assert_eq!(first_day_of_month(0), 0);
        // 2027-01-01 is day 20_819.
        assert_eq!(first_day_of_month(20_819), 20_819);
        assert_eq!(first_day_of_month(20_818), 20_788);
    }

    #[test]
    fn costs_are_written_with_three_significant_digits() {
        assert_eq!(format_cost(3_060_000, "USD"), "$0.00306");
        assert_eq!(format_cost(12_300_000, "USD"), "$0.0123");
        assert_eq!(format_cost(1_250_000_000, "EUR"), "€1.25");
        assert_eq!(format_cost(412_000, "CHF"), "0.000412 CHF");
        assert_eq!(format_cost(0, "USD"), "$0.00");
    }
}
