//! A small ptrace driver: runs a command with every process it makes traced, counts each
//! process's syscalls, and at one chosen syscall either SIGKILLs that process or makes the
//! syscall fail with an errno (the syscall is skipped and its return value replaced).
//!
//! Processes are named by role: 0 is the command itself, 1, 2, ... its descendants in the
//! order their creation is seen. A process that execs another program (the container's, a
//! hook's) is let go at its exec: only rrun's own code is swept.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kill,
    Errno(i32),
}

/// Where to act: the `nth` (1-based) syscall of process `role`, counting only syscall `nr`
/// when it is given.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub role: usize,
    pub nr: Option<i64>,
    pub nth: u64,
    pub action: Action,
}

#[derive(Debug, Default)]
pub struct Report {
    /// Syscalls of each role (role index -> count).
    pub counts: Vec<u64>,
    /// The syscall numbers of role 0, in order.
    pub main_nrs: Vec<i64>,
    /// Whether the fault was reached.
    pub hit: bool,
    /// The command's exit code, or 128+signal.
    pub code: i32,
    pub timed_out: bool,
    pub stderr: String,
}

struct Tracee {
    role: usize,
    in_syscall: bool,
    count: u64,
    nr_counts: HashMap<i64, u64>,
    /// Replace this syscall's return value at its exit stop.
    fake_ret: Option<i64>,
}

const EVENT_SHIFT: i32 = 16;

fn ptrace(req: libc::c_uint, pid: i32, addr: usize, data: usize) -> i64 {
    // SAFETY: plain ptrace requests on our own tracees, with addr/data as the request needs.
    unsafe { libc::ptrace(req, pid, addr, data) }
}

fn regs(pid: i32) -> Option<libc::user_regs_struct> {
    // SAFETY: a zeroed user_regs_struct is valid; GETREGS fills it.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    let rc = ptrace(libc::PTRACE_GETREGS, pid, 0, &mut r as *mut _ as usize);
    (rc == 0).then_some(r)
}

fn set_regs(pid: i32, r: &libc::user_regs_struct) {
    ptrace(libc::PTRACE_SETREGS, pid, 0, r as *const _ as usize);
}

/// Run `cmd` traced (stdin null, stdout discarded, stderr captured), with `fault` if any.
/// On a time-out every process it made is SIGKILLed.
pub fn run(mut cmd: Command, fault: Option<Fault>, timeout: Duration) -> Report {
    // The tracer is this thread: the run happens in a thread of its own, so that when it
    // ends every process still traced (an init waiting on its fifo) is let go.
    std::thread::scope(|s| s.spawn(move || run_here(&mut cmd, fault, timeout)).join())
        .expect("tracer thread")
}

