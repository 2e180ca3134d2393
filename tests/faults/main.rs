//! `make test-faults`: rrun killed or failed at every syscall of a normal run.
//!
//! For each verb (create, start, run, exec, delete) a reference run is traced (see
//! `ptrace.rs`) to count the syscalls of every process it makes. Then:
//!
//! - **kills**: for every process role and every syscall k of it, the same command with that
//!   process SIGKILLed at its k-th syscall, followed by `delete --force`: it must return
//!   (no hang) and leave nothing (state dir, cgroups, mounts, processes);
//! - **errors**: for every syscall number the command itself makes, its 1st..3rd call fails
//!   with EIO, ENOMEM, EINTR or EAGAIN: no panic, a failed command says what failed with an
//!   errno, and leaves nothing behind even before `delete --force`.
//!
//! Counts go to stderr (`--nocapture`) and every problem found fails the test. Needs root, the
//! busybox bundle (`make bundles`) and the release binary (RRUN_BIN). FAULTS_EVERY=N sweeps
//! every N-th point only (a quick look); FAULTS_ERRNOS=EIO,EINTR picks the errors.

#[allow(dead_code, unused_macros)]
#[macro_use]
#[path = "../integration/common/mod.rs"]
mod common;
mod ptrace;

use common::*;
use ptrace::{Action, Fault, Report};
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verb {
    Create,
    Start,
    Run,
    Exec,
    Delete,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Start => "start",
            Verb::Run => "run",
            Verb::Exec => "exec",
            Verb::Delete => "delete",
        }
    }
}

#[derive(Default)]
struct Tally {
    cases: u32,
    hit: u32,
    failed_cmds: u32,
    alloc_aborts: u32,
    libc_startup: u32,
    problems: Vec<String>,
}

fn every() -> u64 {
    std::env::var("FAULTS_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(1)
}

/// Reap whatever a killed run left to us (we are a subreaper): zombies are no leftovers.
fn reap_zombies() {
    loop {
        let mut st = 0;
        // SAFETY: non-blocking wait for any child.
        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG | libc::__WALL) };
        if r <= 0 {
            break;
        }
    }
}

/// One case: a fresh env, the verb's setup, the traced command, then the checks.
fn case(verb: Verb, label: &str, fault: Option<Fault>, tally: &mut Tally) -> Report {
    let before = tally.problems.len();
    let rep = case_inner(verb, label, fault, tally);
    // Said as found, so that a sweep cut short still shows what it saw.
    for p in &tally.problems[before..] {
        eprintln!("problem: {p}");
    }
    rep
}

