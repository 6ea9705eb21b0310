//! A private config folder per worker for the agent CLIs (`cli_config:
//! private`, the default). Each CLI keeps settings, hooks, memory files,
//! MCP servers, session logs and its own state (Claude Code's
//! `.claude.json`) in a folder of the user's. Shared by every worker of a
//! sweep, that folder makes a sweep depend on whoever runs it and lets
//! parallel workers write the same files at once. So each worker gets
//! `.dispatch/tasks/<id>/cli/` as that folder, and only the user's login is
//! carried over, as a symbolic link to the credentials file (a CLI that
//! refreshes its token in place writes the user's one file). The links are
//! removed when the worker ends, so an archived task folder points at no
//! credentials; a copy a CLI wrote in place of its link (renaming a new
//! file over it) stays, since it may hold the only token still valid.
//!
//! What each CLI gets is in `docs/backends.md` ("Configuration").

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::state::{self, StateError};

/// The private folder's name inside the task folder.
pub const FOLDER: &str = "cli";

/// Whether dispatch knows where `backend` (a built-in backend's name)
/// keeps its configuration. Cursor's `agent` has no documented way to move
/// its folder, so it keeps the user's.
pub fn supports(backend: &str) -> bool {
    matches!(
        backend,
        "claude" | "codex" | "gemini" | "opencode" | "aider"
    )
}

/// Where the user's own configuration is: their home folder and the
/// variables that move a CLI's folder (read from dispatch's environment).
#[derive(Clone, Debug, Default)]
pub struct UserConfig {
    pub home: Option<PathBuf>,
    pub env: HashMap<String, String>,
}

/// The variables a user's CLI configuration is found (or chosen) by.
const VARIABLES: &[&str] = &[
    "CLAUDE_CONFIG_DIR",
    "CODEX_HOME",
    "GEMINI_CLI_HOME",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
];

impl UserConfig {
    /// From dispatch's own environment.
    pub fn from_env() -> Self {
        Self::from_lookup(
            &|name| std::env::var(name).ok(),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// From an environment given as a lookup, and a home folder.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>, home: Option<PathBuf>) -> Self {
        Self {
            home: home.filter(|h| !h.as_os_str().is_empty()),
            env: VARIABLES
                .iter()
                .filter_map(|name| lookup(name).map(|value| ((*name).to_owned(), value)))
                .collect(),
        }
    }

    /// This configuration as a worker with `env` (its manifest's `env:`,
    /// from its task, backend and defaults) sees it: the manifest's
    /// variables count as if dispatch's own environment had them, so a
    /// key given only in the manifest chooses Gemini CLI's login the same.
    pub fn with_env<'a>(&self, env: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        let mut user = self.clone();
        for (name, value) in env {
            if VARIABLES.contains(&name.as_str()) {
                user.env.insert(name.clone(), value.clone());
            }
        }
        user
    }

