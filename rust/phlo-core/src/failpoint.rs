//! Named points where tests inject a failure between two steps of a commit, to prove that a
//! crash or an error there loses nothing. `PHLO_FAILPOINTS=commit.after-swap,…` arms them;
//! unset (always, outside tests) every point is a no-op costing one environment lookup.
//!
//! `NAME:pause` instead holds the process at the point, so that a test can race other
//! processes against it or kill it there: it creates `NAME.paused` in the folder
//! `PHLO_FAILPOINT_DIR` and waits until `NAME.resume` appears next to it.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

const VARIABLE: &str = "PHLO_FAILPOINTS";
const PAUSE_DIR: &str = "PHLO_FAILPOINT_DIR";

/// Fails with an injected error when `name` is armed; pauses when `name:pause` is.
pub(crate) fn hit(name: &str) -> Result<()> {
    let armed = std::env::var(VARIABLE).unwrap_or_default();
    for point in armed.split(',').map(str::trim) {
        if point == name {
            return Err(Error::Storage {
                path: format!("failpoint {name}"),
                source: std::io::Error::other(format!("injected failure at {name} ({VARIABLE})")),
            });
        }
        if point.strip_suffix(":pause") == Some(name) {
            pause(name)?;
        }
    }
    Ok(())
}

fn pause(name: &str) -> Result<()> {
    let dir = std::env::var(PAUSE_DIR).unwrap_or_default();
    let storage = |path: &Path, source| Error::Storage {
        path: path.display().to_string(),
        source,
    };
    let paused = Path::new(&dir).join(format!("{name}.paused"));
    std::fs::write(&paused, b"").map_err(|e| storage(&paused, e))?;
    let resume = Path::new(&dir).join(format!("{name}.resume"));
    // A blocking wait is fine: only a test arms it, and the whole commit is meant to stand still.
    while !resume.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
