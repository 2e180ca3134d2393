//! runc-compatible command line: the same global flags and verbs, so containerd's shim, conmon
//! and people can swap runc for rrun. Flags may come before or after the container id.

use crate::logging::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "rrun",
    about = "rrun: an OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log file for errors and debug output
    #[arg(long, global = true, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: Format,
    /// Debug output, with the time each phase took
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility; cgroupsPath is used as a cgroupfs path
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode (true, false or auto: rootless when not root); with `spec`, a rootless spec
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "VALUE")]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility (checkpointing is not offered)
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Write a new config.json template into the bundle directory
    Spec(SpecArgs),
    /// Create a container, leaving its process waiting for `start`
    Create(CreateArgs),
    /// Start a created container
    Start(IdArgs),
    /// Print the state of a container as JSON
    State(IdArgs),
    /// Send a signal to the container's init process (default TERM)
    Kill(KillArgs),
    /// Delete a container and everything the runtime holds for it
    Delete(DeleteArgs),
    /// Create and start a container, and wait for it unless --detach
    Run(RunArgs),
    /// List containers
    #[command(alias = "ls")]
    List(ListArgs),
    /// Freeze every process of the container
    Pause(IdArgs),
    /// Thaw a paused container
    Resume(IdArgs),
    /// Show the processes of the container (ps output filtered to its cgroup)
    Ps(PsArgs),
    /// Change the resource limits of a running container
    Update(Box<UpdateArgs>),
    /// Resource usage stats and OOM notices of a container
    Events(EventsArgs),
    /// Run a new process inside a running container
    Exec(Box<ExecArgs>),
    /// What this rrun supports, as the runtime-spec features JSON
    Features,
    /// Show what rrun makes of a bundle (no container is made)
    #[command(subcommand)]
    Debug(DebugCmd),
}

#[derive(Subcommand, Debug)]
pub enum DebugCmd {
    /// The bundle's linux.seccomp compiled: readable BPF, or with --raw the struct
    /// sock_filter array (8 bytes per instruction, host byte order) on stdout
    Seccomp(DebugSeccompArgs),
}

#[derive(Args, Debug)]
pub struct DebugSeccompArgs {
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the raw program instead of the listing
    #[arg(long)]
    pub raw: bool,
}

#[derive(Args, Debug, Default)]
pub struct ExecArgs {
    /// process.json with the whole process (instead of ARGS)
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket to send the pty master to
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Environment variable K=V (repeatable)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// UID[:GID]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids (repeatable or comma separated)
    #[arg(short = 'g', long = "additional-gids", value_delimiter = ',')]
    pub additional_gids: Vec<u32>,
    /// Add a capability (repeatable)
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile (needs AppArmor on the host)
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux process label (needs SELinux on the host)
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Pass N extra fds (3 .. 3+N-1)
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Exec even if the container is paused
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup of the container's: [CONTROLLER[,CONTROLLER]:]PATH (repeatable;
    /// one PATH alone is for every hierarchy, and the only form on cgroup v2)
    #[arg(long = "cgroup", value_name = "[CONTROLLERS:]PATH")]
    pub cgroup: Vec<String>,
    /// Unix socket to send a pidfd of the process to
    #[arg(long = "pidfd-socket", value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
    /// The container's id
    pub id: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// table or json (json: the list of pids)
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
    /// The container's id
    pub id: String,
    /// Options for ps(1), default -ef
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print one stats object and exit
    #[arg(long)]
    pub stats: bool,
    /// Interval between stats in the stream (e.g. 5s, 500ms)
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// The container's id
    pub id: String,
}

