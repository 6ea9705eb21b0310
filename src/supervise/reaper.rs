//! Nothing a worker or hook started may outlive its task. A process group
//! is not enough: `setsid` and a double fork leave it, and Claude Code runs
//! every shell command in a session of its own. So `dispatch run` makes
//! itself a child subreaper (Linux): whatever a worker leaves behind is
//! re-parented to dispatch instead of init, stays a descendant, and is
//! found in `/proc` by the marker in its environment. A task's strays are
//! stopped (SIGTERM, a short grace, SIGKILL) when the task ends, after a
//! timeout too, and whatever is left of any task at the end of the run.
//!
//! Only the pids found here are reaped (`waitpid` on each, never on -1):
//! the runtime reaps the children it spawned itself, and a reap taken from
//! it would lose a worker's exit status.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::procfs::{self, Marker, Pid};

/// How long strays get between SIGTERM and SIGKILL at most. Their task has
/// ended; a daemon that needs longer to stop is not waited for.
pub const STRAY_GRACE: Duration = Duration::from_secs(2);

/// A process that outlived its task and was stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stray {
    pub pid: u32,
    /// Its command name, as `/proc/PID/comm` gave it.
    pub command: String,
    /// When it was stopped: `task end`, `run end`, `before resume`.
    pub when: String,
}

/// Pids dispatch spawned itself and whose reaping belongs to the runtime.
static OWN_CHILDREN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

/// Note a child the runtime will reap (a worker, a hook).
pub fn own(pid: u32) {
    if let Ok(mut own) = OWN_CHILDREN.lock() {
        own.get_or_insert_with(HashSet::new).insert(pid);
    }
}

/// The runtime has reaped it.
pub fn disown(pid: u32) {
    if let Ok(mut own) = OWN_CHILDREN.lock() {
        if let Some(set) = own.as_mut() {
            set.remove(&pid);
        }
    }
}

fn is_own(pid: Pid) -> bool {
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    OWN_CHILDREN
        .lock()
        .map(|own| own.as_ref().is_some_and(|set| set.contains(&pid)))
        .unwrap_or(false)
}

/// Make this process the subreaper of its descendants (Linux; elsewhere a
/// process that leaves its group re-parents to init, and only what is
/// still a descendant or carries the marker can be found).
pub fn become_subreaper() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches
        // no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// A live process found for stopping: the pid with its start time, so it
/// is never confused with a process that takes the pid over later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Found {
    pid: Pid,
    start_time: u64,
}

/// Where to look for a marker's processes.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// Only this process's descendants (a running dispatch and its own
    /// workers: another dispatch's processes are never touched).
    Ours,
    /// Any process this user can see (a dead run's leftovers, which were
    /// re-parented away from the dispatch that started them).
    Anywhere,
}

/// Live processes carrying `marker`.
fn find(marker: &Marker, scope: Scope) -> Vec<Found> {
    find_each(&[marker], scope).pop().unwrap_or_default()
}

/// The live processes carrying each of `markers`, in their order, from one
/// read of `scope`: the looks of several tasks that end together cost the
/// read of one (see `supervise::looks`). A candidate's environment is read
/// once, whatever the number of markers.
pub(super) fn find_each(markers: &[&Marker], scope: Scope) -> Vec<Vec<Found>> {
    let me = own_pid();
    let patient = matches!(scope, Scope::Ours);
    let mut found = vec![Vec::new(); markers.len()];
    if markers.is_empty() {
        return found;
    }
    let (candidates, table) = candidates(me, scope);
    for pid in candidates.into_iter().filter(|&pid| pid != me) {
        let Some(stat) = table.get(&pid) else {
            continue;
        };
        if stat.is_zombie() {
            continue;
        }
        let one = Found {
            pid,
            start_time: stat.start_time,
        };
        let Some(env) = environ_of(one, patient) else {
            continue;
        };
        for (marker, found) in markers.iter().zip(found.iter_mut()) {
            if marker.matches(&env) {
                found.push(one);
            }
        }
    }
    found
}

