use super::*;
use proptest::prelude::*;

fn states(checklist: &Checklist) -> Vec<ItemState> {
    checklist.items.iter().map(|item| item.state).collect()
}

fn texts(checklist: &Checklist) -> Vec<&str> {
    checklist
        .items
        .iter()
        .map(|item| item.text.as_str())
        .collect()
}

const SEED: &str = "# Security Audit\n\
    \n\
    - [ ] Scan codebase for hardcoded secrets\n\
    - [ ] Review authentication and authorization logic\n\
    - [ ] Write findings report to .dispatch/tasks/security-audit/output.md\n";

#[test]
fn seed_plan_is_all_pending() {
    let plan = parse(SEED);
    assert_eq!(plan.title.as_deref(), Some("Security Audit"));
    assert_eq!(
        texts(&plan),
        [
            "Scan codebase for hardcoded secrets",
            "Review authentication and authorization logic",
            "Write findings report to .dispatch/tasks/security-audit/output.md",
        ]
    );
    assert_eq!(states(&plan), [ItemState::Pending; 3]);
    assert_eq!(
        plan.items.iter().map(|i| i.line).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(plan.items.iter().all(|i| i.depth == 0 && i.note.is_none()));
    assert_eq!(plan.current().map(|i| i.line), Some(3));
    assert!(!plan.is_complete());
}

#[test]
fn security_audit_partly_done_with_notes() {
    let text = "# Security Audit\n\
        \n\
        - [x] Scan codebase for hardcoded secrets — found 2 instances in config.ts:14\n\
        \x20 and one more in scripts/deploy.sh:3\n\
        - [?] Review authentication and authorization logic — should admin tokens expire?\n\
        - [ ] Write findings report to .dispatch/tasks/security-audit/output.md\n";
    let plan = parse(text);
    assert_eq!(
        states(&plan),
        [ItemState::Done, ItemState::Blocked, ItemState::Pending]
    );
    assert_eq!(plan.items[0].text, "Scan codebase for hardcoded secrets");
    assert_eq!(
        plan.items[0].note.as_deref(),
        Some("found 2 instances in config.ts:14 and one more in scripts/deploy.sh:3")
    );
    assert_eq!(
        plan.items[1].note.as_deref(),
        Some("should admin tokens expire?")
    );
    assert_eq!(plan.items[2].line, 6);
    assert_eq!(plan.current().map(|i| i.line), Some(5));
    let counts = plan.counts();
    assert_eq!(
        counts,
        Counts {
            total: 3,
            done: 1,
            pending: 1,
            in_progress: 0,
            blocked: 1,
            failed: 0
        }
    );
}

#[test]
fn agent_rewrite_with_star_bullets_and_capital_x() {
    let text = "# Security Audit\n\
        \n\
        Progress so far:\n\
        \n\
        * [X] Scan codebase for hardcoded secrets -- none found\n\
        * [X] Review authentication and authorization logic – JWT expiry is 30 days\n\
        \x20   * [x] Check token refresh\n\
        \x20   * [!] Check SSO callback — could not start the IdP mock\n\
        * [~] Write findings report to .dispatch/tasks/security-audit/output.md\n";
    let plan = parse(text);
    assert_eq!(
        states(&plan),
        [
            ItemState::Done,
            ItemState::Done,
            ItemState::Done,
            ItemState::Failed,
            ItemState::InProgress
        ]
    );
    assert_eq!(plan.items[0].note.as_deref(), Some("none found"));
    assert_eq!(
        plan.items[1].text,
        "Review authentication and authorization logic"
    );
    assert_eq!(plan.items[1].note.as_deref(), Some("JWT expiry is 30 days"));
    assert_eq!(
        plan.items.iter().map(|i| i.depth).collect::<Vec<_>>(),
        [0, 0, 1, 1, 0]
    );
    assert_eq!(
        plan.items[3].note.as_deref(),
        Some("could not start the IdP mock")
    );
    assert_eq!(plan.current().map(|i| i.depth), Some(0));
    assert_eq!(plan.current().map(|i| i.line), Some(9));
}

#[test]
fn numbered_list() {
    let text = "# Refactor parser\n\
        1. [x] Read the existing parser — 400 lines, no tests\n\
        2. [x] Add tests first\n\
        3) [ ] Split tokenizer out (in progress)\n\
        10. [ ] Delete dead code\n";
    let plan = parse(text);
    assert_eq!(
        texts(&plan),
        [
            "Read the existing parser",
            "Add tests first",
            "Split tokenizer out",
            "Delete dead code"
        ]
    );
    assert_eq!(
        states(&plan),
        [
            ItemState::Done,
            ItemState::Done,
            ItemState::InProgress,
            ItemState::Pending
        ]
    );
    assert_eq!(plan.current().map(|i| i.line), Some(4));
}

#[test]
fn crlf_plan() {
    let text = "# Docs\r\n\r\n- [x] Write README \u{2014} done\r\n- [ ] Write CHANGELOG\r\n";
    let plan = parse(text);
    assert_eq!(plan.title.as_deref(), Some("Docs"));
    assert_eq!(texts(&plan), ["Write README", "Write CHANGELOG"]);
    assert_eq!(plan.items[0].note.as_deref(), Some("done"));
    assert_eq!(plan.items[1].line, 4);
}

#[test]
fn bom_and_missing_trailing_newline() {
    let plan = parse("\u{feff}# Title\n- [x] last item");
    assert_eq!(plan.title.as_deref(), Some("Title"));
    assert_eq!(texts(&plan), ["last item"]);
    assert_eq!(plan.items[0].line, 2);
    assert!(plan.is_complete());
    let plan = parse("\u{feff}- [ ] first");
    assert_eq!(plan.items[0].line, 1);
}

#[test]
fn all_bullets_and_markers() {
    let text =
        "- [ ] a\n* [x] b\n+ [X] c\n1. [?] d\n2) [!] e\n- [~] f\n- [-] g\n- [/] h\n- [>] i\n";
    assert_eq!(
        states(&parse(text)),
        [
            ItemState::Pending,
            ItemState::Done,
            ItemState::Done,
            ItemState::Blocked,
            ItemState::Failed,
            ItemState::InProgress,
            ItemState::InProgress,
            ItemState::InProgress,
            ItemState::InProgress,
        ]
    );
}

#[test]
fn in_progress_suffix_is_not_text() {
    let plan = parse(
        "- [ ] Build it (in progress)\n- [ ] Ship it (In-Progress)\n- [ ] Test it — started (in progress)\n- [ ] Plan (in progress) — halfway\n",
    );
    assert_eq!(texts(&plan), ["Build it", "Ship it", "Test it", "Plan"]);
    assert_eq!(states(&plan), [ItemState::InProgress; 4]);
    assert_eq!(plan.items[2].note.as_deref(), Some("started"));
    assert_eq!(plan.items[3].note.as_deref(), Some("halfway"));
    // A word merely ending in the suffix is not one.
    assert_eq!(
        parse("- [ ] Track work(in progress)\n").items[0].state,
        ItemState::Pending
    );
}

#[test]
fn note_separators() {
    let plan = parse(
        "- [x] a — em\n- [x] b – en\n- [x] c -- double\n- [x] d—no spaces\n- [x] run cargo test -- --ignored — all pass\n- [x] e —\n",
    );
    let notes: Vec<_> = plan.items.iter().map(|i| i.note.as_deref()).collect();
    assert_eq!(
        notes,
        [
            Some("em"),
            Some("en"),
            Some("double"),
            None,
            Some("all pass"),
            None
        ]
    );
    assert_eq!(plan.items[3].text, "d—no spaces");
    assert_eq!(plan.items[4].text, "run cargo test -- --ignored");
    assert_eq!(plan.items[5].text, "e");
}

#[test]
fn nested_items_record_depth() {
    let text = "- [ ] top\n  - [ ] two spaces\n      - [ ] deeper\n  - [ ] back\n- [ ] top again\n\t- [ ] tab\n";
    let plan = parse(text);
    assert_eq!(
        plan.items.iter().map(|i| i.depth).collect::<Vec<_>>(),
        [0, 1, 2, 1, 0, 1]
    );
    // A plain bullet counts as a parent too.
    let plan = parse("- Phase 1\n  - [ ] step\n## Phase 2\n  - [ ] other\n");
    assert_eq!(
        plan.items.iter().map(|i| i.depth).collect::<Vec<_>>(),
        [1, 0]
    );
}

#[test]
fn notes_on_following_lines() {
    let text = "- [x] Scan — found 2\n  config.ts:14\n    db.ts:3\n  - [ ] nested item is not a note\n- [?] Ask\n  Should I delete it?\n\n  after blank is not a note\n- [x] Flat\nnot indented is not a note\n";
    let plan = parse(text);
    assert_eq!(
        plan.items[0].note.as_deref(),
        Some("found 2 config.ts:14 db.ts:3")
    );
    assert_eq!(plan.items[1].note, None);
    assert_eq!(plan.items[1].depth, 1);
    assert_eq!(plan.items[2].note.as_deref(), Some("Should I delete it?"));
    assert_eq!(plan.items[3].note, None);
    // Continuation lines also follow a nested item, deeper than its bullet.
    let plan = parse("- [ ] a\n  - [x] b\n    note for b\n  not for b\n");
    assert_eq!(plan.items[1].note.as_deref(), Some("note for b"));
    assert_eq!(plan.items[0].note, None);
}

#[test]
fn fenced_code_is_never_items() {
    let text = "# Plan\n```markdown\n# Not the title\n- [ ] example\n```\n~~~~\n- [x] also example\n~~~\n- [ ] still inside\n~~~~\n  ```\n  - [ ] indented fence\n  ```\n- [ ] real\n";
    let plan = parse(text);
    assert_eq!(plan.title.as_deref(), Some("Plan"));
    assert_eq!(texts(&plan), ["real"]);
    // An unclosed fence runs to the end of the file.
    assert!(parse("```\n- [ ] hidden\n").items.is_empty());
    // Inline code with backticks does not open a fence.
    assert_eq!(parse("```a``` b\n- [ ] seen\n").items.len(), 1);
}

#[test]
fn blockquotes_and_invalid_boxes_are_not_items() {
    let text = "> - [x] quoted\n>- [ ] quoted too\n- [xx] two\n- [] empty\n- [ ]\n- [x]done\n-[x] no space\n- [ x ] spaced\n- [y] unknown\n[x] no bullet\n- [x] ok\n";
    let plan = parse(text);
    assert_eq!(texts(&plan), ["ok"]);
}

#[test]
fn title_is_first_h1_only() {
    let plan = parse("Intro\n## Sub\n#hashtag\n# First #\n# Second\n- [ ] a\n");
    assert_eq!(plan.title.as_deref(), Some("First"));
    assert_eq!(parse("- [ ] a\n").title, None);
    assert_eq!(parse("#\n# Named\n").title.as_deref(), Some("Named"));
}

#[test]
fn hostile_input_does_not_panic() {
    let long = "- [x] ".to_string() + &"é—".repeat(200_000);
    assert_eq!(parse(&long).items.len(), 1);
    let junk =
        String::from_utf8_lossy(&[0xff, 0xfe, b'-', b' ', b'[', 0x80, b']', b'\r', 0, b'\n']);
    let _ = parse(&junk);
    assert_eq!(parse(""), Checklist::default());
    assert_eq!(parse("\u{feff}"), Checklist::default());
    assert_eq!(set_state("- [ ] a\n", 0, ItemState::Done, None), None);
    assert_eq!(set_state("- [ ] a\n", 9, ItemState::Done, None), None);
    let _ = set_state(&junk, 1, ItemState::Done, Some("\u{0}"));
}

#[test]
fn counts_current_and_completion() {
    assert!(!parse("# Empty\n").is_complete());
    assert_eq!(parse("# Empty\n").current(), None);
    let plan = parse("- [x] a\n- [ ] b\n- [?] c\n- [~] d\n- [!] e\n");
    assert_eq!(plan.current().map(|i| i.text.as_str()), Some("d"));
    let plan = parse("- [x] a\n- [ ] b\n- [?] c\n");
    assert_eq!(plan.current().map(|i| i.text.as_str()), Some("c"));
    let plan = parse("- [x] a\n- [!] e\n");
    assert_eq!(plan.current(), None);
    assert!(!plan.is_complete());
    assert!(parse("- [x] a\n  - [X] b\n").is_complete());
}

#[test]
fn changes_since_reports_changed_and_new_items() {
    let before = parse(SEED);
    assert!(before.changes_since(&before).is_empty());
    let after = parse(
        "# Security Audit\n\n- [x] Scan codebase for hardcoded secrets — none\n- [ ] Review authentication and authorization logic\n- [ ] Write findings report to .dispatch/tasks/security-audit/output.md\n- [ ] Extra step the agent added\n",
    );
    let changed: Vec<_> = after
        .changes_since(&before)
        .into_iter()
        .map(|(index, item)| (index, item.text.as_str()))
        .collect();
    assert_eq!(
        changed,
        [
            (0, "Scan codebase for hardcoded secrets"),
            (3, "Extra step the agent added")
        ]
    );
    // A note alone is not a change of state.
    let noted = parse(&after_text_with_note());
    assert!(noted.changes_since(&after).is_empty());
    // Other text at the same position counts as new.
    let reworded = parse("- [x] Scan everything\n");
    assert_eq!(reworded.changes_since(&before).len(), 1);
    // Everything is new against an empty plan.
    assert_eq!(before.changes_since(&Checklist::default()).len(), 3);
}

fn after_text_with_note() -> String {
    "- [x] Scan codebase for hardcoded secrets — none at all\n- [ ] Review authentication and authorization logic — looked\n- [ ] Write findings report to .dispatch/tasks/security-audit/output.md\n- [ ] Extra step the agent added\n".to_string()
}

#[test]
fn set_state_marks_a_question_and_keeps_the_rest() {
    let asked = set_state(
        SEED,
        4,
        ItemState::Blocked,
        Some("Which auth provider is in scope?"),
    )
    .expect("line 4 is an item");
    assert_eq!(
        asked,
        SEED.replace(
            "- [ ] Review authentication and authorization logic",
            "- [?] Review authentication and authorization logic — Which auth provider is in scope?"
        )
    );
    let plan = parse(&asked);
    assert_eq!(plan.items[1].state, ItemState::Blocked);
    assert_eq!(
        plan.items[1].note.as_deref(),
        Some("Which auth provider is in scope?")
    );
    // Answered: back to pending, the question removed with an empty note.
    let answered = set_state(&asked, 4, ItemState::Pending, Some("")).expect("item");
    assert_eq!(answered, SEED);
    // Not an item: the title, a blank line, past the end, inside a fence.
    assert_eq!(set_state(SEED, 1, ItemState::Done, None), None);
    assert_eq!(set_state(SEED, 2, ItemState::Done, None), None);
    assert_eq!(set_state(SEED, 6, ItemState::Done, None), None);
    assert_eq!(
        set_state("```\n- [ ] x\n```\n", 2, ItemState::Done, None),
        None
    );
}

#[test]
fn set_state_replaces_only_what_it_must() {
    let text = "\u{feff}  * [X]   Keep   spacing -- old note  \r\n    more\r\n1) [~] Going\r\n- [ ] Started (in progress)\r\n";
    let done = set_state(text, 1, ItemState::Failed, None).expect("item");
    assert_eq!(done, text.replacen("[X]", "[!]", 1));
    let renoted = set_state(text, 1, ItemState::Done, Some("new\nnote")).expect("item");
    assert_eq!(
        renoted,
        text.replacen(
            "[X]   Keep   spacing -- old note  ",
            "[x]   Keep   spacing — new note",
            1
        )
    );
    // Notes on lines below are the worker's and stay.
    assert_eq!(
        parse(&renoted).items[0].note.as_deref(),
        Some("new note more")
    );
    // In progress is written as `[ ]` plus the suffix, and the suffix goes
    // again when the item moves on.
    let going = set_state(text, 3, ItemState::InProgress, None).expect("item");
    assert_eq!(
        going,
        text.replacen("[~] Going", "[ ] Going (in progress)", 1)
    );
    let started = set_state(text, 4, ItemState::Done, None).expect("item");
    assert_eq!(
        started,
        text.replacen("[ ] Started (in progress)", "[x] Started", 1)
    );
    assert_eq!(parse(&started).items[2].state, ItemState::Done);
    assert!(!started.replace("\r\n", "").contains('\n'));
}

#[test]
fn serde_names_are_kebab_case() {
    let plan = parse("# T\n- [~] a — b\n");
    let item = &plan.items[0];
    assert_eq!(item.state, ItemState::InProgress);
    // Only serde itself is a dependency of this module, so check the
    // derive through serde's own string deserializer.
    use serde::de::value::{Error, StrDeserializer};
    use serde::de::IntoDeserializer;
    let from: StrDeserializer<'_, Error> = "in-progress".into_deserializer();
    assert_eq!(ItemState::deserialize(from), Ok(ItemState::InProgress));
}

// ---- properties ----

/// Text that survives the canonical format unchanged: no separators, no
/// surrounding space, no `(in progress)` suffix.
fn item_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 ,.:/_'`#*]{0,30}[A-Za-z0-9.]"
}

