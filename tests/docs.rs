//! The docs a user reads first must not lie: the README's example manifest
//! is valid, and the backend table matches the built-in backends.

use dispatch::manifest::models::builtin_backends;

#[test]
fn readme_example_manifest_is_valid() {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let section = readme
        .find("## The manifest")
        .expect("the manifest section");
    let start =
        section + readme[section..].find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("closed block");
    let loaded = dispatch::manifest::parse("README.md", &readme[start..end])
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = dispatch::plan::build(&loaded, &dispatch::plan::PlanOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.tasks.len(), 3);
}

#[test]
fn backend_docs_show_every_builtin_command() {
    let docs = std::fs::read_to_string("docs/backends.md").expect("docs/backends.md");
    for backend in builtin_backends() {
        if backend.command.is_empty() {
            continue;
        }
        let line = backend.command.join(" ");
        assert!(
            docs.contains(&format!("`{line}`")),
            "docs/backends.md does not show the {} command `{line}`",
            backend.name
        );
    }
}

/// Every command `dispatch --help` lists, and every long option it takes,
/// is in the README, so the two cannot drift apart unnoticed.
#[test]
fn readme_names_every_command_and_option() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let cli = dispatch::cli::Cli::command();
    let mut missing = Vec::new();
    for command in cli.get_subcommands() {
        let name = command.get_name();
        if name == "worker" {
            // The worker side is named as `dispatch worker ask` and
            // `dispatch worker finding`.
            continue;
        }
        if !readme.contains(&format!("dispatch {name}")) {
            missing.push(format!("dispatch {name}"));
        }
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                let option = format!("--{long}");
                if !readme.contains(&option) && long != "help" {
                    missing.push(format!("dispatch {name} {option}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in README.md: {missing:?}");
}
