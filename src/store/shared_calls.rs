//! Voice call records kept for the whole cluster in Redis: `ussd:{calls}:call:<session id>`
//! (JSON, written once per call, expiring after `[retention] call_records_days`) and
//! `ussd:{calls}:index` (a sorted set of session ids by when they were stored, for listing,
//! oldest first). A final callback the aggregator posts twice, to one node or two, is stored
//! once.

use super::StoreError;
use super::shared_records::SharedRecords;
use redis::Script;
use serde_json::Value;
use std::sync::LazyLock;

const INDEX: &str = "ussd:{calls}:index";
const PREFIX: &str = "ussd:{calls}:call:";

/// `KEYS`: the call's key, the index. `ARGV`: record, now ms, ttl ms, session id. Answers 1
/// when stored, 0 when the call was stored already.
static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
return 1
",
    )
});

/// `KEYS`: the index. `ARGV`: the prefix of call keys. Answers the records, oldest first.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then out[#out + 1] = v end
end
return out
",
    )
});

impl SharedRecords {
    /// Stores the record `doc` of the call `session_id` unless it is stored already; answers
    /// whether it was.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn store_call_once(&self, session_id: &str, doc: &[u8]) -> Result<bool, StoreError> {
        let mut inv = STORE.prepare_invoke();
        inv.key(format!("{PREFIX}{session_id}"))
            .key(INDEX)
            .arg(doc)
            .arg(crate::clock::now_ms())
            .arg(self.call_records_ttl().as_millis().max(1) as u64)
            .arg(session_id);
        let stored: u8 = self.redis().script("calls_store", &inv).await?;
        Ok(stored == 1)
    }

    /// Every call record kept, oldest first.
    ///
    /// # Errors
    /// Redis failed, or a record is not JSON.
    pub async fn call_documents(&self) -> Result<Vec<Value>, StoreError> {
        let mut inv = LIST.prepare_invoke();
        inv.key(INDEX).arg(PREFIX);
        let docs: Vec<String> = self.redis().script("calls_list", &inv).await?;
        docs.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
    }
}