fn note_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9?][A-Za-z0-9 ,.:/_?]{0,20}"
        .prop_map(|n| n.trim().to_string())
        .prop_filter("note", |n| !n.is_empty())
}

fn any_state() -> impl Strategy<Value = ItemState> {
    prop_oneof![
        Just(ItemState::Pending),
        Just(ItemState::InProgress),
        Just(ItemState::Done),
        Just(ItemState::Blocked),
        Just(ItemState::Failed),
    ]
}

#[derive(Clone, Debug)]
struct Planned {
    text: String,
    state: ItemState,
    note: Option<String>,
    depth: usize,
}

fn plan_strategy() -> impl Strategy<Value = (Vec<Planned>, bool)> {
    let item = (
        item_text(),
        any_state(),
        proptest::option::of(note_text()),
        0usize..4,
    );
    (proptest::collection::vec(item, 0..20), any::<bool>()).prop_map(|(raw, crlf)| {
        let mut previous: Option<usize> = None;
        let items = raw
            .into_iter()
            .map(|(text, state, note, wanted)| {
                let depth = previous.map_or(0, |p| wanted.min(p + 1));
                previous = Some(depth);
                Planned {
                    text,
                    state,
                    note,
                    depth,
                }
            })
            .collect();
        (items, crlf)
    })
}

