//! Budgets the runner enforces, not the agent: a worker past its budget is
//! stopped, and once the sweep's budget is spent no new task starts.

use crate::agents::stream::Usage;
use crate::manifest::types::Budget;

/// Why `usage` is over `budget`, or `None` while it is within.
pub fn exceeded(budget: &Budget, usage: &Usage) -> Option<String> {
    if let (Some(max), Some(cost)) = (budget.max_cost_usd, usage.cost_usd) {
        if cost > max {
            return Some(format!("spent ${cost:.2} of a ${max:.2} budget"));
        }
    }
    if let Some(max) = budget.max_turns {
        if usage.turns > max {
            return Some(format!("took {} turns of a {max}-turn budget", usage.turns));
        }
    }
    if let Some(max) = budget.max_tokens {
        let tokens = usage.input_tokens + usage.output_tokens;
        if tokens > max {
            return Some(format!("used {tokens} tokens of a {max}-token budget"));
        }
    }
    None
}

/// The usage of several workers added up.
pub fn total<'a>(usages: impl IntoIterator<Item = &'a Usage>) -> Usage {
    let mut sum = Usage::default();
    for usage in usages {
        sum.turns += usage.turns;
        sum.input_tokens += usage.input_tokens;
        sum.output_tokens += usage.output_tokens;
        sum.cached_input_tokens += usage.cached_input_tokens;
        if let Some(cost) = usage.cost_usd {
            sum.cost_usd = Some(sum.cost_usd.unwrap_or(0.0) + cost);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_trips_only_past_its_value() {
        let budget = Budget {
            max_cost_usd: Some(1.0),
            max_turns: Some(10),
            max_tokens: Some(1000),
        };
        let mut usage = Usage {
            turns: 10,
            input_tokens: 600,
            output_tokens: 400,
            cost_usd: Some(1.0),
            ..Usage::default()
        };
        assert_eq!(exceeded(&budget, &usage), None, "at the limit is within it");
        usage.cost_usd = Some(1.25);
        assert_eq!(
            exceeded(&budget, &usage).as_deref(),
            Some("spent $1.25 of a $1.00 budget")
        );
        usage.cost_usd = None;
        usage.turns = 11;
        assert!(exceeded(&budget, &usage).is_some_and(|r| r.contains("11 turns")));
        usage.turns = 1;
        usage.output_tokens = 401;
        assert!(exceeded(&budget, &usage).is_some_and(|r| r.contains("1001 tokens")));
    }

    #[test]
    fn totals_add_up_and_keep_unknown_cost_unknown() {
        let a = Usage {
            turns: 2,
            cost_usd: Some(0.5),
            ..Usage::default()
        };
        let b = Usage {
            turns: 3,
            cost_usd: None,
            ..Usage::default()
        };
        let sum = total([&a, &b]);
        assert_eq!(sum.turns, 5);
        assert_eq!(sum.cost_usd, Some(0.5));
        assert_eq!(total([&b]).cost_usd, None);
    }
}
