//! The process that holds the deployment lock, named the way Linux's `/proc` names a process for
//! good: the machine's boot, the pid and time namespaces, the user, the pid and the process's start
//! time. A contender that finds the same boot, namespaces and user looks the pid up in `/proc`: no
//! such process, or one that started at another time (the pid was reused), means the holder has
//! ended and its lock is dead. Anything else (another machine or container, another user, whose
//! processes `hidepid` may hide, a `/proc` that cannot be read, or not Linux) judges nothing, and
//! the lock's lease decides ([`crate::lock`]). A holder that ended but is not yet reaped by its
//! parent (a zombie) still has its `/proc` entry, and counts as running.

use serde::{Deserialize, Serialize};

/// A process as `/proc` identifies it, recorded in the lock by its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderProcess {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`): the same machine, the same boot.
    pub boot_id: String,
    /// The inode of the process's pid namespace (`/proc/self/ns/pid`): pids name the same processes.
    pub pid_namespace: u64,
    /// The inode of its time namespace (`/proc/self/ns/time`; `None` on kernels without time
    /// namespaces): start times are shown shifted by the reader's time namespace.
    pub time_namespace: Option<u64>,
    /// The owner of its `/proc/<pid>` (the effective uid): another user's processes may be hidden
    /// (`hidepid`), and would look ended.
    pub uid: u32,
    pub pid: u32,
    /// When it started, in clock ticks since boot (field 22 of `/proc/<pid>/stat`): a reused pid
    /// names a process started at another time.
    pub start_ticks: u64,
}

/// Whether a lock's holder process still runs, as a contender sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its pid names the process that started at its start time.
    Running,
    /// No process has its pid, or the one that has started at another time.
    Ended,
    /// Not judged: another boot, namespace or user, or `/proc` could not tell.
    Unknown,
}

impl HolderProcess {
    /// This process; `None` where `/proc` cannot describe it (not Linux, `/proc` not mounted, or
    /// mounted for another pid namespace than this process's).
    pub fn current() -> Option<HolderProcess> {
        HolderProcess::of(std::process::id())
    }

    /// The process `pid` of this process's pid namespace, as [`current`](Self::current) describes
    /// this one; `None` when there is none or `/proc` cannot tell.
    pub fn of(pid: u32) -> Option<HolderProcess> {
        proc::describe(pid).ok()
    }

    /// Whether `holder` still runs, judged by this process (`self`, from
    /// [`current`](Self::current)) only when both have the same boot, namespaces and user.
    pub fn liveness_of(&self, holder: &HolderProcess) -> Liveness {
        let comparable = self.boot_id == holder.boot_id
            && self.pid_namespace == holder.pid_namespace
            && self.time_namespace == holder.time_namespace
            && self.uid == holder.uid;
        if !comparable {
            return Liveness::Unknown;
        }
        match proc::start_ticks(holder.pid) {
            Ok(Some(ticks)) if ticks == holder.start_ticks => Liveness::Running,
            Ok(Some(_) | None) => Liveness::Ended,
            Err(_) => Liveness::Unknown,
        }
    }
}

/// The start time in a `/proc/<pid>/stat` line: its 22nd field, counted after the command name,
/// which is in parentheses and may hold spaces and parentheses itself.
fn start_ticks_in(stat: &str) -> Option<u64> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    // Fields 3 onwards; the start time is the 22nd.
    after_comm.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(target_os = "linux")]
mod proc {
    use std::fs;
    use std::io::{self, ErrorKind};
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use super::HolderProcess;

    fn pid_dir(pid: u32) -> PathBuf {
        Path::new("/proc").join(pid.to_string())
    }

    fn invalid(what: &str) -> io::Error {
        io::Error::new(ErrorKind::InvalidData, what.to_string())
    }