fn render(items: &[Planned], crlf: bool) -> String {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut out = format!("# Generated plan{eol}{eol}");
    for item in items {
        out.push_str(&"  ".repeat(item.depth));
        out.push_str("- [");
        out.push(char::from(item.state.marker()));
        out.push_str("] ");
        out.push_str(&item.text);
        if item.state == ItemState::InProgress {
            out.push_str(" (in progress)");
        }
        if let Some(note) = &item.note {
            out.push_str(" — ");
            out.push_str(note);
        }
        out.push_str(eol);
    }
    out
}

proptest! {
    #[test]
    fn parse_never_panics(text in any::<String>()) {
        let plan = parse(&text);
        let _ = plan.counts();
        let _ = plan.current();
        for item in &plan.items {
            let _ = set_state(&text, item.line, ItemState::Blocked, Some("q"));
        }
    }

    #[test]
    fn parse_never_panics_on_markdownish_text(
        text in "[-*+0-9.)\\[\\]xX?!~/> \t\r\n#`a—–(in progress)\u{feff}é]{0,300}",
        line in 0usize..40,
        state in any_state(),
    ) {
        let plan = parse(&text);
        let counts = plan.counts();
        prop_assert_eq!(counts.total, plan.items.len());
        if let Some(changed) = set_state(&text, line, state, Some("n")) {
            let after = parse(&changed);
            let item = after.items.iter().find(|i| i.line == line);
            prop_assert_eq!(item.map(|i| i.state), Some(state));
        }
    }

    #[test]
    fn counts_add_up(text in "[-*+1. \\[\\]xX?!~ \na-z]{0,200}") {
        let plan = parse(&text);
        let c = plan.counts();
        prop_assert_eq!(c.total, plan.items.len());
        prop_assert_eq!(c.done + c.pending + c.in_progress + c.blocked + c.failed, c.total);
        for state in [ItemState::Pending, ItemState::InProgress, ItemState::Done, ItemState::Blocked, ItemState::Failed] {
            let n = plan.items.iter().filter(|i| i.state == state).count();
            let counted = match state {
                ItemState::Pending => c.pending,
                ItemState::InProgress => c.in_progress,
                ItemState::Done => c.done,
                ItemState::Blocked => c.blocked,
                ItemState::Failed => c.failed,
            };
            prop_assert_eq!(n, counted);
        }
    }

    #[test]
    fn canonical_plans_parse_exactly((items, crlf) in plan_strategy()) {
        let text = render(&items, crlf);
        let plan = parse(&text);
        prop_assert_eq!(plan.title.as_deref(), Some("Generated plan"));
        prop_assert_eq!(plan.items.len(), items.len());
        for (index, (got, want)) in plan.items.iter().zip(&items).enumerate() {
            prop_assert_eq!(&got.text, &want.text);
            prop_assert_eq!(got.state, want.state);
            prop_assert_eq!(&got.note, &want.note);
            prop_assert_eq!(got.depth, want.depth);
            prop_assert_eq!(got.line, index + 3);
        }
        prop_assert_eq!(plan.is_complete(), !items.is_empty() && items.iter().all(|i| i.state == ItemState::Done));
    }

    #[test]
    fn set_state_then_parse(
        (items, crlf) in plan_strategy().prop_filter("non-empty", |(items, _)| !items.is_empty()),
        pick in any::<prop::sample::Index>(),
        state in any_state(),
        note in proptest::option::of(note_text()),
    ) {
        let text = render(&items, crlf);
        let before = parse(&text);
        let index = pick.index(before.items.len());
        let line = before.items[index].line;
        let changed = set_state(&text, line, state, note.as_deref()).expect("an item line");
        let after = parse(&changed);
        prop_assert_eq!(after.items.len(), before.items.len());
        prop_assert_eq!(changed.lines().count(), text.lines().count());
        if crlf {
            prop_assert_eq!(changed.matches('\n').count(), changed.matches("\r\n").count());
        }
        for (i, (new, old)) in after.items.iter().zip(&before.items).enumerate() {
            if i == index {
                prop_assert_eq!(new.state, state);
                prop_assert_eq!(&new.text, &old.text);
                prop_assert_eq!(new.line, old.line);
                prop_assert_eq!(new.depth, old.depth);
                let want_note = note.clone().or_else(|| old.note.clone());
                prop_assert_eq!(&new.note, &want_note);
            } else {
                prop_assert_eq!(new, old);
            }
        }
        let reported = after.changes_since(&before);
        let expected: Vec<usize> = if state == before.items[index].state { vec![] } else { vec![index] };
        prop_assert_eq!(reported.iter().map(|(i, _)| *i).collect::<Vec<_>>(), expected);
        // Setting the state an item already has, with no note, is a no-op.
        let same = set_state(&text, line, before.items[index].state, None);
        prop_assert_eq!(same.as_deref(), Some(text.as_str()));
    }
}

#[test]
fn progress_counts_each_change_in_turn_when_two_are_ticked_at_once() {
    let before = parse("- [x] One\n- [x] Two\n- [ ] Three\n- [ ] Four\n");
    let after = parse("- [x] One\n- [x] Two\n- [x] Three\n- [x] Four\n");
    let progress: Vec<_> = after
        .progress_since(&before)
        .into_iter()
        .map(|(index, item, done)| (index, item.text.as_str(), done))
        .collect();
    assert_eq!(progress, [(2, "Three", 3), (3, "Four", 4)]);
    // An item unticked while another is ticked: the count goes down, then up.
    let mixed = parse("- [ ] One\n- [x] Two\n- [x] Three\n- [ ] Four\n");
    let done: Vec<usize> = mixed
        .progress_since(&before)
        .into_iter()
        .map(|(_, _, done)| done)
        .collect();
    assert_eq!(done, [1, 2]);
    // From nothing, every item is new and counted in order.
    let done: Vec<usize> = after
        .progress_since(&Checklist::default())
        .into_iter()
        .map(|(_, _, done)| done)
        .collect();
    assert_eq!(done, [1, 2, 3, 4]);
}
