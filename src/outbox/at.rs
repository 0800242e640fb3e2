//! The Africa's Talking clients: SMS, airtime and outbound calls, one request each.
//!
//! Each request is a form POST (`application/x-www-form-urlencoded`) with the headers AT's SDKs
//! send: `apiKey`, `Accept: application/json`. Fields (reference §2.3, §2.4; airtime from AT's
//! SDKs):
//! - SMS, `POST {messaging}/version1/messaging`: `username`, `to` (`+` international), `message`,
//!   and `from` only when a sender id is configured;
//! - airtime, `POST {airtime}/version1/airtime/send`: `username`, `recipients` = a JSON array of
//!   one `{"phoneNumber","currencyCode","amount"}` with the amount as a decimal string ("50.00"),
//!   plus an `Idempotency-Key` header (`outbox-<id>`) as AT's Node SDK sends, so that a retry after
//!   a lost answer can be recognised by AT (whether AT honours it is UNCONFIRMED);
//! - call, `POST {voice}/call`: `username`, `from` (our AT number), `to` (`+` international).
//!
//! The answers are classified in [`super::classify`].

use super::classify::{self, Outcome};
use super::transport::Transport;
use crate::config::outbox::{Account, AtConfig};
use crate::effect::{Effect, Item};
use bytes::Bytes;
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

/// A client for the three AT APIs the outbox uses.
#[derive(Debug, Clone)]
pub struct AtClient {
    account: Option<Account>,
    sender_id: Option<String>,
    voice_number: Option<String>,
    messaging: String,
    voice: String,
    airtime: String,
    timeout: Duration,
    transport: Arc<dyn Transport>,
}

/// `+` and the digits: AT wants international numbers with the plus.
fn international(number: &str) -> String {
    let n = number.trim();
    if n.starts_with('+') {
        n.to_string()
    } else {
        format!("+{n}")
    }
}

