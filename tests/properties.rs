//! Manifests are open-ended input: whatever bytes a user (or a broken
//! generator) hands us, loading ends in a manifest or in located errors,
//! never a panic or a hang.

use proptest::prelude::*;

fn check(text: &str) {
    if let Err(invalid) = dispatch::manifest::parse("fuzz.yaml", text) {
        let lines = text.split('\n').count();
        assert!(!invalid.0.is_empty(), "an error with no diagnostics");
        for d in &invalid.0 {
            if let Some(location) = d.location {
                assert!(
                    location.line >= 1 && location.line <= lines,
                    "{d:?} outside {lines} lines"
                );
                assert!(location.column >= 1, "{d:?}");
            }
            let _ = d.to_string();
        }
    }
}

/// YAML-shaped text: keys, scalars, lists and flow collections with random
/// indentation, which reaches far more of the loader than random bytes.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("version: 1".to_owned()),
        Just("tasks:".to_owned()),
        Just("  a:".to_owned()),
        Just("    model: sonnet".to_owned()),
        Just("    needs: [a, b]".to_owned()),
        Just("    prompt: \"{{ vars.x }}\"".to_owned()),
        Just("- item".to_owned()),
        Just("&x [1, 2]".to_owned()),
        Just("*x".to_owned()),
        Just("<<: *x".to_owned()),
        Just("{ a: [".to_owned()),
        Just("]}".to_owned()),
        Just("---".to_owned()),
        Just("\t".to_owned()),
        "[a-z]{1,6}: [a-z0-9 ]{0,8}",
        " {0,6}[a-z-]{1,8}:",
        "\\PC{0,12}",
    ];
    proptest::collection::vec(token, 0..24).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn yaml_shaped_text_never_panics(text in yamlish()) {
        check(&text);
    }

    #[test]
    fn valid_task_ids_round_trip_into_plans(id in "[a-z0-9][a-z0-9-]{0,30}") {
        let text = format!("version: 1\ntasks:\n  {id}:\n    model: sonnet\n    prompt: do it\n");
        let loaded = dispatch::manifest::parse("ids.yaml", &text).expect("a valid id loads");
        let plan = dispatch::plan::build(&loaded, &dispatch::plan::PlanOptions::default()).expect("plans");
        prop_assert_eq!(&plan.tasks[0].paths.plan(), &format!(".dispatch/tasks/{id}/plan.md"));
    }

    #[test]
    fn invalid_task_ids_are_refused_at_their_key(id in "[A-Z_./ ][a-zA-Z0-9_./ -]{0,10}") {
        let text = format!("version: 1\ntasks:\n  \"{id}\":\n    model: sonnet\n    prompt: do it\n");
        let invalid = dispatch::manifest::parse("ids.yaml", &text).expect_err("refused");
        let first = &invalid.0[0];
        prop_assert_eq!(first.location.map(|l| (l.line, l.column)), Some((3, 3)));
        prop_assert!(first.message.contains("is not a valid task id"), "{}", first.message);
    }
}
