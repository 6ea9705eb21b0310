//! The manifest's confinement settings: which of dispatch's environment
//! variables a worker inherits (`env_policy`), and whether it runs in a
//! bubblewrap sandbox with which network (`sandbox`). What they enforce is
//! in `docs/isolation.md`; the launch side is `isolation/env.rs` and
//! `isolation/sandbox.rs`.
//!
//! Kept out of `types.rs` so the format's largest file stays readable; the
//! schema is generated from these types all the same.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diagnostic::Diagnostic;
use super::LoadedManifest;

/// Which of dispatch's own environment variables a worker inherits:
/// `inherit` (all of them), `scoped` (only what its backend needs: `PATH`,
/// `HOME`, the user and locale, proxies and CA bundles, `DISPATCH_*`, and
/// the backend's own variables such as `ANTHROPIC_*` for Claude Code), or
/// `{ allow: [NAME, GLOB*] }` (scoped, plus these). The variables the
/// manifest itself sets (a task's or backend's `env:`) always pass. Allow
/// lists of the sweep, `defaults` and the task add up; the most specific
/// `mode` wins. Default: `scoped` for a task in a `sandbox`, `inherit`
/// otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvPolicy {
    Mode(EnvMode),
    Rules(EnvRules),
}

/// `inherit` or `scoped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvMode {
    Inherit,
    Scoped,
}

/// An allow list, and optionally the mode it goes with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvRules {
    /// `inherit` or `scoped`. Default: `scoped` (an allow list means the
    /// rest is left out).
    #[serde(default)]
    pub mode: Option<EnvMode>,
    /// Variable names that pass besides the backend's; `*` matches any
    /// run of characters (`GITHUB_*`), `?` one.
    #[serde(default)]
    pub allow: Vec<String>,
}

impl EnvPolicy {
    pub fn mode(&self) -> Option<EnvMode> {
        match self {
            EnvPolicy::Mode(mode) => Some(*mode),
            EnvPolicy::Rules(rules) => rules.mode.or(Some(EnvMode::Scoped)),
        }
    }

    pub fn allow(&self) -> &[String] {
        match self {
            EnvPolicy::Mode(_) => &[],
            EnvPolicy::Rules(rules) => &rules.allow,
        }
    }
}

/// `sandbox: true`, or its settings: run the worker in a bubblewrap
/// sandbox where the file system is read-only but for its worktree (or
/// folder), its task folder, its private CLI config folder and a private
/// `/tmp`, and the home folder is hidden but for the CLI's login. Linux
/// only; a machine where bubblewrap cannot run refuses the task before
/// anything starts. See `docs/isolation.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SandboxSetting {
    Enabled(bool),
    Options(SandboxOptions),
}

/// How a task's sandbox is set up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxOptions {
    /// What the worker may reach on the network: `full` (the default: no
    /// limit), `none` (a network namespace of its own with only loopback),
    /// or `{ allow: [HOST:PORT] }` (a namespace of its own in which only
    /// these loopback endpoints, such as a local model server, are
    /// forwarded; other hosts are not yet supported).
    #[serde(default)]
    pub network: Option<Network>,
}

/// `full`, `none`, or `{ allow: [127.0.0.1:PORT] }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Network {
    Mode(NetworkMode),
    Allow(NetworkAllow),
}

/// `full` or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Full,
    None,
}

/// The endpoints a sandboxed worker may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkAllow {
    /// Loopback endpoints, `127.0.0.1:PORT`, `localhost:PORT` or
    /// `[::1]:PORT`: inside the sandbox the worker connects to the same
    /// address, and dispatch forwards the connection.
    pub allow: Vec<String>,
}

impl SandboxSetting {
    pub fn enabled(&self) -> bool {
        !matches!(self, SandboxSetting::Enabled(false))
    }

    pub fn network(&self) -> Option<&Network> {
        match self {
            SandboxSetting::Options(options) => options.network.as_ref(),
            SandboxSetting::Enabled(_) => None,
        }
    }
}

