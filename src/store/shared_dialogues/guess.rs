//! Writes on a guess: a hop answered on the node's copy of a dialogue without taking its lease
//! first (docs/cluster.md, "One round trip for most hops").
//!
//! The node guesses that its copy is the current version (or, for a dial, that nothing is kept
//! under the key) and answers the hop on it. Its write then checks the guess inside Redis: no
//! node holds the lease and the version is the one guessed. If so, the write is done, in one
//! round trip instead of a begin and a commit. If not, nothing is written, and the script does
//! what [`SharedDialogues::begin`] does (takes the lease, answers the current state), so a
//! wrong guess costs the same two round trips as no guess, and the node answers the hop again
//! on the state Redis handed back.

use super::{
    BEGIN_LUA, Begun, Ending, FINISH_LUA, KEEP_LUA, Keys, SharedDialogues, begun, finishing,
    next_version, text, token,
};
use crate::store::redis::RedisError;
use redis::{Script, Value};
use std::sync::LazyLock;

/// Whether nothing holds the lease and the kept version is the guessed one (`ARGV[3]`; '0':
/// nothing is kept under the key, not even a tombstone). `KEYS`: live, lease, tomb.
const GUESS_LUA: &str = r"
local function guessed()
  if redis.call('EXISTS', KEYS[2]) == 1 then return false end
  local v = redis.call('HGET', KEYS[1], 'v')
  if ARGV[3] == '0' then return (not v) and redis.call('EXISTS', KEYS[3]) == 0 end
  return v == ARGV[3]
end
";

/// `KEYS`: live, lease, tomb, deadlines. `ARGV`: token, lease ms, the version guessed, the next
/// version, state, deadline ms, session.
static KEEP_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{GUESS_LUA}{KEEP_LUA}
if guessed() then
  keep(KEYS[1], KEYS[4], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
  return {{'done'}}
end
{BEGIN_LUA}"
    ))
});

/// `KEYS`, then `ARGV` from the fourth: [`finishing`]'s. `ARGV`: token, lease ms, the version
/// guessed.
static FINISH_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{GUESS_LUA}{FINISH_LUA}
if guessed() then
  finish(ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
  return {{'done'}}
end
{BEGIN_LUA}"
    ))
});

/// What a write on a guess did.
#[derive(Debug, PartialEq, Eq)]
pub enum Guessed {
    /// The guess was right: written; the version now kept (0: the dialogue ended).
    Done(u64),
    /// It was wrong: nothing was written, and this is what a begin found (the lease taken,
    /// unless [`Begun::Busy`]).
    Wrong(Begun),
}

impl SharedDialogues {
    /// The live state kept for `session` and its version, read without taking the lease: what
    /// a node with no copy answers a hop on a guess with.
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn peek(&self, session: &str) -> Result<Option<(u64, Vec<u8>)>, RedisError> {
        let keys = Keys::of(session);
        let (version, state): (Option<u64>, Option<Vec<u8>>) = self
            .redis
            .query(redis::cmd("HMGET").arg(&keys.live).arg("v").arg("s"))
            .await?;
        Ok(version.zip(state))
    }

    /// Writes the dialogue's next version (`state`, idle until `deadline_ms`) if no node holds
    /// its lease and its version is `guessed` (0: nothing is kept under the key); else writes
    /// nothing and begins, taking the lease for `lease_ms`. The version written is
    /// [`next_version`]`(guessed)`.
    ///
    /// # Errors
    /// Redis failed or did not answer in time: the write may or may not have happened.
    pub async fn keep_if(
        &self,
        session: &str,
        guessed: u64,
        state: &[u8],
        deadline_ms: u64,
        lease_ms: u64,
    ) -> Result<Guessed, RedisError> {
        let keys = Keys::of(session);
        let token = token();
        let next = next_version(guessed);
        let answer: Vec<Value> = self
            .redis
            .script(
                "keep_if",
                KEEP_IF
                    .key(&keys.live)
                    .key(&keys.lease)
                    .key(&keys.tomb)
                    .key(&keys.deadlines)
                    .arg(&token)
                    .arg(lease_ms.max(1))
                    .arg(guessed)
                    .arg(next)
                    .arg(state)
                    .arg(deadline_ms)
                    .arg(session),
            )
            .await?;
        Ok(guessed_or_begun(&answer, token, next))
    }

    /// Ends the dialogue as [`SharedDialogues::end`] does, if no node holds its lease and its
    /// version is `guessed` (0: nothing is kept under the key); else writes nothing and begins,
    /// as [`SharedDialogues::keep_if`].
    ///
    /// # Errors
    /// As [`SharedDialogues::keep_if`].
    pub async fn end_if(
        &self,
        session: &str,
        guessed: u64,
        ending: &Ending<'_>,
        lease_ms: u64,
    ) -> Result<Guessed, RedisError> {
        let token = token();
        let mut inv = FINISH_IF.prepare_invoke();
        inv.arg(&token).arg(lease_ms.max(1)).arg(guessed);
        finishing(&mut inv, session, ending);
        let answer: Vec<Value> = self.redis.script("end_if", &inv).await?;
        Ok(guessed_or_begun(&answer, token, 0))
    }
}

fn guessed_or_begun(answer: &[Value], token: String, kept: u64) -> Guessed {
    if text(answer.first()) == "done" {
        Guessed::Done(kept)
    } else {
        Guessed::Wrong(begun(answer, token))
    }
}