    pub(super) fn describe(pid: u32) -> io::Result<HolderProcess> {
        // `/proc` numbers processes as this process's pid namespace does only if `/proc/self` is
        // this process's own pid.
        if fs::read_link("/proc/self")? != Path::new(&std::process::id().to_string()) {
            return Err(invalid("/proc is mounted for another pid namespace"));
        }
        let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id")?
            .trim()
            .to_string();
        if boot_id.is_empty() {
            return Err(invalid("the boot id is empty"));
        }
        let pid_namespace = fs::metadata("/proc/self/ns/pid")?.ino();
        let time_namespace = match fs::metadata("/proc/self/ns/time") {
            Ok(metadata) => Some(metadata.ino()),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let uid = fs::metadata(pid_dir(pid))?.uid();
        let start_ticks = start_ticks(pid)?.ok_or_else(|| io::Error::from(ErrorKind::NotFound))?;
        Ok(HolderProcess {
            boot_id,
            pid_namespace,
            time_namespace,
            uid,
            pid,
            start_ticks,
        })
    }

    /// The start time of the process `pid`; `None` when there is no such process.
    pub(super) fn start_ticks(pid: u32) -> io::Result<Option<u64>> {
        match fs::read_to_string(pid_dir(pid).join("stat")) {
            Ok(stat) => super::start_ticks_in(&stat)
                .map(Some)
                .ok_or_else(|| invalid("/proc/<pid>/stat has no start time")),
            // ESRCH: the process ended while its stat was read.
            Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(3) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod proc {
    use std::io::{self, ErrorKind};

    use super::HolderProcess;

    pub(super) fn describe(_pid: u32) -> io::Result<HolderProcess> {
        Err(ErrorKind::Unsupported.into())
    }

    pub(super) fn start_ticks(_pid: u32) -> io::Result<Option<u64>> {
        Err(ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_the_22nd_field_whatever_the_command_name() {
        let stat = "10151 (cat) R 10148 10148 5335 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 210733 3133440 360";
        assert_eq!(start_ticks_in(stat), Some(210_733));
        let odd = "77 (a) b (c)) S 1 77 77 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 42 3133440 360";
        assert_eq!(start_ticks_in(odd), Some(42));
        assert_eq!(start_ticks_in("77 (x) S 1 2"), None);
        assert_eq!(start_ticks_in("no parenthesis"), None);
    }

    fn process(boot_id: &str, pid: u32, start_ticks: u64) -> HolderProcess {
        HolderProcess {
            boot_id: boot_id.to_string(),
            pid_namespace: 4_026_531_836,
            time_namespace: Some(4_026_531_834),
            uid: 0,
            pid,
            start_ticks,
        }
    }

    #[test]
    fn another_boot_namespace_or_user_is_not_judged() {
        // No /proc is read for these: the pid is not this process's to look up.
        let here = process("a", 1, 1);
        let other = |change: fn(&mut HolderProcess)| {
            let mut holder = process("a", u32::MAX, 5);
            change(&mut holder);
            here.liveness_of(&holder)
        };
        assert_eq!(other(|h| h.boot_id = "b".into()), Liveness::Unknown);
        assert_eq!(other(|h| h.pid_namespace += 1), Liveness::Unknown);
        assert_eq!(other(|h| h.time_namespace = None), Liveness::Unknown);
        assert_eq!(other(|h| h.uid = 1000), Liveness::Unknown);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_runs_and_a_reused_or_free_pid_has_ended() {
        let here = HolderProcess::current().expect("/proc describes this process");
        assert_eq!(here.pid, std::process::id());
        assert_eq!(here.liveness_of(&here), Liveness::Running);
        let reused = HolderProcess {
            start_ticks: here.start_ticks + 1,
            ..here.clone()
        };
        assert_eq!(here.liveness_of(&reused), Liveness::Ended);
        // Above the kernel's largest pid_max (2^22): never a process.
        let free = HolderProcess {
            pid: 1 << 23,
            ..here.clone()
        };
        assert_eq!(here.liveness_of(&free), Liveness::Ended);
    }

    #[test]
    fn records_round_trip() {
        let holder = process("4817781e-08a3-433f-bc58-24c36a7ffa6f", 7, 210_733);
        let json = serde_json::to_string(&holder).unwrap();
        assert_eq!(
            json,
            r#"{"boot_id":"4817781e-08a3-433f-bc58-24c36a7ffa6f","pid_namespace":4026531836,"time_namespace":4026531834,"uid":0,"pid":7,"start_ticks":210733}"#
        );
        assert_eq!(serde_json::from_str::<HolderProcess>(&json).unwrap(), holder);
    }
}
