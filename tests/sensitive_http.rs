//! A PIN typed on a `sensitive` input screen is kept nowhere after its hop but in the flow's
//! own variable while the dialogue needs it (docs/security.md, "Sensitive inputs"): not in
//! sled, not in the exports, not in the end-of-session events, not in the log, over HTTP and
//! over SMPP; retries of the PIN hop and the hop after it still work, across a crash too.
//!
//! The gateway runs as a child process (its log is read from stderr, at debug level), with a
//! fake backend that checks the PIN, a fake events receiver, and an operator simulator for the
//! SMPP leg. After it stops, the test opens its sled database and scans every tree.

mod common;

use common::{At, FakeHttp, Sandbox, eventually};
use std::path::Path;
use std::time::Duration;

/// Eight digits, so that it cannot turn up by chance inside a timestamp or an id.
const PIN: &str = "73914628";
const AMOUNT: &str = "4862";
const PHONE: &str = "+254700000001";

/// The PIN flow: an amount, a PIN checked by the backend on the screen after it, a
/// confirmation. `Check` runs into a template failure that quotes the PIN (a `to_cents` of
/// amount and PIN), to show that failures are logged with it masked. Opted in to resume, so
/// that a cut dialogue leaves a resume point.
fn pin_flow(backend: &str) -> String {
    format!(
        r#"
start: home
resume: {{ window_secs: 120 }}
screens:
  home:
    type: menu
    text: Wallet
    options:
      - {{ label: Send money, next: amount }}
      - {{ label: Check, next: check_amount }}
  amount:
    type: input
    text: "Enter amount:"
    into: amount
    next: pin
    validators: [ {{ regex: "[0-9]+", error: Digits only. }} ]
  pin:
    type: input
    sensitive: true
    text: "Enter PIN:"
    into: pin
    next: verify
    validators: [ {{ regex: "[0-9]{{4,8}}", error: PIN must be 4 to 8 digits. }} ]
  verify:
    type: http
    method: POST
    sensitive: true
    url: "http://{backend}/verify"
    form: {{ msisdn: "{{{{ phone }}}}", pin: "{{{{ pin }}}}" }}
    into: verified
    next: confirm
    failed: wrong
  confirm:
    type: menu
    text: "Send {{{{ amount }}}}?"
    options:
      - {{ label: Confirm, next: done }}
  done: {{ type: end, text: "Sent {{{{ amount }}}}." }}
  wrong: {{ type: end, text: Wrong PIN. }}
  check_amount: {{ type: input, text: "Amount to check:", into: amount, next: check_pin }}
  check_pin: {{ type: input, sensitive: true, text: "Enter PIN:", into: pin, next: broken }}
  broken:
    type: set
    values: {{ cents: "{{{{ (amount ~ '.' ~ pin) | to_cents }}}}" }}
    next: done
"#
    )
}

/// A backend that accepts exactly [`PIN`].
async fn backend() -> FakeHttp {
    FakeHttp::start(|seen| async move {
        let pin = seen
            .form
            .iter()
            .find(|(k, _)| k == "pin")
            .map(|(_, v)| v.clone());
        if seen.path == "/verify" && pin.as_deref() == Some(PIN) {
            (200, r#"{"ok": true}"#.into())
        } else {
            (403, r#"{"ok": false}"#.into())
        }
    })
    .await
}

fn sandbox(backend: &FakeHttp, extra: &str) -> Sandbox {
    let flow = pin_flow(&backend.addr.to_string());
    Sandbox::new(
        &format!("{extra}[[routes]]\nservice_code = \"*384*9#\"\nflow = \"pin\"\n"),
        &[("pin", &flow)],
    )
}

/// Every (tree, where) in the sled database at `db` whose key or value holds `needle`.
fn in_sled(db: &Path, needle: &str) -> Vec<String> {
    let db = sled::open(db).unwrap();
    let needle = needle.as_bytes();
    let holds = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    let mut found = Vec::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        for item in tree.iter() {
            let (k, v) = item.unwrap();
            if holds(&k) || holds(&v) {
                found.push(format!(
                    "{}: {}",
                    String::from_utf8_lossy(&name),
                    String::from_utf8_lossy(&v)
                ));
            }
        }
    }
    found
}

/// Every key of the Redis at `url` (the sandbox's, on the Redis backend) whose name or value
/// holds `needle`: strings, hashes, sets, sorted sets and streams, all of them.
fn in_redis(url: &str, needle: &str) -> Vec<String> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let mut found = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let value: redis::Value = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).query(&mut conn).unwrap(),
            "hash" => redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut conn).unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            "stream" => redis::cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .query(&mut conn)
                .unwrap(),
            _ => redis::Value::Nil,
        };
        let text = format!("{key}: {value:?}");
        // Bulk strings print as byte lists: look at their text too.
        let bytes = redis_text(&value);
        if text.contains(needle) || bytes.contains(needle) {
            found.push(format!("{key}: {bytes}"));
        }
    }
    found
}

