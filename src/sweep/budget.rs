//! Budgets the runner enforces, not the agent: a worker past its budget is
//! stopped, and once the sweep's budget is spent no new task starts.

use std::collections::HashMap;

use super::launch::UsageUpdate;
use super::Sweep;
use crate::agents::stream::Usage;
use crate::events::Event;
use crate::manifest::types::Budget;
use crate::supervise::process::Stop;
use crate::util::units::{count, usd};

/// Why `usage` is over `budget`, or `None` while it is within.
pub fn exceeded(budget: &Budget, usage: &Usage) -> Option<String> {
    if let (Some(max), Some(cost)) = (budget.max_cost_usd, usage.cost_usd) {
        if cost > max {
            return Some(format!("spent {} of a {} budget", usd(cost), usd(max)));
        }
    }
    if let Some(max) = budget.max_turns {
        if usage.turns > max {
            return Some(format!(
                "took {} of a {max}-turn budget",
                count(usage.turns, "turn")
            ));
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

/// Budgets spent so far across tasks: the sweep's, and each model's.
/// Once spent, no new task (on that model) starts; running ones go on
/// within their own budgets.
#[derive(Debug, Default)]
pub(super) struct Spent {
    /// Why the sweep's budget stopped new launches.
    pub(super) sweep: Option<String>,
    /// Models whose budget is spent, and why.
    pub(super) models: HashMap<String, String>,
}

impl Spent {
    /// Check the sweep's budget against every task's usage; the reason,
    /// the first time it is spent.
    pub(super) fn check_sweep<'a>(
        &mut self,
        budget: Option<&Budget>,
        usages: impl IntoIterator<Item = &'a Usage>,
    ) -> Option<String> {
        if self.sweep.is_some() {
            return None;
        }
        let reason = exceeded(budget?, &total(usages))?;
        self.sweep = Some(reason.clone());
        Some(reason)
    }

    /// Check `model`'s budget against the usage of the tasks on it; the
    /// reason, the first time it is spent.
    pub(super) fn check_model<'a>(
        &mut self,
        model: &str,
        budget: Option<&Budget>,
        usages: impl IntoIterator<Item = &'a Usage>,
    ) -> Option<String> {
        if self.models.contains_key(model) {
            return None;
        }
        let reason = exceeded(budget?, &total(usages))?;
        self.models.insert(model.to_owned(), reason.clone());
        Some(reason)
    }

    /// Why `model` can start no more tasks, if it cannot.
    pub(super) fn model(&self, model: Option<&str>) -> Option<(String, String)> {
        let model = model?;
        let reason = self.models.get(model)?;
        Some((model.to_owned(), reason.clone()))
    }
}

impl Sweep {
    /// Record a worker's spend; stop it past its budget, and stop new
    /// launches past the sweep's or its model's.
    pub(super) fn usage_changed(&mut self, update: UsageUpdate) {
        let index = update.index;
        let slot = &mut self.slots[index];
        slot.record.usage = total([&slot.earlier.usage, &update.usage]);
        slot.unsaved = true;
        if slot.over_budget.is_none() {
            let over = slot
                .task
                .budget
                .as_ref()
                .and_then(|b| exceeded(b, &slot.record.usage));
            if let Some(reason) = over {
                if let Some(stop) = &slot.stop {
                    let _ = stop.send(Stop::Graceful);
                }
                slot.over_budget = Some(reason.clone());
                let id = slot.task.id.clone();
                self.emit(Event::Warning {
                    task: Some(id),
                    message: format!("over budget ({reason}); stopping the worker"),
                });
            }
        }
        if let Some(model) = self.slots[index]
            .task
            .model
            .as_ref()
            .map(|m| m.name.clone())
        {
            let usages = self
                .slots
                .iter()
                .filter(|s| s.record.model.as_deref() == Some(model.as_str()))
                .map(|s| &s.record.usage);
            if let Some(reason) =
                self.spent
                    .check_model(&model, self.plan.model_budgets.get(&model), usages)
            {
                self.emit(Event::Warning {
                    task: None,
                    message: format!(
                        "model {model}'s budget is spent ({reason}); no new task on it starts"
                    ),
                });
            }
        }
        let usages = self.slots.iter().map(|s| &s.record.usage);
        if let Some(reason) = self.spent.check_sweep(self.plan.budget.as_ref(), usages) {
            self.emit(Event::Warning {
                task: None,
                message: format!("the sweep's budget is spent ({reason}); no new task starts"),
            });
        }
    }
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

    #[test]
    fn a_spent_budget_is_reported_once_and_holds_its_model_only() {
        let budget = Budget {
            max_cost_usd: Some(1.0),
            max_turns: None,
            max_tokens: None,
        };
        let cheap = Usage {
            cost_usd: Some(0.6),
            ..Usage::default()
        };
        let mut spent = Spent::default();
        assert_eq!(spent.check_model("opus", Some(&budget), [&cheap]), None);
        assert_eq!(
            spent
                .check_model("opus", Some(&budget), [&cheap, &cheap])
                .as_deref(),
            Some("spent $1.20 of a $1.00 budget")
        );
        assert_eq!(
            spent.check_model("opus", Some(&budget), [&cheap, &cheap]),
            None,
            "said once"
        );
        assert!(spent.model(Some("opus")).is_some());
        assert_eq!(spent.model(Some("haiku")), None);
        assert_eq!(spent.model(None), None);
        assert_eq!(
            spent.check_model("haiku", None, [&cheap, &cheap]),
            None,
            "no budget, never spent"
        );
        assert_eq!(spent.sweep, None);
        assert!(spent.check_sweep(Some(&budget), [&cheap, &cheap]).is_some());
        assert!(spent.sweep.is_some());
        assert_eq!(spent.check_sweep(Some(&budget), [&cheap, &cheap]), None);
    }
}