fn case_inner(verb: Verb, label: &str, fault: Option<Fault>, tally: &mut Tally) -> Report {
    let env = TestEnv::new(label);
    let mut spec = env.spec();
    let args: &[&str] = match verb {
        Verb::Run => &["true"],
        _ => &["sleep", "1000"],
    };
    set_args(&mut spec, args);
    set(&mut spec, "/process/terminal", serde_json::json!(false));
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    match verb {
        Verb::Create | Verb::Run => {}
        Verb::Start => {
            env.create(&env.id).ok();
        }
        Verb::Exec | Verb::Delete => {
            env.create(&env.id).ok();
            env.rt(&["start", &env.id]).ok();
        }
    }
    let id = env.id.clone();
    let cmd_args: Vec<&str> = match verb {
        Verb::Create => vec!["create", "--bundle", &bundle, &id],
        Verb::Start => vec!["start", &id],
        Verb::Run => vec!["run", "--bundle", &bundle, &id],
        Verb::Exec => vec!["exec", &id, "true"],
        Verb::Delete => vec!["delete", "--force", &id],
    };
    let rep = ptrace::run(env.command(&cmd_args), fault, RUN_TIMEOUT);
    reap_zombies();
    tally.cases += 1;
    if rep.hit {
        tally.hit += 1;
    }
    let what = format!("{} {label}", verb.name());
    if rep.timed_out {
        tally
            .problems
            .push(format!("{what}: the command hung ({RUN_TIMEOUT:?})"));
    }
    if rep.stderr.contains("memory allocation of") && rep.code == 128 + libc::SIGABRT {
        // Rust aborts when the allocator fails (an injected ENOMEM on mmap/brk): counted, and
        // what it leaves is checked like any other crash.
        tally.alloc_aborts += 1;
    } else if rep.code == 128 + libc::SIGABRT || rep.stderr.contains("panicked") {
        tally
            .problems
            .push(format!("{what}: panic: {}", rep.stderr.trim()));
    }
    let injected_error = matches!(
        fault,
        Some(Fault {
            action: Action::Errno(_),
            ..
        })
    ) && rep.hit;
    if rep.code != 0 && rep.code < 128 {
        tally.failed_cmds += 1;
        // The C library's start-up (TLS setup, self-relocation of the static-pie) runs before
        // any of rrun's code and says what failed in its own words: counted, and what it
        // leaves (nothing: rrun never ran) is still checked.
        let libc_startup = rep.code == 127 && !rep.stderr.contains("rrun");
        if libc_startup {
            tally.libc_startup += 1;
        } else if injected_error && !mentions_errno(&rep.stderr) {
            tally.problems.push(format!(
                "{what}: the error names no errno: {}",
                rep.stderr.trim()
            ));
        }
        // A failed create or run leaves nothing, even before delete --force.
        if injected_error && matches!(verb, Verb::Create | Verb::Run) {
            let mut left = Vec::new();
            wait_until(Duration::from_secs(5), || {
                left = env.leftovers();
                left.is_empty()
            });
            if !left.is_empty() {
                tally.problems.push(format!(
                    "{what}: the failed command left: {} (it said: {})",
                    left.join("; "),
                    rep.stderr.trim()
                ));
            }
        }
    }
    // Then delete --force must clear the id, whatever state it was left in.
    let mut del = env.command(&["delete", "--force", &id]);
    // run_cmd panics when the command does not return in time.
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_cmd(&mut del, RUN_TIMEOUT)
    }));
    reap_zombies();
    let Ok(out) = out else {
        tally.problems.push(format!("{what}: delete --force hung"));
        return rep;
    };
    if !out.success() {
        // A retry must finish what a failed delete left.
        let mut retry = env.command(&["delete", "--force", &id]);
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_cmd(&mut retry, RUN_TIMEOUT)
        }));
        let Ok(again) = again else {
            tally
                .problems
                .push(format!("{what}: the retried delete --force hung"));
            return rep;
        };
        if !again.success() {
            tally.problems.push(format!(
                "{what}: delete --force failed twice: {} / {}",
                out.stderr.trim(),
                again.stderr.trim()
            ));
        }
    }
    let mut left = Vec::new();
    wait_until(Duration::from_secs(5), || {
        reap_zombies();
        left = env.leftovers();
        left.is_empty()
    });
    if !left.is_empty() {
        tally.problems.push(format!(
            "{what}: left after delete --force: {}",
            left.join("; ")
        ));
    }
    rep
}

fn mentions_errno(s: &str) -> bool {
    let has_name = s.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        w.len() >= 3
            && w.starts_with('E')
            && w[1..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    });
    has_name
        || [
            "I/O error",
            "Input/output error",
            "Cannot allocate memory",
            "Interrupted system call",
            "Resource temporarily unavailable",
            "Try again",
        ]
        .iter()
        .any(|t| s.contains(t))
}

fn errnos() -> Vec<(String, i32)> {
    let all = [
        ("EIO", libc::EIO),
        ("ENOMEM", libc::ENOMEM),
        ("EINTR", libc::EINTR),
        ("EAGAIN", libc::EAGAIN),
    ];
    let pick = std::env::var("FAULTS_ERRNOS").unwrap_or_default();
    all.iter()
        .filter(|(n, _)| pick.is_empty() || pick.split(',').any(|p| p == *n))
        .map(|(n, e)| (n.to_string(), *e))
        .collect()
}

fn sweep(verb: Verb) {
    let mut tally = Tally::default();
    let reference = case(verb, &format!("f{}-ref", verb.name()), None, &mut tally);
    assert_eq!(
        reference.code,
        0,
        "the reference {} failed: {}",
        verb.name(),
        reference.stderr
    );
    let n = every();
    let mut k_cases = 0;
    for (role, &count) in reference.counts.iter().enumerate() {
        for k in (1..=count).step_by(n as usize) {
            let fault = Fault {
                role,
                nr: None,
                nth: k,
                action: Action::Kill,
            };
            case(
                verb,
                &format!("f{}-k{role}-{k}", &verb.name()[..2]),
                Some(fault),
                &mut tally,
            );
            k_cases += 1;
        }
    }
    let kill_problems = tally.problems.len();
    // Errors: every syscall number of the command itself, its first three calls.
    let mut nrs: Vec<i64> = reference.main_nrs.clone();
    nrs.sort();
    nrs.dedup();
    let mut e_cases = 0;
    let mut i = 0u64;
    for &nr in &nrs {
        let calls = reference.main_nrs.iter().filter(|&&x| x == nr).count() as u64;
        for nth in 1..=calls.min(3) {
            for (ename, e) in errnos() {
                // getrandom(2) (std's HashMap keys) cannot fail but with EINTR, which std
                // retries: the other errors would test std, not a state Linux can reach.
                if nr == libc::SYS_getrandom && e != libc::EINTR {
                    continue;
                }
                i += 1;
                if !i.is_multiple_of(n) {
                    continue;
                }
                let fault = Fault {
                    role: 0,
                    nr: Some(nr),
                    nth,
                    action: Action::Errno(e),
                };
                case(
                    verb,
                    &format!("f{}-e{nr}-{nth}-{ename}", &verb.name()[..2]),
                    Some(fault),
                    &mut tally,
                );
                e_cases += 1;
            }
        }
    }
    eprintln!(
        "faults {}: syscalls per process {:?}; {k_cases} kill cases, {e_cases} error cases ({} syscall numbers); {} reached, {} commands failed ({} aborted on an allocation failure, {} in the C library's start-up); problems: {} after kills, {} after errors",
        verb.name(),
        reference.counts,
        nrs.len(),
        tally.hit,
        tally.failed_cmds,
        tally.alloc_aborts,
        tally.libc_startup,
        kill_problems,
        tally.problems.len() - kill_problems
    );
    for p in &tally.problems {
        eprintln!("  {p}");
    }
    assert!(
        tally.problems.is_empty(),
        "{} problems (above)",
        tally.problems.len()
    );
}

