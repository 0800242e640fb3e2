//! What an upstream app is sent and how its answer is read, in the style its route names
//! (`upstream_style`): Africa's Talking's form and `CON `/`END ` text (the default), or
//! Hubtel's JSON (`Type` Initiation/Response, answered with `Type` Response/Release).
//!
//! The style is the app's, not the subscriber's aggregator's: an app written for Hubtel is
//! reachable through any inbound dialect and over SMPP, as an AT-style one always was.

use crate::config::UpstreamStyle;
use crate::hop::Reply;
use crate::msisdn::Msisdn;

/// One call to the app: what it is told of the hop.
#[derive(Debug)]
pub struct Call<'a> {
    /// The session id the app knows the dialogue by.
    pub session_id: &'a str,
    /// The route's service code.
    pub service_code: &'a str,
    /// The subscriber.
    pub msisdn: &'a Msisdn,
    /// The network, or empty.
    pub network: &'a str,
    /// Every input so far joined by `*` (AT's `text`).
    pub text: &'a str,
    /// The inputs new on this hop, joined by `*`.
    pub latest: &'a str,
    /// Whether this is the dialogue's first call.
    pub first: bool,
    /// The hop's number (1 for the first).
    pub sequence: u32,
    /// What the app asked to get back (Hubtel's `ClientState`).
    pub client_state: Option<&'a str>,
}

/// The request's content type, the accepted answer type and the body.
pub fn request(style: UpstreamStyle, call: &Call<'_>) -> (&'static str, &'static str, String) {
    match style {
        UpstreamStyle::Africastalking => (
            "application/x-www-form-urlencoded",
            "text/plain",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("sessionId", call.session_id)
                .append_pair("serviceCode", call.service_code)
                .append_pair("phoneNumber", &call.msisdn.international())
                .append_pair("networkCode", call.network)
                .append_pair("text", call.text)
                .finish(),
        ),
        UpstreamStyle::Hubtel => {
            // On the Initiation, Message is the dial string, pre-filled inputs included.
            let message = if call.first {
                match (call.service_code.strip_suffix('#'), call.latest) {
                    (Some(code), latest) if !latest.is_empty() => format!("{code}*{latest}#"),
                    _ => call.service_code.to_string(),
                }
            } else {
                call.latest.to_string()
            };
            let body = serde_json::json!({
                "SessionId": call.session_id,
                "Mobile": call.msisdn.as_str(),
                "ServiceCode": call.service_code,
                "Type": if call.first { "Initiation" } else { "Response" },
                "Message": message,
                "Operator": call.network,
                "Sequence": call.sequence,
                "ClientState": call.client_state.unwrap_or_default(),
            });
            ("application/json", "application/json", body.to_string())
        }
    }
}

/// The app's answer read: the reply and, for Hubtel, the `ClientState` to send back next.
///
/// # Errors
/// An answer that is not in the style's format, in a line for the log.
pub fn answer(style: UpstreamStyle, body: &str) -> Result<(Reply, Option<String>), String> {
    match style {
        UpstreamStyle::Africastalking => {
            if let Some(t) = body.strip_prefix("CON ") {
                Ok((Reply::con(t), None))
            } else if let Some(t) = body.strip_prefix("END ") {
                Ok((Reply::end(t), None))
            } else {
                let head: String = body.chars().take(40).collect();
                Err(format!("answer does not start with CON or END: {head:?}"))
            }
        }
        UpstreamStyle::Hubtel => {
            let v: serde_json::Value = serde_json::from_str(body).map_err(|e| {
                let head: String = body.chars().take(40).collect();
                format!("answer is not JSON ({e}): {head:?}")
            })?;
            let text = v
                .get("Message")
                .and_then(|m| m.as_str())
                .ok_or("answer has no Message string")?
                .to_string();
            let state = v
                .get("ClientState")
                .and_then(|s| s.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            match v
                .get("Type")
                .and_then(|t| t.as_str())
                .map(str::to_ascii_lowercase)
            {
                Some(t) if t == "response" => Ok((Reply::con(text), state)),
                Some(t) if t == "release" => Ok((Reply::end(text), state)),
                _ => Err("answer's Type is not Response or Release".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubtel_calls_and_answers() {
        let m = Msisdn::parse("+233246912184", "233").unwrap();
        let mut call = Call {
            session_id: "s1",
            service_code: "*713#",
            msisdn: &m,
            network: "mtn",
            text: "2",
            latest: "2",
            first: true,
            sequence: 1,
            client_state: None,
        };
        let (ct, _, body) = request(UpstreamStyle::Hubtel, &call);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["Type"], "Initiation");
        assert_eq!(v["Message"], "*713*2#");
        assert_eq!(v["Mobile"], "233246912184");
        call.first = false;
        call.sequence = 2;
        call.client_state = Some("x");
        let v: serde_json::Value =
            serde_json::from_str(&request(UpstreamStyle::Hubtel, &call).2).unwrap();
        assert_eq!(
            (v["Type"].as_str(), v["Message"].as_str()),
            (Some("Response"), Some("2"))
        );
        assert_eq!(
            (v["Sequence"].as_u64(), v["ClientState"].as_str()),
            (Some(2), Some("x"))
        );
        let (r, s) = answer(
            UpstreamStyle::Hubtel,
            r#"{"Type":"release","Message":"Bye","ClientState":"k"}"#,
        )
        .unwrap();
        assert_eq!((r, s.as_deref()), (Reply::end("Bye"), Some("k")));
        assert!(answer(UpstreamStyle::Hubtel, "CON hi").is_err());
        assert!(answer(UpstreamStyle::Hubtel, r#"{"Type":"Other","Message":""}"#).is_err());
        assert!(answer(UpstreamStyle::Africastalking, "CON hi").is_ok());
    }
}
