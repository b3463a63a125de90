//! `ServerUser`: the account the private cluster's programs run as.
//!
//! `initdb` and `postgres` refuse to run as root. When this process is root
//! (as on CI and the development machines), they run as Debian's `postgres`
//! system user instead (std's `Command::uid`/`gid`, which also drops root's
//! supplementary groups) and the cluster directory is owned by it; otherwise
//! they run as whoever runs us.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::Context;

/// The system account Debian's `postgresql` package creates.
pub const POSTGRES_USER: &str = "postgres";

/// Who runs `initdb` and `pg_ctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerUser {
    /// This process's own user (not root).
    Current,
    /// Another account, when this process is root.
    System { uid: u32, gid: u32 },
}

impl ServerUser {
    /// `postgres` when this process is root, else the current user.
    pub fn for_this_process() -> anyhow::Result<ServerUser> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(ServerUser::Current);
        }
        let (uid, gid) = lookup(POSTGRES_USER).with_context(|| {
            format!(
                "running as root, the private PostgreSQL cluster runs as the `{POSTGRES_USER}` \
                 user, which does not exist; install Debian's `postgresql` package (it creates \
                 the user) or set DATABASE_URL"
            )
        })?;
        Ok(ServerUser::System { uid, gid })
    }

    /// `program` set up to run as this user, from `/` (root's working
    /// directory may be closed to it).
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if let ServerUser::System { uid, gid } = *self {
            command.uid(uid).gid(gid).current_dir("/");
        }
        command
    }

    /// Hands `dir` over to this user (a no-op for the current user).
    pub fn take_ownership(&self, dir: &Path) -> anyhow::Result<()> {
        if let ServerUser::System { uid, gid } = *self {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .with_context(|| format!("cannot hand {} to {POSTGRES_USER}", dir.display()))?;
        }
        Ok(())
    }

    /// Fails, naming the directory, when this user cannot reach `dir`
    /// (an ancestor closed to others, as a `/root/...` or `mktemp -d` one is).
    pub fn check_reachable(&self, dir: &Path) -> anyhow::Result<()> {
        let ServerUser::System { uid, gid } = *self else {
            return Ok(());
        };
        for ancestor in dir.ancestors().skip(1) {
            let meta = std::fs::metadata(ancestor)
                .with_context(|| format!("cannot read {}", ancestor.display()))?;
            let searchable = if meta.uid() == uid {
                meta.mode() & 0o100 != 0
            } else if meta.gid() == gid {
                meta.mode() & 0o010 != 0
            } else {
                meta.mode() & 0o001 != 0
            };
            anyhow::ensure!(
                searchable,
                "the private PostgreSQL cluster runs as the `{POSTGRES_USER}` user (we run as \
                 root), which cannot enter {}; choose a DATA_DIR outside it or make it \
                 searchable (chmod o+x)",
                ancestor.display()
            );
        }
        Ok(())
    }
}

/// The uid and gid of a named account (through NSS, as `id` would).
fn lookup(name: &str) -> anyhow::Result<(u32, u32)> {
    let name = CString::new(name)?;
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and the buffer's length is its own.
    let status = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    anyhow::ensure!(status == 0 && !found.is_null(), "no such user");
    Ok((entry.pw_uid, entry.pw_gid))
}
