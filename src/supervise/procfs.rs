//! What `/proc` says about a process, for the two questions dispatch must
//! answer before it signals one: is this pid still the process it recorded
//! (pids are reused after a reboot or a busy day), and was it started by a
//! given task (the `DISPATCH_RUN_ID` / `DISPATCH_TASK_ID` marker every
//! worker and everything it starts inherits, which `setsid` and double
//! forks do not shed). Where there is no `/proc`, nothing can be checked.

use std::collections::HashMap;

/// Pid type of the system calls.
pub type Pid = libc::pid_t;

/// The fields of `/proc/PID/stat` dispatch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub ppid: Pid,
    pub pgrp: Pid,
    /// `R`, `S`, `Z` (a zombie: dead, waiting for its parent to reap it)…
    pub state: char,
    /// Field 22: when the process started, in clock ticks after boot. With
    /// the pid it names one process for the life of the machine.
    pub start_time: u64,
}

impl Stat {
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// `/proc/PID/stat`, read after the last `)`: the command name may hold
/// spaces and parentheses.
pub fn stat(pid: Pid) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    let text = read_small(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// A small `/proc` file, read whole. `std::fs::read_to_string` sizes its
/// buffer by the file's length, which `/proc` gives as 0, and so reads a
/// `stat` of some 300 bytes in six calls after a `statx`; a sweep reads
/// one for each worker (its start time) and a `children` list at each
/// task's end. One buffer large enough for these files takes it in one,
/// and a call to see the end.
fn read_small(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    // Not `read_to_end`: it asks for the file's length first (a `statx`
    // and an `lseek`), which `/proc` does not know.
    let mut text = vec![0; SMALL_FILE];
    let mut len = 0;
    loop {
        if len == text.len() {
            text.resize(len * 2, 0);
        }
        match file.read(&mut text[len..]) {
            Ok(0) => break,
            Ok(read) => len += read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    text.truncate(len);
    String::from_utf8(text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Room for a whole `stat` (52 numbers and a 16-byte name), `comm`, or a
/// `children` list of a few hundred pids.
const SMALL_FILE: usize = 4096;

fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so field N is at index N - 3.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(22 - 3)?.parse().ok()?,
    })
}

/// The start time of a live process, to record beside its pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = stat(Pid::try_from(pid).ok()?)?;
    (!stat.is_zombie()).then_some(stat.start_time)
}

/// The process's short command name (`/proc/PID/comm`), for reports.
pub fn command_name(pid: Pid) -> String {
    read_small(format!("/proc/{pid}/comm"))
        .map(|name| name.trim_end().to_owned())
        .unwrap_or_default()
}

/// The variables a process was started with (`/proc/PID/environ`); `None`
/// when they cannot be read (gone, a zombie, another user's).
pub fn environ(pid: Pid) -> Option<Vec<u8>> {
    let bytes = environ_bytes(pid).ok()?;
    (!bytes.is_empty()).then_some(bytes)
}

/// Wait until `pid` has its environment (up to 10 s). A process just
/// spawned may still be in `exec`, where its environment reads empty:
/// tests that look for a marker they just gave a child wait for it first.
#[cfg(test)]
pub(crate) fn wait_for_environ(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while environ_bytes(pid as Pid).is_ok_and(|env| env.is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// `/proc/PID/environ` as read: empty for a zombie, a kernel thread, or a
/// process in the middle of `exec`; an error when gone or another user's.
///
/// It is read in one `read` call, which the kernel serves from one hold
/// of the process's memory. Read in several (as `std::fs::read` does,
/// starting with a small probe), an `exec` between two calls ends the
/// text early: a daemon caught starting would show a cut environment
/// without its marker and be let go. When the environment fills the
/// buffer, it is read again, whole, into a larger one.
pub fn environ_bytes(pid: Pid) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let path = format!("/proc/{pid}/environ");
    let mut size = ENVIRON_BUFFER;
    loop {
        let mut file = std::fs::File::open(&path)?;
        let mut buf = vec![0; size];
        let read = loop {
            match file.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if read < size {
            buf.truncate(read);
            return Ok(buf);
        }
        size *= 2;
    }
}

/// Enough for the environment of nearly any process in one read.
const ENVIRON_BUFFER: usize = 64 * 1024;

/// The value of `name` in an environ block.
pub fn env_value<'a>(environ: &'a [u8], name: &str) -> Option<&'a [u8]> {
    environ.split(|&b| b == 0).find_map(|entry| {
        entry
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
    })
}

/// Every process on the machine with its stat, read once: the parent links
/// give each process's descendants without a walk per question.
pub fn table() -> HashMap<Pid, Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<Pid>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// Whether the kernel lists a thread's children in
/// `/proc/PID/task/TID/children` (Linux with `CONFIG_PROC_CHILDREN`, as
/// distributions build it). Without it only [`table`] can tell.
pub fn children_listed() -> bool {
    static LISTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LISTED.get_or_init(|| std::path::Path::new("/proc/thread-self/children").exists())
}

/// The children of process `pid` that its orphans are among: those of its
/// thread-group leader. When a process dies, the kernel gives its children
/// to the nearest subreaper's first live thread (`find_new_reaper`, which
/// walks the thread list from the leader), and a thread that ends hands
/// its own children to the same; so while the leader lives, everything
/// re-parented to `pid` is listed in the leader's one `children` file.
/// Children another thread spawned and still waits for itself are not
/// listed: dispatch starts workers, checks and hooks on its runtime's
/// thread (and notes them, see `reaper::own`), and what other threads start
/// (git, a worktree's setup script) is no task's leftover until it is
/// orphaned, which brings it here. Once the leader has exited (a zombie
/// thread lists nothing), every thread is read, as [`children_of`] does.
///
/// One file read instead of one per thread: the task-end scan runs at
/// every task's end, and dispatch has a dozen threads and more.
pub fn orphan_parents_children(pid: Pid) -> Vec<Pid> {
    let listed = read_small(format!("/proc/{pid}/task/{pid}/children"));
    match listed {
        Ok(text) if !text.trim().is_empty() || !leader_exited(pid) => parse_pids(&text),
        _ => children_of(pid),
    }
}

/// Whether `pid`'s leader thread has exited while other threads go on
/// (it then stays a zombie thread until the whole process ends).
fn leader_exited(pid: Pid) -> bool {
    read_small(format!("/proc/{pid}/task/{pid}/stat"))
        .ok()
        .and_then(|text| parse_stat(&text))
        .is_none_or(|stat| stat.is_zombie())
}

fn parse_pids(text: &str) -> Vec<Pid> {
    text.split_whitespace()
        .filter_map(|p| p.parse::<Pid>().ok())
        .collect()
}

/// The children of every thread of `pid`. A subreaper's orphans are
/// attached to whichever of its threads the kernel picks, so every thread
/// is read; a thread or process gone meanwhile has none left to report.
pub fn children_of(pid: Pid) -> Vec<Pid> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| read_small(thread.path().join("children")).ok())
        .flat_map(|text| parse_pids(&text))
        .collect()
}

