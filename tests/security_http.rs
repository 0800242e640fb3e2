//! Attacks on the public HTTP front, each as an attacker would try it (issue 19): what must not
//! work does not, and the subscriber it was aimed at is not disturbed.

mod common;

use common::{At, Sandbox, metric};

const APOLOGY: &str = "END Sorry, the service is unavailable right now. Please try again later.";
const RESULTS: &str = "END Current Term Results:\nData Structures (CS201)";

fn student() -> Sandbox {
    Sandbox::with_repo_flows(
        "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n",
    )
}

/// Another number (or the same number on another code) sending a live dialogue's `sessionId`
/// is refused with a generic END: it never sees the dialogue's screens, and the dialogue goes
/// on for its own subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_dialogue_answers_only_its_own_number_and_code() {
    let sb = student();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let amina = "+254700000001";
    let s = "ATUid_owned_live";
    assert!(
        at.hop(s, "*123#", amina, "")
            .await
            .starts_with("CON Welcome to UniConnect, Amina")
    );
    assert!(
        at.hop(s, "*123#", amina, "1")
            .await
            .starts_with("CON View Results")
    );

    let live = "ussd_session_mismatch_total{front=\"http\",dialogue=\"live\"}";
    let before = metric(gw.admin_addr, live).await;
    // An unregistered number, the same session id: the student's results are not for it.
    assert_eq!(at.hop(s, "*123#", "0700000099", "1*1").await, APOLOGY);
    // The same number written another way is the same subscriber: not refused (a retry of
    // the last hop, answered from the stored reply).
    assert!(
        at.hop(s, "*123#", "0700000001", "1")
            .await
            .starts_with("CON View Results")
    );
    // Amina's number on another service code.
    assert_eq!(at.hop(s, "*675#", amina, "1*1").await, APOLOGY);
    assert_eq!(metric(gw.admin_addr, live).await - before, 2.0);

    // The dialogue is where Amina left it.
    assert!(at.hop(s, "*123#", amina, "1*1").await.starts_with(RESULTS));
    gw.shutdown().await;
}

/// After END the tombstone answers retries of the last hop, but only from the dialogue's own
/// number and service code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_dialogue_answers_retries_only_to_its_own_number_and_code() {
    let sb = student();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let amina = "+254700000001";
    let s = "ATUid_owned_ended";
    let answers = at.walk(s, "*123#", amina, &["1", "1"]).await;
    assert!(answers[2].starts_with(RESULTS), "{answers:?}");

    let ended = "ussd_session_mismatch_total{front=\"http\",dialogue=\"ended\"}";
    let before = metric(gw.admin_addr, ended).await;
    assert_eq!(at.hop(s, "*123#", "+254700000099", "1*1").await, APOLOGY);
    assert_eq!(at.hop(s, "*675#", amina, "1*1").await, APOLOGY);
    // A first hop under the ended session id from another number starts nothing either.
    assert_eq!(at.hop(s, "*123#", "+254700000099", "").await, APOLOGY);
    assert_eq!(metric(gw.admin_addr, ended).await - before, 3.0);
    // Amina's own retry still gets her last screen.
    assert!(at.hop(s, "*123#", amina, "1*1").await.starts_with(RESULTS));
    gw.shutdown().await;
}

fn form(fields: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        f.append_pair(k, v);
    }
    f.finish()
}

async fn post(at: &At, path: &str, fields: &[(&str, &str)]) -> common::Answer {
    at.request(
        "POST",
        path,
        &[("content-type", "application/x-www-form-urlencoded")],
        form(fields),
    )
    .await
}

const FORGED: &str = "\nZ  INFO gw: forged\u{1b}[31m\0";

