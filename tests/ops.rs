//! What the engineer who deploys and runs the gateway checks: the build it runs (`--version`,
//! `ussd_build_info`), configuration from the environment and from secret files, the command
//! line (enums listed in `--help`, shell completions), JSON logs grouped by dialogue, and the
//! packaging files (compose, the systemd unit) as far as they can be checked without Docker.

mod common;

use common::{At, Sandbox};
use std::path::Path;
use std::process::{Command, Output};

fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ussd-gateway"));
    // What the developer's shell may have set must not leak into the child.
    for (k, _) in std::env::vars() {
        if k.starts_with("USSD_GATEWAY") || k == "AT_USERNAME" || k == "AT_API_KEY" {
            c.env_remove(k);
        }
    }
    c
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The commit `git rev-parse` gives for the repository, when git and the repository are there.
fn head_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_commit() {
    let out = gateway().arg("--version").output().unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.starts_with(&format!("ussd-gateway {} (", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    let commit = head_commit().unwrap_or_else(|| "unknown".into());
    assert!(
        stdout.contains(&format!("commit {commit}")),
        "{stdout} (HEAD is {commit})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_info_carries_version_and_commit() {
    let sb = Sandbox::new("", &[]);
    let gw = sb.spawn();
    let metrics = At::new(gw.admin).request("GET", "/metrics", &[], "").await;
    let commit = head_commit().unwrap_or_else(|| "unknown".into());
    let line = metrics
        .body
        .lines()
        .find(|l| l.starts_with("ussd_build_info{"))
        .unwrap_or_else(|| panic!("no ussd_build_info in {}", metrics.body));
    assert!(
        line.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(line.contains(&format!("commit=\"{commit}\"")), "{line}");
    assert!(line.ends_with(" 1"), "{line}");
}

#[allow(dead_code)]
fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
