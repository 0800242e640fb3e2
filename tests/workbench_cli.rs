//! The flow author's commands, run as the binary: `test` (the sample apps' dialogue tests, a
//! failing case's diff, fake backend answers), `graph`, `schema`, `check`'s warning about
//! unrouted flow files, and `serve --watch` reloading a flow on save.

mod common;

use common::{At, Sandbox, eventually};
use std::path::Path;
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(args)
        .current_dir(ROOT)
        .env_remove("USSD_GATEWAY_CONFIG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_sample_apps_dialogue_tests_pass_and_reach_every_screen_a_script_can() {
    let o = gateway(&["test"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for file in ["student", "microfinance", "dental"] {
        assert!(
            out.contains(&format!("ok    config/flows/{file}.test.yaml: ")),
            "{file}: {out}"
        );
    }
    assert!(out.contains(" passed, 0 failed"), "{out}");
    // Only screens that two dialogues racing reach are left.
    let notes: Vec<&str> = out.lines().filter(|l| l.starts_with("note")).collect();
    assert_eq!(
        notes,
        ["note  microfinance: screens no case reached: already_registered, repay_too_much"],
        "{out}"
    );
}

/// A sandbox with one flow that calls a backend, and a test file for it.
fn backend_sandbox(cases: &str) -> Sandbox {
    let flow = r#"
start: ask
screens:
  ask:
    type: http
    url: "https://bank.example/balance/{{ phone }}"
    into: answer
    next: show
    failed: down
  show:
    type: end
    text: "Balance: {{ answer.json.balance }}"
  down:
    type: end
    text: "Try later."
"#;
    let sb = Sandbox::new(
        "[[routes]]\nservice_code = \"*500#\"\nflow = \"bank\"\n",
        &[("bank", flow)],
    );
    std::fs::write(sb.dir.path().join("flows/bank.test.yaml"), cases).unwrap();
    sb
}

#[test]
fn a_wrong_screen_fails_with_a_diff_and_fake_backend_answers_are_used() {
    let sb = backend_sandbox(
        r#"
- name: the balance from the backend
  dial: "*500#"
  phone: "0700000001"
  http:
    - { url: "/balance/254700000001$/", body: { balance: 42 } }
  expect: ["END Balance: 42"]
- name: a backend that is down
  dial: "*500#"
  phone: "0700000001"
  http:
    - { url: /.*/, timeout: true }
  expect: ["/^END Try/"]
- name: a wrong expectation
  dial: "*500#"
  phone: "0700000001"
  http:
    - { url: "https://bank.example/balance/254700000001", body: { balance: 41 } }
  expect: ["END Balance: 42"]
- name: no fake answer
  dial: "*500#"
  phone: "0700000002"
  http:
    - { url: "https://bank.example/balance/254700000001", body: { balance: 1 } }
  expect: ["END Balance: 1"]
"#,
    );
    let config = sb.config_path();
    let o = gateway(&["test", "--config", config.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains(": the balance from the backend\n"), "{out}");
    assert!(
        out.contains("ok    ") && out.contains(": a backend that is down\n"),
        "{out}"
    );
    assert!(
        out.contains(": a wrong expectation: the dial's screen\n      - END Balance: 42\n      + END Balance: 41\n"),
        "{out}"
    );
    assert!(
        out.contains(
            ": no fake answer: no fake answer for the request GET https://bank.example/balance/254700000002"
        ),
        "{out}"
    );
    assert!(out.ends_with("2 passed, 2 failed\n"), "{out}");
}

#[test]
fn test_files_are_checked_case_by_case() {
    let sb = backend_sandbox(
        r#"
- name: more inputs than the dialogue takes
  dial: "*500#"
  phone: "0700000001"
  inputs: [1]
  http: [{ url: /.*/, body: { balance: 1 } }]
  expect: ["END Balance: 1", "END x"]
- name: an unrouted dial
  dial: "*999#"
  phone: "0700000001"
  expect: ["END x"]
"#,
    );
    let config = sb.config_path();
    let o = gateway(&["test", "-c", config.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("the dialogue ended after 0 of 1 inputs:\nEND Balance: 1"),
        "{out}"
    );
    assert!(out.contains("      - \"END Balance: 1\"\n"), "{out}");
    assert!(
        out.contains(": an unrouted dial: no route for the dial `*999#`"),
        "{out}"
    );
}

#[test]
fn graph_prints_a_routes_flow_as_mermaid_or_dot() {
    let o = gateway(&["graph", "*123#"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.starts_with("flowchart TD\n"), "{out}");
    assert!(
        out.contains("s_home -->|\"View Results\"| s_results"),
        "{out}"
    );
    assert!(
        out.contains("s_lookup -->|\"missing\"| s_unregistered"),
        "{out}"
    );
    let o = gateway(&["graph", "dental", "--format", "dot"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.starts_with("digraph flow {"), "{out}");
    let edge = out
        .lines()
        .find(|l| l.contains("\"book_apply\" -> \"slot_gone\""))
        .unwrap_or_else(|| panic!("no edge to slot_gone: {out}"));
    assert!(edge.contains("else"), "{edge}");
    let o = gateway(&["graph", "*999#"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no route for `*999#`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn schema_prints_a_json_schema_the_sample_flows_satisfy() {
    let o = gateway(&["schema"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["properties"]["screens"].is_object(), "{schema}");
    // An independent validator, when the machine has one (Python's jsonschema).
    let has_validator = Command::new("python3")
        .args(["-c", "import jsonschema, yaml"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_validator {
        eprintln!("python3 jsonschema/yaml missing: the sample flows are not validated");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.schema.json");
    std::fs::write(&path, &o.stdout).unwrap();
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
v = jsonschema.Draft202012Validator(schema)
for f in sys.argv[2:]:
    errors = list(v.iter_errors(yaml.safe_load(open(f))))
    for e in errors:
        print(f, list(e.absolute_path), e.message)
def refused(src):
    if not list(v.iter_errors(yaml.safe_load(src))):
        print("passed:", src)
refused("start: a\nscreens:\n  a: { type: menu, text: x, optionz: [] }\n")
refused("start: a\nstrat: b\nscreens: {}\n")
refused("screens: {}\n")
refused("start: a\nscreens:\n  a: { type: menuu, text: x }\n")
refused("start: a\nscreens:\n  a: { type: load, record: x/y, into: r, found: a, missing: a, resumable: true }\n")
if list(v.iter_errors(yaml.safe_load("start: a\nscreens:\n  a: { type: end, text: x, resumable: false }\n"))):
    print("resumable refused on an end screen")
"#;
    let flows: Vec<String> = ["student", "microfinance", "dental"]
        .iter()
        .map(|f| format!("{ROOT}/config/flows/{f}.yaml"))
        .collect();
    let v = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .args(&flows)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", stderr(&v));
    assert_eq!(stdout(&v), "", "schema problems");
}

#[test]
fn check_warns_about_flow_files_no_route_names() {
    let sb = Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n");
    let config = sb.config_path();
    let o = gateway(&["check", "--config", config.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let flows = Path::new(sb.dir.path()).join("flows");
    for unrouted in ["dental.yaml", "microfinance.yaml"] {
        assert!(
            err.contains(&format!(
                "warning: {}: no route names this flow file",
                flows.join(unrouted).display()
            )),
            "{err}"
        );
    }
    assert!(!err.contains("student.yaml: no route"), "{err}");
    assert!(!err.contains(".test.yaml"), "{err}");
}

#[tokio::test]
async fn serve_watch_reloads_a_flow_when_its_file_changes_and_keeps_a_broken_one_out() {
    let flow = |greeting: &str| {
        format!("start: hi\nscreens:\n  hi:\n    type: end\n    text: \"{greeting}\"\n")
    };
    let sb = Sandbox::new(
        "[[routes]]\nservice_code = \"*77#\"\nflow = \"hello\"\n",
        &[("hello", &flow("Hello"))],
    );
    let (gw, log) = sb.spawn_logged_with("info", &["--watch"], &[]);
    let at = At::new(gw.public);
    assert_eq!(at.hop("w1", "*77#", "254700000001", "").await, "END Hello");
    assert!(
        log.wait_for("watching the flows", 10).await,
        "{}",
        log.text()
    );
    let path = sb.dir.path().join("flows/hello.yaml");
    std::fs::write(&path, flow("Jambo")).unwrap();
    let mut n = 0;
    let reloaded = eventually(10, || {
        n += 1;
        let at = at.clone();
        let session = format!("w2-{n}");
        async move { at.hop(&session, "*77#", "254700000001", "").await == "END Jambo" }
    })
    .await;
    assert!(reloaded, "{}", log.text());
    // A broken flow is refused, as on SIGHUP, and the last good one keeps serving.
    std::fs::write(&path, "start: nowhere\nscreens: {}\n").unwrap();
    assert!(
        log.wait_for("watch: reload refused", 10).await,
        "{}",
        log.text()
    );
    assert_eq!(at.hop("w3", "*77#", "254700000001", "").await, "END Jambo");
}
