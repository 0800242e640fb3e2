//! The Lua scripts of the shared outbox: each changes the outbox's keys (one hash tag,
//! `{tx}`) at once, so no crash and no other node sees half of it.

use redis::Script;
use std::sync::LazyLock;

/// Lua that defines `enqueue(items, ready, later, id, json, due_ms, now_ms)`: writes a new item
/// and makes it due (an entry in the stream) or waiting (a place in `later`); returns 0 and
/// writes nothing when an item has that id already (a repeated move of one end event). For
/// scripts that write items with other changes (the ledger's): prepend it and call it with
/// [`super::ITEMS`], [`super::READY`], [`super::LATER`] among the script's keys.
pub const ENQUEUE_LUA: &str = r"
local function enqueue(items, ready, later, id, json, due_ms, now_ms)
  if redis.call('HSETNX', items, id, json) == 0 then return 0 end
  if tonumber(due_ms) <= tonumber(now_ms) then
    redis.call('XADD', ready, '*', 'id', id)
  else
    redis.call('ZADD', later, due_ms, id)
  end
  return 1
end
";

/// `KEYS`: items, ready, later. `ARGV`: id, JSON, due ms, now ms.
pub(super) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{ENQUEUE_LUA}\nreturn enqueue(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"
    ))
});

/// `KEYS`: items, ready, later, the event's moved mark. `ARGV`: id, JSON, due ms, now ms, how
/// long the mark is kept (ms). Moves an end event in once: the mark says it was.
pub(super) static MOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{ENQUEUE_LUA}
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[5]) then return 0 end
return enqueue(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"
    ))
});

/// `KEYS`: items, ready, later. `ARGV`: id, old JSON, new JSON, due ms ('' to leave where it
/// waits), now ms. Writes only over the JSON read.
pub(super) static SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then
  if tonumber(ARGV[4]) <= tonumber(ARGV[5]) then
    redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
  else
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  end
end
return 1
",
    )
});

/// `KEYS`: items, ready, later. `ARGV`: id, claimed JSON, result JSON, entry, group, due ms
/// ('' for a final result). The result of a delivery, written only over the sender's claim,
/// and the entry acknowledged with it.
pub(super) static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1]) end
redis.call('XACK', KEYS[2], ARGV[5], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[4])
return 1
",
    )
});

/// `KEYS`: ready, later. `ARGV`: entry, group, id, due ms ('' to only acknowledge). Done with
/// an entry: its item is final (or gone), or waits in `later` until `due ms`.
pub(super) static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) end
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
",
    )
});

/// `KEYS`: later, ready. `ARGV`: now ms, at most how many. Moves the due members of `later`
/// into the stream; answers how many moved, the stream's length, how many wait, and when the
/// next one falls due (0: none waits).
pub(super) static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'id', id)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, redis.call('XLEN', KEYS[2]), redis.call('ZCARD', KEYS[1]), next[2] or '0'}
",
    )
});

/// `KEYS`: items. `ARGV`: id, JSON read. Removes the item if it is still as read.
pub(super) static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
",
    )
});