/// The text of every bulk string in `value`, joined.
fn redis_text(value: &redis::Value) -> String {
    match value {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().map(redis_text).collect::<Vec<_>>().join(" ")
        }
        redis::Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{} {}", redis_text(k), redis_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

async fn export(admin: std::net::SocketAddr, csv: bool) -> String {
    let path = if csv {
        "/admin/export/ended?format=csv"
    } else {
        "/admin/export/ended"
    };
    let a = At::new(admin)
        .request("GET", path, &[("authorization", "Bearer test-token")], "")
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_is_kept_nowhere_after_the_dialogue_over_http_and_smpp() {
    let backend = backend().await;
    let events = FakeHttp::start(|_| async { (200, "OK".into()) }).await;
    let sim = common::operator_sim().await;
    let sb = sandbox(
        &backend,
        &format!(
            "[events]\nurl = \"http://{}/events\"\n[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\npassword = \"pw\"\nreconnect_cap_ms = 500\n",
            events.addr,
            sim.addr().port()
        ),
    );
    let (gw, log) = sb.spawn_logged("debug");
    let at = At::new(gw.public);
    let pin_hop = format!("1*{AMOUNT}*12*{PIN}");

    // Over HTTP: a PIN too short first (sensitive too), then the right one.
    assert_eq!(
        at.walk("s1", "*384*9#", PHONE, &["1", AMOUNT, "12"]).await,
        [
            "CON Wallet\n1. Send money\n2. Check",
            "CON Enter amount:",
            "CON Enter PIN:",
            "CON PIN must be 4 to 8 digits.\nEnter PIN:"
        ]
    );
    let confirm = format!("CON Send {AMOUNT}?\n1. Confirm");
    assert_eq!(at.hop("s1", "*384*9#", PHONE, &pin_hop).await, confirm);
    assert_eq!(backend.count(), 1, "the backend got the PIN it checks");
    // A retry of the PIN hop (the same cumulative text) gets the same answer, from the stored
    // reply: the backend is not asked again.
    assert_eq!(at.hop("s1", "*384*9#", PHONE, &pin_hop).await, confirm);
    assert_eq!(backend.count(), 1, "a retry runs nothing again");
    // The hop after it carries the right input.
    let done = format!("END Sent {AMOUNT}.");
    assert_eq!(
        at.hop("s1", "*384*9#", PHONE, &format!("{pin_hop}*1"))
            .await,
        done
    );
    // A retry after the end is answered from the tombstone.
    assert_eq!(
        at.hop("s1", "*384*9#", PHONE, &format!("{pin_hop}*1"))
            .await,
        done
    );

    // A template failure that quotes the PIN.
    assert_eq!(
        at.walk("s2", "*384*9#", "+254700000002", &["2", "5517", PIN])
            .await
            .last()
            .unwrap(),
        "END Sorry, something went wrong. Please try again later."
    );

    // A PIN typed ahead in the dial.
    let dial = format!("*384*9*1*5555*{PIN}#");
    assert_eq!(
        at.hop("s3", &dial, "+254700000004", "").await,
        "CON Send 5555?\n1. Confirm"
    );
    assert_eq!(
        at.hop("s3", &dial, "+254700000004", "1").await,
        "END Sent 5555."
    );

    // Over SMPP: one input per PDU; the dialogue builds the same cumulative text.
    assert!(sim.wait_bound(Duration::from_secs(10)).await);
    let (mut d, first) = sim.dial("254700000003", "*384*9#").await.unwrap();
    assert_eq!(first.text, "Wallet\n1. Send money\n2. Check");
    d.reply("1").await.unwrap();
    d.reply("7777").await.unwrap();
    assert_eq!(d.reply(PIN).await.unwrap().text, "Send 7777?\n1. Confirm");
    let last = d.reply("1").await.unwrap();
    assert!(last.end && last.text == "Sent 7777.", "{last:?}");

    // The end records, as exported: the PIN masked, the length of neither PIN shown.
    let masked = format!("1*{AMOUNT}*xxxx*xxxx*1");
    let admin = gw.admin;
    assert!(
        eventually(10, || async {
            export(admin, false).await.lines().count() == 4
        })
        .await,
        "four dialogues ended"
    );
    let json = export(admin, false).await;
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let input = |session: &str| {
        records
            .iter()
            .find(|r| r["session"].as_str().unwrap().ends_with(session))
            .map(|r| r["input"].as_str().unwrap().to_string())
    };
    assert_eq!(input("s1").as_deref(), Some(masked.as_str()), "{json}");
    assert_eq!(input("s2").as_deref(), Some("2*5517*xxxx"), "{json}");
    let typed_ahead = records
        .iter()
        .find(|r| r["session"] == "http:s3")
        .expect("the typed-ahead dialogue's record");
    assert_eq!(typed_ahead["dialled"], "*384*9*1*5555*xxxx#");
    assert_eq!(typed_ahead["input"], "1");
    let smpp = records
        .iter()
        .find(|r| r["front"] == "smpp")
        .expect("the SMPP dialogue's record");
    assert_eq!(smpp["input"], "1*7777*xxxx*1");
    assert!(!json.contains(PIN), "{json}");
    let csv = export(admin, true).await;
    assert!(csv.contains(&masked) && !csv.contains(PIN), "{csv}");

    // The end-of-session events.
    assert!(
        eventually(10, || async { events.count() >= 4 }).await,
        "every end reported"
    );
    let reported: Vec<String> = events
        .seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|s| s.form.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    assert!(
        reported.contains(&format!("input={masked}")),
        "{reported:?}"
    );
    assert!(reported.contains(&"input=1*7777*xxxx*1".to_string()));
    assert!(!reported.iter().any(|f| f.contains(PIN)), "{reported:?}");

    // The log, at debug level.
    assert!(gw.signal("TERM").success());
    // Its last line; the reader has the rest once it has that.
    assert!(log.wait_for("gateway stopped", 10).await);
    let log = log.text();
    assert!(log.contains("dialogue ended"), "the debug log was captured");
    // The failure is logged with what it quoted, the PIN masked.
    assert!(log.contains("5517.xxxx"), "{log}");
    let leaks: Vec<&str> = log.lines().filter(|l| l.contains(PIN)).collect();
    assert!(leaks.is_empty(), "{leaks:#?}");

    // Every tree of the store (or every key of the cluster's Redis, on the Redis backend):
    // the amount typed beside the PIN is there (the scan finds what is kept), the PIN nowhere.
    let scan = |needle: &str| match &sb.redis {
        Some(r) => in_redis(&r.url(), needle),
        None => in_sled(&sb.dir.path().join("db"), needle),
    };
    assert!(!scan(AMOUNT).is_empty(), "the scan finds the amount");
    let leaks = scan(PIN);
    assert!(leaks.is_empty(), "{leaks:#?}");
}

/// A crash after the PIN hop: the live state written to sled holds the PIN only in the flow's
/// variable (the text it keeps is masked), the resume point not at all; after a restart the
/// PIN hop's retry and the hop after it are still recognised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_the_live_state_holds_the_pin_only_where_the_flow_needs_it() {
    let backend = backend().await;
    let sb = sandbox(&backend, "");
    let gw = sb.spawn();
    let at = At::new(gw.public);
    let pin_hop = format!("1*{AMOUNT}*{PIN}");
    let confirm = format!("CON Send {AMOUNT}?\n1. Confirm");
    assert_eq!(
        at.walk("c1", "*384*9#", PHONE, &["1", AMOUNT, PIN])
            .await
            .last()
            .unwrap(),
        &confirm
    );
    // Well past a commit (every 50 ms here), then kill -9.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    gw.kill9();

    let db = sb.dir.path().join("db");
    {
        // The dialogue's live state and its resume point, as the store keeps them: in sled, or
        // in the cluster's Redis on the Redis backend.
        let (mut live, point): (serde_json::Value, serde_json::Value) = match &sb.redis {
            Some(r) => {
                let mut conn = redis::Client::open(r.url())
                    .unwrap()
                    .get_connection()
                    .unwrap();
                let bucket = ussd_gateway::store::shared_dialogues::bucket("http:c1");
                let live: Option<String> = redis::cmd("HGET")
                    .arg(format!("ussd:{{d:{bucket}}}:live:http:c1"))
                    .arg("s")
                    .query(&mut conn)
                    .unwrap();
                let points: Vec<String> = redis::cmd("KEYS")
                    .arg("ussd:resume:*")
                    .query(&mut conn)
                    .unwrap();
                let point: String = redis::cmd("GET")
                    .arg(points.first().expect("a resume point"))
                    .query(&mut conn)
                    .unwrap();
                (
                    serde_json::from_str(&live.expect("the live state was committed")).unwrap(),
                    serde_json::from_str(&point).unwrap(),
                )
            }
            None => {
                let db = sled::open(&db).unwrap();
                let live = db
                    .open_tree("sessions")
                    .unwrap()
                    .get("http:c1")
                    .unwrap()
                    .expect("the live state was committed");
                let points = db.open_tree("flow_resume").unwrap();
                let (_, point) = points.iter().next().expect("a resume point").unwrap();
                (
                    serde_json::from_slice(&live).unwrap(),
                    serde_json::from_slice(&point).unwrap(),
                )
            }
        };
        assert_eq!(live["seen_text"], format!("1*{AMOUNT}*xxxx"));
        assert_eq!(live["app"]["vars"]["pin"], PIN, "the flow still has it");
        live["app"]["vars"]["pin"] = serde_json::Value::Null;
        let rest = live.to_string();
        assert!(!rest.contains(PIN), "{rest}");
        assert!(rest.contains(AMOUNT));
        // The resume point goes back to the PIN screen, without the PIN.
        assert_eq!(point["state"]["screen"], "pin", "{point}");
        assert_eq!(point["state"]["vars"]["amount"], AMOUNT, "{point}");
        assert!(!point.to_string().contains(PIN), "{point}");
    }

    // Restarted: the digest of the raw text was made under the old process's key; the
    // length still recognises the retry and the next hop.
    let gw = sb.spawn();
    let at = At::new(gw.public);
    assert_eq!(at.hop("c1", "*384*9#", PHONE, &pin_hop).await, confirm);
    assert_eq!(backend.count(), 1, "a retry runs nothing again");
    assert_eq!(
        at.hop("c1", "*384*9#", PHONE, &format!("{pin_hop}*1"))
            .await,
        format!("END Sent {AMOUNT}.")
    );
    assert!(gw.signal("TERM").success());
    let scan = |needle: &str| match &sb.redis {
        Some(r) => in_redis(&r.url(), needle),
        None => in_sled(&db, needle),
    };
    assert!(!scan(AMOUNT).is_empty(), "the scan finds the amount");
    let leaks = scan(PIN);
    assert!(leaks.is_empty(), "{leaks:#?}");
}
