//! The open licences the commons accepts: everything in it stays reusable by everyone.

use crate::Refusal;

/// SPDX ids of the licences accepted into the commons.
pub const OPEN_LICENSES: [&str; 10] = [
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "PDDL-1.0",
    "ODC-By-1.0",
    "ODbL-1.0",
    "GFDL-1.3-or-later",
    "MIT",
    "Apache-2.0",
    "GPL-3.0-or-later",
];

/// Refuses a licence that is not on the allowlist.
pub fn check_open(spdx: &str) -> Result<(), Refusal> {
    if OPEN_LICENSES.contains(&spdx) {
        Ok(())
    } else {
        Err(Refusal::LicenseNotOpen(spdx.to_owned()))
    }
}
