//! docs/tutorial.md, followed: its files (the code blocks marked `file=` or `append=`) are
//! written into a copy of the configuration, and what the tutorial says happens is checked:
//! `check` passes and names a typo, `test` passes and shows a diff when a screen is wrong,
//! `graph` draws the flow, the served flow answers, reloads on save with `--watch`, and its
//! journeys are counted.

mod common;

use common::{At, Sandbox, eventually};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const AUTH: [(&str, &str); 1] = [("authorization", "Bearer test-token")];

/// The tutorial's blocks: (`file` or `append`, path, text).
fn blocks() -> Vec<(String, String, String)> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/tutorial.md")).unwrap();
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let Some((how, path)) = info
            .split_whitespace()
            .find_map(|w| w.split_once('='))
            .filter(|(k, _)| *k == "file" || *k == "append")
        else {
            continue;
        };
        let mut text = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        out.push((how.to_string(), path.to_string(), text));
    }
    out
}

/// Where the tutorial's `config/...` path is in the sandbox (its config folder is the root).
fn in_sandbox(sb: &Sandbox, path: &str) -> PathBuf {
    let rel = path.strip_prefix("config/").expect("a path under config/");
    if rel == "gateway.toml" {
        sb.config_path()
    } else {
        sb.dir.path().join(rel)
    }
}

fn gateway(sb: &Sandbox, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(args)
        .arg("--config")
        .arg(sb.config_path())
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn the_tutorial_works_as_written() {
    let sb = Sandbox::with_repo_flows("");
    let blocks = blocks();
    assert_eq!(
        blocks.len(),
        3,
        "the flow, the route and the test file: {blocks:?}"
    );
    for (how, path, text) in &blocks {
        let target = in_sandbox(&sb, path);
        if how == "file" {
            std::fs::write(&target, text).unwrap();
        } else {
            let mut all = std::fs::read_to_string(&target).unwrap();
            all.push('\n');
            all.push_str(text);
            std::fs::write(&target, all).unwrap();
        }
    }
    let flow = sb.dir.path().join("flows/kiosk.yaml");
    let tests = sb.dir.path().join("flows/kiosk.test.yaml");
    let tests_arg = tests.to_str().unwrap();

    // 4. check passes, and names a typo.
    let o = gateway(&sb, &["check"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains(": ok (1 routes"), "{}", out(&o));
    let good = std::fs::read_to_string(&flow).unwrap();
    std::fs::write(&flow, good.replace("next: thanks", "next: thank")).unwrap();
    let o = gateway(&sb, &["check"]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("kiosk.yaml: screens.save.next: unknown target screen `thank`"),
        "{}",
        out(&o)
    );
    std::fs::write(&flow, &good).unwrap();

    // 5. test passes, and shows the line that differs.
    let o = gateway(&sb, &["test", tests_arg]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("2 passed, 0 failed"), "{}", out(&o));
    let cases = std::fs::read_to_string(&tests).unwrap();
    std::fs::write(&tests, cases.replace("5 stars", "4 stars")).unwrap();
    let o = gateway(&sb, &["test", tests_arg]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("- END Thank you! You gave us 4 stars.")
            && out(&o).contains("+ END Thank you! You gave us 5 stars."),
        "{}",
        out(&o)
    );
    std::fs::write(&tests, &cases).unwrap();

    // 8. graph.
    let o = gateway(&sb, &["graph", "*384*77#"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("s_welcome -->|\"Rate our service\"| s_rate"),
        "{}",
        out(&o)
    );

    // 6, 7. Served with --watch: it answers, and a saved change is what the next dial gets.
    let (gw, log) = sb.spawn_logged_with("info", &["--watch"], &[]);
    let at = At::new(gw.public);
    let screens = at.walk("t1", "*384*77#", "0712345678", &["1", "5"]).await;
    assert_eq!(
        screens.last().map(String::as_str),
        Some("END Thank you! You gave us 5 stars.")
    );
    assert!(
        log.wait_for("watching the flows", 10).await,
        "{}",
        log.text()
    );
    std::fs::write(
        &flow,
        good.replace("Karibu! Maji Safi kiosk", "Karibu! Maji Safi kiosk, Kisumu"),
    )
    .unwrap();
    assert!(log.wait_for("watch: reloaded", 10).await, "{}", log.text());
    let mut n = 0;
    assert!(
        eventually(10, || {
            n += 1;
            let at = at.clone();
            let session = format!("t2-{n}");
            async move {
                at.hop(&session, "*384*77#", "0712345678", "")
                    .await
                    .starts_with("CON Karibu! Maji Safi kiosk, Kisumu\n")
            }
        })
        .await
    );

    // 9. The funnel counts the dialogue that rated.
    let admin = At::new(gw.admin);
    assert!(
        eventually(10, || {
            let admin = admin.clone();
            async move {
                let j = admin
                    .request("GET", "/admin/journeys?route=*384*77%23", &AUTH, "")
                    .await;
                let j: serde_json::Value = serde_json::from_str(&j.body).unwrap_or_default();
                j["screens"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["screen"] == "thanks" && s["ended"] == 1))
            }
        })
        .await
    );
}