/// Untrusted fields never forge a log line: a USSD `sessionId` or `serviceCode` with control
/// characters and a voice `sessionId` that is not an id are refused at the edge (400, saying
/// which field), an unknown service code is logged escaped and cut, and a log that is not a
/// terminal carries no colour codes (no ESC at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_fields_cannot_forge_log_lines() {
    let sb = student();
    let (gw, log) = sb.spawn_logged("info");
    let at = At::new(gw.public);
    let phone = "+254700000001";

    let code = format!("*999#{FORGED}");
    let a = post(
        &at,
        "/ussd",
        &[
            ("sessionId", "s1"),
            ("serviceCode", &code),
            ("phoneNumber", phone),
            ("text", ""),
        ],
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "field serviceCode holds control characters\n")
    );
    let id = format!("s2{FORGED}");
    let a = post(
        &at,
        "/ussd",
        &[
            ("sessionId", &id),
            ("serviceCode", "*123#"),
            ("phoneNumber", phone),
            ("text", ""),
        ],
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "field sessionId holds control characters\n")
    );
    let a = post(
        &at,
        "/ussd/events",
        &[("sessionId", &"x".repeat(129)), ("status", "Success")],
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "field sessionId is longer than 128 characters\n")
    );

    // An unknown code is logged, quoted and escaped.
    let unknown = "*999*\"quoted\"\\#";
    assert_eq!(
        at.hop("s3", unknown, phone, "").await,
        "END This service code is not available."
    );

    let voice = |id: String| {
        let at = at.clone();
        async move {
            post(
                &at,
                "/voice/callback",
                &[
                    ("isActive", "1"),
                    ("sessionId", &id),
                    ("direction", "Inbound"),
                    ("callerNumber", phone),
                    ("destinationNumber", "+254711000000"),
                ],
            )
            .await
        }
    };
    let a = voice(format!("ATVId_1{FORGED}")).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(
        a.body,
        "field sessionId may hold only letters, digits and the characters _ - . :\n"
    );
    let a = voice("A".repeat(129)).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "field sessionId is longer than 128 characters\n")
    );
    let a = voice("ATVId_ok-1.2:3".into()).await;
    assert_eq!(a.status, 200, "{a:?}");

    // Every line is written before its answer: wait for the reader of the pipe.
    assert!(log.wait_for("voice: call answered", 10).await);
    drop(gw);
    let text = log.text();
    assert!(text.contains("unknown service code"), "{text}");
    assert!(text.contains(r#"dialled="*999*\"quoted\"\\#""#), "{text}");
    assert!(text.contains("voice: call answered"), "{text}");
    assert!(!text.contains('\u{1b}'), "an ESC reached the log:\n{text}");
    assert!(!text.contains('\0'), "a NUL reached the log:\n{text}");
    assert!(
        !text.lines().any(|l| l.contains("forged")),
        "a forged line reached the log:\n{text}"
    );
}

/// A final voice callback's cost is counted only when it is a plausible amount, and only under
/// a configured currency (any other is `other`): `amount=1e30` cannot wrap the counter, and a
/// caller cannot create series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_costs_are_bounded_and_currencies_fixed() {
    let sb = student();
    let (gw, log) = sb.spawn_logged("info");
    let at = At::new(gw.public);
    let final_cb = |id: &'static str, currency: &'static str, amount: &'static str| {
        let at = at.clone();
        async move {
            let a = post(
                &at,
                "/voice/callback",
                &[
                    ("isActive", "0"),
                    ("sessionId", id),
                    ("currencyCode", currency),
                    ("amount", amount),
                    ("durationInSeconds", "3"),
                ],
            )
            .await;
            assert_eq!(a.status, 200, "{a:?}");
        }
    };
    final_cb("ATVId_c1", "KES", "2.5").await;
    final_cb("ATVId_c2", "KES", "1e30").await;
    final_cb("ATVId_c3", "KES", "-4").await;
    final_cb("ATVId_c4", "KES", "inf").await;
    final_cb("ATVId_c5", "KES", "NaN").await;
    final_cb("ATVId_c6", "ABC", "1").await;
    final_cb("ATVId_c7", "XYZ", "0.5").await;
    let m = At::new(gw.admin)
        .request("GET", "/metrics", &[], "")
        .await
        .body;
    let mut cost: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("ussd_voice_call_cost_cents_total{"))
        .collect();
    cost.sort();
    assert_eq!(
        cost,
        [
            "ussd_voice_call_cost_cents_total{currency=\"KES\"} 250",
            "ussd_voice_call_cost_cents_total{currency=\"other\"} 150"
        ],
        "{m}"
    );
    let warning = "a call cost that is not a plausible amount was not counted";
    common::eventually(10, || async { log.text().matches(warning).count() >= 4 }).await;
    drop(gw);
    let text = log.text();
    assert_eq!(
        text.matches("a call cost that is not a plausible amount was not counted")
            .count(),
        4,
        "{text}"
    );
}

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");

