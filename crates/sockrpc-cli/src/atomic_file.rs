//! Writing a report file (`bench --json`, `--plot`, `--rate-plot`) whole or not at all.
//!
//! `std::fs::write` truncates the file and then writes it: a run stopped in between (Ctrl-C,
//! SIGTERM, a full disk) left a truncated report where the last good one was, and a reader
//! of the file (a dashboard, a `--compare` of the next run) could meet it half written. The
//! text now goes to a temporary file beside it, which is renamed over it once complete: the
//! path holds the old report or the new one, never part of one.
//!
//! A signal (Ctrl-C, SIGTERM) while the temporary file is written removes it before the
//! process exits ([`crate::interrupt::removing_on_interrupt`]): it used to stay, hidden.
//!
//! A path that is not a regular file (`/dev/stdout`, a named pipe) cannot be replaced by a
//! rename, and must not be: it is written in place, as before. A symbolic link is followed,
//! so the link stays and its target gets the report. `-` is stdout, as for most tools: the
//! report is written there whole ([`crate::out::report`]).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The path that names stdout.
pub(crate) const STDOUT: &str = "-";

/// Writes `contents` to `path`: the whole of it, or (on an error) nothing, the file as it was.
pub(crate) fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    if path == Path::new(STDOUT) {
        return crate::out::report(contents);
    }
    let existing = fs::metadata(path).ok();
    if existing.as_ref().is_some_and(|meta| !meta.is_file()) {
        return fs::write(path, contents);
    }
    // The file a symbolic link names, so that the rename replaces it and not the link.
    let target = match existing {
        Some(_) => path.canonicalize()?,
        None => path.to_path_buf(),
    };
    let temp = temporary(&target)?;
    // A signal meanwhile removes the temporary file too (see `crate::interrupt`).
    crate::interrupt::removing_on_interrupt(&temp, || {
        // Not renamed over the last good report once a signal was taken: the process exits.
        let written =
            write_new(&temp, contents, existing.map(|meta| meta.permissions())).and_then(|()| {
                match crate::interrupt::interrupted() {
                    false => fs::rename(&temp, &target),
                    true => Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted")),
                }
            });
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    })
}

/// The temporary file for `target`: hidden, in the same directory (a rename does not cross
/// file systems), and named after this process so two runs writing one path do not share it.
fn temporary(target: &Path) -> io::Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", target.display()),
        )
    })?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".{}.tmp", std::process::id()));
    Ok(target.with_file_name(temp))
}

/// Writes `contents` to a new file at `temp` and syncs it to disk, with the `permissions` of
/// the file it will replace.
fn write_new(temp: &Path, contents: &[u8], permissions: Option<fs::Permissions>) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)?;
    file.write_all(contents)?;
    if let Some(permissions) = permissions {
        file.set_permissions(permissions)?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::write;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sockrpc-atomic-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// The file is replaced, not written in place: a second name for the old file (a reader
    /// that has it open) still holds the old report, whole; no temporary file is left.
    #[test]
    fn a_report_replaces_the_old_one_whole() {
        let dir = scratch("replace");
        let (path, old) = (dir.join("r.json"), dir.join("old.json"));
        std::fs::write(&path, "old report").expect("old");
        std::fs::hard_link(&path, &old).expect("link");
        write(&path, b"new report").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new report");
        assert_eq!(std::fs::read_to_string(&old).expect("read"), "old report");
        let names = std::fs::read_dir(&dir).expect("list").count();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(names, 2, "a temporary file was left");
    }

    /// A symbolic link stays a link; the file it names gets the report.
    #[cfg(unix)]
    #[test]
    fn a_link_stays_and_its_target_gets_the_report() {
        let dir = scratch("link");
        let (path, link) = (dir.join("r.json"), dir.join("latest.json"));
        std::fs::write(&path, "old").expect("old");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        write(&link, b"new").expect("write");
        let is_link = std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink();
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(is_link, "the link was replaced by a file");
        assert_eq!(text, "new");
    }

    /// A new file is created; an unwritable directory is an error and leaves nothing.
    #[test]
    fn a_new_file_is_written_and_a_missing_directory_is_an_error() {
        let dir = scratch("new");
        let path = dir.join("r.svg");
        write(&path, b"<svg/>").expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let missing = write(&dir.join("no-such-dir").join("r.svg"), b"x");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(text, "<svg/>");
        assert!(missing.is_err());
    }
}
