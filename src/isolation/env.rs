//! A worker's scoped environment (`env_policy: scoped`): of dispatch's own
//! variables, only those the worker needs pass. A CI job's environment
//! holds deploy keys, registry tokens and cloud credentials that a
//! prompt-injected agent could print or send; a worker needs its API key,
//! a `PATH`, a home, the locale and the way to the network.
//!
//! What the manifest sets itself (a task's or backend's `env:`, and the
//! `DISPATCH_*` and config-folder variables dispatch adds) is laid over the
//! result, so it always passes.

use crate::manifest::confine::EnvMode;
use crate::manifest::confine::EnvPlan;
use crate::manifest::types::EventFormat;

/// What every scoped worker keeps: the user and home, the shell's basics,
/// the locale, proxies and CA bundles (without which a CLI behind a
/// company proxy cannot reach its model), and dispatch's own variables.
pub const BASE: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "DISPATCH_*",
];

/// What a backend's CLI reads besides [`BASE`]: its API key and its own
/// settings (`ANTHROPIC_BASE_URL`, `CLAUDE_CODE_*`, ...). Known by the
/// backend's name, or by the event stream a custom backend says it prints
/// (a wrapper around Claude Code needs what Claude Code needs).
pub fn backend_needs(backend: &str, events: EventFormat) -> &'static [&'static str] {
    let by_name = match backend {
        "claude" => Some(EventFormat::Claude),
        "codex" => Some(EventFormat::Codex),
        "gemini" => Some(EventFormat::Gemini),
        "cursor" => Some(EventFormat::Cursor),
        "opencode" => Some(EventFormat::Opencode),
        "aider" => Some(EventFormat::Aider),
        _ => None,
    };
    match by_name.unwrap_or(events) {
        EventFormat::Claude => &["ANTHROPIC_*", "CLAUDE_*"],
        EventFormat::Codex => &["OPENAI_*", "CODEX_*"],
        EventFormat::Gemini => &[
            "GEMINI_*",
            "GOOGLE_API_KEY",
            "GOOGLE_GENAI_*",
            "GOOGLE_CLOUD_PROJECT",
            "GOOGLE_CLOUD_LOCATION",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ],
        EventFormat::Cursor => &["CURSOR_*"],
        EventFormat::Opencode => &[
            "OPENCODE_*",
            "ANTHROPIC_*",
            "OPENAI_*",
            "GEMINI_*",
            "OPENROUTER_*",
        ],
        EventFormat::Aider => &[
            "AIDER_*",
            "ANTHROPIC_*",
            "OPENAI_*",
            "GEMINI_*",
            "OPENROUTER_*",
        ],
        EventFormat::None => &[],
    }
}

/// Whether `name` passes `policy` for a worker of `backend`.
pub fn passes(policy: &EnvPlan, backend: &str, events: EventFormat, name: &str) -> bool {
    policy.mode == EnvMode::Inherit
        || BASE
            .iter()
            .chain(backend_needs(backend, events))
            .copied()
            .chain(policy.allow.iter().map(String::as_str))
            .any(|pattern| glob_match(pattern, name))
}

/// Dispatch's variables split by `policy`: those that pass, with their
/// values, and the names of those left out (sorted). Under `inherit`
/// nothing is left out.
pub fn split<I>(
    policy: &EnvPlan,
    backend: &str,
    events: EventFormat,
    vars: I,
) -> (Vec<(String, String)>, Vec<String>)
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut pass = Vec::new();
    let mut left_out = Vec::new();
    for (name, value) in vars {
        if passes(policy, backend, events, &name) {
            pass.push((name, value));
        } else {
            left_out.push(name);
        }
    }
    pass.sort();
    left_out.sort();
    (pass, left_out)
}

/// The names of dispatch's variables that pass and that are left out
/// (values never leave this function), for `dispatch plan`.
pub fn names_of_this_environment(
    policy: &EnvPlan,
    backend: &str,
    events: EventFormat,
) -> (Vec<String>, Vec<String>) {
    let vars = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    let (pass, left_out) = split(
        policy,
        backend,
        events,
        vars.map(|name| (name, String::new())),
    );
    (pass.into_iter().map(|(k, _)| k).collect(), left_out)
}

/// `*` matches any run of characters, `?` one; everything else itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and how much of the name it has taken.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scoped(allow: &[&str]) -> EnvPlan {
        EnvPlan {
            mode: EnvMode::Scoped,
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn globs_match_as_a_shell_would() {
        assert!(glob_match("GITHUB_*", "GITHUB_TOKEN"));
        assert!(glob_match("LC_*", "LC_ALL"));
        assert!(glob_match("A?C", "ABC"));
        assert!(glob_match("*_KEY", "OPENAI_API_KEY"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("GITHUB_*", "MY_GITHUB_TOKEN"));
        assert!(!glob_match("PATH", "PATHX"));
        assert!(!glob_match("A?C", "AC"));
    }

    #[test]
    fn a_scoped_worker_keeps_its_backends_key_and_loses_the_ci_jobs_secrets() {
        let vars = [
            ("PATH", "/bin"),
            ("ANTHROPIC_API_KEY", "k"),
            ("OPENAI_API_KEY", "o"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("GITHUB_TOKEN", "g"),
            ("CI", "true"),
            ("LC_ALL", "C"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let (pass, left_out) = split(&scoped(&["CI"]), "claude", EventFormat::Claude, vars);
        let names: Vec<&str> = pass.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["ANTHROPIC_API_KEY", "CI", "LC_ALL", "PATH"]);
        assert_eq!(
            left_out,
            ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "OPENAI_API_KEY"]
        );
    }

    #[test]
    fn a_custom_backend_gets_what_the_cli_it_wraps_needs() {
        let policy = scoped(&[]);
        assert!(passes(
            &policy,
            "my-claude",
            EventFormat::Claude,
            "ANTHROPIC_BASE_URL"
        ));
        assert!(!passes(
            &policy,
            "command",
            EventFormat::None,
            "ANTHROPIC_API_KEY"
        ));
    }

    #[test]
    fn inherit_leaves_nothing_out() {
        let policy = EnvPlan {
            mode: EnvMode::Inherit,
            allow: Vec::new(),
        };
        let (_, left_out) = split(
            &policy,
            "command",
            EventFormat::None,
            [("AWS_SECRET_ACCESS_KEY".to_owned(), "s".to_owned())],
        );
        assert!(left_out.is_empty());
    }

    proptest! {
        /// A glob without wildcards is the name itself; `*` matches every name.
        #[test]
        fn a_plain_glob_is_equality(a in "[A-Z_]{0,8}", b in "[A-Z_]{0,8}") {
            prop_assert_eq!(glob_match(&a, &b), a == b);
            prop_assert!(glob_match("*", &b));
            let prefix = format!("{a}*");
            prop_assert_eq!(glob_match(&prefix, &b), b.starts_with(&a));
        }
    }
}
