//! Docs that must agree with the code, checked as tests (in the spirit of rust-analyzer's
//! `tidy.rs`): the exit-code tables of README.md, the CLI README and `--help` against `exit.rs`;
//! the `kind` values the CLI README lists against the ones the code emits; every repository path a
//! README names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository's root (two levels above this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The exit codes `exit.rs` defines, and the `kind` word of each.
fn codes() -> (BTreeSet<u8>, BTreeSet<String>) {
    let source = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/exit.rs"));
    let enum_body = source
        .split("pub(crate) enum Exit {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("the Exit enum");
    let codes = enum_body
        .lines()
        .filter_map(|line| line.trim().strip_suffix(','))
        .filter_map(|line| line.split_once(" = "))
        .map(|(_, code)| code.trim().parse().unwrap())
        .collect();
    let kind_body = source
        .split("pub(crate) fn kind(self) -> &'static str {")
        .nth(1)
        .and_then(|rest| rest.split("\n    }").next())
        .expect("Exit::kind");
    let kinds = kind_body
        .lines()
        .filter_map(|line| line.split("=> \"").nth(1))
        .map(|rest| rest.trim_end_matches("\",").to_string())
        .collect();
    (codes, kinds)
}

#[test]
fn the_cli_readme_exit_code_table_lists_every_code_and_no_other() {
    let (codes, _) = codes();
    let readme = read(&root().join("crates/happyrobot-cli/README.md"));
    let table = readme
        .split("## Exit codes")
        .nth(1)
        .expect("an exit-code section");
    let mut listed = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| ")) {
        let first = line
            .trim_start_matches("| ")
            .split(" |")
            .next()
            .unwrap_or_default();
        for code in first.split(", ") {
            if let Ok(code) = code.trim().parse::<u8>() {
                listed.insert(code);
            }
        }
    }
    assert_eq!(listed, codes, "the CLI README's table against exit.rs");
}

#[test]
fn the_root_readme_names_every_exit_code() {
    let (codes, _) = codes();
    let readme = read(&root().join("README.md"));
    let sentence = readme
        .split("Exit codes:")
        .nth(1)
        .and_then(|rest| rest.split("See [").next())
        .expect("the README's exit-code sentence");
    let named: BTreeSet<u8> = sentence
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .filter(|n| codes.contains(n))
        .collect();
    assert_eq!(
        named, codes,
        "README.md's exit codes against exit.rs: {sentence}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_exit_codes_are_the_codes() {
    let (codes, _) = codes();
    // The top-level help says them in one sentence, each code before its meaning.
    let run = common::run(&["--help"]).await;
    let sentence = run
        .stdout
        .split("Exit codes:")
        .nth(1)
        .and_then(|rest| rest.split("Each command's").next())
        .expect("--help: the exit codes in short");
    let listed: Vec<u8> = sentence
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    for code in &listed {
        assert!(
            codes.contains(code),
            "--help lists {code}, which exit.rs has not"
        );
    }
    for code in 0u8..=8 {
        assert!(listed.contains(&code), "--help lacks {code}: {sentence}");
    }
    for args in [vec!["notes", "import", "--help"]] {
        let run = common::run(&args).await;
        let block = run
            .stdout
            .split("Exit codes:")
            .nth(1)
            .unwrap_or_else(|| panic!("{args:?}: no exit codes"));
        for line in block
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        {
            let first = line.trim().split("  ").next().unwrap_or_default();
            for code in first.split(", ") {
                let code: u8 = code
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{args:?}: {line}"));
                assert!(
                    codes.contains(&code),
                    "{args:?} lists {code}, which exit.rs has not"
                );
            }
        }
        for code in [0u8, 2, 3, 7] {
            assert!(
                block.contains(&format!("\n  {code}  ")),
                "{args:?} lacks {code}"
            );
        }
    }
}

#[test]
fn the_kind_values_the_readme_lists_are_the_ones_the_code_emits() {
    let (_, kinds) = codes();
    let readme = read(&root().join("crates/happyrobot-cli/README.md"));
    let paragraph = readme
        .split("`kind` names the exit code (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the list of kinds");
    let listed: BTreeSet<String> = paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert_eq!(listed, kinds, "the CLI README's kinds against Exit::kind");
}

#[test]
fn every_repository_path_a_readme_names_exists() {
    let root = root();
    let readmes = [
        "README.md",
        "crates/happyrobot/README.md",
        "crates/happyrobot-bulk/README.md",
        "crates/happyrobot-cli/README.md",
        "crates/happyrobot-mock/README.md",
        "crates/happyrobot-sdk/README.md",
    ];
    let mut missing = Vec::new();
    for readme in readmes {
        let text = read(&root.join(readme));
        let dir = root.join(readme).parent().unwrap().to_path_buf();
        // Links: `](target)` to a file in the repository.
        for target in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
        {
            let target = target.split('#').next().unwrap_or_default();
            if target.is_empty()
                || target.contains("://")
                || target.contains("::")
                || target.starts_with('`')
            {
                continue;
            }
            if !dir.join(target).exists() {
                missing.push(format!("{readme}: link {target}"));
            }
        }
        // Paths in code spans that name a place in the repository.
        for span in text.split('`').skip(1).step_by(2) {
            let repo_path = ["crates/", "openapi/", "xtask/", ".ci/"]
                .iter()
                .any(|prefix| span.starts_with(prefix));
            if repo_path && !span.contains(['<', '*', ' ']) && !root.join(span).exists() {
                missing.push(format!("{readme}: path {span}"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// The file extensions `notes import --help` names are the library's list, `Format::EXTENSIONS`:
/// no more (the help once named `.txt`, which was not read) and no fewer.
#[tokio::test]
async fn the_import_help_names_the_extensions_the_library_reads() {
    let run = common::run(&["notes", "import", "--help"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    let listed = help
        .split("The file of notes (")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the FILE argument's help");
    let named: Vec<&str> = listed
        .split(", ")
        .map(|ext| ext.trim().trim_start_matches('.'))
        .collect();
    let known: Vec<&str> = happyrobot_bulk::Format::EXTENSIONS
        .iter()
        .map(|(ext, _)| *ext)
        .collect();
    assert_eq!(named, known, "{listed}");
}
