//! The directories bundle paths must stay in: `<data dir>/bundles/` (where a relative path
//! starts) and the ones the operator lists. The bundle routes (`api/bundles`) confine every
//! path a client gives to them; the operator's page lists them, with the removable drives
//! mounted on the machine ([`BundleDirs::places`]), and the bundles they hold.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::Error;

/// Bundle files listed in one place at most: a drive full of them is not a page of them.
const MAX_LISTED: usize = 200;

/// A directory the operator's page offers for bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub path: PathBuf,
    /// A removable drive is mounted here.
    pub removable: bool,
    /// Inside the bundle directories: bundles may be written and read here. A removable drive
    /// mounted elsewhere is listed, not usable, until the operator adds a `--bundle-dir`.
    pub allowed: bool,
}

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

    /// The bundle directories that exist, then the removable drives mounted at `drives`
    /// (see [`super::drives::removable`]), each once, drives inside a bundle directory allowed.
    pub fn places(&self, drives: &[PathBuf]) -> Vec<Place> {
        let roots: Vec<PathBuf> = std::iter::once(&self.home)
            .chain(&self.others)
            .filter_map(|dir| dir.canonicalize().ok())
            .collect();
        let drives: Vec<PathBuf> = drives
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .collect();
        let mut places: Vec<Place> = Vec::new();
        for (path, allowed) in roots.iter().map(|root| (root, true)).chain(
            drives
                .iter()
                .map(|d| (d, roots.iter().any(|r| d.starts_with(r)))),
        ) {
            if places.iter().any(|p| &p.path == path) {
                continue;
            }
            places.push(Place {
                path: path.clone(),
                removable: drives.contains(path),
                allowed,
            });
        }
        places
    }

    /// The bundles (`*.minga`, or the first part `*.minga.001`) directly in the allowed
    /// `places`, by path, at most [`MAX_LISTED`] from each.
    pub fn bundles(places: &[Place]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for place in places.iter().filter(|p| p.allowed) {
            let Ok(entries) = std::fs::read_dir(&place.path) else {
                continue;
            };
            let mut here: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.to_string_lossy();
                    name.ends_with(".minga") || name.ends_with(".minga.001")
                })
                .take(MAX_LISTED)
                .collect();
            here.sort();
            found.extend(here);
        }
        found
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

    #[test]
    fn drives_are_usable_inside_a_bundle_directory_only() {
        let root = tempfile::tempdir().unwrap();
        let media = root.path().join("media");
        let inside = media.join("USB1");
        let outside = root.path().join("mnt");
        for dir in [&inside, &outside] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let dirs = BundleDirs::open(root.path().join("bundles"), vec![media.clone()]).unwrap();
        let places = dirs.places(&[inside.clone(), outside.clone(), media.clone()]);
        let canonical = |p: &Path| p.canonicalize().unwrap();
        let summary: Vec<(PathBuf, bool, bool)> = places
            .iter()
            .map(|p| (p.path.clone(), p.removable, p.allowed))
            .collect();
        assert_eq!(
            summary,
            [
                (canonical(&root.path().join("bundles")), false, true),
                (canonical(&media), true, true),
                (canonical(&inside), true, true),
                (canonical(&outside), true, false),
            ]
        );
        std::fs::write(inside.join("commons.minga"), "x").unwrap();
        std::fs::write(inside.join("big.minga.001"), "x").unwrap();
        std::fs::write(inside.join("big.minga.002"), "x").unwrap();
        std::fs::write(inside.join("notes.txt"), "x").unwrap();
        std::fs::write(outside.join("elsewhere.minga"), "x").unwrap();
        assert_eq!(
            BundleDirs::bundles(&places),
            [
                canonical(&inside).join("big.minga.001"),
                canonical(&inside).join("commons.minga"),
            ]
        );
    }
}
