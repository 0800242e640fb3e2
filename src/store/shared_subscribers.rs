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
    /// For each new dialogue (`msisdn`, `service_code`, `session`): names it the latest of its
    /// subscriber on its route, and answers the one named before if it is another and still
    /// live. One round trip for all of them (per server, in a Cluster), and one more to ask
    /// which of the older dialogues are live (most have ended by themselves).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn supersede(
        &self,
        started: &[(&str, &str, &str)],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let mut pipe = redis::pipe();
        for (msisdn, service_code, session) in started {
            pipe.cmd("SET")
                .arg(format!("{PREFIX}{{{msisdn}}}:{service_code}"))
                .arg(*session)
                .arg("PX")
                .arg(SUBSCRIBER_TTL_MS)
                .arg("GET");
        }
        let before: Vec<Option<String>> = self.redis().pipeline("supersede", &pipe).await?;
        let older: Vec<Option<String>> = before
            .into_iter()
            .zip(started)
            .map(|(b, (_, _, session))| b.filter(|b| b != session))
            .collect();
        if older.iter().all(Option::is_none) {
            return Ok(older);
        }
        let mut exists = redis::pipe();
        for key in older.iter().flatten() {
            exists
                .cmd("EXISTS")
                .arg(super::shared_dialogues::live_key(key));
        }
        let mut live: Vec<bool> = self
            .redis()
            .pipeline::<Vec<bool>>("supersede", &exists)
            .await?
            .into_iter()
            .rev()
            .collect();
        Ok(older
            .into_iter()
            .map(|o| o.filter(|_| live.pop().unwrap_or(false)))
            .collect())
    }
}