/// Minor units as AT's decimal amount: 5000 -> "50.00".
pub fn format_amount(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

impl AtClient {
    /// A client for `config`'s account (resolved with the environment) over `transport`.
    pub fn new(config: &AtConfig, transport: Arc<dyn Transport>) -> AtClient {
        let base = |s: &str| s.trim().trim_end_matches('/').to_string();
        AtClient {
            account: config.account(),
            sender_id: config.sender_id.clone().filter(|s| !s.trim().is_empty()),
            voice_number: config.voice_number.clone().filter(|s| !s.trim().is_empty()),
            messaging: base(&config.messaging_base_url),
            voice: base(&config.voice_base_url),
            airtime: base(config.airtime_base()),
            timeout: config.timeout(),
            transport,
        }
    }

    /// Whether an account (username and API key) is configured.
    pub fn is_configured(&self) -> bool {
        self.account.is_some()
    }

    /// Whether the configured hosts can be reached by the transport (https needs TLS).
    pub fn unreachable_hosts(&self) -> Vec<&str> {
        if self.transport.supports_https() {
            return Vec::new();
        }
        [&self.messaging, &self.voice, &self.airtime]
            .into_iter()
            .filter(|u| u.starts_with("https://"))
            .map(String::as_str)
            .collect()
    }

    /// Sends one outbox item (attempt number `attempt`, 1-based).
    pub async fn deliver(&self, item: &Item, attempt: u32) -> Outcome {
        match &item.effect {
            Effect::Sms { to, message } => self.send_sms(to, message).await,
            Effect::Airtime {
                to,
                currency,
                amount_cents,
            } => {
                let key = format!("outbox-{}", item.id);
                self.send_airtime(to, currency, *amount_cents, Some(&key), attempt)
                    .await
            }
            Effect::Call { to } => self.place_call(to).await,
            Effect::Event { url, fields } => self.send_event(url, fields).await,
            Effect::Ussn { .. } | Effect::Ussr { .. } => Outcome::NotSent {
                reason: "USSD pushes need an SMPP bind and none is configured".into(),
            },
        }
    }

    /// POSTs an end-of-session notification (no AT credentials: the receiver is the
    /// operator's own app). Only a 200 counts as delivered; anything else is retried.
    pub async fn send_event(&self, url: &str, fields: &[(String, String)]) -> Outcome {
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let req = match http::Request::post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(body)))
        {
            Ok(r) => r,
            Err(e) => return Outcome::permanent(format!("cannot build the request: {e}")),
        };
        match self.transport.send(req, self.timeout).await {
            Ok(resp) if resp.status == http::StatusCode::OK => Outcome::Sent {
                detail: "receiver answered 200".into(),
            },
            Ok(resp) => {
                Outcome::transient(format!("receiver answered HTTP {}", resp.status.as_u16()))
            }
            Err(e) => classify::from_transport(&e),
        }
    }

    /// Sends an SMS to `to` (canonical MSISDN).
    pub async fn send_sms(&self, to: &str, message: &str) -> Outcome {
        let Some(account) = &self.account else {
            return not_configured();
        };
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("username", &account.username)
                .append_pair("to", &international(to))
                .append_pair("message", message);
            if let Some(from) = &self.sender_id {
                form.append_pair("from", from);
            }
            form.finish()
        };
        let url = format!("{}/version1/messaging", self.messaging);
        match self.post(account, &url, body, None).await {
            Ok(resp) => classify::sms(&resp),
            Err(o) => o,
        }
    }

    /// Sends `amount_cents` minor units of airtime in `currency` to `to`.
    pub async fn send_airtime(
        &self,
        to: &str,
        currency: &str,
        amount_cents: i64,
        idempotency_key: Option<&str>,
        attempt: u32,
    ) -> Outcome {
        let Some(account) = &self.account else {
            return not_configured();
        };
        if amount_cents <= 0 {
            return Outcome::Permanent {
                reason: format!("invalid airtime amount {amount_cents} (minor units)"),
            };
        }
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Outcome::Permanent {
                reason: format!("invalid currency code {currency:?}"),
            };
        }
        let recipients = serde_json::json!([{
            "phoneNumber": international(to),
            "currencyCode": currency,
            "amount": format_amount(amount_cents),
        }]);
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("username", &account.username)
            .append_pair("recipients", &recipients.to_string())
            .finish();
        let url = format!("{}/version1/airtime/send", self.airtime);
        match self.post(account, &url, body, idempotency_key).await {
            Ok(resp) => classify::airtime(&resp, attempt),
            Err(o) => o,
        }
    }

    /// Places a call from our AT voice number to `to`.
    pub async fn place_call(&self, to: &str) -> Outcome {
        let Some(account) = &self.account else {
            return not_configured();
        };
        let Some(from) = &self.voice_number else {
            return Outcome::NotSent {
                reason: "not sent: no AT voice_number configured".into(),
            };
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("username", &account.username)
            .append_pair("from", &international(from))
            .append_pair("to", &international(to))
            .finish();
        let url = format!("{}/call", self.voice);
        match self.post(account, &url, body, None).await {
            Ok(resp) => classify::call(&resp),
            Err(o) => o,
        }
    }

    async fn post(
        &self,
        account: &Account,
        url: &str,
        body: String,
        idempotency_key: Option<&str>,
    ) -> Result<super::transport::RawResponse, Outcome> {
        let mut req = http::Request::post(url)
            .header("apiKey", account.api_key.expose())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Outcome::Permanent {
                // Base URLs are validated with the config; an API key with bad bytes lands here.
                reason: format!("cannot build the request: {e}"),
            })?;
        self.transport
            .send(req, self.timeout)
            .await
            .map_err(|e| classify::from_transport(&e))
    }
}

fn not_configured() -> Outcome {
    Outcome::NotSent {
        reason: "not sent: no AT account configured".into(),
    }
}
