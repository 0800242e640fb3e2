//! Replays every fuzz target's corpus and regression inputs (fuzz/corpus/<target>/ and
//! fuzz/regressions/<target>/) through the same checks the cargo-fuzz targets make, under plain
//! `cargo test` on stable. The checks live in fuzz/src/checks.rs, compiled here by `#[path]`;
//! how to run the fuzzers themselves is in docs/reliability.md.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The input files of one target: corpus and regressions, dotfiles (`.gitkeep`) left out.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.expect("directory entry").path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for file in &files {
        let data = std::fs::read(file).expect("readable input");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check",
            file.display()
        );
    }
}

#[test]
fn every_target_has_a_corpus_and_a_regressions_folder() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, _) in checks::TARGETS {
        assert!(
            fuzz.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "{target}"
        );
        assert!(fuzz.join("regressions").join(target).is_dir(), "{target}");
        assert!(!inputs(target).is_empty(), "{target}");
    }
}

#[test]
fn smpp_decode() {
    replay("smpp_decode");
}

#[test]
fn smpp_session() {
    replay("smpp_session");
}

#[test]
fn at_form() {
    replay("at_form");
}

#[test]
fn flow_load() {
    replay("flow_load");
}

#[test]
fn template_render() {
    replay("template_render");
}

#[test]
fn voice_callback() {
    replay("voice_callback");
}

/// The session seeds must reach past the bind, or the fuzzer starts from shallow states: a
/// listener dialogue is bound and its submit_sm taken, an ESME dialogue's deliver_sm taken.
#[test]
fn the_session_seeds_reach_past_the_bind() {
    use rusmpp::{CommandId, CommandStatus};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/smpp_session");
    let ok = |answers: &[rusmpp::Command], id: CommandId| {
        answers
            .iter()
            .any(|a| a.id() == id && a.status() == CommandStatus::EsmeRok)
    };
    let answers =
        checks::smpp_session_answers(&std::fs::read(dir.join("listener_profile0")).unwrap());
    assert!(ok(&answers, CommandId::BindTransceiverResp), "{answers:?}");
    assert!(ok(&answers, CommandId::SubmitSmResp), "{answers:?}");
    let answers = checks::smpp_session_answers(&std::fs::read(dir.join("esme_profile0")).unwrap());
    assert!(ok(&answers, CommandId::DeliverSmResp), "{answers:?}");
    assert!(ok(&answers, CommandId::EnquireLinkResp), "{answers:?}");
}