/// Text a subscriber typed that starts like a spreadsheet formula is exported as text, never
/// as a formula, in the admin CSV export and in `ussd-gateway export --format csv`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_exports_never_carry_formulas() {
    let sb = Sandbox::new(
        "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n",
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let formula = "=HYPERLINK(\"http://x.example\",\"pay\")";
    let answers = at
        .walk("csv1", "*384*1#", "+254700000001", &[formula, "2"])
        .await;
    assert!(answers[2].starts_with("END Bye"), "{answers:?}");
    let admin = At::new(gw.admin_addr);
    let csv = admin
        .request(
            "GET",
            "/admin/export/ended?format=csv",
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await
        .body;
    let cells = |csv: &str| -> Vec<String> {
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let input = r
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "input")
            .unwrap();
        r.records()
            .map(|rec| rec.unwrap()[input].to_string())
            .collect()
    };
    assert_eq!(cells(&csv), [format!("'{formula}*2")], "{csv}");
    gw.shutdown().await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["export", "ended", "--format", "csv", "--config"])
        .arg(sb.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        cells(&String::from_utf8_lossy(&out.stdout)),
        [format!("'{formula}*2")]
    );
}

/// The ids that stand for session keys in log lines are keyed with the installation's own
/// secret: the same after a restart, different in another installation, and not the unkeyed
/// SipHash of the key that anyone can compute for every MSISDN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_ids_are_keyed_per_installation() {
    async fn logged_id(sb: &Sandbox) -> String {
        let (gw, log) = sb.spawn_logged("warn");
        let at = At::new(gw.public);
        at.hop("logid1", "*123#", "+254700000001", "").await;
        // Refused (another number): logged with the session's id.
        assert_eq!(
            at.hop("logid1", "*123#", "+254700000002", "1").await,
            APOLOGY
        );
        assert!(log.wait_for("hop refused", 10).await);
        let text = log.text();
        let line = text.lines().find(|l| l.contains("hop refused")).unwrap();
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("session="))
            .unwrap_or_else(|| panic!("no session= in {line}"))
            .to_string()
    }
    let unkeyed = {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        "http:logid1".hash(&mut h);
        format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
    };
    let first = student();
    let id = logged_id(&first).await;
    assert_eq!(id.len(), 12, "{id}");
    assert_ne!(id, unkeyed);
    assert_eq!(
        logged_id(&first).await,
        id,
        "the same installation after a restart"
    );
    assert_ne!(logged_id(&student()).await, id, "another installation");
}

/// Every MSISDN the admin API returns is masked, the SMPP session key (which carries it)
/// included; a dialogue can still be ended by the id the listing gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_masks_numbers_in_session_keys() {
    let sim = common::operator_sim().await;
    let sb = Sandbox::with_repo_flows(&format!(
        "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\npassword = \"pw\"\nprofile = \"its_session_info\"\nsource_addr = \"123\"\nreconnect_cap_ms = 500\n",
        sim.addr().port()
    ));
    let gw = sb.start().await;
    assert!(sim.wait_bound(std::time::Duration::from_secs(10)).await);
    let (_dialogue, screen) = sim.dial("254700000002", "*123#").await.unwrap();
    assert!(!screen.end, "{screen:?}");
    let admin = At::new(gw.admin_addr);
    let auth = [("authorization", "Bearer test-token")];
    let listed = admin
        .request("GET", "/admin/dialogues", &auth, "")
        .await
        .body;
    assert!(!listed.contains("254700000002"), "{listed}");
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let d = &v["dialogues"][0];
    assert!(
        d["session"]
            .as_str()
            .unwrap()
            .starts_with("smpp:op:254******002:"),
        "{listed}"
    );
    assert_eq!(d["msisdn"], "254******002");
    let id = d["id"].as_str().unwrap();
    let ended = admin
        .request(
            "POST",
            "/admin/dialogues/end",
            &auth,
            format!("{{\"id\":\"{id}\"}}"),
        )
        .await;
    assert_eq!(ended.status, 200, "{ended:?}");
    let registry = gw.registry().clone();
    assert!(common::eventually(5, || async { registry.live() == 0 }).await);
    gw.shutdown().await;
}