fn run_here(cmd: &mut Command, fault: Option<Fault>, timeout: Duration) -> Report {
    let err_path = std::env::temp_dir().join(format!(
        "rrun-fault-{}-{:?}.err",
        std::process::id(),
        std::thread::current().id()
    ));
    let err_f = std::fs::File::create(&err_path).expect("stderr file");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err_f);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn traced command");
    let main = child.id() as i32;
    let mut rep = Report::default();
    let live: Arc<Mutex<Vec<i32>>> = Arc::new(Mutex::new(vec![main]));
    // Watchdog: past the deadline, SIGKILL everything traced.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (live, done, timed_out) = (live.clone(), done.clone(), timed_out.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
            for &p in live.lock().unwrap().iter() {
                // SAFETY: kill on pids of processes this run traces.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        });
    }
    let mut tracees: HashMap<i32, Tracee> = HashMap::new();
    let mut next_role = 0usize;
    let mut new_tracee = |pid: i32, tracees: &mut HashMap<i32, Tracee>| {
        tracees.entry(pid).or_insert_with(|| {
            let t = Tracee {
                role: next_role,
                in_syscall: false,
                count: 0,
                nr_counts: HashMap::new(),
                fake_ret: None,
            };
            next_role += 1;
            t
        });
    };
    // The exec stop of TRACEME.
    let mut st = 0;
    // SAFETY: waitpid on our child.
    unsafe { libc::waitpid(main, &mut st, libc::__WALL) };
    new_tracee(main, &mut tracees);
    let opts = libc::PTRACE_O_TRACESYSGOOD
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACEEXEC;
    ptrace(libc::PTRACE_SETOPTIONS, main, 0, opts as usize);
    ptrace(libc::PTRACE_SYSCALL, main, 0, 0);
    let mut main_done = false;
    while !main_done {
        let mut st = 0;
        // SAFETY: waitpid for any tracee.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::__WALL) };
        if pid < 0 {
            break;
        }
        if libc::WIFEXITED(st) || libc::WIFSIGNALED(st) {
            tracees.remove(&pid);
            live.lock().unwrap().retain(|&p| p != pid);
            if pid == main {
                rep.code = if libc::WIFEXITED(st) {
                    libc::WEXITSTATUS(st)
                } else {
                    128 + libc::WTERMSIG(st)
                };
                main_done = true;
            }
            continue;
        }
        if !libc::WIFSTOPPED(st) {
            continue;
        }
        new_tracee(pid, &mut tracees);
        let sig = libc::WSTOPSIG(st);
        let event = st >> EVENT_SHIFT;
        if sig == (libc::SIGTRAP | 0x80) {
            let t = tracees.get_mut(&pid).unwrap();
            if !t.in_syscall {
                t.in_syscall = true;
                t.count += 1;
                let Some(r) = regs(pid) else {
                    ptrace(libc::PTRACE_SYSCALL, pid, 0, 0);
                    continue;
                };
                let nr = r.orig_rax as i64;
                let n_nr = {
                    let c = t.nr_counts.entry(nr).or_insert(0);
                    *c += 1;
                    *c
                };
                if t.role == 0 {
                    rep.main_nrs.push(nr);
                }
                if rep.counts.len() <= t.role {
                    rep.counts.resize(t.role + 1, 0);
                }
                rep.counts[t.role] = t.count;
                if let Some(f) = fault
                    && !rep.hit
                    && f.role == t.role
                    && match f.nr {
                        Some(want) => want == nr && n_nr == f.nth,
                        None => t.count == f.nth,
                    }
                {
                    rep.hit = true;
                    match f.action {
                        Action::Kill => {
                            // SAFETY: kill on our tracee.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                        Action::Errno(e) => {
                            let mut r2 = r;
                            r2.orig_rax = u64::MAX; // skip the syscall
                            set_regs(pid, &r2);
                            t.fake_ret = Some(-(e as i64));
                        }
                    }
                }
            } else {
                t.in_syscall = false;
                if let Some(v) = t.fake_ret.take()
                    && let Some(mut r) = regs(pid)
                {
                    r.rax = v as u64;
                    set_regs(pid, &r);
                }
            }
            ptrace(libc::PTRACE_SYSCALL, pid, 0, 0);
            continue;
        }
        if sig == libc::SIGTRAP && event != 0 {
            match event {
                libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK => {
                    let mut child: libc::c_ulong = 0;
                    ptrace(
                        libc::PTRACE_GETEVENTMSG,
                        pid,
                        0,
                        &mut child as *mut _ as usize,
                    );
                    new_tracee(child as i32, &mut tracees);
                    live.lock().unwrap().push(child as i32);
                    ptrace(libc::PTRACE_SYSCALL, pid, 0, 0);
                }
                libc::PTRACE_EVENT_EXEC if pid != main => {
                    // Another program now: not ours to sweep.
                    tracees.remove(&pid);
                    live.lock().unwrap().retain(|&p| p != pid);
                    ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                }
                _ => {
                    ptrace(libc::PTRACE_SYSCALL, pid, 0, 0);
                }
            }
            continue;
        }
        // A new tracee's first stop, or a signal to deliver.
        let t = tracees.get_mut(&pid).unwrap();
        let deliver = if sig == libc::SIGSTOP && t.count == 0 {
            0
        } else {
            sig
        };
        ptrace(libc::PTRACE_SYSCALL, pid, 0, deliver as usize);
    }
    // The command is gone. Let its processes go cleanly: one stopped at a syscall or at its
    // first SIGSTOP (a child just cloned) is detached with no signal, so that none is left
    // in a real stop by a SIGSTOP the tracer would have swallowed. One blocked in a syscall
    // (init on its fifo) is let go when this thread ends.
    let until = Instant::now() + Duration::from_millis(300);
    while !tracees.is_empty() && Instant::now() < until {
        let mut st = 0;
        // SAFETY: non-blocking wait for any tracee.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::__WALL | libc::WNOHANG) };
        if pid < 0 {
            break;
        }
        if pid == 0 {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        if libc::WIFSTOPPED(st) {
            let sig = libc::WSTOPSIG(st);
            // A signal other than the tracer's own stops goes on to the process.
            let pass =
                if sig == libc::SIGSTOP || sig == libc::SIGTRAP || sig == libc::SIGTRAP | 0x80 {
                    0
                } else {
                    sig
                };
            ptrace(libc::PTRACE_DETACH, pid, 0, pass as usize);
        }
        tracees.remove(&pid);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    rep.timed_out = timed_out.load(std::sync::atomic::Ordering::SeqCst);
    // Reap the command itself (already waited for above: nothing to do) and let the rest go
    // with this thread.
    drop(child);
    rep.stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    rep
}
