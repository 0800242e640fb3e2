//! Cluster mode's supersede index: which dialogue is a subscriber's latest on a service code,
//! whichever node started it. `ussd:sub:{<msisdn>}:<service code>` holds its session key,
//! replaced (and its previous value read) in one command by each new dialogue, and expires
//! after [`SUBSCRIBER_TTL_MS`] (an entry older than any dialogue lives names an ended one,
//! which ending again does nothing).

use super::StoreError;
use super::shared_dialogues::SharedDialogues;

const PREFIX: &str = "ussd:sub:";
/// Longer than a USSD dialogue lives (networks end them within minutes).
const SUBSCRIBER_TTL_MS: u64 = 3_600_000;

impl SharedDialogues {
    /// Names `session` the latest dialogue of `msisdn` on `service_code`, and answers the one
    /// named before, if it is another.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn supersede(
        &self,
        msisdn: &str,
        service_code: &str,
        session: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(format!("{PREFIX}{{{msisdn}}}:{service_code}"))
            .arg(session)
            .arg("PX")
            .arg(SUBSCRIBER_TTL_MS)
            .arg("GET");
        let before: Option<String> = self.redis().query(&set).await?;
        Ok(before.filter(|b| b != session))
    }
}