#[derive(Args, Debug, Default)]
pub struct UpdateArgs {
    /// JSON LinuxResources from a file, or - for stdin
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS burst in microseconds (cpu.cfs_burst_us, v2 cpu.max.burst)
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// 1: the cgroup is SCHED_IDLE (cpu.idle); 0: normal
    #[arg(long = "cpu-idle")]
    pub cpu_idle: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory")]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp")]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// The container's id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Directory to write config.json in
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct CreateOpts {
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write the container's init pid to
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to (terminal: true)
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3 .. 3+N-1) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Unix socket to send a pidfd of the container's init to
    #[arg(long = "pidfd-socket", value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// The container's id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// Do not wait for the container; print nothing and exit after start
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// The container's id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The container's id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal every process in the container's cgroup
    #[arg(short = 'a', long)]
    pub all: bool,
    /// The container's id
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number; 0 only checks that init is alive
    #[arg(default_value = "TERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kill a running container first
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The container's id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print only the ids
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// table or json
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
}

/// The argv shapes engines use on every container (containerd's shim, conmon, the bench) parsed
/// without building clap's command tree, which cost ~0.4 ms and 74 page faults per invocation,
/// as much as all of `state`'s own work. Anything this does not fully understand (help,
/// versions, other verbs, bundled short flags, `--`, repeated or odd values) is left to clap,
/// so errors and help text always come from clap. A unit test checks that every argv it takes
/// gives exactly what clap gives.
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    fast_parse(&args).unwrap_or_else(parse_slow)
}

