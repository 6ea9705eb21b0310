//! Money and counts as people read them. Costs are kept as the CLIs
//! reported them (summing floats leaves noise such as
//! `0.30000000000000004`); they are rounded only where they are shown or
//! written out: at the edge, not in the data.

use serde::Serializer;

/// Most decimals a cost is shown with: a millionth of a dollar.
const MAX_DECIMALS: i32 = 6;

/// `$1.23`, `$0.05`, `$0.012`, `$0.0002`: two decimals, more for costs
/// under ten cents so that two significant digits show (a cheap model's
/// `$0.0002` is not `$0.00`), at most six; `<$0.000001` below that.
pub fn usd(cost: f64) -> String {
    if !cost.is_finite() {
        return format!("${cost}");
    }
    let sign = if cost < 0.0 { "-" } else { "" };
    let abs = cost.abs();
    if abs == 0.0 || abs >= 0.1 {
        return format!("{sign}${abs:.2}");
    }
    // Two significant digits: the first is at 10^floor(log10(abs)).
    let first = abs.log10().floor() as i32;
    let decimals = (1 - first).clamp(2, MAX_DECIMALS);
    let text = format!("{abs:.*}", decimals as usize);
    if text.trim_start_matches(['0', '.']).is_empty() {
        return format!("{sign}<$0.000001");
    }
    // `0.050` → `0.05`: trailing zeros past two decimals say nothing.
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut fraction = fraction.trim_end_matches('0').to_owned();
    while fraction.len() < 2 {
        fraction.push('0');
    }
    format!("{sign}${whole}.{fraction}")
}

/// A cost for a JSON file: the sum's float noise rounded off (to 1e-10
/// dollars, far below any price), so `0.1 + 0.2` is written `0.3`.
pub fn round_usd(cost: f64) -> f64 {
    if cost.is_finite() {
        (cost * 1e10).round() / 1e10
    } else {
        cost
    }
}

/// serde's `serialize_with` for an optional cost: [`round_usd`].
pub fn serialize_usd<S: Serializer>(cost: &Option<f64>, out: S) -> Result<S::Ok, S::Error> {
    match cost {
        Some(cost) => out.serialize_some(&round_usd(*cost)),
        None => out.serialize_none(),
    }
}

/// `1 turn`, `2 turns`, `0 turns`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_costs_keep_two_significant_digits() {
        assert_eq!(usd(0.0002), "$0.0002");
        assert_eq!(usd(0.00023456), "$0.00023");
        assert_eq!(usd(0.0123), "$0.012");
        assert_eq!(usd(0.05), "$0.05");
        assert_eq!(usd(0.099), "$0.099");
        assert_eq!(usd(0.5), "$0.50");
        assert_eq!(usd(1.234), "$1.23");
        assert_eq!(usd(1234.5), "$1234.50");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(0.000_000_4), "<$0.000001");
        assert_eq!(usd(0.1 + 0.2), "$0.30");
    }

    #[test]
    fn json_costs_lose_the_float_noise_of_a_sum() {
        assert_eq!(
            serde_json::to_string(&round_usd(0.1 + 0.2)).ok().as_deref(),
            Some("0.3")
        );
        assert_eq!(round_usd(0.000_123_4), 0.000_123_4);
    }

    #[test]
    fn counts_agree_with_their_number() {
        assert_eq!(count(1, "turn"), "1 turn");
        assert_eq!(count(0, "turn"), "0 turns");
        assert_eq!(count(12, "turn"), "12 turns");
    }
}
