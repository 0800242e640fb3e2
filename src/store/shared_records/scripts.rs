//! The Lua scripts of the shared records and ledger, and the arguments of a commit.

use super::{
    JOURNAL, OUTBOX_ITEMS, OUTBOX_LATER, OUTBOX_READY, Snapshot, applied_key, collection_key,
    record_key,
};
use crate::store::StoreError;
use redis::Script;
use std::sync::LazyLock;

/// `KEYS`: idempotency key, ids, outbox items, then the records. `ARGV`: how many ids to
/// take, then the outbox item ids. Answers `done` and the stored outcome, or `read`, the last
/// id taken and the values (nil: absent).
pub(super) static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local done = redis.call('GET', KEYS[1])
if done then return {'done', done} end
local n = tonumber(ARGV[1])
local last = 0
if n > 0 then last = redis.call('INCRBY', KEYS[2], n) end
local out = {'read', tostring(last)}
for i = 4, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) end
for i = 2, #ARGV do out[#out + 1] = redis.call('HGET', KEYS[3], ARGV[i]) end
return out
",
    )
});

/// `KEYS`: idempotency key, outbox items, ready, later, journal, the dialogue's applied
/// transactions, the records read, the records written, their collections. `ARGV`: outcome
/// ('' for none), its ms, now, then the counts (records read, written, items read, items
/// written, journal entries), the transaction id and hop to note as the dialogue's ('' for
/// none), then: each
/// read record's value as read ('' when absent); each written record's value and id; each
/// read item's id and value as read; each written item's id, value and when it is due (-1: an
/// item changed, not queued); each journal entry's field and value.
pub(super) static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {'done', redis.call('GET', KEYS[1])} end
local nr, nw = tonumber(ARGV[4]), tonumber(ARGV[5])
local nc, np, nj = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local a = 11
for i = 1, nr do
  if (redis.call('GET', KEYS[6 + i]) or '') ~= ARGV[a] then return {'conflict'} end
  a = a + 1
end
local w = a
a = a + 2 * nw
for i = 1, nc do
  if (redis.call('HGET', KEYS[2], ARGV[a]) or '') ~= ARGV[a + 1] then return {'conflict'} end
  a = a + 2
end
for i = 1, nw do
  redis.call('SET', KEYS[6 + nr + i], ARGV[w])
  redis.call('SADD', KEYS[6 + nr + nw + i], ARGV[w + 1])
  w = w + 2
end
local now = tonumber(ARGV[3])
for i = 1, np do
  redis.call('HSET', KEYS[2], ARGV[a], ARGV[a + 1])
  local due = tonumber(ARGV[a + 2])
  if due >= 0 then
    if due <= now then
      redis.call('XADD', KEYS[3], '*', 'id', ARGV[a])
    else
      redis.call('ZADD', KEYS[4], due, ARGV[a])
    end
  end
  a = a + 3
end
for i = 1, nj do
  redis.call('HSET', KEYS[5], ARGV[a], ARGV[a + 1])
  a = a + 2
end
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[6], ARGV[9], ARGV[10])
  redis.call('PEXPIRE', KEYS[6], ARGV[2])
end
return {'ok'}
",
    )
});

/// `KEYS`: idempotency key. `ARGV`: outcome, its ms. Stores a failed transaction's outcome
/// unless an attempt of the same hop stored one first (answered `done` with it).
pub(super) static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'ok'} end
return {'done', redis.call('GET', KEYS[1])}
",
    )
});

/// `KEYS`: the collection's set. `ARGV`: the prefix of its records' keys. Answers id, value
/// pairs.
pub(super) static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
  end
end
return out
",
    )
});

/// `KEYS`: records, then their collections. `ARGV`: `nx` (write only records that do not
/// exist yet: sample data never replaces what a flow wrote) or `set` (replace), then the
/// values, then the ids. Answers how many were written.
pub(super) static PUT_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = #KEYS / 2
local written = 0
for i = 1, n do
  local ok
  if ARGV[1] == 'nx' then
    ok = redis.call('SET', KEYS[i], ARGV[1 + i], 'NX')
  else
    ok = redis.call('SET', KEYS[i], ARGV[1 + i])
  end
  if ok then written = written + 1 end
  redis.call('SADD', KEYS[n + i], ARGV[1 + n + i])
end
return written
",
    )
});

/// The arguments of [`COMMIT`] for what `snap` read and wrote.
pub(super) fn commit_invocation<'a>(
    idem: &str,
    applied: Option<(&str, u64, u32)>,
    snap: &Snapshot,
    outcome: &str,
    ttl: &str,
    now: u64,
) -> Result<redis::ScriptInvocation<'a>, StoreError> {
    let mut inv = COMMIT.prepare_invoke();
    inv.key(idem)
        .key(OUTBOX_ITEMS)
        .key(OUTBOX_READY)
        .key(OUTBOX_LATER)
        .key(JOURNAL)
        .key(applied.map_or_else(|| applied_key("-", 0), |(k, _, _)| k.to_string()));
    let read: Vec<(&String, &Option<String>)> = snap.read.iter().collect();
    for (k, _) in &read {
        inv.key(record_key(k));
    }
    for (k, _) in &snap.written {
        inv.key(record_key(k));
    }
    for (k, _) in &snap.written {
        let collection = k.split_once('/').map_or(k.as_str(), |(c, _)| c);
        inv.key(collection_key(collection));
    }
    inv.arg(outcome).arg(ttl).arg(now);
    inv.arg(read.len())
        .arg(snap.written.len())
        .arg(snap.items_read.len())
        .arg(snap.items.len())
        .arg(snap.journal.len());
    match applied {
        Some((_, txn, hop)) => inv.arg(txn).arg(hop),
        None => inv.arg("").arg(""),
    };
    for (_, v) in &read {
        inv.arg(v.as_deref().unwrap_or(""));
    }
    for (k, v) in &snap.written {
        let id = k.split_once('/').map_or("", |(_, id)| id);
        inv.arg(serde_json::to_string(v)?).arg(id);
    }
    for (id, v) in &snap.items_read {
        inv.arg(id).arg(v.as_deref().unwrap_or(""));
    }
    for (item, new) in &snap.items {
        let due: i64 = if *new {
            item.next_attempt_ms as i64
        } else {
            -1
        };
        inv.arg(item.id).arg(serde_json::to_string(item)?).arg(due);
    }
    for e in &snap.journal {
        inv.arg(format!("{:020}:{:05}", e.txn, e.seq))
            .arg(serde_json::to_string(e)?);
    }
    Ok(inv)
}
