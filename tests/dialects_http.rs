//! Golden request/response tests of the built-in HTTP dialects (issue 22), through the real
//! public front, each speaking as its aggregator does: the student app (`*123#`) is reached
//! through every one of them with the same screens as through Africa's Talking; malformed
//! requests get a 400 naming the field; retries get the same answer; the aggregator's end
//! notification ends the dialogue; long screens are paginated as on AT; another number with
//! the same session id is refused.

mod common;

use common::{At, Sandbox, metric};
use serde_json::{Value, json};

const HOME: &str = "Welcome to UniConnect, Amina Wanjiru\n1. View Results\n2. Check Balance\n3. View Timetable\n4. Missed Exams\n5. Notifications\n6. Exit";
const BALANCE: &str = "Fee Balance\nTerm: 2024 Term 1\nAmount Due: KES 45000.00\nAmount Paid: KES 30000.00\nBalance: KES 15000.00\n";
const APOLOGY: &str = "Sorry, the service is unavailable right now. Please try again later.";
const AMINA: &str = "254700000001";

fn student(extra: &str) -> Sandbox {
    Sandbox::with_repo_flows(&format!(
        "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n{extra}"
    ))
}

/// POSTs `body` as JSON to `path`; asserts a 200 JSON answer and returns it.
async fn post(at: &At, path: &str, body: Value) -> Value {
    let a = at
        .request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    assert_eq!(a.status, 200, "{path} {body} answered {a:?}");
    assert!(a.content_type.starts_with("application/json"), "{a:?}");
    serde_json::from_str(&a.body).unwrap()
}

