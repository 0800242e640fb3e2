//! Test harness: start a real gateway on 127.0.0.1:0 (in-process or as a child process) and
//! speak to it as Africa's Talking would.
#![allow(dead_code)]

pub mod redis;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use ussd_gateway::config::Config;
use ussd_gateway::gateway::{self, Running};

/// A gateway's folder: config, flows, data; removed when dropped.
///
/// With `USSD_TEST_BACKEND=redis` in the environment, its gateway keeps everything shared in a
/// Redis of its own (cluster mode's store, docs/cluster.md) instead of sled: the test command
/// runs the app suites so too, each on both backends.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// The Redis of a sandbox on the Redis backend.
    pub redis: Option<redis::Redis>,
}

/// Opens the sled store at `path` once the gateway that had it has let it go: an in-process
/// gateway's shutdown drops its last handle, but sled's I/O threads may hold the folder's
/// lock a moment longer (polled every 10 ms, for at most 10 s).
pub fn open_released(path: &Path, cache_mb: u64, flush_ms: u64) -> ussd_gateway::store::Store {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ussd_gateway::store::Store::open(path, cache_mb, flush_ms) {
            Ok(store) => return store,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < until =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

/// The store of a stopped sandbox's gateway, as the gateway sees it: its sled folder, sharing
/// the sandbox's Redis when it has one.
pub async fn store_of(sb: &Sandbox) -> ussd_gateway::store::Store {
    let cfg = sb.config();
    let store = open_released(&cfg.store.data_dir, 16, 500);
    match &sb.redis {
        Some(r) => {
            let client = ussd_gateway::store::redis::Redis::connect(
                &ussd_gateway::store::redis::RedisSettings {
                    urls: vec![r.url()],
                    cluster: false,
                    timeout: Duration::from_secs(2),
                    sentinel_master: None,
                    credentials: Default::default(),
                },
            )
            .await
            .unwrap();
            store.share_records(ussd_gateway::store::shared_records::SharedRecords::new(
                client,
                0,
                Duration::from_secs(3600),
            ))
        }
        None => store,
    }
}

/// Every outbox item of an in-process gateway, oldest first: its own store's, or the
/// cluster's (on the Redis backend).
pub async fn outbox_items(gw: &Running) -> Vec<ussd_gateway::outbox::Item> {
    let core = gw.registry().core();
    let backend: ussd_gateway::store::OutboxBackend = match &core.cluster {
        Some(cluster) => cluster.outbox.clone().into(),
        None => core.store.clone().into(),
    };
    backend.list().await.unwrap()
}

/// Every end record an in-process gateway keeps, in the order the dialogues ended: its own
/// store's, or the cluster's (on the Redis backend).
pub async fn end_records(gw: &Running) -> Vec<serde_json::Value> {
    let core = gw.registry().core();
    let mut records: Vec<serde_json::Value> = match &core.cluster {
        Some(cluster) => cluster
            .dialogues
            .end_records()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect(),
        None => core.store.ended_records().map(Result::unwrap).collect(),
    };
    records.sort_by_key(|r| r["ended_ms"].as_u64());
    records
}

/// How many live dialogues an in-process gateway keeps (its store's, or the cluster's).
pub async fn live_count(gw: &Running) -> usize {
    let core = gw.registry().core();
    match &core.cluster {
        Some(cluster) => cluster.dialogues.live_states().await.unwrap().len(),
        None => core.store.live_count(),
    }
}

/// Whether sandboxes run on the Redis backend (`USSD_TEST_BACKEND=redis`).
pub fn on_redis() -> bool {
    std::env::var("USSD_TEST_BACKEND").is_ok_and(|b| b == "redis")
}

impl Sandbox {
    /// A sandbox with `gateway.toml` = the test defaults + `extra` TOML, the given flows, and
    /// (when `with_sample_data`) the repository's sample records.
    pub fn new(extra: &str, flows: &[(&str, &str)]) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("flows")).unwrap();
        for (name, yaml) in flows {
            std::fs::write(dir.path().join("flows").join(format!("{name}.yaml")), yaml).unwrap();
        }
        // Tests drive one number much harder than a person can: the per-number flood limit is off
        // unless a test sets its own [limits].
        let limits = if extra.contains("[limits]") {
            ""
        } else {
            "[limits]\nhops_per_minute_per_msisdn = 0\n"
        };
        // A test that sets up its own Redis (the cluster tests) keeps it.
        let redis = (on_redis() && !extra.contains("[store.redis]")).then(redis::Redis::standalone);
        let (backend, redis_toml) = match &redis {
            Some(r) => (
                "backend = \"redis\"\n",
                format!("[store.redis]\nurls = [\"{}\"]\n", r.url()),
            ),
            None => ("", String::new()),
        };
        let toml = format!(
            "flows_dir = \"flows\"\nseed_dir = \"seed\"\nseed_timezone = \"Pacific/Port_Moresby\"\n[public]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"test-token\"\n[store]\n{backend}data_dir = \"{}\"\nflush_every_ms = 50\n{extra}\n{limits}\n{redis_toml}",
            dir.path().join("db").display()
        );
        std::fs::write(dir.path().join("gateway.toml"), toml).unwrap();
        Sandbox { dir, redis }
    }

    /// A cluster node's sandbox: the repository's flows and data, `[store] backend = "redis"`
    /// on the Redis at `urls` (a Redis Cluster's seed nodes when `cluster`), and `extra` TOML
    /// after its `[store.redis]` (more of its keys first, then other tables).
    pub fn cluster_node(urls: &[String], cluster: bool, extra: &str) -> Sandbox {
        let list = urls
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sb = Sandbox::with_repo_flows(&format!(
            "[store.redis]\nurls = [{list}]\ncluster = {cluster}\n{extra}"
        ));
        let path = sb.config_path();
        let toml = std::fs::read_to_string(&path)
            .unwrap()
            .replace("[store]\n", "[store]\nbackend = \"redis\"\n");
        std::fs::write(&path, toml).unwrap();
        sb
    }

    /// A sandbox using the repository's own config/flows and config/data with `routes` TOML.
    pub fn with_repo_flows(extra: &str) -> Sandbox {
        let sb = Sandbox::new(extra, &[]);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        copy_dir(&repo.join("flows"), &sb.dir.path().join("flows"));
        copy_dir(&repo.join("data"), &sb.dir.path().join("seed"));
        copy_dir(&repo.join("ivr"), &sb.dir.path().join("ivr"));
        sb
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path()).unwrap()
    }

    /// Starts the gateway in this process.
    pub async fn start(&self) -> Running {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        // sled's background threads let go of the database's file lock a moment after the
        // last handle of a store the test opened (or of the gateway before) is dropped, with
        // nothing to join: wait for it (at most 5 s), as a restarted process would find it
        // free once the old one has exited.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match gateway::start(self.config()).await {
                Ok(running) => return running,
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("the gateway did not start: {e:#}"),
            }
        }
    }

    /// Starts the gateway binary as a child process; returns it with its addresses.
    pub fn spawn(&self) -> ChildGateway {
        let child = Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(["serve", "--config"])
            .arg(self.config_path())
            .env(
                "RUST_LOG",
                std::env::var("GATEWAY_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        ChildGateway::announced(child)
    }
}

impl ChildGateway {
    /// Reads the addresses `serve` announces on its first line of stdout.
    fn announced(mut child: Child) -> ChildGateway {
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let mut public = None;
        let mut admin = None;
        for part in line.split_whitespace() {
            if let Some(a) = part.strip_prefix("public=") {
                public = a.parse().ok();
            }
            if let Some(a) = part.strip_prefix("admin=") {
                admin = a.parse().ok();
            }
        }
        ChildGateway {
            child,
            public: public.unwrap_or_else(|| panic!("no address line, got {line:?}")),
            admin: admin.unwrap(),
        }
    }
}

impl Sandbox {
    /// Starts the gateway binary as a child process logging at `filter` (RUST_LOG), its stderr
    /// captured as a service manager would (not a terminal: no colours): returns it with its
    /// log.
    pub fn spawn_logged(&self, filter: &str) -> (ChildGateway, ChildLog) {
        self.spawn_logged_with(filter, &[], &[])
    }

    /// As [`Sandbox::spawn_logged`], with more arguments to `serve` and more environment.
    pub fn spawn_logged_with(
        &self,
        filter: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> (ChildGateway, ChildLog) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(["serve", "--config"])
            .arg(self.config_path())
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = ChildLog::default();
        let mut stderr = child.stderr.take().unwrap();
        let bytes = log.bytes.clone();
        // Ends with the child (end of stream).
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                bytes.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (ChildGateway::announced(child), log)
    }
}

/// What a child gateway wrote to stderr so far, byte for byte.
#[derive(Clone, Default)]
pub struct ChildLog {
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl ChildLog {
    /// Everything so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }

    /// Everything so far, as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits (at most `secs` seconds) until the log contains `needle`.
    pub async fn wait_for(&self, needle: &str, secs: u64) -> bool {
        eventually(secs, || async { self.text().contains(needle) }).await
    }

    /// The address logged as `addr=` on the first line containing `what` (at most 10 s).
    pub async fn addr(&self, what: &str) -> SocketAddr {
        assert!(self.wait_for(what, 10).await, "no {what:?} in the log");
        let text = self.text();
        let line = text.lines().find(|l| l.contains(what)).unwrap();
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("addr=")?.parse().ok())
            .unwrap_or_else(|| panic!("no addr= in {line:?}"))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A gateway running as a child process; killed when dropped.
pub struct ChildGateway {
    pub child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

impl ChildGateway {
    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends a signal and waits for the exit status.
    pub fn signal(mut self, sig: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl ChildGateway {
    /// Waits for the process to exit (after a signal sent by the test).
    pub fn signal_wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client playing Africa's Talking.
#[derive(Clone)]
pub struct At {
    client: Client<HttpConnector, Full<Bytes>>,
    pub addr: SocketAddr,
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl At {
    pub fn new(addr: SocketAddr) -> At {
        At {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
        }
    }

    /// One raw request.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(20),
            self.client
                .request(req.body(Full::new(body.into())).unwrap()),
        )
        .await
        .expect("gateway answered within 20 s")
        .unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            content_type,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    /// One raw request that may fail (connection refused, reset): `None` then.
    pub async fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Option<Answer> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(body.into())).ok()?)
            .await
            .ok()?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some(Answer {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// POSTs an AT callback form.
    pub async fn form(&self, fields: &[(&str, &str)]) -> Answer {
        let body = {
            let mut f = form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                f.append_pair(k, v);
            }
            f.finish()
        };
        self.request(
            "POST",
            "/ussd",
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    }

    /// Dials `code` as `phone`, sends each input in turn with the cumulative `text` AT sends,
    /// and returns every answer (the first screen included).
    pub async fn walk(
        &self,
        session: &str,
        code: &str,
        phone: &str,
        inputs: &[&str],
    ) -> Vec<String> {
        let mut answers = vec![self.hop(session, code, phone, "").await];
        let mut text = String::new();
        for input in inputs {
            if !text.is_empty() {
                text.push('*');
            }
            text.push_str(input);
            answers.push(self.hop(session, code, phone, &text).await);
        }
        answers
    }

    /// One hop of a dialogue; asserts a 200 and returns the body (`CON ...`/`END ...`).
    pub async fn hop(&self, session: &str, code: &str, phone: &str, text: &str) -> String {
        let a = self
            .form(&[
                ("sessionId", session),
                ("serviceCode", code),
                ("phoneNumber", phone),
                ("networkCode", "63902"),
                ("text", text),
            ])
            .await;
        assert_eq!(a.status, 200, "hop {text:?} answered {a:?}");
        assert!(a.content_type.starts_with("text/plain"), "{a:?}");
        a.body
    }
}

/// Polls `f` every 20 ms until it is true, for at most `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < until {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// GET /admin/status as JSON.
pub async fn status(admin: SocketAddr) -> serde_json::Value {
    let a = At::new(admin)
        .request(
            "GET",
            "/admin/status",
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    serde_json::from_str(&a.body).unwrap()
}

/// One request as a fake HTTP server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub form: Vec<(String, String)>,
    /// The raw body (a JSON app's request).
    pub body: String,
}

/// A fake HTTP peer on 127.0.0.1:0 (an upstream app, an events receiver): `answer` decides
/// each response from the request; every request is recorded. It stops when dropped.
pub struct FakeHttp {
    pub addr: SocketAddr,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHttp {
    pub async fn start<F, Fut>(answer: F) -> FakeHttp
    where
        F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = (u16, String)> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let answer = answer.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let answer = answer.clone();
                            let log = log.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let form: Vec<(String, String)> = form_urlencoded::parse(&body)
                                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                                    .collect();
                                let seen = Seen {
                                    path,
                                    form,
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                };
                                log.lock().unwrap().push(seen.clone());
                                let (status, text) = answer(seen).await;
                                let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
                                *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeHttp { addr, seen, task }
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The stand-in for the founding USSD-SYTEM Flask app (tests/upstream/ussd_system.py: our own
/// implementation of its texts) as a child process.
pub struct FlaskApp {
    child: Child,
    pub addr: SocketAddr,
}

impl FlaskApp {
    pub fn spawn() -> FlaskApp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/ussd_system.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/test installs Flask)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the Flask app did not start: {line:?}"));
        FlaskApp {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for FlaskApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulated operator on 127.0.0.1:0 with the `its_session_info` profile, taking binds
/// from system_id `gw`, password `pw`.
pub async fn operator_sim() -> ussd_gateway::sim::OperatorSim {
    use ussd_gateway::front::smpp::Profile;
    use ussd_gateway::sim::OperatorSim;
    OperatorSim::start(
        "127.0.0.1:0".parse().unwrap(),
        Profile::preset("its_session_info").unwrap(),
        Some(("gw".into(), "pw".into())),
    )
    .await
    .unwrap()
}

/// The value of the first metric line of `admin`'s `/metrics` that starts with `line_start`
/// (a family and its labels); 0 when there is none.
pub async fn metric(admin: SocketAddr, line_start: &str) -> f64 {
    let m = At::new(admin)
        .request("GET", "/metrics", &[], "")
        .await
        .body;
    m.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
