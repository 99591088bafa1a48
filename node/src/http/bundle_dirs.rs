//! The directories bundle paths must stay in: `<data dir>/bundles/` (where a relative path
//! starts) and the ones the operator lists. The bundle routes (`api/bundles`) confine every
//! path a client gives to them.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::Error;

/// The directories bundle paths must stay in.
#[derive(Debug, Clone)]
pub struct BundleDirs {
    /// `<data dir>/bundles/`: where relative paths start.
    home: PathBuf,
    /// The operator's further directories.
    others: Vec<PathBuf>,
}

impl BundleDirs {
    /// Creates `home` if needed. The others are looked at on each request: a drive may be
    /// mounted after the node started.
    pub fn open(home: PathBuf, others: Vec<PathBuf>) -> io::Result<BundleDirs> {
        std::fs::create_dir_all(&home)?;
        Ok(BundleDirs { home, others })
    }

    /// The path a client gave, resolved and checked: where the bundle file is, inside one of
    /// the directories, not a symlink.
    pub fn confine(&self, given: &Path) -> Result<PathBuf, Error> {
        let refuse = |why: &str| {
            Error::PathNotAllowed(format!(
                "{}: {why}; bundles go in the node's bundles directory or one the operator lists",
                given.display()
            ))
        };
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(refuse("\"..\" is not allowed"));
        }
        let full = self.home.join(given);
        let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
            return Err(refuse("not a file name"));
        };
        let parent = parent
            .canonicalize()
            .map_err(|_| refuse("its directory does not exist"))?;
        let inside = std::iter::once(&self.home)
            .chain(&self.others)
            .filter_map(|dir| dir.canonicalize().ok())
            .any(|dir| parent.starts_with(dir));
        if !inside {
            return Err(refuse("outside the bundle directories"));
        }
        let path = parent.join(name);
        if path.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
            return Err(refuse("a symbolic link"));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_bundle_directories() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("bundles");
        let drive = root.path().join("drive");
        std::fs::create_dir(&drive).unwrap();
        let dirs = BundleDirs::open(home.clone(), vec![drive.clone()]).unwrap();
        let home = home.canonicalize().unwrap();
        assert_eq!(
            dirs.confine(Path::new("a.mbundle")).unwrap(),
            home.join("a.mbundle")
        );
        assert_eq!(
            dirs.confine(&drive.join("b")).unwrap(),
            drive.canonicalize().unwrap().join("b")
        );
        let outside = root.path().join("elsewhere");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, home.join("link-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), home.join("link-file")).unwrap();
        for bad in [
            PathBuf::from("../a"),
            home.join("../elsewhere/a"),
            outside.join("a"),
            PathBuf::from("link-dir/a"),
            PathBuf::from("link-file"),
            PathBuf::from("missing-dir/a"),
            PathBuf::from("/"),
        ] {
            let refused = dirs.confine(&bad).unwrap_err();
            assert!(matches!(refused, Error::PathNotAllowed(_)), "{bad:?}");
        }
    }
}
