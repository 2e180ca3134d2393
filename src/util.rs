//! Small helpers shared by several modules: time formatting, atomic writes, /proc facts.

use anyhow::Result;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// RFC 3339 UTC timestamp with nanoseconds, as runc writes `created`.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Write a file atomically: a temp file in the same directory, fsync-free rename over the target.
/// A value for an error message: quoted, and cut after `max` bytes (with its whole length)
/// so that a huge config value does not become a huge error.
pub fn shorten(v: &str, max: usize) -> String {
    if v.len() <= max {
        return format!("{v:?}");
    }
    let mut end = max;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &v[..end], v.len())
}

/// A new file rrun makes for itself: O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC with `mode`, so a
/// file or symlink planted at `path` is never opened. `append` for a record written in pieces.
pub fn create_new(path: &Path, mode: u32, append: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .append(append)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
}

/// Write `path` atomically: a new file of an unpredictable name in the same dir, made with
/// O_EXCL|O_NOFOLLOW (a symlink or file planted there by someone who can write the dir is
/// never opened, let alone truncated), then renamed over `path` (which replaces a symlink at
/// `path`, never follows it).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let mut attempt = 0;
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", random_u64()));
        match create_new(&tmp, mode, false) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                attempt += 1;
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "write {}: create {}: {}",
                    path.display(),
                    tmp.display(),
                    crate::sys::io_errno(&e)
                ));
            }
        }
    };
    let res = f.write_all(data).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!(
            "write {}: {}",
            path.display(),
            crate::sys::io_errno(&e)
        ));
    }
    Ok(())
}

/// The fd numbers of 3..3+n that the caller did not have open: filled with a placeholder by
/// [`reserve_passed_fds`], closed again right before the container's execve.
static PLACEHOLDERS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// The caller's fds 3..3+n go to the container (--preserve-fds, LISTEN_FDS). So that none of
/// rrun's own fds (the state dir, exec.fifo, the cgroup, the log) is ever given a number in
/// that range, and so passed on, every number of it the caller left unopened is taken now by
/// a close-on-exec /dev/null, before rrun opens anything; [`is_placeholder`] tells the child
/// which to close instead of passing.
pub fn reserve_passed_fds(n: u32) {
    // Whatever else the caller left open (a shim's pipes, fds it forgot) must never reach a
    // container, even where a seccomp profile refuses the close_range before execve:
    // close-on-exec from the start (close_range CLOSE_RANGE_CLOEXEC, Linux 5.11).
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: only sets FD_CLOEXEC on fds from 3+n on.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32.saturating_add(n),
            u32::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if n == 0 {
        return;
    }
    // Not past the fd limit (a larger count only names fds that cannot exist).
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let end = (3u64 + n as u64).min(lim.rlim_cur.max(3)) as i32;
    let mut held = PLACEHOLDERS.lock().unwrap_or_else(|e| e.into_inner());
    let mut null = -1;
    for fd in 3..end {
        // SAFETY: F_GETFD only queries the fd table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        if null < 0 {
            // SAFETY: opening /dev/null; the lowest free number, which is `fd`.
            null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if null < 0 {
                return;
            }
            if null == fd {
                held.push(fd);
                continue;
            }
        }
        // SAFETY: duplicating our own placeholder onto a free number.
        if unsafe { libc::dup3(null, fd, libc::O_CLOEXEC) } == fd {
            held.push(fd);
        }
    }
}

/// Whether `fd` is a placeholder of [`reserve_passed_fds`], not one of the caller's.
pub fn is_placeholder(fd: i32) -> bool {
    PLACEHOLDERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&fd)
}

/// 64 random bits from the kernel (getrandom; a clock and pid mix should it fail).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom into a buffer of its length.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == 8 {
        return u64::from_ne_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32)
}

/// Facts about a pid from /proc/<pid>/stat: (state char, start time in clock ticks).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    proc_stat_in(None, pid)
}

