//! Named points where tests inject a failure between two steps of a commit, to prove that a
//! crash or an error there loses nothing. `PHLO_FAILPOINTS=commit.after-swap,…` arms them;
//! unset (always, outside tests) every point is a no-op costing one environment lookup.

use crate::error::{Error, Result};

const VARIABLE: &str = "PHLO_FAILPOINTS";

/// Fails with an injected error when `name` is armed.
pub(crate) fn hit(name: &str) -> Result<()> {
    let armed = std::env::var(VARIABLE).unwrap_or_default();
    if armed.split(',').any(|point| point.trim() == name) {
        return Err(Error::Storage {
            path: format!("failpoint {name}"),
            source: std::io::Error::other(format!("injected failure at {name} ({VARIABLE})")),
        });
    }
    Ok(())
}
