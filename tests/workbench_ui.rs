//! The workbench page in a real browser: headless Chromium (Debian's `chromium`, which
//! scripts/test installs) driven over the DevTools protocol by a small client below, on a
//! phone-sized viewport. It logs in, dials the student app on two simulated phones at once,
//! reads their screens, opens the dialogue inspector and the flow view, and saves a screenshot
//! under target/.

mod common;

use base64::Engine;
use common::Sandbox;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Headless Chromium with its DevTools socket; killed when dropped.
struct Browser {
    child: Child,
    ws: Ws,
    next: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    async fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium not found: scripts/test installs Debian's chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("chromium did not announce its DevTools socket");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        Browser {
            child,
            ws,
            next: 0,
            session: None,
            _profile: profile,
        }
    }

    /// Sends one command (to the attached page, once there is one) and waits for its answer,
    /// skipping events.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let mut msg = json!({ "id": self.next, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while let Some(m) = self.ws.next().await {
                let Ok(Message::Text(t)) = m else { continue };
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == json!(self.next) {
                    return v;
                }
            }
            panic!("the DevTools socket closed");
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method}"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Opens a page at `url` with a phone's viewport and attaches to it.
    async fn open_phone_page(&mut self, url: &str) {
        let target = self
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = self
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        self.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
        )
        .await;
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    /// Evaluates `js` in the page (promises awaited) and returns its value.
    async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Waits (at most 10 s) until `js` is true in the page.
    async fn until(&mut self, js: &str) -> bool {
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while tokio::time::Instant::now() < until {
            if self.eval(js).await == json!(true) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }

    async fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

const ROUTES: &str = "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n\
                      [[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n";

/// The text of the screens of the simulated phones, newest first.
const SCREENS: &str =
    "JSON.stringify([...document.querySelectorAll('.phone .screen')].map(e => e.textContent))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_logs_in_dials_the_student_app_and_sees_the_dialogue_live() {
    let sb = Sandbox::with_repo_flows(ROUTES);
    let gw = sb.start().await;
    let mut b = Browser::launch().await;
    b.open_phone_page(&format!("http://{}/ui/", gw.admin_addr))
        .await;
    assert!(
        b.until("!!document.querySelector('#login-form') && document.readyState === 'complete'")
            .await
    );

    // A wrong token is refused, and said so.
    b.eval("document.querySelector('#token').value = 'nope'; document.querySelector('#login-form').requestSubmit(); true").await;
    assert!(
        b.until(
            "document.querySelector('#login-error').textContent.includes('wrong bearer token')"
        )
        .await,
        "{}",
        b.eval("document.querySelector('#login-error').textContent")
            .await
    );
    // The right one opens the page; it stays in this tab's storage, never in the URL.
    b.eval("document.querySelector('#token').value = 'test-token'; document.querySelector('#login-form').requestSubmit(); true").await;
    assert!(b.until("!document.querySelector('#tabs').hidden && document.querySelector('#new-route').options.length === 2").await);
    assert_eq!(
        b.eval("location.href.includes('test-token')").await,
        json!(false)
    );
    assert_eq!(
        b.eval("sessionStorage.getItem('ussd-gateway-admin-token')")
            .await,
        json!("test-token")
    );

    // Dial *123# as a registered student.
    b.eval("document.querySelector('#new-route').value = '*123#'; document.querySelector('#new-phone').value = '+254700000002'; document.querySelector('#new-phone-form').requestSubmit(); true").await;
    let home = "Welcome to UniConnect, Brian Otieno\n1. View Results\n2. Check Balance\n3. View Timetable\n4. Missed Exams\n5. Notifications\n6. Exit";
    assert!(
        b.until(&format!("{SCREENS} === JSON.stringify([{}])", json!(home)))
            .await,
        "{}",
        b.eval(SCREENS).await
    );
    let meta = b
        .eval("document.querySelector('.phone .meta').textContent")
        .await;
    let meta = meta.as_str().unwrap();
    assert!(meta.contains("CON"), "{meta}");
    assert!(
        meta.contains(&format!("{}/182 GSM-7", home.chars().count())),
        "{meta}"
    );
    assert!(meta.contains(" ms"), "{meta}");

    // Press 1 on the keypad and send: the results menu.
    b.eval("[...document.querySelectorAll('.phone .keypad button')].find(x => x.textContent === '1').click(); document.querySelector('.phone .answer').requestSubmit(); true").await;
    assert!(
        b.until(&format!(
            "JSON.parse({SCREENS})[0] === {}",
            json!("View Results\n1. Current Term\n2. Previous Terms")
        ))
        .await,
        "{}",
        b.eval(SCREENS).await
    );

    // A second phone at once (another student: a new dial from the same number would end the
    // first dialogue, as on a network), on a pre-filled dial: the timetable, page 1 of 2.
    b.eval("document.querySelector('#new-code').value = '*123*3#'; document.querySelector('#new-phone').value = '0700000001'; document.querySelector('#new-phone-form').requestSubmit(); true").await;
    assert!(
        b.until(&format!("JSON.parse({SCREENS}).length === 2 && JSON.parse({SCREENS})[0].startsWith('Your Timetable:\\nMonday')")).await,
        "{}",
        b.eval(SCREENS).await
    );
    assert!(
        b.until("document.querySelector('.phone .page').textContent === 'page 1/2'")
            .await
    );

    // The inspector lists both live dialogues, numbers masked, with their screens.
    b.eval("document.querySelector('#tab-inspector').click(); true")
        .await;
    let rows =
        "JSON.stringify([...document.querySelectorAll('#dialogues tr')].map(r => r.textContent))";
    assert!(
        b.until(&format!(
            "JSON.parse({rows}).length === 2 && JSON.parse({rows}).some(r => r.includes('results'))"
        ))
        .await,
        "{}",
        b.eval(rows).await
    );
    let text = b.eval(rows).await.as_str().unwrap().to_string();
    assert!(
        text.contains("*123#") && text.contains("timetable"),
        "{text}"
    );
    assert!(
        !text.contains("254700000001") && !text.contains("254700000002"),
        "an unmasked number: {text}"
    );
    // The timetable's last page ends that dialogue: its journey shows in the inspector.
    b.eval("document.querySelector('#tab-sim').click(); document.querySelector('.phone .reply').value = '98'; document.querySelector('.phone .answer').requestSubmit(); true").await;
    assert!(
        b.until(&format!("JSON.parse({SCREENS})[0].startsWith('Wednesday')"))
            .await,
        "{}",
        b.eval(SCREENS).await
    );
    b.eval("document.querySelector('#tab-inspector').click(); true")
        .await;
    let recent =
        "JSON.stringify([...document.querySelectorAll('#recent li')].map(li => li.textContent))";
    assert!(
        b.until(&format!(
            "JSON.parse({recent}).some(t => t.startsWith('254******001 *123# (end): timetable '))"
        ))
        .await,
        "{}",
        b.eval(recent).await
    );
    let funnel = "JSON.stringify([...document.querySelectorAll('#funnel tr')].map(r => [...r.cells].map(c => c.textContent)))";
    assert!(
        b.until(&format!(
            "JSON.parse({funnel}).some(r => r[0] === 'timetable' && r[1] === '1' && r[3] === '1')"
        ))
        .await,
        "{}",
        b.eval(funnel).await
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    b.screenshot(&dir.join("workbench-inspector.png")).await;

    // The flow view draws every screen of the student flow.
    b.eval("document.querySelector('#tab-flows').click(); true")
        .await;
    assert!(
        b.until("document.querySelectorAll('#graph svg rect').length === 12")
            .await
    );
    assert!(
        b.until("[...document.querySelectorAll('#edges li')].some(li => li.textContent === 'home → results (View Results)')").await
    );
    b.screenshot(&dir.join("workbench-flows.png")).await;

    // Back to the phones for the screenshot the issue asks for.
    b.eval("document.querySelector('#tab-sim').click(); true")
        .await;
    b.screenshot(&dir.join("workbench-simulator.png")).await;
    assert!(
        dir.join("workbench-simulator.png")
            .metadata()
            .unwrap()
            .len()
            > 1000
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_page_needs_no_token_its_calls_do_and_hops_carry_the_secret_the_browser_never_sees() {
    let secret = "a-long-shared-secret-for-the-aggregator";
    let sb = Sandbox::with_repo_flows(ROUTES);
    let toml = std::fs::read_to_string(sb.config_path()).unwrap().replacen(
        "[public]\n",
        &format!("[public]\nshared_secret = \"{secret}\"\n"),
        1,
    );
    std::fs::write(sb.config_path(), toml).unwrap();
    let gw = sb.start().await;
    let admin = common::At::new(gw.admin_addr);
    let page = admin.request("GET", "/ui/", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{page:?}");
    assert!(page.body.contains("id=\"login-form\""), "{}", page.body);
    assert!(!page.body.contains(secret) && !page.body.contains("test-token"));
    for asset in ["/ui/app.js", "/ui/app.css"] {
        let a = admin.request("GET", asset, &[], "").await;
        assert_eq!(a.status, 200, "{asset}");
        assert!(!a.body.contains(secret), "{asset}");
    }
    let hop = json!({ "session": "ui1", "dial": "*123#", "phone": "+254700000001", "text": "" });
    let refused = admin
        .request("POST", "/admin/ui/hop", &[], hop.to_string())
        .await;
    assert_eq!(refused.status, 401, "{refused:?}");
    // With the token: the hop goes through the public front, which demands the secret.
    let auth = [("authorization", "Bearer test-token")];
    let a = admin
        .request("POST", "/admin/ui/hop", &auth, hop.to_string())
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let a: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(a["status"], 200, "{a}");
    assert!(
        a["body"]
            .as_str()
            .unwrap()
            .starts_with("CON Welcome to UniConnect, Amina Wanjiru\n"),
        "{a}"
    );
    assert_eq!(a["alphabet"], "GSM-7");
    assert_eq!(a["limit"], 182);
    assert_eq!(a["screen"], "home");
    // The same hop straight to the public front, without the secret, is refused: the secret
    // is what let the simulator's through.
    let direct = common::At::new(gw.public_addr)
        .request(
            "POST",
            "/ussd",
            &[("content-type", "application/x-www-form-urlencoded")],
            "sessionId=ui2&serviceCode=*123%23&phoneNumber=%2B254700000001&text=",
        )
        .await;
    assert_eq!(direct.status, 401, "{direct:?}");
    // A flow's graph, and an unknown route.
    let g = admin
        .request("GET", "/admin/ui/graph?route=*675%23", &auth, "")
        .await;
    assert_eq!(g.status, 200, "{g:?}");
    let g: Value = serde_json::from_str(&g.body).unwrap();
    assert_eq!(g["start"], "lookup");
    assert!(g["nodes"].as_array().unwrap().len() > 20, "{g}");
    let none = admin
        .request("GET", "/admin/ui/graph?route=*9%23", &auth, "")
        .await;
    assert_eq!(none.status, 404);
    gw.shutdown().await;
}