/// [`proc_stat`] with `/proc` given as an open directory (`list`: one lookup per pid instead
/// of a walk from `/`).
pub fn proc_stat_in(proc: Option<std::os::fd::BorrowedFd>, pid: i32) -> Option<(char, u64)> {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 1024];
    let n = match proc {
        Some(d) => read_small_at(d.as_raw_fd(), &format!("{pid}/stat"), &mut buf)?,
        None => read_small(&format!("/proc/{pid}/stat"), &mut buf)?,
    };
    parse_stat(std::str::from_utf8(&buf[..n]).ok()?)
}

/// A whole regular file into `buf` (cleared first) with as few syscalls as it takes: open,
/// reads into the spare capacity until one returns 0 or comes back short (a regular file's
/// end), close. No statx or lseek for a size hint as `fs::read` does.
/// `path` is relative to the directory `dir` (or AT_FDCWD).
pub fn read_into_at(
    dir: std::os::fd::RawFd,
    path: &Path,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid C string; the fd is owned by the File below.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is ours.
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    buf.clear();
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        let spare = buf.capacity() - buf.len();
        // SAFETY: reading into the vector's spare capacity, within its length.
        let n = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().add(buf.len()).cast(), spare) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: the kernel initialized n more bytes.
        unsafe { buf.set_len(buf.len() + n as usize) };
        if n == 0 || (n as usize) < spare {
            return Ok(());
        }
    }
}

/// A whole /proc text file (mountinfo, cgroup) with big reads until one returns 0: each
/// read of a seq_file takes its locks again (mountinfo: the global namespace_sem that every
/// mount waits on) and std's `read_to_string` would read it 32, 32, 64, 128... bytes at a time.
pub fn read_proc(path: &str) -> std::io::Result<String> {
    read_text(&mut std::fs::File::open(path)?, 16384)
}

/// The rest of `f` as text, with reads of at least `first` bytes until one returns 0 (a
/// kernfs or seq_file may come in pieces), and no size probe (those files have no size).
pub fn read_text(f: &mut impl std::io::Read, first: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; first.max(64)];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A small file (a /proc or cgroup file of one line) in one read: open, read, close. std's
/// `read_to_string` adds a statx and grows its buffer 32 bytes at a time on /proc files,
/// which `list` would pay per container. None if it cannot be read or does not fit.
pub fn read_small(path: &str, buf: &mut [u8]) -> Option<usize> {
    read_small_at(libc::AT_FDCWD, path, buf)
}

/// [`read_small`] of a path relative to the directory `dir` (or AT_FDCWD).
pub fn read_small_at(dir: std::os::fd::RawFd, path: &str, buf: &mut [u8]) -> Option<usize> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: a valid C string; the fd is owned below.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just opened and is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: reading into a buffer we own, within its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0 && (n as usize) < buf.len()).then_some(n as usize)
}

pub fn parse_stat(s: &str) -> Option<(char, u64)> {
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split_ascii_whitespace();
    let state = it.next()?.chars().next()?;
    // state is field 3; starttime is field 22, i.e. 19 fields further.
    let start = it.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Is the pid alive as the same process (start time) and not a zombie?
pub fn pid_alive(pid: i32, start_time: u64) -> bool {
    pid_alive_in(None, pid, start_time)
}

/// [`pid_alive`] with `/proc` given as an open directory.
pub fn pid_alive_in(proc: Option<std::os::fd::BorrowedFd>, pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat_in(proc, pid) {
        Some((st, start)) => st != 'Z' && st != 'X' && start == start_time,
        None => false,
    }
}

/// A CPU list as the kernel and the runtime-spec write it ("0-3,7"), as a sched_setaffinity
/// mask.
#[derive(Clone, Copy)]
pub struct CpuSet(libc::cpu_set_t);

impl std::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: CPU_ISSET reads a bit of a valid cpu_set_t.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &self.0) })
            .collect();
        write!(f, "CpuSet({on:?})")
    }
}

impl CpuSet {
    /// Every CPU: the kernel narrows it to those the cgroup's cpuset allows.
    pub fn all() -> CpuSet {
        // SAFETY: cpu_set_t is a plain bit array; all ones is a valid value.
        CpuSet(unsafe { std::mem::transmute::<[u8; 128], libc::cpu_set_t>([0xff; 128]) })
    }

