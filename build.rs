//! Build script: the git commit the binary is built from, for `--version` and
//! `ussd_build_info`.
//!
//! `USSD_GATEWAY_GIT_COMMIT` wins when set (a container build has no `.git`: the Dockerfile
//! passes it as a build argument); else `git rev-parse`; else "unknown".

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=USSD_GATEWAY_GIT_COMMIT");
    let given = std::env::var("USSD_GATEWAY_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = given
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Built again when HEAD moves: a checkout (HEAD) or a commit on the branch (its ref, loose
    // or packed). In a worktree, HEAD is in its own git dir and the refs in the common one.
    // Only files that exist: cargo runs a script again on every build for one that does not.
    let mut watched = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        watched.push(PathBuf::from(dir).join("HEAD"));
    }
    if let (Some(common), Some(head)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        let common = PathBuf::from(common);
        watched.push(common.join(&head));
        watched.push(common.join("packed-refs"));
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=USSD_GATEWAY_COMMIT={commit}");
}
