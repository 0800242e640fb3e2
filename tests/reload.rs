//! Flow reloads and restarts with changed flows: live dialogues finish on the version they
//! started with, new dialogues get the new one, invalid versions are refused.

mod common;

use common::{At, Sandbox, eventually};

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");
const PHONE: &str = "+254700000002";

fn sandbox() -> Sandbox {
    Sandbox::new(
        "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n",
        &[("echo", ECHO)],
    )
}

fn write_flow(sb: &Sandbox, yaml: &str) {
    std::fs::write(sb.dir.path().join("flows/echo.yaml"), yaml).unwrap();
}

async fn reload(admin: std::net::SocketAddr) -> common::Answer {
    At::new(admin)
        .request(
            "POST",
            "/admin/reload",
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await
}

/// `POST /admin/reload` swaps flows without dropping live dialogues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_live_dialogues_on_their_version() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(
        at.hop("old", "*384*1#", PHONE, "").await,
        "CON Say something"
    );

    write_flow(&sb, &ECHO.replace("Say something", "Tell me"));
    let a = reload(gw.admin_addr).await;
    assert_eq!(a.status, 200, "{a:?}");

    // New dialogues get the new version...
    // (Another number: the same one dialling again would supersede the live dialogue.)
    assert_eq!(
        at.hop("new", "*384*1#", "+254700000003", "").await,
        "CON Tell me"
    );
    // ...the live one finishes on the version it started with.
    at.hop("old", "*384*1#", PHONE, "x").await;
    assert_eq!(
        at.hop("old", "*384*1#", PHONE, "x*1").await,
        "CON Say something"
    );

    // An invalid version is refused with its errors; the running one keeps serving.
    write_flow(&sb, &ECHO.replace("next: bye", "next: nowhere"));
    let a = reload(gw.admin_addr).await;
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.body.contains("echo.yaml"), "{}", a.body);
    assert!(a.body.contains("nowhere"), "{}", a.body);
    assert_eq!(
        at.hop("newer", "*384*1#", "+254700000004", "").await,
        "CON Tell me"
    );
    gw.shutdown().await;
}

/// SIGHUP reloads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_flows() {
    let sb = sandbox();
    let gw = sb.spawn();
    let at = At::new(gw.public);
    assert_eq!(
        at.hop("h1", "*384*1#", PHONE, "").await,
        "CON Say something"
    );
    write_flow(&sb, &ECHO.replace("Say something", "Speak up"));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut n = 0;
    assert!(
        eventually(10, || {
            n += 1;
            let at = at.clone();
            let session = format!("h2-{n}");
            // Other numbers: the same one dialling again would supersede h1.
            async move { at.hop(&session, "*384*1#", "+254700000006", "").await == "CON Speak up" }
        })
        .await
    );
    assert_eq!(
        at.hop("h1", "*384*1#", PHONE, "y").await.lines().next(),
        Some("CON #1 254700000002: y")
    );
}

/// After a restart with changed flows, a dialogue continues if its screen still exists, and
/// otherwise ends with an apology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_changed_flow() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("keeps", "*384*1#", PHONE, "").await;
    at.hop("keeps", "*384*1#", PHONE, "a").await; // on `echo`
    at.hop("loses", "*384*1#", "+254700000005", "").await; // on `ask`
    gw.shutdown().await;

    // `ask` is renamed; `echo` stays (with a changed text).
    let changed = ECHO
        .replace("start: ask", "start: prompt")
        .replace("  ask:\n", "  prompt:\n")
        .replace("next: ask", "next: prompt")
        .replace("Stop", "Quit");
    write_flow(&sb, &changed);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    assert_eq!(
        at.hop("loses", "*384*1#", "+254700000005", "b").await,
        "END Sorry, the service is unavailable right now. Please try again later."
    );
    assert_eq!(
        at.hop("keeps", "*384*1#", PHONE, "a*2").await,
        "END Bye after 1"
    );
    gw.shutdown().await;
}

/// `check` validates the config and every flow; `serve` refuses to start on the same errors.
#[test]
fn check_and_serve_refuse_invalid_flows() {
    let bin = env!("CARGO_BIN_EXE_ussd-gateway");
    let repo_config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.toml");
    let out = std::process::Command::new(bin)
        .args(["check", repo_config])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the shipped config is valid: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let sb = sandbox();
    write_flow(&sb, &ECHO.replace("next: bye", "next: nowhere"));
    let out = std::process::Command::new(bin)
        .arg("check")
        .arg(sb.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("echo.yaml") && stderr.contains("nowhere"),
        "{stderr}"
    );

    let out = std::process::Command::new(bin)
        .args(["serve", "--config"])
        .arg(sb.config_path())
        .output()
        .unwrap();
    let serve_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{serve_err}");
    let first_error = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(serve_err.contains(first_error), "{serve_err}");
}
