//! End-of-session events into the shared outbox, exactly once (docs/cluster.md, "Exactly once
//! across the cluster"): the script that ends a dialogue leaves its event in the bucket's
//! `events` hash, in the bucket's slot; the node that ended it moves it into the outbox at once,
//! and every node moves what a dead node left. A move marks the event as moved in the outbox's
//! slot, in the script that writes the item, so an event moved twice (a crash between the move
//! and the removal from its bucket, or two nodes at once) becomes one item.

use super::super::redis::RedisError;
use super::super::shared_dialogues::SharedDialogues;
use super::scripts::MOVE;
use super::{ITEMS, LATER, READY, SharedOutbox, to_json};
use crate::effect::{Effect, Item};

/// How long the mark of a moved end event is kept: far longer than an event waits between its
/// move and its removal from its bucket (seconds, unless Redis is down meanwhile).
const MOVED_MARK_MS: u64 = 7 * 86_400_000;

/// An end-of-session event waiting in its bucket's `events` hash (written by the script that
/// ends the dialogue) until a node moves it into the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndEvent {
    /// The dialogue's session key.
    pub session: String,
    /// The event to send.
    pub effect: Effect,
}

impl SharedOutbox {
    /// Moves the end event waiting under `record_key` (its dialogue's end record) into the
    /// outbox, once: a second move of the same event writes nothing (returns false). Then
    /// forgets it in its bucket. An event that does not parse is forgotten, with a warning.
    ///
    /// # Errors
    /// Redis failed: the event stays where it is, for the next move.
    pub async fn move_end_event(
        &self,
        dialogues: &SharedDialogues,
        bucket: u32,
        record_key: &str,
        event: &[u8],
    ) -> Result<bool, RedisError> {
        let moved = match serde_json::from_slice::<EndEvent>(event) {
            Ok(event) => {
                let id = self.next_id().await?;
                let now = crate::clock::now_ms();
                let item = Item::new(id, event.effect, now, None, Some(event.session));
                let written: i64 = self
                    .redis
                    .script(
                        "outbox_move",
                        MOVE.key(ITEMS)
                            .key(READY)
                            .key(LATER)
                            .key(moved_mark(record_key))
                            .arg(id)
                            .arg(to_json(&item)?)
                            .arg(item.next_attempt_ms)
                            .arg(now)
                            .arg(MOVED_MARK_MS),
                    )
                    .await?;
                written == 1
            }
            Err(e) => {
                tracing::warn!(error = %e, "an end event does not parse; dropped");
                false
            }
        };
        dialogues.forget_event(bucket, record_key).await?;
        Ok(moved)
    }

    /// Moves every end event waiting in `bucket` into the outbox (each once, whichever node
    /// moves it and however often); returns how many were new. For the events a node left
    /// when it died between a dialogue's end and the move it makes at once.
    ///
    /// # Errors
    /// Redis failed; what was not moved stays for the next time.
    pub async fn move_waiting_events(
        &self,
        dialogues: &SharedDialogues,
        bucket: u32,
    ) -> Result<usize, RedisError> {
        let mut moved = 0;
        for (record_key, event) in dialogues.waiting_events(bucket).await? {
            if self
                .move_end_event(dialogues, bucket, &record_key, &event)
                .await?
            {
                moved += 1;
            }
        }
        Ok(moved)
    }
}

/// The key of the mark of the event of end record `record_key` (`ussd:{d:<b>}:end:<session
/// key>:<started ms>`): `ussd:{tx}:outbox:moved:<session key>:<started ms>`, unique as the
/// record's key is (a session key's bucket follows from it), and in the outbox's slot.
fn moved_mark(record_key: &str) -> String {
    let name = record_key
        .split_once(":end:")
        .map_or(record_key, |(_, name)| name);
    format!("ussd:{{tx}}:outbox:moved:{name}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_moved_mark_is_in_the_outboxs_slot_and_named_after_the_record() {
        let record = super::SharedDialogues::end_record_key("at:{x}:end:y", 42);
        let mark = super::moved_mark(&record);
        assert_eq!(mark, "ussd:{tx}:outbox:moved:at:{x}:end:y:42");
    }
}