#[test]
fn faults_create() {
    sweep(Verb::Create);
}

#[test]
fn faults_start() {
    sweep(Verb::Start);
}

#[test]
fn faults_run() {
    sweep(Verb::Run);
}

#[test]
fn faults_exec() {
    sweep(Verb::Exec);
}

#[test]
fn faults_delete() {
    sweep(Verb::Delete);
}

/// A bundle for container `n` of a stress test: its own cgroup under the test's.
fn stress_bundle(env: &TestEnv, n: usize, args: &[&str]) -> String {
    let mut spec = env.spec();
    set_args(&mut spec, args);
    set(&mut spec, "/process/terminal", serde_json::json!(false));
    set(
        &mut spec,
        "/linux/cgroupsPath",
        serde_json::json!(format!("{}/{n}", env.cgroups_path())),
    );
    let dir = env.dir.join(format!("b{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
    dir.to_str().unwrap().to_string()
}

/// `<runtime> --root ROOT ARGS` (what `TestEnv::command` makes, for threads: TestEnv is not
/// Sync).
fn command_in(root: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(runtime_bin());
    cmd.arg("--root").arg(root).args(args);
    cmd
}

/// Run a command to its end with stdin and stdout from/to /dev/null and stderr to a file (a
/// detached container keeps whatever stdio it was given: no pipe is waited on). (exit code,
/// stderr); a command still running after a minute is killed and reported.
fn run_quiet(mut cmd: std::process::Command, tag: &str) -> (Option<i32>, String) {
    let err = std::env::temp_dir().join(format!("rrun-stress-{}-{tag}.err", std::process::id()));
    let f = std::fs::File::create(&err).unwrap();
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(f);
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let code = loop {
        match child.try_wait().unwrap() {
            Some(st) => break st.code(),
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_file(&err);
    (code, text)
}

/// Run `f(i)` for i in 0..n on `threads` threads at once; the failures' messages.
fn in_parallel(n: usize, f: impl Fn(usize) -> Result<(), String> + Sync) -> Vec<String> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errs = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    if let Err(e) = f(i) {
                        errs.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    errs.into_inner().unwrap()
}

/// The test's own parent cgroup in every hierarchy (a prefix it owns: rrun makes only the
/// containers' dirs under it). Returns the dirs, for `children_left` and the removal.
fn own_parent(env: &TestEnv) -> Vec<std::path::PathBuf> {
    cgroup_mountpoints()
        .into_iter()
        .map(|m| {
            let d = m.join(env.cgroups_path().trim_start_matches('/'));
            // The shared prefix dir can be removed between create_dir_all's two mkdirs by
            // the delete of a container elsewhere that made it (other tests on the host).
            let mut tries = 0;
            while let Err(e) = std::fs::create_dir_all(&d) {
                tries += 1;
                assert!(tries < 50, "mkdir {}: {e}", d.display());
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            d
        })
        .collect()
}

/// Container cgroups still under the test's parent dirs.
fn children_left(parents: &[std::path::PathBuf]) -> Vec<String> {
    parents
        .iter()
        .flat_map(|p| std::fs::read_dir(p).into_iter().flatten().flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| format!("cgroup left: {}", e.path().display()))
        .collect()
}

fn remove_parents(parents: &[std::path::PathBuf]) {
    for p in parents {
        let _ = std::fs::remove_dir(p);
    }
}

/// 200 `run -d` at once (32 in flight), then 200 `delete --force`, twice: no failure,
/// nothing left.
#[test]
fn stress_200_parallel_run_detached() {
    const N: usize = 200;
    for round in 0..2 {
        let env = TestEnv::new(&format!("par200-{round}"));
        let parents = own_parent(&env);
        let bundles: Vec<String> = (0..N)
            .map(|i| stress_bundle(&env, i, &["sleep", "1000"]))
            .collect();
        let ids: Vec<String> = (0..N).map(|i| format!("{}-{i}", env.id)).collect();
        for id in &ids {
            env.track_id(id);
        }
        let root = env.root.clone();
        let t = std::time::Instant::now();
        let run_errs = in_parallel(N, |i| {
            let args = ["run", "-d", "--bundle", &bundles[i], &ids[i]];
            match run_quiet(command_in(&root, &args), &format!("r{i}")) {
                (Some(0), _) => Ok(()),
                (c, e) => Err(format!("run -d {} ({c:?}): {}", ids[i], e.trim())),
            }
        });
        let run_took = t.elapsed();
        let listed = env.rt(&["list", "-q"]).lines().len();
        let t = std::time::Instant::now();
        let del_errs = in_parallel(N, |i| {
            let args = ["delete", "--force", &ids[i]];
            match run_quiet(command_in(&root, &args), &format!("d{i}")) {
                (Some(0), _) => Ok(()),
                (c, e) => Err(format!("delete --force {} ({c:?}): {}", ids[i], e.trim())),
            }
        });
        let del_took = t.elapsed();
        let mut left = Vec::new();
        wait_until(Duration::from_secs(10), || {
            reap_zombies();
            left = children_left(&parents);
            left.extend(
                env.leftovers()
                    .into_iter()
                    .filter(|l| !l.starts_with("cgroup left")),
            );
            left.is_empty()
        });
        remove_parents(&parents);
        eprintln!(
            "stress round {round}: {N} run -d in {run_took:.2?} ({} failed), {listed} listed, {N} delete --force in {del_took:.2?} ({} failed), {} leftovers",
            run_errs.len(),
            del_errs.len(),
            left.len()
        );
        assert!(run_errs.is_empty(), "run -d failures: {run_errs:#?}");
        assert_eq!(listed, N);
        assert!(del_errs.is_empty(), "delete failures: {del_errs:#?}");
        assert!(left.is_empty(), "leftovers: {left:#?}");
    }
}

/// Races on one id: 100 creates of the same id at once (exactly one wins, the rest say it
/// exists), then 50 `delete --force` and 50 `kill` of it at once: it is gone, every command
/// gave a fitting answer, and nothing is left.
#[test]
fn stress_races_on_one_id() {
    let env = TestEnv::new("race-one-id");
    let mut spec = env.spec();
    set_args(&mut spec, &["sleep", "1000"]);
    set(&mut spec, "/process/terminal", serde_json::json!(false));
    env.write_bundle(&spec);
    env.track_id(&env.id);
    let bundle = env.bundle.to_str().unwrap().to_string();
    let (root, id) = (env.root.clone(), env.id.clone());
    let won = std::sync::atomic::AtomicUsize::new(0);
    let errs = in_parallel(100, |i| {
        let args = ["create", "--bundle", &bundle, &id];
        match run_quiet(command_in(&root, &args), &format!("c{i}")) {
            (Some(0), _) => {
                won.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            (_, e) if e.contains("already exists") => Ok(()),
            (c, e) => Err(format!("create ({c:?}): {}", e.trim())),
        }
    });
    assert!(errs.is_empty(), "unexpected create errors: {errs:#?}");
    assert_eq!(won.into_inner(), 1, "exactly one create of the id succeeds");
    env.rt(&["start", &env.id]).ok();
    let errs = in_parallel(100, |i| {
        let args: Vec<&str> = if i % 2 == 0 {
            vec!["delete", "--force", &id]
        } else {
            vec!["kill", &id, "KILL"]
        };
        let (code, e) = run_quiet(command_in(&root, &args), &format!("k{i}"));
        if code == Some(0) || e.contains("does not exist") || e.contains("not running") {
            Ok(())
        } else {
            Err(format!("{} ({code:?}): {}", args[0], e.trim()))
        }
    });
    assert!(errs.is_empty(), "unexpected errors: {errs:#?}");
    let mut left = Vec::new();
    wait_until(Duration::from_secs(10), || {
        reap_zombies();
        left = env.leftovers();
        left.is_empty()
    });
    assert!(left.is_empty(), "leftovers: {left:#?}");
    eprintln!(
        "races: 100 creates of one id: 1 won, 99 'already exists'; 50 delete --force + 50 kill at once: no error, nothing left"
    );
}