    pub fn parse(s: &str) -> Result<CpuSet> {
        // SAFETY: an all-zero cpu_set_t is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let max = libc::CPU_SETSIZE as usize;
        let num = |t: &str| -> Result<usize> {
            let n: usize = t
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{s:?}: {t:?} is not a CPU number"))?;
            if n >= max {
                anyhow::bail!("{s:?}: CPU {n} is beyond the {max} a mask can hold");
            }
            Ok(n)
        };
        let mut any = false;
        for part in s.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(part)?;
                    (n, n)
                }
            };
            if a > b {
                anyhow::bail!("{s:?}: range {part:?} runs backwards");
            }
            for c in a..=b {
                // SAFETY: c < CPU_SETSIZE, set is a valid cpu_set_t.
                unsafe { libc::CPU_SET(c, &mut set) };
                any = true;
            }
        }
        if !any {
            anyhow::bail!("{s:?}: no CPU");
        }
        Ok(CpuSet(set))
    }

    /// sched_setaffinity(pid) (0: the calling thread).
    pub fn apply(&self, pid: i32) -> nix::Result<()> {
        // SAFETY: a valid cpu_set_t and its size.
        let r = unsafe {
            libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &self.0)
        };
        nix::errno::Errno::result(r).map(|_| ())
    }
}

/// The processes of a container without a cgroup (rootless on cgroup v1), from /proc: init,
/// every process in init's pid namespace when the container has its own, and the
/// descendants of all of these. Empty once init is gone (a pid namespace dies with its init).
pub fn pids_by_proc(init: i32, start_time: u64, own_pidns: bool) -> Vec<i32> {
    if !pid_alive(init, start_time) {
        return Vec::new();
    }
    let ns_of = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let init_ns = if own_pidns { ns_of(init) } else { None };
    // (pid, parent) of every process we may look at.
    let mut all: Vec<(i32, i32)> = Vec::new();
    let mut set: Vec<i32> = vec![init];
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let mut buf = [0u8; 1024];
            let Some(n) = read_small(&format!("/proc/{pid}/stat"), &mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            // pid (comm) state ppid ...: comm may hold spaces and parentheses.
            let Some(ppid) = text
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            all.push((pid, ppid));
            if pid != init && init_ns.is_some() && ns_of(pid) == init_ns {
                set.push(pid);
            }
        }
    }
    loop {
        let before = set.len();
        for &(pid, ppid) in &all {
            if set.contains(&ppid) && !set.contains(&pid) {
                set.push(pid);
            }
        }
        if set.len() == before {
            break;
        }
    }
    set.sort_unstable();
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_into_at_small_and_large_files() {
        let dir = std::env::temp_dir().join(format!("rrun-read-into-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut buf = Vec::new();
        for len in [0usize, 1, 4095, 4096, 8192, 100_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let p = dir.join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            read_into_at(libc::AT_FDCWD, &p, &mut buf).unwrap();
            assert_eq!(buf, data, "length {len}");
        }
        let e = read_into_at(libc::AT_FDCWD, &dir.join("missing"), &mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let mi = read_proc("/proc/self/mountinfo").unwrap();
        assert_eq!(mi, std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        let mut small = [0u8; 16];
        assert!(read_small("/proc/self/stat", &mut [0u8; 1024]).is_some());
        assert_eq!(
            read_small("/proc/self/stat", &mut small),
            None,
            "does not fit"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }

    #[test]
    fn stat_with_odd_comm() {
        let s = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(parse_stat(s), Some(('S', 123456)));
    }

    #[test]
    fn own_pid_is_alive() {
        let (st, start) = proc_stat(std::process::id() as i32).unwrap();
        assert_ne!(st, 'Z');
        assert!(pid_alive(std::process::id() as i32, start));
        assert!(!pid_alive(std::process::id() as i32, start + 1));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(
            format!("{:?}", CpuSet::parse("0-3,7").unwrap()),
            "CpuSet([0, 1, 2, 3, 7])"
        );
        assert_eq!(format!("{:?}", CpuSet::parse("1").unwrap()), "CpuSet([1])");
        for bad in ["", "x", "3-1", "0-", "1024", "0,,1", "-1"] {
            assert!(CpuSet::parse(bad).is_err(), "{bad:?}");
        }
        assert!(format!("{:?}", CpuSet::all()).contains("1023"));
    }
}