/// The pids to look at for `scope`, with the stats they were found by.
fn candidates(me: Pid, scope: Scope) -> (Vec<Pid>, HashMap<Pid, procfs::Stat>) {
    match scope {
        // Not under a worker or hook still running (their own processes
        // are theirs until they end): what a worker left when it ended was
        // re-parented here, out of any such subtree. So only the subtrees
        // of this process's children that it did not spawn itself are
        // read, which at the end of most tasks is nothing at all; reading
        // the whole table instead made each task's end cost a read of
        // every process on the machine. Orphans are re-parented to this
        // process's leader thread, so its one `children` file is read,
        // not every thread's (see `procfs::orphan_parents_children`).
        Scope::Ours if procfs::children_listed() => {
            let mut table = HashMap::new();
            for _ in 0..SUBTREE_READS {
                let roots: Vec<Pid> = procfs::orphan_parents_children(me)
                    .into_iter()
                    .filter(|&pid| !is_own(pid))
                    .collect();
                let (read, changed) = procfs::subtree(&roots);
                table.extend(read);
                if !changed {
                    break;
                }
            }
            (table.keys().copied().collect(), table)
        }
        Scope::Ours => {
            let table = procfs::table();
            (procfs::descendants_except(&table, me, is_own), table)
        }
        Scope::Anywhere => {
            let table = procfs::table();
            (table.keys().copied().collect(), table)
        }
    }
}

/// How often a subtree is read again when it changed while being read.
const SUBTREE_READS: usize = 4;