/// `roots` and all their descendants with their stats, found through the
/// `children` files ([`children_listed`]): it reads only this subtree,
/// where [`table`] reads every process on the machine.
///
/// The second value says the tree changed while it was read: a listed
/// process was gone or had already exited (a zombie). Its children were
/// then re-parented, perhaps to a process read before, so the caller reads
/// again to find them.
pub fn subtree(roots: &[Pid]) -> (HashMap<Pid, Stat>, bool) {
    let mut found = HashMap::new();
    let mut changed = false;
    let mut queue: Vec<Pid> = roots.to_vec();
    while let Some(pid) = queue.pop() {
        if found.contains_key(&pid) {
            continue;
        }
        let Some(stat) = stat(pid) else {
            changed = true;
            continue;
        };
        found.insert(pid, stat);
        if stat.is_zombie() {
            changed = true;
        } else {
            queue.extend(children_of(pid));
        }
    }
    (found, changed)
}

/// Every descendant of `root` in `table` (not `root` itself).
pub fn descendants(table: &HashMap<Pid, Stat>, root: Pid) -> Vec<Pid> {
    descendants_except(table, root, |_| false)
}

/// Every descendant of `root` in `table`, leaving out the subtrees of the
/// processes `skip` names (and those processes).
pub fn descendants_except(
    table: &HashMap<Pid, Stat>,
    root: Pid,
    skip: impl Fn(Pid) -> bool,
) -> Vec<Pid> {
    let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
    for (&pid, stat) in table {
        children.entry(stat.ppid).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::from([root]);
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            if !skip(child) && seen.insert(child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

/// A marker a process must carry in its environment to be taken for one
/// of a task's (or a hook's) processes: every pair must be present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pairs: Vec<(String, String)>,
    /// A variable whose value must not start with this prefix: a hook of
    /// this run gets its task's `DISPATCH_TASK_ID` too, and is not the
    /// task's (it ends on its own, bounded by the hook timeout).
    unless: Option<(String, String)>,
}

/// The variable that tells an escalation hook's processes apart.
pub const HOOK_VAR: &str = "DISPATCH_HOOK_ID";

impl Marker {
    /// A task's worker and everything it starts.
    pub fn task(run_id: &str, task_id: &str) -> Self {
        Self {
            pairs: vec![
                ("DISPATCH_RUN_ID".to_owned(), run_id.to_owned()),
                ("DISPATCH_TASK_ID".to_owned(), task_id.to_owned()),
            ],
            unless: Some((HOOK_VAR.to_owned(), hook_prefix(run_id))),
        }
    }

    /// Every process of a run (its workers and hooks).
    pub fn run(run_id: &str) -> Self {
        Self {
            pairs: vec![("DISPATCH_RUN_ID".to_owned(), run_id.to_owned())],
            unless: None,
        }
    }

    /// One escalation hook (`hook_id`, unique in the run) and everything
    /// it starts.
    pub fn hook(run_id: &str, hook_id: &str) -> Self {
        Self {
            pairs: vec![
                ("DISPATCH_RUN_ID".to_owned(), run_id.to_owned()),
                (
                    HOOK_VAR.to_owned(),
                    format!("{}{hook_id}", hook_prefix(run_id)),
                ),
            ],
            unless: None,
        }
    }

    /// The task marker in a launch's environment, when it has one.
    pub fn of_env(env: &[(String, String)]) -> Option<Self> {
        let get = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        Some(Self::task(
            get("DISPATCH_RUN_ID")?,
            get("DISPATCH_TASK_ID")?,
        ))
    }

    /// The variables to give a process so it carries this marker.
    pub fn env(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Whether an environ block carries the marker.
    pub fn matches(&self, environ: &[u8]) -> bool {
        let excluded = self.unless.as_ref().is_some_and(|(k, prefix)| {
            env_value(environ, k).is_some_and(|v| v.starts_with(prefix.as_bytes()))
        });
        !excluded
            && self
                .pairs
                .iter()
                .all(|(k, v)| env_value(environ, k) == Some(v.as_bytes()))
    }

    /// Whether process `pid` carries the marker; `None` when its
    /// environment cannot be read.
    pub fn carried_by(&self, pid: Pid) -> Option<bool> {
        environ(pid).map(|env| self.matches(&env))
    }
}

/// Hook ids of one run start with its run id, so a dispatch started from
/// another run's hook still finds its own workers.
fn hook_prefix(run_id: &str) -> String {
    format!("{run_id}/")
}

/// Whether `pid` is still the process dispatch recorded: alive and started
/// at `start_time`, or, when no start time was recorded, carrying `marker`. With neither to compare, a live pid is not enough: it may
/// have been reused. Without `/proc` (not Linux) only liveness is known.
pub fn is_same_process(pid: u32, start_time: Option<u64>, marker: Option<&Marker>) -> bool {
    let Ok(pid) = Pid::try_from(pid) else {
        return false;
    };
    if pid <= 1 || !crate::state::lock::process_alive(pid as u32) {
        return false;
    }
    if !cfg!(target_os = "linux") {
        return true;
    }
    let Some(stat) = stat(pid) else {
        return false;
    };
    if stat.is_zombie() {
        return false;
    }
    // The start time names the process for good (an exec keeps it, and
    // may change the environment); the marker stands in for records that
    // have none.
    match start_time {
        Some(start_time) => start_time == stat.start_time,
        None => marker.and_then(|m| m.carried_by(pid)).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process re-executing itself in a loop, with an environment of
    /// several pages, is read again and again: every read that is not
    /// empty holds the whole environment (its last variable too). Read in
    /// several calls, an `exec` between two of them cut it short, and a
    /// hook's daemon caught starting was let go as unmarked.
    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
    fn an_environment_read_during_exec_is_whole_or_empty() {
        let script = r#"n=$N; [ "$n" -gt 0 ] || exit 0; N=$((n-1)) exec sh -c "$0" "$0""#;
        let mut child = std::process::Command::new("sh")
            .args(["-c", script, script])
            .env("N", "4000")
            .env("PAD", "x".repeat(9000))
            .env("ZZ_LAST", "1")
            .spawn()
            .expect("sh starts");
        let pid = Pid::try_from(child.id()).expect("a pid");
        let (mut reads, mut cut) = (0, 0);
        while reads < 5_000 && matches!(child.try_wait(), Ok(None)) {
            if let Ok(env) = environ_bytes(pid) {
                reads += 1;
                if !env.is_empty() && env_value(&env, "ZZ_LAST").is_none() {
                    cut += 1;
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(reads > 100, "the process was read {reads} times only");
        assert_eq!(cut, 0, "{cut} of {reads} reads were cut short");
    }

    #[test]
    fn stat_fields_are_read_after_the_name() {
        let line = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(stat.ppid, 17);
        assert_eq!(stat.pgrp, 4242);
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 987654);
    }

    #[test]
    fn a_marker_needs_every_pair_exactly() {
        let marker = Marker::task("run-1", "alpha");
        assert!(marker.matches(b"A=1\0DISPATCH_RUN_ID=run-1\0DISPATCH_TASK_ID=alpha\0"));
        assert!(!marker.matches(b"DISPATCH_RUN_ID=run-1\0DISPATCH_TASK_ID=alpha2\0"));
        assert!(!marker.matches(b"DISPATCH_TASK_ID=alpha\0"));
        // This run's hook, fired by alpha's event, is not alpha's...
        let hook =
            b"DISPATCH_RUN_ID=run-1\0DISPATCH_TASK_ID=alpha\0DISPATCH_HOOK_ID=run-1/pager-0\0";
        assert!(!marker.matches(hook));
        assert!(Marker::hook("run-1", "pager-0").matches(hook));
        // ...but a worker of a dispatch an outer run's hook started is.
        assert!(marker.matches(
            b"DISPATCH_HOOK_ID=outer/x-1\0DISPATCH_RUN_ID=run-1\0DISPATCH_TASK_ID=alpha\0"
        ));
    }
    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
    fn a_live_pid_with_another_start_time_is_another_process() {
        let me = std::process::id();
        let start = start_time(me).expect("own start time");
        assert!(is_same_process(me, Some(start), None));
        assert!(!is_same_process(me, Some(start + 1), None));
        assert!(
            !is_same_process(me, None, None),
            "nothing to compare: not trusted"
        );
        assert!(!is_same_process(me, None, Some(&Marker::task("r", "t"))));
    }

    /// The task-end scan reads only the subtrees of this process's
    /// children, so those files must list a child and its grandchildren,
    /// whichever thread spawned them.
    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
    fn the_children_files_give_a_child_and_its_descendants() {
        assert!(
            children_listed(),
            "this kernel lists no children files: the scan falls back to the whole table"
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("read pid");
        let grandchild: Pid = line.trim().parse().expect("a pid");
        let pid = Pid::try_from(child.id()).expect("pid fits");
        let me = Pid::try_from(std::process::id()).expect("pid fits");
        let listed = children_of(me);
        let (found, _) = subtree(&[pid]);
        // SAFETY: kill sends a signal to the grandchild this test started.
        unsafe {
            libc::kill(grandchild, libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(listed.contains(&pid), "{listed:?} lacks {pid}");
        assert!(found.contains_key(&pid), "{found:?}");
        assert!(
            found.contains_key(&grandchild),
            "{found:?} lacks {grandchild}"
        );
        assert_eq!(found[&grandchild].ppid, pid);
    }

    /// A file longer than the first buffer is read whole, not cut where the
    /// buffer ends.
    #[test]
    fn a_small_read_takes_a_long_file_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("long");
        let text: String = (0..3000).map(|n| format!("{n} ")).collect();
        assert!(text.len() > 2 * SMALL_FILE);
        std::fs::write(&path, &text).expect("write");
        assert_eq!(read_small(&path).expect("read"), text);
        let own = stat(Pid::try_from(std::process::id()).expect("pid")).expect("own stat");
        assert!(own.start_time > 0 && !own.is_zombie());
    }
}
