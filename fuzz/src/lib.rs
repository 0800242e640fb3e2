//! The fuzz targets' shared checks. `src/checks.rs` is also compiled into
//! `tests/fuzz_replay.rs` (by `#[path]`), which replays every corpus and regression input
//! under plain `cargo test`.

pub mod checks;
