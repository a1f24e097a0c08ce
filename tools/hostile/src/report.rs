// SPDX-License-Identifier: GPL-2.0

//! The one line a run prints: `scenario=NAME reply=TEXT code=N`.

use crate::scenario::{Outcome, Scenario};
use selfmig_proto::admission::Reason;
use selfmig_proto::wire::{
    ABORT_RESTORE_UNSUPPORTED, ABORT_SOURCE_FAILED, ABORT_TARGET_FAILED, ABORT_VERIFY_FAILED,
};

/// The report line; `code` is 0 when the loader sent no refusal.
pub fn line(scenario: Scenario, outcome: &Outcome) -> String {
    let (text, code) = match outcome {
        Outcome::Refused(code) => (reason_text(*code), *code),
        Outcome::Closed => ("closed".to_string(), 0),
        Outcome::Other(what) => (what.clone(), 0),
    };
    format!("scenario={} reply={text} code={code}", scenario.name())
}

/// The text of a refusal code as a source can know it.
///
/// `Reason::from_code` cannot restore the wire error inside `BadRecord`
/// (151) and `Malformed` (154), only the code; the loader's own log and
/// `stats` name it.
pub fn reason_text(code: u32) -> String {
    match (code, Reason::from_code(code)) {
        (_, Some(Reason::BadRecord(_))) => "bad record header".into(),
        (_, Some(Reason::Malformed(_))) => "malformed payload".into(),
        (_, Some(reason)) => reason.as_str().into(),
        (ABORT_SOURCE_FAILED, None) => "source failed".into(),
        (ABORT_RESTORE_UNSUPPORTED, None) => "restore unsupported".into(),
        (ABORT_VERIFY_FAILED, None) => "image failed verification".into(),
        (ABORT_TARGET_FAILED, None) => "target failed".into(),
        (_, None) => "unknown reason".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            line(Scenario::OutOfRange, &Outcome::Refused(155)),
            "scenario=out-of-range reply=page outside the RAM map code=155"
        );
        assert_eq!(
            line(Scenario::Oversize, &Outcome::Refused(151)),
            "scenario=oversize reply=bad record header code=151"
        );
        assert_eq!(
            line(Scenario::Truncated, &Outcome::Closed),
            "scenario=truncated reply=closed code=0"
        );
        assert_eq!(
            line(Scenario::Reorder, &Outcome::Other("no answer".into())),
            "scenario=reorder reply=no answer code=0"
        );
        assert_eq!(reason_text(4), "target failed");
        assert_eq!(reason_text(999), "unknown reason");
        assert_eq!(reason_text(152), "record out of order");
    }
}