/// POSTs `body` as JSON to `path` and returns the raw answer.
async fn post_raw(at: &At, path: &str, body: &str) -> common::Answer {
    at.request(
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

fn hubtel(session: &str, kind: &str, message: &str, seq: u32) -> Value {
    json!({"Mobile": AMINA, "SessionId": session, "ServiceCode": "123", "Type": kind,
           "Message": message, "Operator": "mtn", "Sequence": seq, "ClientState": "cs"})
}

/// The screens AT gets for `inputs` (without CON/END), for comparison.
async fn at_screens(at: &At, session: &str, inputs: &[&str]) -> Vec<String> {
    at.walk(session, "*123#", "+254700000001", inputs)
        .await
        .into_iter()
        .map(|s| s[4..].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubtel_legacy_golden_retries_and_casing() {
    let sb = student("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let p = "/ussd/hubtel";
    let first = post(&at, p, hubtel("h1", "Initiation", "*123#", 1)).await;
    assert_eq!(
        first,
        json!({"SessionId": "h1", "Type": "Response", "Message": HOME,
               "Label": "Welcome to UniConnect, Amina Wanjiru", "ClientState": "cs",
               "DataType": "input", "FieldType": "text"})
    );
    // The dial sent again: the same screen, and the dialogue is not restarted.
    assert_eq!(
        post(&at, p, hubtel("h1", "Initiation", "*123#", 1)).await,
        first
    );
    let end = post(&at, p, hubtel("h1", "Response", "2", 2)).await;
    assert_eq!(
        end,
        json!({"SessionId": "h1", "Type": "Release", "Message": BALANCE,
               "Label": "Fee Balance", "ClientState": "cs", "DataType": "display"})
    );
    // The last hop sent again after the end: the same END.
    assert_eq!(post(&at, p, hubtel("h1", "Response", "2", 2)).await, end);

    // A retry of a middle hop (same Sequence) is answered from the stored reply.
    post(&at, p, hubtel("h2", "Initiation", "*123#", 1)).await;
    let results = post(&at, p, hubtel("h2", "Response", "1", 2)).await;
    assert_eq!(
        results["Message"],
        "View Results\n1. Current Term\n2. Previous Terms"
    );
    assert_eq!(
        post(&at, p, hubtel("h2", "Response", "1", 2)).await,
        results
    );
    // The next hop with the same input is a new input (Sequence 3).
    let current = post(&at, p, hubtel("h2", "Response", "1", 3)).await;
    assert_eq!(current["Type"], "Release");
    assert!(
        current["Message"]
            .as_str()
            .unwrap()
            .starts_with("Current Term Results:")
    );

    // Programmable services: lowercase types, answered in lowercase; no dial string.
    let prog = json!({"Mobile": AMINA, "SessionId": "h3", "ServiceCode": "*123#",
                      "Type": "initiation", "Message": "", "Operator": "Hubtel-Android",
                      "Sequence": "1", "Platform": "USSD"});
    let a = post(&at, p, prog).await;
    assert_eq!(a["Type"], "response");
    assert_eq!(a["Message"], HOME);
    assert!(a.get("ClientState").is_none(), "not sent, not echoed: {a}");
    let next = json!({"Mobile": AMINA, "SessionId": "h3", "ServiceCode": "*123#",
                      "Type": "response", "Message": "2", "Sequence": "2"});
    let a = post(&at, p, next).await;
    assert_eq!(
        (a["Type"].as_str(), a["Message"].as_str()),
        (Some("release"), Some(BALANCE))
    );

    // Hops are counted under the dialect: the two retries of a live dialogue (the one after
    // the end is answered from the tombstone, as an input for an ended dialogue).
    let hops =
        "ussd_hops_total{front=\"http\",dialect=\"hubtel\",route=\"*123#\",outcome=\"retry\"}";
    assert_eq!(metric(gw.admin_addr, hops).await, 2.0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubtel_release_and_timeout_end_the_dialogue() {
    let sb = student("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let p = "/ussd/hubtel";
    let aborted = "ussd_dialogues_ended_total{reason=\"abort\"}";
    for (s, kind) in [("e1", "Release"), ("e2", "Timeout"), ("e3", "timeout")] {
        post(&at, p, hubtel(s, "Initiation", "*123#", 1)).await;
        let before = metric(gw.admin_addr, aborted).await;
        let a = post(&at, p, hubtel(s, kind, "", 2)).await;
        assert_eq!(a["Message"], "");
        assert_eq!(a["Type"].as_str().unwrap().to_lowercase(), "release", "{a}");
        assert!(
            common::eventually(5, || async {
                metric(gw.admin_addr, aborted).await > before
            })
            .await,
            "{kind} ended the dialogue"
        );
    }
    // A notification for a dialogue never seen is still acknowledged.
    let a = post(&at, p, hubtel("unknown", "Release", "", 2)).await;
    assert_eq!(a["Type"], "Release");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_naming_the_field() {
    let sb = student("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/ussd/hubtel",
            json!({"SessionId": "m", "Type": "Initiation"}).to_string(),
            400,
            "missing field Mobile\n",
        ),
        (
            "/ussd/hubtel",
            json!({"Mobile": AMINA, "Type": "Initiation"}).to_string(),
            400,
            "missing field SessionId\n",
        ),
        (
            "/ussd/hubtel",
            json!({"Mobile": AMINA, "SessionId": "m"}).to_string(),
            400,
            "missing field Type\n",
        ),
        (
            "/ussd/hubtel",
            json!({"Mobile": AMINA, "SessionId": "m", "Type": "Hello"}).to_string(),
            400,
            "field Type must be one of Initiation, Response, Release, Timeout (any case)\n",
        ),
        (
            "/ussd/hubtel",
            json!({"Mobile": AMINA, "SessionId": "m", "Type": "Response", "Sequence": "two"})
                .to_string(),
            400,
            "field Sequence must be a whole number\n",
        ),
        (
            "/ussd/hubtel",
            json!({"Mobile": "hello", "SessionId": "m", "Type": "Response"}).to_string(),
            400,
            "Mobile is not a valid phone number\n",
        ),
        (
            "/ussd/hubtel",
            json!({"Mobile": AMINA, "SessionId": {"a": 1}, "Type": "Response"}).to_string(),
            400,
            "field SessionId must be a string, a number or a boolean\n",
        ),
        (
            "/ussd/hubtel",
            "[1, 2]".into(),
            400,
            "the body must be a JSON object\n",
        ),
        (
            "/ussd/nalo",
            json!({"MSISDN": AMINA, "SESSIONID": "m", "USERDATA": "1"}).to_string(),
            400,
            "missing field MSGTYPE\n",
        ),
        (
            "/ussd/nalo",
            json!({"MSISDN": AMINA, "SESSIONID": "", "MSGTYPE": true}).to_string(),
            400,
            "empty field SESSIONID\n",
        ),
        (
            "/ussd/arkesel",
            json!({"sessionID": "m", "newSession": true}).to_string(),
            400,
            "missing field msisdn\n",
        ),
        (
            "/ussd/beem",
            json!({"msisdn": AMINA, "session_id": "m", "command": "dance"}).to_string(),
            400,
            "field command must be one of initiate, continue, terminate (any case)\n",
        ),
    ];
    for (path, body, status, text) in cases {
        let a = post_raw(&at, path, &body).await;
        assert_eq!((a.status, a.body.as_str()), (status, text), "{path} {body}");
    }
    let a = post_raw(&at, "/ussd/hubtel", "{\"Mobile\":").await;
    assert_eq!(a.status, 400);
    assert!(a.body.starts_with("the body is not valid JSON"), "{a:?}");
    // A JSON dialect wants JSON; the wrong method is refused.
    let a = at
        .request(
            "POST",
            "/ussd/nalo",
            &[("content-type", "application/x-www-form-urlencoded")],
            "a=b",
        )
        .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (415, "content type must be application/json\n")
    );
    let a = at.request("GET", "/ussd/hubtel", &[], "").await;
    assert_eq!(a.status, 405);
    let a = at
        .request(
            "PUT",
            "/ussd",
            &[("content-type", "application/x-www-form-urlencoded")],
            "sessionId=s",
        )
        .await;
    assert_eq!(a.status, 405, "AT posts, as ever");
    // The body limit is the front's, for every dialect.
    let big = json!({"Mobile": AMINA, "SessionId": "m", "Type": "Response", "Message": "x".repeat(20_000)});
    assert_eq!(
        post_raw(&at, "/ussd/hubtel", &big.to_string()).await.status,
        413
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_number_with_the_same_session_id_is_refused() {
    let sb = student("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let p = "/ussd/hubtel";
    post(&at, p, hubtel("o1", "Initiation", "*123#", 1)).await;
    let mut intruder = hubtel("o1", "Response", "2", 2);
    intruder["Mobile"] = json!("254700000099");
    let a = post(&at, p, intruder).await;
    assert_eq!(
        (a["Type"].as_str(), a["Message"].as_str()),
        (Some("Release"), Some(APOLOGY))
    );
    // Amina's dialogue goes on.
    let a = post(&at, p, hubtel("o1", "Response", "2", 2)).await;
    assert_eq!(a["Message"], BALANCE);
    // And after its end, the tombstone answers only her.
    let mut late = hubtel("o1", "Response", "2", 2);
    late["Mobile"] = json!("254700000099");
    assert_eq!(post(&at, p, late).await["Message"], APOLOGY);

    // Nalo, Arkesel: the same.
    post(&at, "/ussd/nalo", json!({"USERID": "u", "MSISDN": AMINA, "USERDATA": "*123#", "MSGTYPE": true, "NETWORK": "MTN", "SESSIONID": "o2"})).await;
    let a = post(&at, "/ussd/nalo", json!({"USERID": "u", "MSISDN": "254700000099", "USERDATA": "2", "MSGTYPE": false, "SESSIONID": "o2"})).await;
    assert_eq!(
        (a["MSG"].as_str(), a["MSGTYPE"].as_bool()),
        (Some(APOLOGY), Some(false))
    );
    post(&at, "/ussd/arkesel", json!({"sessionID": "o3", "userID": "u", "newSession": true, "msisdn": AMINA, "userData": "*123#", "network": "MTN"})).await;
    let a = post(&at, "/ussd/arkesel", json!({"sessionID": "o3", "userID": "u", "newSession": false, "msisdn": "254700000099", "userData": "2"})).await;
    assert_eq!(a["message"], APOLOGY);
    let mismatches = "ussd_session_mismatch_total{front=\"http\",dialogue=\"live\"}";
    assert_eq!(metric(gw.admin_addr, mismatches).await, 3.0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nalo_golden_and_its_shorter_screens() {
    let sb = student("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let p = "/ussd/nalo";
    let req = |data: &str, start: bool| {
        json!({"USERID": "NALOTest", "MSISDN": AMINA, "USERDATA": data, "MSGTYPE": start,
               "NETWORK": "MTN", "SESSIONID": "n1"})
    };
    // Nalo's MSG is at most 120 characters: the home menu (127) is paginated as AT pages a
    // screen over its limit.
    let first = post(&at, p, req("*123#", true)).await;
    let page1 = first["MSG"].as_str().unwrap().to_string();
    assert_eq!(
        first,
        json!({"USERID": "NALOTest", "MSISDN": AMINA, "MSG": page1, "MSGTYPE": true})
    );
    assert!(page1.chars().count() <= 120, "{page1:?}");
    assert!(
        page1.starts_with("Welcome to UniConnect, Amina Wanjiru\n1. View Results"),
        "{page1:?}"
    );
    assert!(page1.ends_with("98. More"), "{page1:?}");
    // A retry of the dial: the same page.
    assert_eq!(post(&at, p, req("*123#", true)).await, first);
    let page2 = post(&at, p, req("98", false)).await;
    assert!(
        page2["MSG"].as_str().unwrap().contains("6. Exit"),
        "{page2}"
    );
    let end = post(&at, p, req("2", false)).await;
    assert_eq!(
        end,
        json!({"USERID": "NALOTest", "MSISDN": AMINA, "MSG": BALANCE, "MSGTYPE": false})
    );
    // A pre-filled dial string reaches the route with its input.
    let a = post(&at, p, json!({"USERID": "u", "MSISDN": AMINA, "USERDATA": "*123*2#", "MSGTYPE": true, "SESSIONID": "n2"})).await;
    assert_eq!(
        (a["MSG"].as_str(), a["MSGTYPE"].as_bool()),
        (Some(BALANCE), Some(false))
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arkesel_beem_hubtel_and_infobip_page_long_screens_as_at_does() {
    let sb = student("[[http.dialects]]\nname = \"beem\"\nservice_code_value = \"*123#\"\n");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    // An over-long screen (the timetable) is paged exactly as on AT.
    let inputs = ["3", "98", "98"];
    let expected = at_screens(&at, "at-ref", &inputs).await;

    let ark = |data: &str, new: bool| {
        json!({"sessionID": "a1", "userID": "ark", "newSession": new, "msisdn": AMINA,
               "userData": data, "network": "MTN"})
    };
    let first = post(&at, "/ussd/arkesel", ark("*123#", true)).await;
    assert_eq!(
        first,
        json!({"sessionID": "a1", "userID": "ark", "msisdn": AMINA, "message": HOME, "continueSession": true})
    );
    let mut got = vec![first["message"].as_str().unwrap().to_string()];
    for i in inputs {
        let a = post(&at, "/ussd/arkesel", ark(i, false)).await;
        got.push(a["message"].as_str().unwrap().to_string());
    }
    assert_eq!(got, expected);

    let beem = |cmd: &str, response: &str, id: u32| {
        json!({"command": cmd, "msisdn": AMINA, "operator": "vodacom", "session_id": "b1",
               "payload": {"request_id": id, "response": response}})
    };
    let first = post(&at, "/ussd/beem", beem("initiate", "", 0)).await;
    assert_eq!(
        first,
        json!({"msisdn": AMINA, "operator": "vodacom", "session_id": "b1", "command": "continue",
               "payload": {"request_id": 0, "request": HOME}})
    );
    let mut got = vec![HOME.to_string()];
    for (n, i) in inputs.iter().enumerate() {
        let a = post(&at, "/ussd/beem", beem("continue", i, n as u32 + 1)).await;
        got.push(a["payload"]["request"].as_str().unwrap().to_string());
    }
    assert_eq!(got, expected);
    let end = post(&at, "/ussd/beem", beem("continue", "6", 9)).await;
    assert_eq!(end["command"], "terminate");

    // Hubtel and Infobip page the same way.
    let mut got = vec![
        post(&at, "/ussd/hubtel", hubtel("hp", "Initiation", "*123#", 1)).await["Message"].clone(),
    ];
    for (n, i) in inputs.iter().enumerate() {
        got.push(
            post(
                &at,
                "/ussd/hubtel",
                hubtel("hp", "Response", i, n as u32 + 2),
            )
            .await["Message"]
                .clone(),
        );
    }
    assert_eq!(got, expected);
    let ib = |kind: &str| format!("/ussd/infobip/session/ip/{kind}");
    let mut got = vec![
        post(&at, &ib("start"), json!({"msisdn": AMINA, "text": "*123#"})).await["ussdMenu"]
            .clone(),
    ];
    for i in inputs {
        got.push(
            post(&at, &ib("response"), json!({"msisdn": AMINA, "text": i})).await["ussdMenu"]
                .clone(),
        );
    }
    assert_eq!(got, expected);
    gw.shutdown().await;
}

/// Infobip: a path per session (`/session/{id}/start`, `/response`, `PUT /end`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infobip_golden_with_a_path_per_session() {
    let sb = student("");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let p = |id: &str, kind: &str| format!("/ussd/infobip/session/{id}/{kind}");
    let first = post(
        &at,
        &p("i1", "start"),
        json!({"msisdn": AMINA, "shortCode": "*123#", "text": "*123#"}),
    )
    .await;
    assert_eq!(
        first,
        json!({"ussdMenu": HOME, "shouldClose": false, "responseExitCode": 200, "responseMessage": ""})
    );
    assert_eq!(
        post(
            &at,
            &p("i1", "start"),
            json!({"msisdn": AMINA, "text": "*123#"})
        )
        .await,
        first,
        "a retry"
    );
    let end = post(
        &at,
        &p("i1", "response"),
        json!({"msisdn": AMINA, "text": "2"}),
    )
    .await;
    assert_eq!(
        end,
        json!({"ussdMenu": BALANCE, "shouldClose": true, "responseExitCode": 200, "responseMessage": ""})
    );
    // The network's end: a PUT without the subscriber, acknowledged; the dialogue ends.
    post(
        &at,
        &p("i2", "start"),
        json!({"msisdn": AMINA, "shortCode": "*123#", "text": ""}),
    )
    .await;
    let aborted = "ussd_dialogues_ended_total{reason=\"abort\"}";
    let before = metric(gw.admin_addr, aborted).await;
    let a = at
        .request(
            "PUT",
            &p("i2", "end"),
            &[("content-type", "application/json")],
            json!({"exitCode": 0, "reason": "ok"}).to_string(),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        common::eventually(5, || async {
            metric(gw.admin_addr, aborted).await > before
        })
        .await
    );
    // Another number on Amina's session is refused; an unknown kind is a 400.
    post(
        &at,
        &p("i3", "start"),
        json!({"msisdn": AMINA, "text": "*123#"}),
    )
    .await;
    let a = post(
        &at,
        &p("i3", "response"),
        json!({"msisdn": "254700000099", "text": "2"}),
    )
    .await;
    assert_eq!(
        (a["ussdMenu"].as_str(), a["shouldClose"].as_bool()),
        (Some(APOLOGY), Some(true))
    );
    let a = post_raw(
        &at,
        &p("i3", "status"),
        &json!({"msisdn": AMINA}).to_string(),
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            400,
            "field path.kind must be one of start, response, end (any case)\n"
        )
    );
    assert_eq!(
        at.request(
            "POST",
            "/ussd/infobip/session/i3",
            &[("content-type", "application/json")],
            "{}"
        )
        .await
        .status,
        404
    );
    gw.shutdown().await;
}

/// A made-up aggregator, described only in the test's config: a GET with the cumulative path
/// in the query, answered in plain text with its own markers; it serves the student app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialect_described_in_config_serves_the_student_app() {
    let sb = student(
        r#"
[[http.dialects]]
name = "acme"
path = "/acme/ussd"
body = "query"
session = "sid"
subscriber = "from"
service_code = "code"
input = "path"
input_mode = "cumulative"
reply = "text"
reply_continue = "MORE|{text}"
reply_end = "DONE|{text}"
max_septets = 160
"#,
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let get = |path: &str| {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("sid", "acme-1")
            .append_pair("from", "+254700000001")
            .append_pair("code", "*123#")
            .append_pair("path", path)
            .finish();
        let at = &at;
        async move { at.request("GET", &format!("/acme/ussd?{q}"), &[], "").await }
    };
    let a = get("").await;
    assert_eq!((a.status, a.body.clone()), (200, format!("MORE|{HOME}")));
    assert!(a.content_type.starts_with("text/plain"), "{a:?}");
    assert_eq!(get("").await.body, format!("MORE|{HOME}"), "a retry");
    assert_eq!(get("2").await.body, format!("DONE|{BALANCE}"));
    let a = at
        .request("GET", "/acme/ussd?sid=x&code=*123%23", &[], "")
        .await;
    assert_eq!((a.status, a.body.as_str()), (400, "missing field from\n"));
    let hops = "ussd_hops_total{front=\"http\",dialect=\"acme\",route=\"*123#\",outcome=\"end\"}";
    assert_eq!(metric(gw.admin_addr, hops).await, 1.0);
    gw.shutdown().await;
}

/// `check` refuses a dialect that cannot work, naming the key.
#[test]
fn a_bad_dialect_is_refused_by_check_naming_the_key() {
    let sb = student("[[http.dialects]]\nname = \"acme\"\nbody = \"json\"\nsession = \"s\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["check", "--config"])
        .arg(sb.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.dialects[acme].input_mode is required"),
        "{err}"
    );
}

/// `dial --dialect NAME` plays each aggregator against the gateway: the same screens through
/// every dialect, a configured one included (from `--config`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_plays_every_dialect() {
    let sb = student(
        "[[http.dialects]]\nname = \"beem\"\nservice_code_value = \"*123#\"\n\
         [[http.dialects]]\nname = \"acme\"\nbase = \"africastalking\"\nbody = \"query\"\nsession = \"sid\"\n\
         reply_continue = \"MORE|{text}\"\nreply_end = \"DONE|{text}\"\n",
    );
    let gw = sb.start().await;
    let base = format!("http://{}", gw.public_addr);
    let expected = format!(
        "--- CON ---\n{HOME}\n> 2\n--- END ---\n{}\n",
        BALANCE.trim_end()
    );
    for dialect in [
        "africastalking",
        "hubtel",
        "nalo",
        "arkesel",
        "beem",
        "acme",
    ] {
        let path = match dialect {
            "africastalking" => "/ussd".to_string(),
            other => format!("/ussd/{other}"),
        };
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"));
        cmd.args(["dial", "*123#", "--dialect", dialect, "--input", "2"])
            .args(["--phone", AMINA, "--url", &format!("{base}{path}")])
            .arg("--config")
            .arg(sb.config_path());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Nalo's shorter screens page the home menu: the dial shows the first page.
        if dialect == "nalo" {
            assert!(
                stdout.starts_with("--- CON ---\nWelcome to UniConnect"),
                "{stdout}"
            );
            assert!(
                stdout.ends_with(&format!("--- END ---\n{}\n", BALANCE.trim_end())),
                "{stdout}"
            );
        } else {
            assert_eq!(
                stdout,
                expected,
                "{dialect}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(out.status.success(), "{dialect}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["dial", "*123#", "--dialect", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dialect \"nope\""));
    gw.shutdown().await;
}

/// Hubtel's `Sequence` can be turned off (`sequence = ""`) if an account counts otherwise:
/// hops are then new inputs, whatever number they carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubtels_sequence_can_be_turned_off() {
    let sb = student("[[http.dialects]]\nname = \"hubtel\"\nsequence = \"\"\n");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let p = "/ussd/hubtel";
    post(&at, p, hubtel("z1", "Initiation", "*123#", 0)).await;
    // Counted from 0: with the Sequence read, this hop (1) would be taken for a retry.
    let a = post(&at, p, hubtel("z1", "Response", "2", 1)).await;
    assert_eq!(a["Message"], BALANCE);
    gw.shutdown().await;
}
