//! A fake Africa's Talking API on 127.0.0.1: records every request, answers from a script.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ussd_gateway::outbox::{AtConfig, RetryConfig, Secret};
use ussd_gateway::store::Store;

pub const SMS: &str = "/version1/messaging";
pub const AIRTIME: &str = "/version1/airtime/send";
pub const CALL: &str = "/call";

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    /// The form fields, in order.
    pub form: Vec<(String, String)>,
    /// When it arrived, ms since the epoch.
    pub at_ms: u64,
}

impl Recorded {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn field_names(&self) -> Vec<&str> {
        self.form.iter().map(|(k, _)| k.as_str()).collect()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 201 with AT's documented success JSON for the path.
    Success,
    /// This status and body.
    Raw(u16, &'static str),
    /// This status with a Retry-After header.
    RetryAfter(u16, u64),
    /// Never answer (the client's timeout fires).
    Hang,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    scripts: HashMap<String, VecDeque<Reply>>,
}

/// The fake server; stops with the test's runtime.
#[derive(Clone)]
pub struct FakeAt {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeAt {
    pub async fn start() -> FakeAt {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, st.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeAt { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next requests to `path` with `replies`, then with success.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut st = self.state.lock().unwrap();
        st.scripts.entry(path.into()).or_default().extend(replies);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// A sender config pointing every host at this server, with quick retries.
    pub fn config(&self) -> AtConfig {
        AtConfig {
            username: Some("sandbox".into()),
            api_key: Some(Secret::new("test-key-123")),
            sender_id: Some("MYBIZ".into()),
            voice_number: Some("+254711082000".into()),
            messaging_base_url: self.url(),
            voice_base_url: self.url(),
            airtime_base_url: None,
            request_timeout_ms: 400,
            retry: RetryConfig {
                initial_backoff_ms: 20,
                max_backoff_ms: 100,
                max_attempts: 5,
            },
            poll_interval_ms: 50,
            concurrency: 2,
        }
    }
}

fn now_ms() -> u64 {
    ussd_gateway::clock::now_ms()
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    st: Arc<Mutex<State>>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let reply = {
        let mut st = st.lock().unwrap();
        let to = form.iter().find(|(k, _)| k == "to").map(|(_, v)| v.clone());
        st.requests.push(Recorded {
            method,
            path: path.clone(),
            headers,
            form,
            at_ms: now_ms(),
        });
        let reply = st
            .scripts
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Reply::Success);
        (reply, to)
    };
    let (status, body, retry_after) = match reply.0 {
        Reply::Success => (201, success(&path, reply.1.as_deref()), None),
        Reply::Raw(s, b) => (s, b.to_string(), None),
        Reply::RetryAfter(s, secs) => (s, "slow down".to_string(), Some(secs)),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (500, String::new(), None)
        }
    };
    let mut resp = hyper::Response::builder().status(status);
    if let Some(secs) = retry_after {
        resp = resp.header("retry-after", secs.to_string());
    }
    Ok(resp.body(Full::new(Bytes::from(body))).unwrap())
}

fn success(path: &str, to: Option<&str>) -> String {
    let to = to.unwrap_or("+254711000001");
    match path {
        SMS => format!(
            r#"{{"SMSMessageData":{{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{{"statusCode":101,"number":"{to}","status":"Success","cost":"KES 0.8000","messageId":"ATXid_1"}}]}}}}"#
        ),
        AIRTIME => r#"{"errorMessage":"None","numSent":1,"totalAmount":"KES 50.0000","totalDiscount":"KES 2.0000","responses":[{"phoneNumber":"+254711000001","amount":"KES 50.0000","status":"Sent","requestId":"ATQid_1","errorMessage":"None","discount":"KES 2.0000"}]}"#.into(),
        CALL => format!(
            r#"{{"entries":[{{"phoneNumber":"{to}","status":"Queued","sessionId":"ATVId_1"}}],"errorMessage":"None"}}"#
        ),
        _ => "{}".into(),
    }
}

/// Polls `cond` every 10 ms until it holds, failing after 10 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The item's status by id.
pub fn item(store: &Store, id: u64) -> ussd_gateway::outbox::Item {
    ussd_gateway::outbox::get(store, id).unwrap().unwrap()
}
