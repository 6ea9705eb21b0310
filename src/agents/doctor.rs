//! `dispatch doctor`: which agent CLIs this machine has, their versions,
//! whether each looks logged in or configured, and which of a manifest's
//! models can be served, so a sweep's problems show before its first
//! worker, not in its log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde::Serialize;

use super::cli_home;
use crate::manifest::models::Backend;

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
    /// Files under the home folder that configure it, beside the login
    /// file `cli_home::UserConfig::login_file` finds.
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
        files: &[],
        login: "run `claude` once and log in, or set ANTHROPIC_API_KEY",
    },
    Known {
        backend: "codex",
        product: "the Codex CLI",
        install: "npm install -g @openai/codex",
        env: &["OPENAI_API_KEY", "CODEX_API_KEY"],
        files: &[],
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
        files: &[],
        login: "run `gemini` once and sign in, or set GEMINI_API_KEY",
    },
    Known {
        backend: "cursor",
        product: "Cursor's agent CLI",
        install: "install Cursor's CLI as its documentation says (it is not on a package registry)",
        env: &["CURSOR_API_KEY"],
        files: &[],
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
        files: &[],
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
        .and_then(|p| crate::agents::find_program(p, Path::new(".")));
    let version = path.as_deref().and_then(version_of);
    let known = KNOWN
        .iter()
        .find(|k| k.backend == backend.name && backend.builtin);
    let user = cli_home::UserConfig::from_lookup(env, Some(home.to_path_buf()));
    let setup = match known {
        None => Setup::Unknown,
        Some(known) => setup_of(known, env, &user),
    };
    let left_out = if known.is_some() {
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

/// What a task of `backend`, running `program`, lacks to call its model,
/// judged as its worker will see it: dispatch's environment (`env`) with
/// the task's own `env:` (`task_env`, from its task and backend) over it,
/// and the login files under `home`. A worker without credentials fails
/// at once with an error of its CLI's own, so `dispatch doctor FILE` and
/// the start of `run` say so first. `None` when it looks set up, and for a
/// program that is not the built-in CLI of a backend dispatch knows (a
/// custom program's credentials are its own business). `model` is the
/// task's model id: aider needs the key of that model's provider, not any
/// provider's.
pub fn missing_credentials(
    backend: &str,
    program: &str,
    model: Option<&str>,
    task_env: &IndexMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Option<String> {
    let known = KNOWN.iter().find(|k| k.backend == backend)?;
    let builtin = crate::manifest::models::builtin_backends()
        .into_iter()
        .find(|b| b.name == backend)?;
    let name = Path::new(program).file_name()?.to_str()?;
    if builtin.command.first().map(String::as_str) != Some(name) {
        return None;
    }
    let seen = |name: &str| task_env.get(name).cloned().or_else(|| env(name));
    let user = cli_home::UserConfig::from_lookup(&seen, home.map(Path::to_path_buf));
    let narrowed = model.and_then(|m| provider_known(known, m));
    let (judged, named, todo) = match &narrowed {
        Some((judged, named, todo)) => (judged, named.as_str(), Some(todo)),
        None => (known, "", None),
    };
    match setup_of(judged, &seen, &user) {
        Setup::NotConfigured(login) => Some(format!(
            "{}{named} has no credentials: {} (in dispatch's environment or the manifest's `env:`)",
            known.product,
            todo.unwrap_or(&login),
        )),
        _ => None,
    }
}

/// aider's needs narrowed to the key of `model`'s provider, where its name
/// tells (`agents::aider::provider_key`): what it needs, the words naming
/// the model, and what to do.
fn provider_known(known: &Known, model: &str) -> Option<(Known, String, String)> {
    if known.backend != "aider" {
        return None;
    }
    let entry = super::aider::provider_key(model)?;
    let (provider, var) = *entry;
    // LiteLLM's OpenAI client wants a key even for an OpenAI-compatible
    // endpoint (`OPENAI_API_BASE`), which takes any value.
    let todo = if provider == "openai" {
        format!("set {var} (any value, for an OpenAI-compatible endpoint at OPENAI_API_BASE)")
    } else {
        format!("set {var}")
    };
    let narrowed = Known {
        env: std::slice::from_ref(&entry.1),
        ..*known
    };
    Some((
        narrowed,
        format!(" (model `{model}`, provider {provider})"),
        todo,
    ))
}

/// Judged where the CLI itself looks: a variable that moves its folder
/// (`CLAUDE_CONFIG_DIR`, `CODEX_HOME`, ...) moves its login file too.
fn setup_of(
    known: &Known,
    env: &dyn Fn(&str) -> Option<String>,
    user: &cli_home::UserConfig,
) -> Setup {
    if let Some(name) = known
        .env
        .iter()
        .find(|name| env(name).is_some_and(|v| !v.trim().is_empty()))
    {
        return Setup::Configured(format!("{name} is set"));
    }
    let home_files = known
        .files
        .iter()
        .filter_map(|f| user.home.as_ref().map(|home| home.join(f)));
    if let Some(file) = user
        .login_file(known.backend)
        .into_iter()
        .chain(home_files)
        .find(|f| f.is_file())
    {
        return Setup::Configured(format!("{} exists", user.shown(&file)));
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
    fn a_key_in_the_tasks_env_counts_as_credentials() {
        let home = tempfile::tempdir().expect("tempdir");
        let none = |_: &str| None;
        let mut task_env = IndexMap::new();
        let missing = missing_credentials(
            "gemini",
            "gemini",
            None,
            &task_env,
            &none,
            Some(home.path()),
        )
        .expect("no key anywhere");
        assert!(
            missing.starts_with("Gemini CLI has no credentials")
                && missing.contains("GEMINI_API_KEY"),
            "{missing}"
        );
        task_env.insert("GEMINI_API_KEY".to_owned(), "k".to_owned());
        assert_eq!(
            missing_credentials(
                "gemini",
                "gemini",
                None,
                &task_env,
                &none,
                Some(home.path())
            ),
            None
        );
        // A custom program on a built-in backend's name, and a backend
        // dispatch does not know, are not judged.
        let empty = IndexMap::new();
        assert_eq!(
            missing_credentials(
                "gemini",
                "./my-gemini",
                None,
                &empty,
                &none,
                Some(home.path())
            ),
            None
        );
        assert_eq!(
            missing_credentials("command", "sh", None, &empty, &none, Some(home.path())),
            None
        );
        // The full path of the built-in program is still that program.
        assert!(missing_credentials(
            "codex",
            "/usr/bin/codex",
            None,
            &empty,
            &none,
            Some(home.path())
        )
        .is_some());
    }

    #[test]
    fn aider_needs_the_key_of_its_models_provider() {
        let home = tempfile::tempdir().expect("tempdir");
        let missing = |model: &str, vars: &[&str]| {
            let vars: Vec<String> = vars.iter().map(|v| (*v).to_owned()).collect();
            let env = move |name: &str| vars.iter().any(|v| v == name).then(|| "k".to_owned());
            let no_task_env = IndexMap::new();
            missing_credentials(
                "aider",
                "aider",
                Some(model),
                &no_task_env,
                &env,
                Some(home.path()),
            )
        };
        // Another provider's key is no key for this model.
        let openai = missing("openai/gpt-4.1", &["ANTHROPIC_API_KEY"]).expect("lacks a key");
        assert!(
            openai
                .starts_with("aider (model `openai/gpt-4.1`, provider openai) has no credentials")
                && openai.contains("set OPENAI_API_KEY")
                && openai.contains("OPENAI_API_BASE"),
            "{openai}"
        );
        assert_eq!(missing("openai/gpt-4.1", &["OPENAI_API_KEY"]), None);
        // OPENAI_API_BASE alone is not enough: LiteLLM's client still
        // wants a key (aider 0.86 fails with an AuthenticationError).
        assert!(missing("openai/local", &["OPENAI_API_BASE"]).is_some());
        let sonnet = missing("sonnet", &["OPENAI_API_KEY"]).expect("lacks a key");
        assert!(sonnet.contains("set ANTHROPIC_API_KEY"), "{sonnet}");
        assert_eq!(
            missing("anthropic/claude-sonnet-4-5", &["ANTHROPIC_API_KEY"]),
            None
        );
        // A provider dispatch cannot judge: any known key will do, as before.
        assert_eq!(missing("ollama/llama3", &["ANTHROPIC_API_KEY"]), None);
        assert!(missing("ollama/llama3", &[]).is_some());
        // In the task's `env:`, the provider's key counts.
        let mut task_env = IndexMap::new();
        task_env.insert("GEMINI_API_KEY".to_owned(), "k".to_owned());
        let none = |_: &str| None;
        assert_eq!(
            missing_credentials(
                "aider",
                "aider",
                Some("flash"),
                &task_env,
                &none,
                Some(home.path())
            ),
            None
        );
    }

    #[test]
    fn setup_is_judged_by_variable_names_and_login_files_never_values() {
        let claude = KNOWN
            .iter()
            .find(|k| k.backend == "claude")
            .expect("claude");
        let home = tempfile::tempdir().expect("tempdir");
        let none = |_: &str| None;
        let user = cli_home::UserConfig::from_lookup(&none, Some(home.path().to_path_buf()));
        assert!(matches!(
            setup_of(claude, &none, &user),
            Setup::NotConfigured(_)
        ));
        let key = |name: &str| (name == "ANTHROPIC_API_KEY").then(|| "sk-secret".to_owned());
        assert_eq!(
            setup_of(claude, &key, &user),
            Setup::Configured("ANTHROPIC_API_KEY is set".to_owned())
        );
        std::fs::create_dir_all(home.path().join(".claude")).expect("mkdir");
        std::fs::write(home.path().join(".claude/.credentials.json"), "{}").expect("write");
        assert_eq!(
            setup_of(claude, &none, &user),
            Setup::Configured("~/.claude/.credentials.json exists".to_owned())
        );
    }

    fn known(backend: &str) -> &'static Known {
        KNOWN
            .iter()
            .find(|k| k.backend == backend)
            .expect("a built-in backend")
    }

    /// A login file where a variable moved the CLI's folder counts, and one
    /// left in the default folder the CLI no longer reads does not.
    #[test]
    fn a_login_is_looked_for_where_the_cli_folder_variables_point() {
        let home = tempfile::tempdir().expect("tempdir");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let put = |path: std::path::PathBuf| {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, "{}").expect("write");
        };
        // Logins in the default folders, which the variables below move away.
        put(home.path().join(".claude/.credentials.json"));
        put(home.path().join(".codex/auth.json"));
        put(home.path().join(".local/share/opencode/auth.json"));
        let folder = |name: &str| elsewhere.path().join(name).display().to_string();
        let vars = |name: &str| match name {
            "CLAUDE_CONFIG_DIR" => Some(folder("claude")),
            "CODEX_HOME" => Some(folder("codex")),
            "XDG_DATA_HOME" => Some(folder("data")),
            "GEMINI_CLI_HOME" => Some(folder("gemini-home")),
            _ => None,
        };
        let user = cli_home::UserConfig::from_lookup(&vars, Some(home.path().to_path_buf()));
        for backend in ["claude", "codex", "opencode", "gemini"] {
            assert!(
                matches!(
                    setup_of(known(backend), &vars, &user),
                    Setup::NotConfigured(_)
                ),
                "{backend}: its folder was moved, so the default one's login is not its login"
            );
        }
        put(elsewhere.path().join("claude/.credentials.json"));
        put(elsewhere.path().join("codex/auth.json"));
        put(elsewhere.path().join("data/opencode/auth.json"));
        put(elsewhere
            .path()
            .join("gemini-home/.gemini/oauth_creds.json"));
        for (backend, file) in [
            ("claude", "claude/.credentials.json"),
            ("codex", "codex/auth.json"),
            ("opencode", "data/opencode/auth.json"),
            ("gemini", "gemini-home/.gemini/oauth_creds.json"),
        ] {
            let expected = format!("{} exists", elsewhere.path().join(file).display());
            assert_eq!(
                setup_of(known(backend), &vars, &user),
                Setup::Configured(expected),
                "{backend}"
            );
        }
    }
}
