//! `dispatch doctor`: which agent CLIs this machine has, their versions,
//! whether each looks logged in or configured, and which of a manifest's
//! models can be served, so a sweep's problems show before its first
//! worker, not in its log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::backends::Backend;
use super::cli_home;

/// How long `PROGRAM --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// What a built-in agent CLI needs, as far as dispatch can tell without
/// calling its provider: where it comes from, and what shows it is set up.
struct Known {
    backend: &'static str,
    /// The product, for messages.
    product: &'static str,
    install: &'static str,
    /// Environment variables any one of which configures it.
    env: &'static [&'static str],
    /// Files under the home folder its login leaves.
    files: &'static [&'static str],
    login: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        backend: "claude",
        product: "Claude Code",
        install: "npm install -g @anthropic-ai/claude-code",
        env: &[
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
        ],
        files: &[".claude/.credentials.json"],
        login: "run `claude` once and log in, or set ANTHROPIC_API_KEY",
    },
    Known {
        backend: "codex",
        product: "the Codex CLI",
        install: "npm install -g @openai/codex",
        env: &["OPENAI_API_KEY", "CODEX_API_KEY"],
        files: &[".codex/auth.json"],
        login: "run `codex login`, or set OPENAI_API_KEY",
    },
    Known {
        backend: "gemini",
        product: "Gemini CLI",
        install: "npm install -g @google/gemini-cli",
        env: &[
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
            "GOOGLE_GENAI_USE_VERTEXAI",
        ],
        files: &[".gemini/oauth_creds.json"],
        login: "run `gemini` once and sign in, or set GEMINI_API_KEY",
    },
    Known {
        backend: "cursor",
        product: "Cursor's agent CLI",
        install: "install Cursor's CLI as its documentation says (it is not on a package registry)",
        env: &["CURSOR_API_KEY"],
        files: &[".cursor/cli-config.json"],
        login: "run `agent login`, or set CURSOR_API_KEY",
    },
    Known {
        backend: "opencode",
        product: "opencode",
        install: "npm install -g opencode-ai",
        env: &[
            "OPENCODE_CONFIG_CONTENT",
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
        ],
        files: &[".local/share/opencode/auth.json"],
        login: "run `opencode auth login`, or set its provider's API key",
    },
    Known {
        backend: "aider",
        product: "aider",
        install: "pip install aider-chat (in a virtual environment)",
        env: &[
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "OPENROUTER_API_KEY",
        ],
        files: &[".aider.conf.yml"],
        login: "set the API key of its model's provider (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)",
    },
];

/// Whether a CLI looks ready to call its model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "kebab-case")]
pub enum Setup {
    /// What shows it: an environment variable's name (never its value) or
    /// a login file.
    Configured(String),
    /// What to do.
    NotConfigured(String),
    /// A program dispatch knows nothing about.
    Unknown,
}

/// One backend's program on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CliCheck {
    pub backend: String,
    pub program: String,
    /// Where it is on `PATH`, if it is.
    pub path: Option<PathBuf>,
    /// The first line `PROGRAM --version` printed.
    pub version: Option<String>,
    pub setup: Setup,
    /// How to install it, for built-in backends.
    pub install: Option<String>,
    /// What the user's configuration sets that workers do not see with
    /// `cli_config: private` (see `cli_home::left_out`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}

impl CliCheck {
    /// Installed and (as far as dispatch can tell) configured.
    pub fn ready(&self) -> bool {
        self.path.is_some() && !matches!(self.setup, Setup::NotConfigured(_))
    }
}

/// Look at one backend's program. `env` and `home` are the environment
/// and home folder to judge its setup by (the process's own, in use).
pub fn check(backend: &Backend, env: &dyn Fn(&str) -> Option<String>, home: &Path) -> CliCheck {
    let program = backend
        .command
        .first()
        .cloned()
        .unwrap_or_else(|| "(any command)".to_owned());
    let path = backend
        .command
        .first()
        .and_then(|p| crate::workers::find_program(p, Path::new(".")));
    let version = path.as_deref().and_then(version_of);
    let known = KNOWN
        .iter()
        .find(|k| k.backend == backend.name && backend.builtin);
    let setup = match known {
        None => Setup::Unknown,
        Some(known) => setup_of(known, env, home),
    };
    let left_out = if known.is_some() {
        let user = cli_home::UserConfig::from_lookup(env, Some(home.to_path_buf()));
        cli_home::left_out(&backend.name, &user)
    } else {
        Vec::new()
    };
    CliCheck {
        backend: backend.name.clone(),
        program,
        path,
        version,
        setup,
        install: known.map(|k| format!("{}: {}", k.product, k.install)),
        left_out,
    }
}

fn setup_of(known: &Known, env: &dyn Fn(&str) -> Option<String>, home: &Path) -> Setup {
    if let Some(name) = known
        .env
        .iter()
        .find(|name| env(name).is_some_and(|v| !v.trim().is_empty()))
    {
        return Setup::Configured(format!("{name} is set"));
    }
    if let Some(file) = known.files.iter().find(|f| home.join(f).is_file()) {
        return Setup::Configured(format!("~/{file} exists"));
    }
    Setup::NotConfigured(known.login.to_owned())
}

/// `PROGRAM --version`, first line, bounded in time; stdin is closed, since
/// several CLIs wait for the end of a piped stdin.
fn version_of(program: &Path) -> Option<String> {
    let mut child = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < VERSION_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let output = child.wait_with_output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(120).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_is_judged_by_variable_names_and_login_files_never_values() {
        let claude = KNOWN
            .iter()
            .find(|k| k.backend == "claude")
            .expect("claude");
        let home = tempfile::tempdir().expect("tempdir");
        let none = |_: &str| None;
        assert!(matches!(
            setup_of(claude, &none, home.path()),
            Setup::NotConfigured(_)
        ));
        let key = |name: &str| (name == "ANTHROPIC_API_KEY").then(|| "sk-secret".to_owned());
        assert_eq!(
            setup_of(claude, &key, home.path()),
            Setup::Configured("ANTHROPIC_API_KEY is set".to_owned())
        );
        std::fs::create_dir_all(home.path().join(".claude")).expect("mkdir");
        std::fs::write(home.path().join(".claude/.credentials.json"), "{}").expect("write");
        assert_eq!(
            setup_of(claude, &none, home.path()),
            Setup::Configured("~/.claude/.credentials.json exists".to_owned())
        );
    }
}