    fn var(&self, name: &str) -> Option<PathBuf> {
        self.env
            .get(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// A folder given by `variable`, else `default` under the home folder.
    fn folder(&self, variable: &str, default: &str) -> Option<PathBuf> {
        self.var(variable)
            .or_else(|| self.home.as_ref().map(|home| home.join(default)))
    }

    /// The user's own configuration folder of `backend`: where its login
    /// and settings are.
    fn own_folder(&self, backend: &str) -> Option<PathBuf> {
        match backend {
            "claude" => self.folder("CLAUDE_CONFIG_DIR", ".claude"),
            "codex" => self.folder("CODEX_HOME", ".codex"),
            // Gemini CLI takes a home folder and keeps `.gemini/` in it.
            "gemini" => self
                .var("GEMINI_CLI_HOME")
                .or_else(|| self.home.clone())
                .map(|h| h.join(".gemini")),
            "opencode" => self
                .folder("XDG_CONFIG_HOME", ".config")
                .map(|d| d.join("opencode")),
            _ => None,
        }
    }

    /// The file `backend`'s own login leaves, where this user's variables
    /// put it (`CLAUDE_CONFIG_DIR`, `CODEX_HOME`, `GEMINI_CLI_HOME`,
    /// `XDG_DATA_HOME`): a private folder carries it over, and `dispatch
    /// doctor` judges a login by it, so both look where the CLI looks.
    pub fn login_file(&self, backend: &str) -> Option<PathBuf> {
        match backend {
            "claude" => self
                .own_folder("claude")
                .map(|d| d.join(".credentials.json")),
            "codex" => self.own_folder("codex").map(|d| d.join("auth.json")),
            "gemini" => self
                .own_folder("gemini")
                .map(|d| d.join("oauth_creds.json")),
            "opencode" => self
                .folder("XDG_DATA_HOME", ".local/share")
                .map(|d| d.join("opencode/auth.json")),
            // Cursor's agent has no variable that moves its folder.
            "cursor" => self
                .home
                .as_ref()
                .map(|h| h.join(".cursor/cli-config.json")),
            _ => None,
        }
    }

    /// `path` with the home folder shown as `~`.
    pub fn shown(&self, path: &Path) -> String {
        match self
            .home
            .as_deref()
            .and_then(|home| path.strip_prefix(home).ok())
        {
            Some(rest) => format!("~/{}", rest.display()),
            None => path.display().to_string(),
        }
    }
}

/// One credentials file carried over: the link made in the private folder
/// (relative to it) and the user's file it points at.
struct Login {
    link: &'static str,
    user_file: Option<PathBuf>,
}

/// What a CLI needs: the variables pointing it at the private folder, the
/// logins carried over, and settings files written into it.
struct Layout {
    env: Vec<(&'static str, PathBuf)>,
    /// Folders the CLI expects to exist, beside the private folder itself.
    folders: Vec<PathBuf>,
    logins: Vec<Login>,
    settings: Vec<(&'static str, String)>,
}

fn layout(backend: &str, folder: &Path, user: &UserConfig) -> Layout {
    let in_folder = |rel: &str| folder.join(rel);
    match backend {
        "claude" => Layout {
            env: vec![("CLAUDE_CONFIG_DIR", folder.to_path_buf())],
            folders: Vec::new(),
            logins: vec![Login {
                link: ".credentials.json",
                user_file: user.login_file("claude"),
            }],
            settings: Vec::new(),
        },
        "codex" => Layout {
            env: vec![("CODEX_HOME", folder.to_path_buf())],
            folders: Vec::new(),
            logins: vec![Login {
                link: "auth.json",
                user_file: user.login_file("codex"),
            }],
            settings: Vec::new(),
        },
        "gemini" => {
            let own = user.own_folder("gemini");
            let file = |name: &str| own.as_ref().map(|d| d.join(name));
            Layout {
                env: vec![("GEMINI_CLI_HOME", folder.to_path_buf())],
                folders: Vec::new(),
                logins: vec![
                    Login {
                        link: ".gemini/oauth_creds.json",
                        user_file: user.login_file("gemini"),
                    },
                    Login {
                        link: ".gemini/google_accounts.json",
                        user_file: file("google_accounts.json"),
                    },
                ],
                settings: vec![(
                    ".gemini/settings.json",
                    gemini_settings(user, own.as_deref()),
                )],
            }
        }
        "opencode" => {
            // opencode follows the XDG folders; its cache (provider packages
            // it downloads) stays shared.
            let config = user.folder("XDG_CONFIG_HOME", ".config");
            Layout {
                env: vec![
                    ("XDG_CONFIG_HOME", in_folder("config")),
                    ("XDG_DATA_HOME", in_folder("data")),
                    ("XDG_STATE_HOME", in_folder("state")),
                ],
                folders: vec![in_folder("config"), in_folder("data"), in_folder("state")],
                logins: vec![
                    Login {
                        link: "data/opencode/auth.json",
                        user_file: user.login_file("opencode"),
                    },
                    // Not a login, but git in the worker's shell reads its
                    // identity from here too; without it, commits fail.
                    Login {
                        link: "config/git",
                        user_file: config.map(|d| d.join("git")),
                    },
                ],
                settings: Vec::new(),
            }
        }
        "aider" => Layout {
            // aider writes its histories into the repository's root unless
            // told otherwise; it has no login file (keys come from the
            // environment).
            env: vec![
                ("AIDER_CHAT_HISTORY_FILE", in_folder("chat.history.md")),
                ("AIDER_INPUT_HISTORY_FILE", in_folder("input.history")),
            ],
            folders: Vec::new(),
            logins: Vec::new(),
            settings: Vec::new(),
        },
        _ => Layout {
            env: Vec::new(),
            folders: Vec::new(),
            logins: Vec::new(),
            settings: Vec::new(),
        },
    }
}

/// Gemini CLI refuses to run headless without a chosen way to log in, and
/// that choice lives in the settings file a private home replaces: carry
/// the user's choice over, else infer it from what is there. Updates and
/// usage statistics are off: a sweep must not change the CLI under its
/// workers or report on them.
fn gemini_settings(user: &UserConfig, own: Option<&Path>) -> String {
    let chosen = own
        .and_then(|dir| state::read_bounded(&dir.join("settings.json"), 1024 * 1024).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| {
            v["security"]["auth"]["selectedType"]
                .as_str()
                .map(str::to_owned)
        });
    let inferred = || {
        if user.var("GEMINI_API_KEY").is_some() {
            Some("gemini-api-key")
        } else if user
            .env
            .get("GOOGLE_GENAI_USE_VERTEXAI")
            .is_some_and(|v| v == "true")
        {
            Some("vertex-ai")
        } else if user.login_file("gemini").is_some_and(|f| f.is_file()) {
            Some("oauth-personal")
        } else {
            None
        }
    };
    let mut settings = serde_json::json!({
        "general": { "enableAutoUpdate": false, "enableAutoUpdateNotification": false },
        "privacy": { "usageStatisticsEnabled": false },
    });
    if let Some(kind) = chosen.or_else(|| inferred().map(str::to_owned)) {
        settings["security"] = serde_json::json!({ "auth": { "selectedType": kind } });
    }
    settings.to_string()
}

/// What the user's own configuration of `backend` sets that a private
/// folder leaves out and that the CLI may need to reach its model (a
/// provider, a key helper, variables in its settings), as "FILE sets
/// WHAT" lines: `dispatch doctor` and `dispatch run` say so, since such a
/// worker would fail with a login or network error of the CLI's own.
pub fn left_out(backend: &str, user: &UserConfig) -> Vec<String> {
    let read = |path: &Path| state::read_bounded(path, 1024 * 1024).ok();
    let mut found = Vec::new();
    let mut note = |path: &Path, what: &str| {
        found.push(format!("{} sets {what}", user.shown(path)));
    };
    match backend {
        "claude" => {
            let Some(path) = user.own_folder("claude").map(|d| d.join("settings.json")) else {
                return found;
            };
            let settings =
                read(&path).and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
            for key in ["env", "apiKeyHelper"] {
                if settings.as_ref().is_some_and(|s| s.get(key).is_some()) {
                    note(&path, &format!("`{key}`"));
                }
            }
        }
        "codex" => {
            let Some(path) = user.own_folder("codex").map(|d| d.join("config.toml")) else {
                return found;
            };
            let text = read(&path).unwrap_or_default();
            for key in ["model_provider", "model_providers", "profile", "profiles"] {
                let set = text.lines().any(|line| {
                    let line = line.trim_start();
                    line.strip_prefix(key)
                        .is_some_and(|rest| rest.trim_start().starts_with('='))
                        || line.starts_with(&format!("[{key}."))
                        || line.starts_with(&format!("[{key}]"))
                });
                if set {
                    note(&path, &format!("`{key}`"));
                }
            }
        }
        "opencode" => {
            let Some(dir) = user.own_folder("opencode") else {
                return found;
            };
            for name in ["opencode.json", "opencode.jsonc", "config.json"] {
                let path = dir.join(name);
                if read(&path).is_some_and(|text| text.contains("\"provider\"")) {
                    note(&path, "`provider`");
                }
            }
        }
        _ => {}
    }
    found
}

/// What `dispatch run` and `dispatch doctor` say of what [`left_out`] found.
pub fn left_out_warning(left_out: &[String]) -> String {
    format!(
        "{}, which workers do not see in their private config folders (`cli_config: private`, the default); set `cli_config: user` to give them your configuration",
        left_out.join("; ")
    )
}

/// Make `folder` the private config folder of a `backend` worker: create
/// it, link the user's login into it, write the settings the CLI needs.
/// Returns the variables that point the CLI at it.
pub fn prepare(
    backend: &str,
    folder: &Path,
    user: &UserConfig,
) -> Result<Vec<(String, String)>, StateError> {
    let layout = layout(backend, folder, user);
    state::ensure_dir(folder)?;
    for dir in &layout.folders {
        state::ensure_dir(dir)?;
    }
    for login in &layout.logins {
        let link = folder.join(login.link);
        remove_link(&link)?;
        if std::fs::symlink_metadata(&link).is_ok() {
            // The CLI replaced the link with a copy of its own (it wrote a
            // refreshed token by renaming over it): that copy may hold the
            // only token still valid, so it stays and is used as it is.
            continue;
        }
        let Some(target) = login.user_file.as_ref().filter(|t| t.exists()) else {
            continue;
        };
        if let Some(parent) = link.parent() {
            state::ensure_dir(parent)?;
        }
        std::os::unix::fs::symlink(target, &link).map_err(|e| StateError::io(&link, e))?;
    }
    for (name, text) in &layout.settings {
        state::write_state(&folder.join(name), text.as_bytes())?;
    }
    Ok(layout
        .env
        .into_iter()
        .map(|(name, path)| (name.to_owned(), path.display().to_string()))
        .collect())
}

/// Remove the links to the user's login once the worker has ended (a copy
/// the CLI made in their place stays, as private as the user's own file).
pub fn release(backend: &str, folder: &Path) {
    for login in layout(backend, folder, &UserConfig::default()).logins {
        let _ = remove_link(&folder.join(login.link));
    }
}

/// Remove `path` if it is a symbolic link (never what it points at).
fn remove_link(path: &Path) -> Result<(), StateError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::remove_file(path).map_err(|e| StateError::io(path, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn user_with(home: &Path, env: &[(&str, &str)]) -> UserConfig {
        UserConfig {
            home: Some(home.to_path_buf()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn env_of(pairs: &[(String, String)], name: &str) -> Option<String> {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn claude_gets_its_own_folder_with_only_the_login_linked() {
        let temp = tempfile::tempdir().expect("tempdir");
        let own = temp.path().join("home/.claude");
        std::fs::create_dir_all(&own).expect("mkdir");
        std::fs::write(own.join(".credentials.json"), "{\"token\":1}").expect("write");
        std::fs::write(own.join("settings.json"), "{\"hooks\":{}}").expect("write");
        let folder = temp.path().join("task/cli");
        let env = prepare(
            "claude",
            &folder,
            &user_with(&temp.path().join("home"), &[]),
        )
        .expect("prepare");
        assert_eq!(
            env_of(&env, "CLAUDE_CONFIG_DIR").as_deref(),
            Some(folder.to_str().expect("utf-8"))
        );
        let link = folder.join(".credentials.json");
        assert!(std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(&link).expect("read"),
            "{\"token\":1}"
        );
        assert!(
            !folder.join("settings.json").exists(),
            "the user's settings stay out"
        );
        release("claude", &folder);
        assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
        assert!(
            own.join(".credentials.json").is_file(),
            "the user's file is untouched"
        );
    }

    #[test]
    fn a_login_the_cli_rewrote_in_place_of_the_link_is_kept() {
        let temp = tempfile::tempdir().expect("tempdir");
        let own = temp.path().join("home/.claude");
        std::fs::create_dir_all(&own).expect("mkdir");
        std::fs::write(own.join(".credentials.json"), "old token").expect("write");
        let folder = temp.path().join("cli");
        let user = user_with(&temp.path().join("home"), &[]);
        prepare("claude", &folder, &user).expect("first attempt");
        // The CLI refreshes its token by writing a file and renaming it
        // over the link.
        let link = folder.join(".credentials.json");
        std::fs::write(folder.join("tmp"), "new token").expect("write");
        std::fs::rename(folder.join("tmp"), &link).expect("rename");
        release("claude", &folder);
        prepare("claude", &folder, &user).expect("a retry still launches");
        assert_eq!(std::fs::read_to_string(&link).expect("read"), "new token");
        assert_eq!(
            std::fs::read_to_string(own.join(".credentials.json")).expect("read"),
            "old token",
            "the user's file is never written"
        );
    }

    #[test]
    fn a_moved_user_folder_is_where_the_login_comes_from() {
        let temp = tempfile::tempdir().expect("tempdir");
        let own = temp.path().join("elsewhere");
        std::fs::create_dir_all(&own).expect("mkdir");
        std::fs::write(own.join("auth.json"), "{}").expect("write");
        let folder = temp.path().join("cli");
        let user = user_with(
            &temp.path().join("home"),
            &[("CODEX_HOME", own.to_str().expect("utf-8"))],
        );
        let env = prepare("codex", &folder, &user).expect("prepare");
        assert_eq!(env_of(&env, "CODEX_HOME").as_deref(), folder.to_str());
        assert_eq!(
            std::fs::read_link(folder.join("auth.json")).expect("link"),
            own.join("auth.json")
        );
    }

    #[test]
    fn no_login_no_link_and_a_second_prepare_is_fine() {
        let temp = tempfile::tempdir().expect("tempdir");
        let folder = temp.path().join("cli");
        let user = user_with(&temp.path().join("home"), &[]);
        prepare("codex", &folder, &user).expect("first");
        prepare("codex", &folder, &user).expect("again, for a retry");
        assert!(std::fs::symlink_metadata(folder.join("auth.json")).is_err());
    }

    #[test]
    fn gemini_keeps_the_users_login_choice_and_turns_updates_off() {
        let temp = tempfile::tempdir().expect("tempdir");
        let own = temp.path().join("home/.gemini");
        std::fs::create_dir_all(&own).expect("mkdir");
        std::fs::write(
            own.join("settings.json"),
            r#"{"security":{"auth":{"selectedType":"oauth-personal"}},"mcpServers":{"x":{}}}"#,
        )
        .expect("write");
        std::fs::write(own.join("oauth_creds.json"), "{}").expect("write");
        let folder = temp.path().join("cli");
        let env = prepare(
            "gemini",
            &folder,
            &user_with(&temp.path().join("home"), &[]),
        )
        .expect("prepare");
        assert_eq!(env_of(&env, "GEMINI_CLI_HOME").as_deref(), folder.to_str());
        let settings: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(folder.join(".gemini/settings.json")).expect("settings"),
        )
        .expect("JSON");
        assert_eq!(
            settings["security"]["auth"]["selectedType"],
            "oauth-personal"
        );
        assert_eq!(settings["general"]["enableAutoUpdate"], false);
        assert!(
            settings.get("mcpServers").is_none(),
            "only the login choice"
        );
        assert!(folder.join(".gemini/oauth_creds.json").exists());
    }

    #[test]
    fn gemini_infers_an_api_key_login() {
        let temp = tempfile::tempdir().expect("tempdir");
        let folder = temp.path().join("cli");
        let user = user_with(&temp.path().join("home"), &[("GEMINI_API_KEY", "k")]);
        prepare("gemini", &folder, &user).expect("prepare");
        let text = std::fs::read_to_string(folder.join(".gemini/settings.json")).expect("read");
        assert!(
            text.contains("\"selectedType\":\"gemini-api-key\""),
            "{text}"
        );
    }

    #[test]
    fn gemini_infers_an_api_key_login_from_the_manifests_env() {
        let temp = tempfile::tempdir().expect("tempdir");
        let folder = temp.path().join("cli");
        let manifest_env: IndexMap<String, String> = [
            ("GEMINI_API_KEY".to_owned(), "k".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ]
        .into_iter()
        .collect();
        let user = user_with(&temp.path().join("home"), &[]).with_env(&manifest_env);
        assert!(!user.env.contains_key("UNRELATED"), "only the known names");
        prepare("gemini", &folder, &user).expect("prepare");
        let text = std::fs::read_to_string(folder.join(".gemini/settings.json")).expect("read");
        assert!(
            text.contains("\"selectedType\":\"gemini-api-key\""),
            "{text}"
        );
    }

    #[test]
    fn opencode_gets_private_xdg_folders_but_keeps_the_login_and_git_identity() {
        let temp = tempfile::tempdir().expect("tempdir");
        let home = temp.path().join("home");
        std::fs::create_dir_all(home.join(".local/share/opencode")).expect("mkdir");
        std::fs::write(home.join(".local/share/opencode/auth.json"), "{}").expect("write");
        std::fs::create_dir_all(home.join(".config/git")).expect("mkdir");
        let folder = temp.path().join("cli");
        let env = prepare("opencode", &folder, &user_with(&home, &[])).expect("prepare");
        for (name, sub) in [
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
        ] {
            let path = folder.join(sub);
            assert_eq!(env_of(&env, name).as_deref(), path.to_str());
            assert!(path.is_dir(), "{sub} made");
        }
        assert!(
            env_of(&env, "XDG_CACHE_HOME").is_none(),
            "the cache is shared"
        );
        assert!(folder.join("data/opencode/auth.json").exists());
        assert!(folder.join("config/git").is_dir());
    }

    #[test]
    fn aider_keeps_its_histories_out_of_the_repository() {
        let temp = tempfile::tempdir().expect("tempdir");
        let folder = temp.path().join("cli");
        let env = prepare("aider", &folder, &user_with(temp.path(), &[])).expect("prepare");
        assert_eq!(
            env_of(&env, "AIDER_CHAT_HISTORY_FILE"),
            folder.join("chat.history.md").to_str().map(str::to_owned)
        );
        assert!(
            !folder.join("chat.history.md").exists(),
            "a file, not a folder"
        );
    }

    #[test]
    fn what_a_private_folder_leaves_out_is_named() {
        let temp = tempfile::tempdir().expect("tempdir");
        let home = temp.path();
        std::fs::create_dir_all(home.join(".codex")).expect("mkdir");
        std::fs::write(
            home.join(".codex/config.toml"),
            "model = \"o3\"\nmodel_provider = \"azure\"\n\n[model_providers.azure]\nbase_url = \"x\"\n",
        )
        .expect("write");
        std::fs::create_dir_all(home.join(".claude")).expect("mkdir");
        std::fs::write(
            home.join(".claude/settings.json"),
            r#"{"env":{"CLAUDE_CODE_USE_BEDROCK":"1"},"hooks":{}}"#,
        )
        .expect("write");
        let user = user_with(home, &[]);
        assert_eq!(
            left_out("codex", &user),
            [
                "~/.codex/config.toml sets `model_provider`",
                "~/.codex/config.toml sets `model_providers`"
            ]
        );
        assert_eq!(
            left_out("claude", &user),
            ["~/.claude/settings.json sets `env`"]
        );
        assert!(left_out("opencode", &user).is_empty());
        assert!(left_out("gemini", &user).is_empty());
    }

    #[test]
    fn a_planted_symlink_in_place_of_the_folder_is_refused() {
        let temp = tempfile::tempdir().expect("tempdir");
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        let folder = temp.path().join("cli");
        std::os::unix::fs::symlink(&elsewhere, &folder).expect("plant");
        let err = prepare("claude", &folder, &UserConfig::default()).expect_err("refused");
        assert!(matches!(err, StateError::Symlink { .. }), "{err}");
    }
}