/// A live process's environment, to be matched against markers. A process
/// in the middle of `exec` (a daemon its worker just started, say) shows an
/// empty environment for a moment; it is asked again, briefly, rather than
/// let go as unmarked. Only among our own descendants (`patient`):
/// elsewhere kernel threads show an empty environment for good. `None`
/// when it is gone, another user's, or stays empty.
fn environ_of(f: Found, patient: bool) -> Option<Vec<u8>> {
    let tries = if patient { ENVIRON_TRIES } else { 1 };
    for _ in 0..tries {
        match procfs::environ_bytes(f.pid) {
            Ok(env) if !env.is_empty() => return Some(env),
            // Gone, or another user's: not one of ours.
            Err(_) => return None,
            Ok(_) if gone(f) => return None,
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    None
}

/// Up to 100 ms for an environment to become readable.
const ENVIRON_TRIES: usize = 20;

fn own_pid() -> Pid {
    Pid::try_from(crate::util::own_pid()).unwrap_or(0)
}

/// Stop every process carrying `marker` in `scope`, and reap those that
/// were re-parented here. Blocking: call it off the runtime's thread.
pub fn stop_marked(marker: &Marker, scope: Scope, grace: Duration, when: &str) -> Vec<Stray> {
    stop(find(marker, scope), grace, when)
}

/// Whose a leftover found at the end of a run was, by the marker it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// An escalation hook's (its hook id, without the run's prefix). A hook
    /// gets its task's `DISPATCH_TASK_ID` too, so this is asked first: a
    /// hook's daemon is not the worker's.
    Hook(String),
    /// A task's worker's.
    Task(String),
    /// It carries no marker (it cleared its environment).
    Unknown,
}

impl Owner {
    fn of(env: Option<&[u8]>) -> Self {
        let value = |name| {
            env.and_then(|env| procfs::env_value(env, name))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        if let Some(hook) = value(procfs::HOOK_VAR) {
            let id = hook.split_once('/').map_or(hook.as_str(), |(_, id)| id);
            return Self::Hook(id.to_owned());
        }
        value("DISPATCH_TASK_ID").map_or(Self::Unknown, Self::Task)
    }
}

/// At the end of a run: every descendant still alive is a leftover (every
/// worker and hook has ended), whatever its environment says; each comes
/// with the hook or task its marker names, if any. Zombies re-parented
/// here are reaped too.
pub fn stop_all_descendants(grace: Duration, when: &str) -> Vec<(Owner, Stray)> {
    let me = own_pid();
    let table = descendants_table(me);
    let mut found = Vec::new();
    let mut tasks = Vec::new();
    for pid in procfs::descendants(&table, me) {
        let Some(stat) = table.get(&pid) else {
            continue;
        };
        if stat.is_zombie() {
            if stat.ppid == me {
                reap(pid, stat.start_time);
            }
            continue;
        }
        found.push(Found {
            pid,
            start_time: stat.start_time,
        });
        tasks.push(Owner::of(procfs::environ(pid).as_deref()));
    }
    tasks.into_iter().zip(stop(found, grace, when)).collect()
}

/// `me`'s descendants with their stats: through the `children` files
/// (every thread's, once) where the kernel lists them, which reads only
/// this process's tree rather than every process on the machine; else the
/// whole table.
fn descendants_table(me: Pid) -> HashMap<Pid, procfs::Stat> {
    if !procfs::children_listed() {
        return procfs::table();
    }
    let mut table = HashMap::new();
    for _ in 0..SUBTREE_READS {
        let (read, changed) = procfs::subtree(&procfs::children_of(me));
        table.extend(read);
        if !changed {
            break;
        }
    }
    table
}

/// SIGTERM, up to `grace` for them to go, SIGKILL; each signal only while
/// the pid is still the process that was found.
pub(super) fn stop(found: Vec<Found>, grace: Duration, when: &str) -> Vec<Stray> {
    if found.is_empty() {
        return Vec::new();
    }
    let strays: Vec<Stray> = found
        .iter()
        .map(|f| Stray {
            pid: f.pid as u32,
            command: procfs::command_name(f.pid),
            when: when.to_owned(),
        })
        .collect();
    for f in &found {
        signal(*f, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace.min(STRAY_GRACE);
    let mut left = found;
    loop {
        left.retain(|f| !gone(*f));
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for f in &left {
        signal(*f, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|f| !gone(*f));
        std::thread::sleep(Duration::from_millis(10));
    }
    strays
}

/// Whether a found process has ended; a zombie of ours is reaped here.
fn gone(f: Found) -> bool {
    match procfs::stat(f.pid) {
        None => true,
        Some(stat) if stat.start_time != f.start_time => true,
        Some(stat) if stat.is_zombie() => {
            if stat.ppid == own_pid() {
                reap(f.pid, f.start_time);
            }
            true
        }
        Some(_) => false,
    }
}

fn signal(f: Found, signal: libc::c_int) {
    let same = procfs::stat(f.pid)
        .is_some_and(|stat| stat.start_time == f.start_time && !stat.is_zombie());
    if same && f.pid > 1 {
        // SAFETY: kill only sends a signal, to a process identified just
        // above by its pid and start time.
        unsafe {
            libc::kill(f.pid, signal);
        }
    }
}

/// Reap one zombie child by its pid, unless the runtime owns it.
fn reap(pid: Pid, _start_time: u64) {
    if pid <= 1 || is_own(pid) {
        return;
    }
    let mut status = 0;
    // SAFETY: waitpid on one pid that is a zombie child of this process
    // (its parent was checked in /proc) with WNOHANG: it never blocks and
    // writes only `status`.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

// Descendants that left a running worker's group, found while it lives.

/// A process that descends from the worker but left its process group:
/// its pid, group and start time as first seen, and its command name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escaped {
    pid: libc::pid_t,
    pgrp: libc::pid_t,
    start_time: u64,
    command: String,
}

/// Every descendant of `root` that is not in `root`'s process group, from
/// `/proc` (empty where there is no `/proc`), read on a blocking thread.
pub async fn escaped_descendants(root: libc::pid_t) -> Vec<Escaped> {
    if root <= 1 {
        return Vec::new();
    }
    let find = move || {
        let table = procfs::table();
        procfs::descendants(&table, root)
            .into_iter()
            .filter_map(|pid| {
                let stat = table.get(&pid)?;
                (stat.pgrp != root).then(|| Escaped {
                    pid,
                    pgrp: stat.pgrp,
                    start_time: stat.start_time,
                    command: procfs::command_name(pid),
                })
            })
            .collect()
    };
    tokio::task::spawn_blocking(move || {
        test_scan_delay();
        find()
    })
    .await
    .unwrap_or_default()
}

/// [`kill_escaped`] on a blocking thread (it reads `/proc` too), when
/// there is anything to kill: the runtime's thread meanwhile serves the
/// other workers' timeouts and Ctrl-C.
pub async fn kill_escaped_off_thread(escaped: &[Escaped], signal: libc::c_int) {
    if escaped.is_empty() {
        return;
    }
    let escaped = escaped.to_vec();
    let _ = tokio::task::spawn_blocking(move || kill_escaped(&escaped, signal)).await;
}

/// Tests make the `/proc` scan slow (`DISPATCH_TEST_PROC_SCAN_DELAY_MS`)
/// to show that it holds up no other worker. Debug builds only.
fn test_scan_delay() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("DISPATCH_TEST_PROC_SCAN_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Signal the escaped processes and the groups they lead. A process is
/// signalled only while it is still the one seen (same start time) in the
/// group it was seen in, so a pid reused since is left alone; dispatch's
/// own group never is.
pub fn kill_escaped(escaped: &[Escaped], signal: libc::c_int) {
    // SAFETY: getpgrp has no preconditions.
    let own = unsafe { libc::getpgrp() };
    for process in escaped {
        let same = procfs::stat(process.pid)
            .is_some_and(|stat| stat.pgrp == process.pgrp && stat.start_time == process.start_time);
        if !same {
            continue;
        }
        if process.pgrp > 1 && process.pgrp != own {
            // SAFETY: killpg only sends a signal, to the group the process
            // was seen leading.
            unsafe {
                libc::killpg(process.pgrp, signal);
            }
        }
        // SAFETY: kill only sends a signal to a process identified just
        // above.
        unsafe {
            libc::kill(process.pid, signal);
        }
    }
}

/// The escaped processes a stop found, as strays for the record.
pub fn strays_of(escaped: Vec<Escaped>, when: &str) -> Vec<Stray> {
    escaped
        .into_iter()
        .map(|e| Stray {
            pid: e.pid as u32,
            command: e.command,
            when: when.to_owned(),
        })
        .collect()
}

/// One line for a warning: `sleep (pid 123), node (pid 456)`.
pub fn describe(strays: &[Stray]) -> String {
    strays
        .iter()
        .map(|s| {
            if s.command.is_empty() {
                format!("pid {}", s.pid)
            } else {
                format!("{} (pid {})", s.command, s.pid)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
    fn a_marked_process_anywhere_is_stopped_and_an_unmarked_one_is_not() {
        // Reaped by the reaper itself (the point of the test), not here.
        #[allow(clippy::zombie_processes)]
        let marked = std::process::Command::new("sleep")
            .arg("30")
            .env("DISPATCH_RUN_ID", "reaper-test-run")
            .env("DISPATCH_TASK_ID", "reaper-test-task")
            .spawn()
            .expect("sleep");
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .env("DISPATCH_RUN_ID", "reaper-test-run")
            .env("DISPATCH_TASK_ID", "another-task")
            .spawn()
            .expect("sleep");
        let marker = Marker::task("reaper-test-run", "reaper-test-task");
        let pid = marked.id();
        // Looked for once (`Anywhere` is not patient): past its `exec`.
        procfs::wait_for_environ(pid);
        // Anywhere: `Scope::Ours` looks among the leader thread's children,
        // where orphans land, and this test's thread is not the leader.
        let strays = stop_marked(&marker, Scope::Anywhere, Duration::from_millis(200), "test");
        assert_eq!(strays.len(), 1, "{strays:?}");
        assert_eq!(strays[0].pid, pid);
        assert_eq!(strays[0].command, "sleep");
        assert!(
            procfs::stat(pid as Pid).is_none(),
            "stopped and reaped here (it is a child of this test)"
        );
        assert!(procfs::start_time(other.id()).is_some(), "left alone");
        let _ = other.kill();
        let _ = other.wait();
    }
}

#[cfg(test)]
mod owner_tests {
    use super::Owner;

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
    fn a_leftover_is_its_hooks_before_its_tasks() {
        // A hook carries its task's id too: what it left is the hook's.
        let hook = b"PATH=/bin\0DISPATCH_TASK_ID=crasher\0DISPATCH_HOOK_ID=run-1/starter-0\0";
        assert_eq!(Owner::of(Some(hook)), Owner::Hook("starter-0".into()));
        let worker = b"DISPATCH_RUN_ID=run-1\0DISPATCH_TASK_ID=crasher\0";
        assert_eq!(Owner::of(Some(worker)), Owner::Task("crasher".into()));
        assert_eq!(Owner::of(Some(b"PATH=/bin\0")), Owner::Unknown);
        assert_eq!(Owner::of(None), Owner::Unknown);
    }
}
