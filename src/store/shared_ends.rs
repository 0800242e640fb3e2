//! The cluster's end-of-session records, read back for exports, `/admin/journeys` and
//! `/admin/status`: each bucket keeps its end records' keys by when they were written
//! (`ussd:{d:<b>}:ended`, a sorted set the end script writes and trims to the retention
//! period), and the records themselves expire with it.

use super::redis::RedisError;
use super::shared_dialogues::{BUCKETS, SharedDialogues};
use redis::Script;
use std::sync::LazyLock;

/// `KEYS`: a bucket's end record index. Answers its records, oldest first, forgetting the
/// keys of records that expired.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for _, k in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', k)
  if v then out[#out + 1] = v else redis.call('ZREM', KEYS[1], k) end
end
return out
",
    )
});

fn index(bucket: u32) -> String {
    format!("ussd:{{d:{bucket}}}:ended")
}

impl SharedDialogues {
    /// Every end record the cluster keeps (JSON), bucket by bucket.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn end_records(&self) -> Result<Vec<Vec<u8>>, RedisError> {
        let mut out = Vec::new();
        for b in 0..BUCKETS {
            let mut inv = LIST.prepare_invoke();
            inv.key(index(b));
            let records: Vec<Vec<u8>> = self.redis().script("ended_list", &inv).await?;
            out.extend(records);
        }
        Ok(out)
    }

    /// How many live dialogues the cluster keeps (each bucket's sweep index).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn live_count(&self) -> Result<usize, RedisError> {
        let mut n = 0;
        for b in 0..BUCKETS {
            let c: usize = self
                .redis()
                .query(redis::cmd("ZCARD").arg(format!("ussd:{{d:{b}}}:deadlines")))
                .await?;
            n += c;
        }
        Ok(n)
    }

    /// How many end records the cluster keeps (those expired in the last moments may still
    /// count until a listing forgets them).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn ended_count(&self) -> Result<usize, RedisError> {
        let mut n = 0;
        for b in 0..BUCKETS {
            let c: usize = self
                .redis()
                .query(redis::cmd("ZCARD").arg(index(b)))
                .await?;
            n += c;
        }
        Ok(n)
    }
}
