//! Following a Redis primary through Sentinel (`[store.redis] sentinel_master`): the node asks
//! the Sentinels which server is the named primary, connects to it, and asks again whenever a
//! call fails (the primary died, or came back as a replica and refuses writes), switching its
//! connection once Sentinel names another (docs/cluster.md, "What each failure loses").

use super::redis::{Credentials, RedisError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// At most one question to the Sentinels this often, however many calls fail.
const ASK_EVERY: Duration = Duration::from_millis(250);

/// Where the Sentinels are and which primary they watch, and what they said last.
#[derive(Debug)]
pub(super) struct Sentinels {
    urls: Vec<String>,
    master: String,
    /// The primary's (and any replica's) user and password.
    credentials: Credentials,
    /// The primary's address as last named (`host:port`).
    current: Mutex<String>,
    /// A question is on its way.
    asking: AtomicBool,
    /// When the last one went.
    last: Mutex<Option<Instant>>,
}

impl Sentinels {
    pub(super) fn new(urls: Vec<String>, master: String, credentials: Credentials) -> Sentinels {
        Sentinels {
            urls,
            master,
            credentials,
            current: Mutex::new(String::new()),
            asking: AtomicBool::new(false),
            last: Mutex::new(None),
        }
    }

    /// The primary the first Sentinel that answers names (`host:port`).
    ///
    /// # Errors
    /// No Sentinel answers within `timeout`, or none knows the primary.
    pub(super) async fn primary(&self, timeout: Duration) -> Result<String, RedisError> {
        let mut last_error = None;
        for url in &self.urls {
            let asked = async {
                let client = redis::Client::open(url.as_str())?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.master)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            match tokio::time::timeout(timeout, asked).await {
                Ok(Ok(Some((host, port)))) => return Ok(format!("{host}:{port}")),
                Ok(Ok(None)) => {
                    last_error = Some(RedisError::Redis(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "Sentinel does not know the primary",
                        self.master.clone(),
                    ))));
                }
                Ok(Err(e)) => last_error = Some(RedisError::Redis(e)),
                Err(_) => last_error = Some(RedisError::Timeout(timeout)),
            }
        }
        Err(last_error.unwrap_or(RedisError::Timeout(timeout)))
    }

    /// A connection to the primary the Sentinels name now, and its address.
    ///
    /// # Errors
    /// As [`Sentinels::primary`], or the primary not answering.
    pub(super) async fn connect(
        &self,
        timeout: Duration,
    ) -> Result<(String, ConnectionManager), RedisError> {
        let address = self.primary(timeout).await?;
        let manager = manager(&address, &self.credentials, timeout).await?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = address.clone();
        Ok((address, manager))
    }

    /// After a failed call: whether to ask the Sentinels again now (not while a question is
    /// on its way, nor twice within [`ASK_EVERY`]). The caller asks, then calls
    /// [`Sentinels::asked`].
    pub(super) fn should_ask(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < ASK_EVERY) {
            return false;
        }
        if self.asking.swap(true, Ordering::AcqRel) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// The answer to the question [`Sentinels::should_ask`] allowed: a connection to the
    /// primary when it is another than the one in use.
    pub(super) async fn ask(&self, timeout: Duration) -> Option<ConnectionManager> {
        let found = self.primary(timeout).await;
        let moved = match found {
            Ok(address) => {
                let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
                (*current != address).then(|| {
                    let was = std::mem::replace(&mut *current, address.clone());
                    (was, address)
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis: no Sentinel named the primary");
                None
            }
        };
        let conn = match moved {
            Some((was, address)) => match manager(&address, &self.credentials, timeout).await {
                Ok(conn) => {
                    tracing::warn!(from = %was, to = %address, "redis: Sentinel names another primary; switched to it");
                    Some(conn)
                }
                Err(e) => {
                    // Asked again after the next failure.
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) = was;
                    tracing::warn!(primary = %address, error = %e, "redis: the new primary does not answer yet");
                    None
                }
            },
            None => None,
        };
        self.asking.store(false, Ordering::Release);
        conn
    }
}

/// A connection manager (which reconnects by itself) to `address`.
async fn manager(
    address: &str,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<ConnectionManager, RedisError> {
    use redis::IntoConnectionInfo;
    let info = format!("redis://{address}").into_connection_info()?;
    let client = redis::Client::open(credentials.apply(info))?;
    let connecting = client.get_connection_manager_with_config(
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout)),
    );
    Ok(tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| RedisError::Timeout(timeout))??)
}