/// clap's parse, but an unknown verb (`rrun foo`, `rrun foo -h`, `rrun help foo`) says that
/// there is no such command rather than clap's "unrecognized subcommand".
fn parse_slow() -> Cli {
    use clap::error::{ContextKind, ErrorKind};
    match <Cli as Parser>::try_parse() {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::InvalidSubcommand => {
            let name = e
                .get(ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            eprintln!("rrun: error: no such command {name:?}; `rrun --help` lists them");
            std::process::exit(2)
        }
        Err(e) => e.exit(),
    }
}

fn fast_parse(args: &[std::ffi::OsString]) -> Option<Cli> {
    let args: Vec<&str> = args.iter().map(|a| a.to_str()).collect::<Option<_>>()?;
    let mut cli = Cli {
        root: None,
        log: None,
        log_format: Format::Text,
        debug: false,
        systemd_cgroup: false,
        rootless: None,
        criu: None,
        version: false,
        cmd: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut verb: Option<&str> = None;
    let mut flags: Vec<(&str, Option<&str>)> = Vec::new();
    let mut pos: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        i += 1;
        if a.is_empty() || a == "-" || a == "--" {
            return None;
        }
        if !a.starts_with('-') {
            if verb.is_none() {
                verb = Some(a);
            } else {
                pos.push(a);
            }
            continue;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (a, None),
        };
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        let takes_value = matches!(
            name,
            "--root"
                | "--log"
                | "--log-format"
                | "-b"
                | "--bundle"
                | "--pid-file"
                | "--console-socket"
                | "--pidfd-socket"
                | "--preserve-fds"
                | "-f"
                | "--format"
        ) && !(name == "-f" && verb != Some("list"));
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => {
                    let v = *args.get(i)?;
                    i += 1;
                    Some(v)
                }
            }
        } else if inline.is_some() {
            return None;
        } else {
            None
        };
        if value.is_some_and(|v| v.is_empty() || v.starts_with('-')) {
            return None;
        }
        match (name, value) {
            ("--root", Some(v)) => cli.root = Some(PathBuf::from(v)),
            ("--log", Some(v)) => cli.log = Some(PathBuf::from(v)),
            ("--log-format", Some("text")) => cli.log_format = Format::Text,
            ("--log-format", Some("json")) => cli.log_format = Format::Json,
            ("--log-format", _) => return None,
            ("--debug", None) => cli.debug = true,
            ("--systemd-cgroup", None) => cli.systemd_cgroup = true,
            // Only global flags may come before the verb.
            _ if verb.is_none() => return None,
            _ => flags.push((name, value)),
        }
    }
    let mut take = |names: &[&str]| -> Option<Option<&str>> {
        let k = flags.iter().position(|(n, _)| names.contains(n))?;
        Some(flags.remove(k).1)
    };
    let one = |pos: &[&str]| (pos.len() == 1).then(|| pos[0].to_string());
    let cmd = match verb? {
        "state" | "start" | "pause" | "resume" => {
            let a = IdArgs { id: one(&pos)? };
            match verb? {
                "state" => Cmd::State(a),
                "start" => Cmd::Start(a),
                "pause" => Cmd::Pause(a),
                _ => Cmd::Resume(a),
            }
        }
        "delete" => Cmd::Delete(DeleteArgs {
            force: take(&["-f", "--force"]).is_some(),
            id: one(&pos)?,
        }),
        "kill" => {
            if pos.is_empty() || pos.len() > 2 {
                return None;
            }
            Cmd::Kill(KillArgs {
                all: take(&["-a", "--all"]).is_some(),
                id: pos[0].to_string(),
                signal: pos.get(1).unwrap_or(&"TERM").to_string(),
            })
        }
        "list" | "ls" if pos.is_empty() => Cmd::List(ListArgs {
            quiet: take(&["-q", "--quiet"]).is_some(),
            format: take(&["-f", "--format"])
                .map(|v| v.unwrap_or_default().to_string())
                .unwrap_or_else(|| "table".into()),
        }),
        v @ ("create" | "run") => {
            let opts = CreateOpts {
                bundle: take(&["-b", "--bundle"])
                    .map(|v| PathBuf::from(v.unwrap_or_default()))
                    .unwrap_or_else(|| PathBuf::from(".")),
                pid_file: take(&["--pid-file"]).map(|v| PathBuf::from(v.unwrap_or_default())),
                console_socket: take(&["--console-socket"])
                    .map(|v| PathBuf::from(v.unwrap_or_default())),
                no_pivot: take(&["--no-pivot"]).is_some(),
                no_new_keyring: take(&["--no-new-keyring"]).is_some(),
                preserve_fds: match take(&["--preserve-fds"]) {
                    Some(v) => v?.parse().ok()?,
                    None => 0,
                },
                pidfd_socket: take(&["--pidfd-socket"])
                    .map(|v| PathBuf::from(v.unwrap_or_default())),
            };
            let id = one(&pos)?;
            if v == "create" {
                Cmd::Create(CreateArgs { opts, id })
            } else {
                Cmd::Run(RunArgs {
                    opts,
                    detach: take(&["-d", "--detach"]).is_some(),
                    keep: take(&["--keep"]).is_some(),
                    id,
                })
            }
        }
        _ => return None,
    };
    // A flag this verb does not have: clap says what is wrong.
    if !flags.is_empty() {
        return None;
    }
    cli.cmd = Some(cmd);
    Some(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// containerd-shim-runc-v2's create.
    const CONTAINERD_CREATE: &[&str] = &[
        "--root",
        "/r",
        "--log",
        "/l.json",
        "--log-format",
        "json",
        "create",
        "--bundle",
        "/b",
        "--pid-file",
        "/p",
        "--console-socket",
        "/s",
        "abc",
    ];

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("rrun").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn containerd_create_argv() {
        let c = parse(CONTAINERD_CREATE);
        assert_eq!(c.root.as_deref(), Some(std::path::Path::new("/r")));
        assert_eq!(c.log_format, Format::Json);
        match c.cmd {
            Some(Cmd::Create(a)) => {
                assert_eq!(a.id, "abc");
                assert_eq!(a.opts.bundle, PathBuf::from("/b"));
                assert!(a.opts.console_socket.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_after_the_id() {
        let c = parse(&["delete", "abc", "--force", "--root", "/r"]);
        assert_eq!(c.root.as_deref(), Some(std::path::Path::new("/r")));
        assert!(matches!(
            c.cmd,
            Some(Cmd::Delete(DeleteArgs { force: true, .. }))
        ));
        let c = parse(&["kill", "abc", "9"]);
        assert!(matches!(c.cmd, Some(Cmd::Kill(KillArgs { ref signal, .. })) if signal == "9"));
        let c = parse(&["run", "x", "-b", "/b", "-d"]);
        assert!(matches!(
            c.cmd,
            Some(Cmd::Run(RunArgs { detach: true, .. }))
        ));
    }

    #[test]
    fn rootless_forms() {
        assert_eq!(
            parse(&["spec", "--rootless"]).rootless.as_deref(),
            Some("true")
        );
        assert_eq!(
            parse(&["--rootless=auto", "list"]).rootless.as_deref(),
            Some("auto")
        );
        assert_eq!(parse(&["list"]).rootless, None);
    }

    /// Every argv the fast path takes parses exactly as clap parses it; the others go to clap.
    #[test]
    fn fast_path_agrees_with_clap() {
        let taken: &[&[&str]] = &[
            &["state", "abc"],
            &["--root", "/r", "state", "abc"],
            &[
                "--root=/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "start",
                "abc",
            ],
            &["start", "abc", "--root", "/r", "--debug"],
            &["--systemd-cgroup", "pause", "abc"],
            &["resume", "abc"],
            &["delete", "abc"],
            &["delete", "--force", "abc"],
            &["delete", "abc", "-f", "--root", "/r"],
            &["kill", "abc"],
            &["kill", "abc", "15"],
            &["kill", "--all", "abc", "KILL"],
            &["kill", "abc", "SIGKILL", "-a"],
            &["list"],
            &["ls", "-q"],
            &["list", "--format", "json"],
            &["--root", "/r", "list", "-f", "table", "--quiet"],
            CONTAINERD_CREATE,
            &["create", "abc"],
            &[
                "create",
                "-b",
                "/b",
                "abc",
                "--no-pivot",
                "--no-new-keyring",
            ],
            &["create", "--preserve-fds", "2", "--bundle=/b", "abc"],
            &["create", "abc", "--pidfd-socket", "/s"],
            &["run", "-b", "/b", "x"],
            &["run", "x", "-b", "/b", "-d"],
            &["run", "--detach", "--keep", "--pid-file=/p", "x"],
            &["--log-format=text", "run", "x"],
        ];
        for argv in taken {
            let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            let fast = fast_parse(&args).unwrap_or_else(|| panic!("not taken: {argv:?}"));
            assert_eq!(
                format!("{fast:?}"),
                format!("{:?}", parse(argv)),
                "{argv:?}"
            );
        }
        let left_to_clap: &[&[&str]] = &[
            &[],
            &["--help"],
            &["-v"],
            &["--version"],
            &["help", "state"],
            &["state"],
            &["state", "a", "b"],
            &["state", "--", "a"],
            &["state", "-h"],
            &["state", "a", "--bogus"],
            &["--root", "/a", "--root", "/b", "state", "x"],
            &["--log-format", "xml", "state", "x"],
            &["--root", "", "state", "x"],
            &["--rootless=auto", "list"],
            &["--criu", "c", "list"],
            &["delete", "-fq", "x"],
            &["delete", "--force=true", "x"],
            &["kill", "x", "-9"],
            &["kill", "a", "b", "c"],
            &["create", "-bfoo", "x"],
            &["create", "--preserve-fds", "many", "x"],
            &["create", "--preserve-fds", "-1", "x"],
            &["create", "--bundle"],
            &["create", "-d", "x"],
            &["run", "-f", "x"],
            &["list", "x"],
            &["-f", "list"],
            &["--bundle", "/b", "create", "x"],
            &["-d", "run", "x"],
            &["exec", "x", "true"],
            &["spec"],
            &["features"],
            &["update", "--memory", "1m", "x"],
        ];
        for argv in left_to_clap {
            let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            assert!(
                fast_parse(&args).is_none(),
                "taken but should not be: {argv:?}"
            );
        }
    }
}
