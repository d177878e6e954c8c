//! How a `bench` run ends, whichever mode ran it (the rows, the balanced rows, call mode): the
//! files it was asked for are written and named on stdout, the comparison with `--compare`'s
//! saved run is printed, and the run fails when a row measured nothing. One place, so every mode
//! says the same words in the same order.

use super::compare::{self, Saved};
use super::BenchArgs;
use crate::plot;
use crate::report::{self, Group};
use std::{error::Error, fmt::Display, path::Path};

/// Writes `path` with `write`, then says `wrote PATH` (on stderr for `-`, stdout); a failure
/// names the file.
pub(super) fn write_file<E: Display>(
    path: &Path,
    write: impl FnOnce() -> Result<(), E>,
) -> Result<(), String> {
    write().map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    if path == Path::new(crate::atomic_file::STDOUT) {
        crate::out::errln!("wrote the report to stdout");
    } else {
        crate::out::outln!("wrote {}", path.display());
    }
    Ok(())
}

/// What follows the `--json` report (written by each mode, as its setup differs): the `--plot`
/// of every row, the comparison with `saved`, and the verdict on `groups` (a row that measured
/// nothing fails the run). A plot that cannot be drawn (no row measured a call) fails the run
/// too, after the comparison and with the failed rows named: they say why.
pub(super) fn finish(
    args: &BenchArgs,
    groups: &[Group],
    saved: Option<&Saved>,
) -> Result<(), Box<dyn Error>> {
    let plotted = match &args.plot {
        Some(path) => write_file(path, || plot::write_svg(path, groups)),
        None => Ok(()),
    };
    if let Some(saved) = saved {
        crate::out::outln!("{}", compare::compare(groups, saved).0);
    }
    match (report::failures(groups), plotted) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(failed), Ok(())) | (Ok(()), Err(failed)) => Err(failed.into()),
        (Err(failed), Err(plot)) => Err(format!("{failed}\n{plot}").into()),
    }
}
