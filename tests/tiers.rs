//! The tier harness (`tests/common/tier.rs`) that real-CLI test files and
//! later tiers run under: a test that cannot run is ignored, never `ok`,
//! and a failure under the tier's switch. Each case runs a set of trials
//! through libtest-mimic in this process, its report going to a file.

mod common;

use std::ffi::OsStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::tier::{self, Requirement, Test, Tier};
use libtest_mimic::{Arguments, Conclusion};

static TIER: Tier = Tier {
    name: "self-test",
    switch: "DISPATCH_REQUIRE_SELF_TEST",
};

fn passes() {}

fn panics() {
    panic!("this body must not run");
}

fn missing() -> Arc<Requirement> {
    Arc::new(|| Err("the tool is not installed".to_owned()))
}

/// Run `tests` as the tier's `main` would, with the switch `required`.
fn run(
    required: bool,
    requirement: Arc<Requirement>,
    source: &str,
    tests: Vec<Test>,
) -> Conclusion {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = Arguments {
        test_threads: Some(1),
        logfile: Some(dir.path().join("report").to_string_lossy().into_owned()),
        ..Arguments::default()
    };
    libtest_mimic::run(
        &args,
        tier::trials(&TIER, required, requirement, source, tests),
    )
}

#[test]
fn a_missing_requirement_ignores_every_test_without_running_it() {
    let conclusion = run(false, missing(), "", vec![("a", passes), ("b", panics)]);
    assert_eq!(conclusion.num_ignored, 2);
    assert_eq!(conclusion.num_passed, 0);
    assert_eq!(conclusion.num_failed, 0);
}

#[test]
fn under_the_switch_a_missing_requirement_fails_every_test() {
    let conclusion = run(true, missing(), "", vec![("a", passes), ("b", passes)]);
    assert_eq!(conclusion.num_failed, 2);
    assert_eq!(conclusion.num_passed, 0);
    assert_eq!(conclusion.num_ignored, 0);
}

#[test]
fn a_met_requirement_runs_every_test_and_checks_it_once() {
    let checks = Arc::new(AtomicUsize::new(0));
    let counted = checks.clone();
    let requirement: Arc<Requirement> = Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let tests = vec![("a", passes as fn()), ("b", panics), ("c", passes)];
    let conclusion = run(true, requirement, "", tests);
    assert_eq!(conclusion.num_passed, 2);
    assert_eq!(conclusion.num_failed, 1, "a body that panics fails");
    assert_eq!(checks.load(Ordering::SeqCst), 1);
}

#[test]
fn a_test_attribute_in_a_tier_file_is_a_failure() {
    let source = "fn a() {}\n\n#[test]\nfn forgotten() {}\n";
    let conclusion = run(false, missing(), source, vec![("a", passes)]);
    assert_eq!(conclusion.num_failed, 1, "the #[test] function is reported");
    assert_eq!(conclusion.num_ignored, 1);
}

#[test]
fn the_switch_is_on_for_any_value_but_empty_or_zero() {
    assert!(!tier::switch_on(None));
    assert!(!tier::switch_on(Some(OsStr::new(""))));
    assert!(!tier::switch_on(Some(OsStr::new("0"))));
    assert!(tier::switch_on(Some(OsStr::new("1"))));
    assert!(tier::switch_on(Some(OsStr::new("yes"))));
}