/// `check` warns about weak admin tokens and an admin listener other machines can reach, and
/// an admin listener off loopback with no token at all is refused by `check` and `serve`.
#[test]
fn check_warns_of_weak_tokens_and_refuses_an_open_admin_listener() {
    let run = |sub: &str, admin: &str| {
        let sb = Sandbox::new("", &[]);
        let path = sb.config_path();
        let toml = std::fs::read_to_string(&path).unwrap();
        let toml = toml.replace(
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"test-token\"\n",
            &format!("[admin]\n{admin}\n"),
        );
        std::fs::write(&path, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args([sub, "--config"])
            .arg(&path)
            .env_remove("USSD_GATEWAY_ADMIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for weak in ["a", "change-me", "CHANGE_ME"] {
        let (code, err) = run(
            "check",
            &format!("listen = \"127.0.0.1:0\"\ntoken = \"{weak}\""),
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(
            err.contains("warning: admin.token is weak"),
            "{weak}: {err}"
        );
    }
    let strong = "token = \"4f9c2a7e1b8d3f60a5c9e2b7d4f1a8c3\"";
    let (code, err) = run("check", &format!("listen = \"127.0.0.1:0\"\n{strong}"));
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let (code, err) = run("check", &format!("listen = \"0.0.0.0:0\"\n{strong}"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: admin.listen 0.0.0.0:0 is reachable from other machines"),
        "{err}"
    );
    for sub in ["check", "serve"] {
        let (code, err) = run(sub, "listen = \"0.0.0.0:0\"");
        assert_eq!(code, Some(64), "{sub}: {err}");
        assert!(err.contains("no admin token is set"), "{sub}: {err}");
    }
}

/// The end records of `session`, as `/admin/export/ended` shows them.
async fn end_records(admin: std::net::SocketAddr, session: &str) -> Vec<serde_json::Value> {
    let a = At::new(admin)
        .request(
            "GET",
            "/admin/export/ended",
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["session"] == session)
        .collect()
}

/// An end-of-session notification that names another number than the dialogue's (AT's
/// `/ussd/events`, Hubtel's Release) ends nothing and changes no end record: someone who
/// knows a session id cannot cut another subscriber's dialogue short. It is counted as a hop
/// naming another number's dialogue is; the dialogue's own number's report is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_report_naming_another_number_ends_nothing() {
    // A process of its own: its counters are not shared with the other tests of this file.
    let sb = student();
    let gw = sb.spawn();
    let at = At::new(gw.public);
    let amina = "+254700000001";
    let s = "ATUid_owned_report";
    at.hop(s, "*123#", amina, "").await;
    let live = "ussd_session_mismatch_total{front=\"http\",dialogue=\"live\"}";
    let ended = "ussd_session_mismatch_total{front=\"http\",dialogue=\"ended\"}";
    let before = metric(gw.admin, live).await;
    let event = |phone: &'static str, status: &'static str| {
        let at = at.clone();
        async move {
            post(
                &at,
                "/ussd/events",
                &[
                    ("sessionId", s),
                    ("phoneNumber", phone),
                    ("serviceCode", "*123#"),
                    ("status", status),
                ],
            )
            .await
        }
    };
    // Acknowledged (an aggregator is not told), but the dialogue goes on.
    assert_eq!(event("+254700000099", "Failed").await.status, 200);
    assert_eq!(metric(gw.admin, live).await - before, 1.0);
    assert!(
        at.hop(s, "*123#", amina, "1")
            .await
            .starts_with("CON View Results")
    );
    // Amina's own report ends it, and is kept with its end record.
    assert_eq!(event(amina, "Failed").await.status, 200);
    let records = end_records(gw.admin, &format!("http:{s}")).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["aggregator"]["status"], "Failed");
    // A later report from another number does not change the record.
    let before = metric(gw.admin, ended).await;
    assert_eq!(event("+254700000099", "Success").await.status, 200);
    assert_eq!(metric(gw.admin, ended).await - before, 1.0);
    let records = end_records(gw.admin, &format!("http:{s}")).await;
    assert_eq!(records[0]["aggregator"]["status"], "Failed", "{records:?}");
    // A phone number that is not one is refused, naming the field.
    let a = event("not-a-number", "Success").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (400, "field phoneNumber is not a valid phone number\n")
    );

    // Hubtel: a Release naming another Mobile leaves the dialogue live.
    let hubtel = |mobile: &str, kind: &str, message: &str, seq: u32| {
        serde_json::json!({"Mobile": mobile, "SessionId": "h-owned", "ServiceCode": "123",
            "Type": kind, "Message": message, "Operator": "mtn", "Sequence": seq})
        .to_string()
    };
    let post_json = |body: String| {
        let at = at.clone();
        async move {
            at.request(
                "POST",
                "/ussd/hubtel",
                &[("content-type", "application/json")],
                body,
            )
            .await
        }
    };
    let a = post_json(hubtel("254700000001", "Initiation", "*123#", 1)).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        a.body.contains("\"Type\":\"Response\""),
        "a live dialogue: {a:?}"
    );
    let before = metric(gw.admin, live).await;
    let a = post_json(hubtel("254700000099", "Release", "", 2)).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(metric(gw.admin, live).await - before, 1.0);
    let a = post_json(hubtel("254700000001", "Response", "1", 2)).await;
    assert!(
        a.body.contains("View Results"),
        "the dialogue goes on: {a:?}"
    );
}