/// Which of dispatch's variables a worker inherits, once the levels are
/// put together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnvPlan {
    pub mode: EnvMode,
    /// Names and globs that pass besides the backend's own.
    pub allow: Vec<String>,
}

/// A task's sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SandboxPlan {
    pub network: NetworkPlan,
}

/// What a sandboxed worker may reach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPlan {
    Full,
    None,
    /// Loopback endpoints forwarded into the sandbox's own network.
    Allow(Vec<String>),
}

/// A loopback endpoint of `network.allow`, parsed: the address the worker
/// connects to inside the sandbox (and dispatch connects to outside).
pub fn loopback_endpoint(text: &str) -> Option<std::net::SocketAddr> {
    let text = text.trim();
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        "[::1]" => std::net::Ipv6Addr::LOCALHOST.into(),
        other => other.parse().ok()?,
    };
    ip.is_loopback()
        .then_some(std::net::SocketAddr::new(ip, port))
}

/// Whether an allow-list entry is a variable name or a glob of one.
fn is_name_pattern(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '*' | '?'))
}

/// The checks of meaning for `env_policy` and `sandbox`, wherever they
/// are written; each problem points at its entry.
pub fn check(loaded: &LoadedManifest, problems: &mut Vec<Diagnostic>) {
    let manifest = &loaded.manifest;
    let mut places: Vec<(Vec<String>, Option<&EnvPolicy>, Option<&SandboxSetting>)> = vec![
        (Vec::new(), manifest.env_policy.as_ref(), None),
        (
            vec!["defaults".into()],
            manifest.defaults.env_policy.as_ref(),
            manifest.defaults.sandbox.as_ref(),
        ),
    ];
    for (id, task) in &manifest.tasks {
        places.push((
            vec!["tasks".into(), id.clone()],
            task.env_policy.as_ref(),
            task.sandbox.as_ref(),
        ));
    }
    for (at, policy, sandbox) in places {
        let key = |tail: &[&str]| -> Vec<String> {
            let mut path = at.clone();
            path.extend(tail.iter().map(|s| (*s).to_owned()));
            path
        };
        for (i, name) in policy
            .map(EnvPolicy::allow)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if !is_name_pattern(name) {
                let path = key(&["env_policy", "allow", &i.to_string()]);
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                problems.push(
                    loaded
                        .error_at(&path, format!("`{name}` is not a variable name or a glob of one"))
                        .with_help("write names of letters, digits and `_`, with `*` or `?` as wildcards, e.g. `GITHUB_*`"),
                );
            }
        }
        let Some(Network::Allow(allow)) = sandbox.and_then(SandboxSetting::network) else {
            continue;
        };
        for (i, entry) in allow.allow.iter().enumerate() {
            if loopback_endpoint(entry).is_none() {
                let path = key(&["sandbox", "network", "allow", &i.to_string()]);
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                problems.push(
                    loaded
                        .error_at(&path, format!("`{entry}` is not a loopback endpoint: a sandbox's network allow list takes only `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT` (other hosts are not supported yet)"))
                        .with_help("use `network: full` for a worker that must reach other hosts, or `network: none`"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_endpoints_parse_and_others_do_not() {
        assert_eq!(
            loopback_endpoint("127.0.0.1:8080").map(|a| a.to_string()),
            Some("127.0.0.1:8080".to_owned())
        );
        assert_eq!(loopback_endpoint("localhost:9").map(|a| a.port()), Some(9));
        assert!(loopback_endpoint("[::1]:443").is_some());
        for bad in [
            "api.anthropic.com:443",
            "10.0.0.1:80",
            "127.0.0.1",
            "127.0.0.1:0",
            ":80",
        ] {
            assert!(loopback_endpoint(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_allow_list_means_scoped_unless_it_says_inherit() {
        let rules = EnvPolicy::Rules(EnvRules {
            mode: None,
            allow: vec!["CI".into()],
        });
        assert_eq!(rules.mode(), Some(EnvMode::Scoped));
        assert_eq!(EnvPolicy::Mode(EnvMode::Inherit).allow(), &[] as &[String]);
    }
}
