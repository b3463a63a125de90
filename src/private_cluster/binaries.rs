//! `PgBinaries`: where this machine's PostgreSQL server programs (`initdb`,
//! `pg_ctl`) live.
//!
//! Looked for, in order, in `PG_BIN_DIR`, in the newest
//! `/usr/lib/postgresql/<version>/bin` (where Debian's `postgresql` package
//! puts them, off `PATH`), then on `PATH`. A cluster made by another major
//! version needs that version's binaries, so a caller can ask for one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Debian's root for the versioned server binaries.
pub const DEBIAN_LIB_ROOT: &str = "/usr/lib/postgresql";
/// The programs a private cluster needs.
const PROGRAMS: [&str; 2] = ["initdb", "pg_ctl"];

/// A directory holding `initdb` and `pg_ctl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    /// The directory itself.
    pub bin_dir: PathBuf,
}

/// Where to look, so tests need not depend on this machine.
#[derive(Debug, Clone, Default)]
pub struct SearchPlaces {
    /// `PG_BIN_DIR`, when set.
    pub pg_bin_dir: Option<PathBuf>,
    /// The root of versioned directories (`/usr/lib/postgresql`).
    pub lib_root: PathBuf,
    /// `PATH`.
    pub path: Option<OsString>,
}

/// No usable `initdb` and `pg_ctl` were found.
#[derive(Debug, thiserror::Error)]
#[error(
    "PostgreSQL's server programs (initdb, pg_ctl{version}) are not installed (looked in \
     {looked}): install Debian's `postgresql` package (apt-get install postgresql), set \
     PG_BIN_DIR to the directory holding them, or set DATABASE_URL to a running server"
)]
pub struct MissingBinaries {
    version: String,
    looked: String,
}

impl SearchPlaces {
    /// This process's `PG_BIN_DIR` and `PATH`, and Debian's root.
    pub fn from_env() -> SearchPlaces {
        SearchPlaces {
            pg_bin_dir: std::env::var_os("PG_BIN_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            lib_root: PathBuf::from(DEBIAN_LIB_ROOT),
            path: std::env::var_os("PATH"),
        }
    }

    /// The first place holding both programs; with `major`, only that major
    /// version's directory under the lib root (or `PG_BIN_DIR`) qualifies.
    pub fn find(&self, major: Option<&str>) -> Result<PgBinaries, MissingBinaries> {
        let candidates = self.candidates(major);
        candidates
            .iter()
            .find(|dir| holds_programs(dir))
            .map(|dir| PgBinaries {
                bin_dir: dir.clone(),
            })
            .ok_or_else(|| MissingBinaries {
                version: major
                    .map(|v| format!(" of version {v}"))
                    .unwrap_or_default(),
                looked: looked_in(&candidates, self),
            })
    }

    fn candidates(&self, major: Option<&str>) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.pg_bin_dir.iter().cloned().collect();
        match major {
            Some(major) => dirs.push(self.lib_root.join(major).join("bin")),
            None => {
                dirs.extend(versioned_dirs(&self.lib_root));
                dirs.extend(self.path.iter().flat_map(std::env::split_paths));
            }
        }
        dirs
    }
}

impl PgBinaries {
    /// The full path of one program (`initdb`, `pg_ctl`).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// `<root>/<version>/bin`, newest version first (`15` before `9.6`).
fn versioned_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let key = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((key, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn holds_programs(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    PROGRAMS.iter().all(|program| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

fn looked_in(candidates: &[PathBuf], places: &SearchPlaces) -> String {
    let mut looked = vec![format!("{}/<version>/bin", places.lib_root.display())];
    if let Some(dir) = &places.pg_bin_dir {
        looked.insert(0, format!("PG_BIN_DIR={}", dir.display()));
    }
    if candidates.len() > looked.len() || places.path.is_some() {
        looked.push("PATH".into());
    }
    looked.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn install_programs(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for program in PROGRAMS {
            let file = dir.join(program);
            std::fs::write(&file, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn places(root: &Path) -> SearchPlaces {
        SearchPlaces {
            pg_bin_dir: None,
            lib_root: root.join("lib"),
            path: Some(root.join("empty").into_os_string()),
        }
    }

    #[test]
    fn the_newest_debian_version_is_chosen() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9.6", "13", "15"] {
            install_programs(&root.path().join("lib").join(version).join("bin"));
        }
        let found = places(root.path()).find(None).unwrap();
        assert_eq!(found.bin_dir, root.path().join("lib/15/bin"));
    }

    #[test]
    fn pg_bin_dir_comes_first_and_path_last() {
        let root = tempfile::tempdir().unwrap();
        install_programs(&root.path().join("lib/15/bin"));
        install_programs(&root.path().join("own"));
        install_programs(&root.path().join("on-path"));
        let mut places = places(root.path());
        places.pg_bin_dir = Some(root.path().join("own"));
        assert_eq!(places.find(None).unwrap().bin_dir, root.path().join("own"));

        let mut places = SearchPlaces {
            lib_root: root.path().join("nothing"),
            ..places
        };
        places.pg_bin_dir = None;
        places.path = Some(root.path().join("on-path").into_os_string());
        assert_eq!(
            places.find(None).unwrap().bin_dir,
            root.path().join("on-path")
        );
    }

    #[test]
    fn a_cluster_of_one_major_version_needs_that_version() {
        let root = tempfile::tempdir().unwrap();
        install_programs(&root.path().join("lib/15/bin"));
        install_programs(&root.path().join("lib/13/bin"));
        let found = places(root.path()).find(Some("13")).unwrap();
        assert_eq!(found.bin_dir, root.path().join("lib/13/bin"));
        let error = places(root.path()).find(Some("16")).unwrap_err();
        assert!(error.to_string().contains("of version 16"), "{error}");
    }

    #[test]
    fn without_the_programs_the_error_names_the_debian_package() {
        let root = tempfile::tempdir().unwrap();
        // A directory with only one of the two programs does not count.
        let half = root.path().join("lib/15/bin");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("pg_ctl"), "").unwrap();
        let error = places(root.path()).find(None).unwrap_err().to_string();
        assert!(error.contains("`postgresql` package"), "{error}");
        assert!(error.contains("apt-get install postgresql"), "{error}");
        assert!(error.contains("initdb, pg_ctl"), "{error}");
        assert!(error.contains("DATABASE_URL"), "{error}");
    }
}
