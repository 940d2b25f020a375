//! Dependencies run one way: what the visitor said (`consent`) and what the site declares
//! (`policy`) know nothing of how requests are filtered or proxied.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every line of the module's files that names one of `forbidden`, up to the file's unit tests
/// (which may build a policy to test with).
fn offences(module: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(module);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text
            .lines()
            .enumerate()
            .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        {
            // `crate::filter`, and `use crate::{filter, …}` written as a group.
            let named = forbidden.iter().any(|m| {
                line.contains(&format!("crate::{m}"))
                    || (line.contains("crate::{") && line.contains(&format!(" {m}")))
            });
            if named {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn consent_and_policy_never_name_filter_or_proxy() {
    for module in ["consent", "policy"] {
        let found = offences(module, &["filter", "proxy", "server", "audit"]);
        assert!(
            found.is_empty(),
            "{module} depends on the proxy:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn consent_never_names_policy() {
    let found = offences("consent", &["policy"]);
    assert!(
        found.is_empty(),
        "consent depends on policy:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_what_it_looks_for() {
    // The filter does name the policy: the same scan over it must say so.
    assert!(!offences("filter", &["policy"]).is_empty());
}
